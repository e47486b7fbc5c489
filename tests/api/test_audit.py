"""The audit log (issue 13, finding 10): account changes and logins, refused reads of another
establishment's objects, reads of the audit log and of notifications, and lists recorded by
what they returned rather than by the filter asked for. None of these was recorded before."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests import clients
from tests.api.conftest import Service
from tests.api.test_access import World, build_world
from tests.api.test_service import BORDEAUX, PASSWORD, PITIE, setup_world


def entries(service: Service, token: str) -> list[dict[str, Any]]:
    with service.client(token) as client:
        answer = client.get("/audit", params={"limit": 1000})
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def test_logins_and_account_changes_are_audited(service: Service) -> None:
    tokens = setup_world(service)
    transport = clients.transport(local_address="127.0.0.9")
    with clients.client(service.url, transport=transport) as elsewhere:
        bad = elsewhere.post("/auth/token", json={"username": "analyst", "password": "nope"})
        assert bad.status_code == 401
        ghost = elsewhere.post("/auth/token", json={"username": "ghost", "password": "nope"})
        assert ghost.status_code == 401
        good = elsewhere.post("/auth/token", json={"username": "analyst", "password": PASSWORD})
        assert good.status_code == 200
    analyst = good.json()["access_token"]
    with service.client(tokens["admin"]) as client:
        body = {"username": "newcomer", "password": PASSWORD, "role": "auditor"}
        assert client.post("/users", json=body).status_code == 201
        assert client.patch("/users/newcomer", json={"active": False}).status_code == 200
        reset = client.post("/users/it_pitie/password", json={"password": "Ressac-du-Finistère"})
        assert reset.status_code == 200
        assert client.get("/users").status_code == 200
    with service.client(analyst) as client:
        change = {"current_password": PASSWORD, "new_password": "Sentinelle-du-Raz-1887"}
        analyst = client.post("/auth/password", json=change).json()["access_token"]
    with service.client(analyst) as client:
        assert client.post("/auth/logout").status_code == 204

    seen = {
        (e["actor"], e["action"], e["target_kind"], e["target_id"], e["client"], e["detail"])
        for e in entries(service, tokens["inspector"])
    }
    here, there = "127.0.0.1", "127.0.0.9"
    assert ("analyst", "login_failed", "user", "analyst", there, None) in seen
    assert ("ghost", "login_failed", "user", "ghost", there, None) in seen
    assert ("analyst", "login", "user", "analyst", there, None) in seen
    assert ("admin", "create", "user", "newcomer", here, "role=auditor") in seen
    assert ("admin", "update", "user", "newcomer", here, "active=False") in seen
    assert ("admin", "update", "user", "it_pitie", here, "password reset") in seen
    assert ("admin", "read", "user", "*", here, "admin,analyst,inspector,it_pitie,newcomer") in seen
    assert ("analyst", "update", "user", "analyst", here, "password") in seen
    assert ("analyst", "logout", "user", "analyst", here, None) in seen
    # No password, right or wrong, is in the log.
    text = str(seen)
    for secret in (PASSWORD, "nope", "Sentinelle-du-Raz-1887", "Ressac-du-Finistère"):
        assert secret not in text


@pytest.fixture
def world(service: Service) -> World:
    return build_world(service)


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_refused_reads_of_another_establishment_are_audited(service: Service, world: World) -> None:
    other = world.other
    probes = [
        ("GET", f"/incidents/{other['incident_id']}", "incident", other["incident_id"]),
        ("PATCH", f"/incidents/{other['incident_id']}", "incident", other["incident_id"]),
        ("GET", f"/agents/{other['agent_id']}", "agent", other["agent_id"]),
        ("GET", f"/establishments/{BORDEAUX}", "establishment", BORDEAUX),
        ("GET", f"/alerts/{other['alert_id']}", "alert", other["alert_id"]),
        ("DELETE", f"/api-keys/{other['key_id']}", "api_key", other["key_id"]),
        (
            "POST",
            f"/establishments/{PITIE}/enrollment-tokens/{other['token_id']}/revoke",
            "enrollment_token",
            other["token_id"],
        ),
    ]
    with service.client(world.tokens["it_pitie"]) as client:
        for method, path, _, _ in probes:
            body = {"description": "x"} if method == "PATCH" else None
            answer = client.request(method, path, json=body)
            assert answer.status_code == 404, f"{method} {path}: {answer.status_code}"
        # Absent objects answer alike, and are no refusal of anyone's data.
        assert client.get("/incidents/00000000-0000-0000-0000-000000000000").status_code == 404
    denied = {
        (e["target_kind"], e["target_id"])
        for e in entries(service, world.tokens["inspector"])
        if e["action"] == "denied" and e["actor"] == "it_pitie" and e["client"] == "127.0.0.1"
    }
    assert denied == {(kind, target) for _, _, kind, target in probes}


def _ids(answer: httpx.Response, key: str = "id") -> set[str]:
    assert answer.status_code == 200, answer.text
    return {str(item[key]) for item in answer.json()["items"]}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_lists_record_what_they_returned(service: Service, world: World) -> None:
    own, other = world.own, world.other
    with service.client(world.tokens["it_pitie"]) as client:
        # Asked for Bordeaux's: what was returned (nothing of Bordeaux's) is what is recorded.
        assert _ids(client.get("/incidents", params={"establishment": BORDEAUX})) == set()
        pitie_incidents = _ids(client.get("/incidents"))
        pitie_agents = _ids(client.get("/agents"))
        pitie_alerts = _ids(client.get("/alerts"))
        assert client.get("/notifications").status_code == 200
    assert own["incident_id"] in pitie_incidents
    assert other["incident_id"] not in pitie_incidents
    assert pitie_agents == {own["agent_id"]}
    assert pitie_alerts == {own["alert_id"]}  # the regional alert for Bordeaux is not in it
    with service.client(world.tokens["admin"]) as client:
        admin_pitie = _ids(client.get("/incidents", params={"establishment": PITIE}))
        admin_all = _ids(client.get("/incidents"))
        establishments = _ids(client.get("/establishments"), "finess")
    assert admin_pitie == pitie_incidents
    assert other["incident_id"] in admin_all
    assert establishments == {PITIE, BORDEAUX}
    with service.client(world.tokens["inspector"]) as client:
        assert client.get("/audit").status_code == 200
    reads = [
        (e["actor"], e["target_kind"], e["target_id"], set(filter(None, e["detail"].split(","))))
        for e in entries(service, world.tokens["inspector"])
        if e["action"] == "read" and e["detail"] is not None
    ]
    assert ("it_pitie", "incident", f"{BORDEAUX}/*", set()) in reads
    assert ("it_pitie", "incident", "*/*", pitie_incidents) in reads
    assert ("it_pitie", "agent", "*/*", pitie_agents) in reads
    assert ("it_pitie", "alert", "*", pitie_alerts) in reads
    assert ("it_pitie", "notification", "*", set()) in reads
    assert ("admin", "incident", f"{PITIE}/*", admin_pitie) in reads
    assert ("admin", "incident", "*/*", admin_all) in reads
    assert ("admin", "establishment", "*", establishments) in reads
    # Reading the audit log is itself recorded (this very reading included, next time).
    assert [r for r in reads if r[:2] == ("inspector", "audit")]
