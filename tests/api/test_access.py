"""The access matrix, walked from the OpenAPI document: every operation x every role x the
caller's own and another establishment's data.

For each operation the document says which roles may call it (`x-roles`). The walk proves:
- a caller without credentials gets 401, a role not listed gets 403 (every operation);
- a listed role reading gets its answer (GET: 200);
- an establishment user, or an agent, aimed at another establishment's object gets 403 or 404
  (never the object, never a change);
- no answer to an establishment user or an agent carries the other establishment's FINESS or
  the ids of its objects;
- auditors are listed on no operation that writes, and are refused on all of them.

A new operation fails `test_every_operation_is_walked` until its path parameters have an
own/other value here: the walk cannot silently skip it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.api.conftest import Service
from tests.api.test_agents import enrolled, new_token
from tests.api.test_incidents import detection, form
from tests.api.test_ingest import post
from tests.api.test_service import BORDEAUX, PITIE, setup_world

ROLES = ("anonymous", "agent", "it_pitie", "analyst", "inspector", "admin")
SCOPED = ("agent", "it_pitie")  # callers limited to Pitié
ROLE_OF = {
    "agent": "agent",
    "it_pitie": "establishment",
    "analyst": "cert",
    "inspector": "auditor",
    "admin": "admin",
}


def _alert(title: str, target: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": title,
        "severity": "high",
        "tlp": "amber",
        "indicators": [{"type": "ip", "value": "203.0.113.66"}],
        "target": target,
        "retro_hunt_days": 0,
    }


@dataclass
class World:
    tokens: dict[str, str]
    own: dict[str, str]  # path parameter -> a value that is Pitié's (or anyone's)
    other: dict[str, str]  # path parameter -> a value that is Bordeaux's only


def build_world(service: Service) -> World:
    tokens = setup_world(service)
    admin = tokens["admin"]
    own: dict[str, str] = {"finess": PITIE, "name": "agent_silent", "username": "it_pitie"}
    other: dict[str, str] = {"finess": BORDEAUX}
    keys: dict[str, str] = {}  # an establishment API key each: their maturity declarations
    for finess, ids in ((PITIE, own), (BORDEAUX, other)):
        token = new_token(service, admin, finess)
        ids["token_id"] = token["id"]
        agent = enrolled(service, new_token(service, admin, finess)["token"])
        ids["agent_id"] = agent["id"]
        ids["agent_key"] = agent["agent_key"]
        with service.client(admin) as client:
            made = client.post("/incidents", json=form(establishment=finess))
            assert made.status_code == 201, made.text
            ids["incident_id"] = made.json()["id"]
            key = client.post(
                "/api-keys",
                json={"name": f"siem-{finess}", "role": "establishment", "establishment": finess},
            )
            assert key.status_code == 201, key.text
            ids["key_id"] = key.json()["id"]
            keys[finess] = key.json()["key"]
        # A rule of Vigie's own (Mimikatz): only rules the service knows make campaigns.
        mimikatz = detection("abf9fb10-96fd-4f5f-bfb7-2cfacf49fa93", "h")
        batch = {
            "batch_id": f"access-{finess}",
            "detections": [mimikatz],
            "detection_ids": ["mimikatz-1"],
        }
        assert post(service, ids["agent_key"], batch).status_code == 200
        ids["item_uid"] = f"agent:{agent['id']}/mimikatz-1"  # as the event store keeps it
    for finess, ids in ((PITIE, own), (BORDEAUX, other)):
        ids.update(_maturity(service, admin, keys[finess], finess))
    own["kind"] = other["kind"] = "maturity"  # with ?finess= (QUERIES): theirs is Bordeaux's
    for finess, ids in ((PITIE, own), (BORDEAUX, other)):
        ids["run_id"] = _kept_report(service, admin, finess)
    tokens["agent"] = own.pop("agent_key")
    other.pop("agent_key")
    with service.client(tokens["analyst"]) as client:
        everyone = client.post("/alerts", json=_alert("Pour tous", {"all": True}))
        assert everyone.status_code in (200, 201), everyone.text
        own["alert_id"] = everyone.json()["id"]
        elsewhere = client.post(
            "/alerts", json=_alert("Nouvelle-Aquitaine", {"regions": ["Nouvelle-Aquitaine"]})
        )
        assert elsewhere.status_code in (200, 201), elsewhere.text
        other["alert_id"] = elsewhere.json()["id"]
        campaigns = client.get("/campaigns").json()
        assert len(campaigns) == 1  # the rule in both establishments
        own["campaign_id"] = campaigns[0]["id"]
    return World(tokens, own, other)


def _maturity(service: Service, admin: str, key: str, finess: str) -> dict[str, str]:
    """A snapshot, a proof, an answer and an exception of the establishment's own."""
    base = f"/establishments/{finess}/maturity"
    with service.client(key) as client:
        proof = client.post(
            f"{base}/proofs",
            params={"control": "BAK-02", "filename": "pv.pdf"},
            content=b"%PDF-1.4\n%%EOF\n",
            headers={"Content-Type": "application/pdf"},
        )
        assert proof.status_code == 201, proof.text
        answer = client.put(f"{base}/answers/BAK-02", json={"date": "2026-06-01"})
        assert answer.status_code == 200, answer.text
        exception = client.post(f"{base}/exceptions", json=MATURITY_EXCEPTION)
        assert exception.status_code == 201, exception.text
    with service.client(admin) as client:
        assert client.post("/jobs/maturity/run").json()["outcome"] == "ok"
        snapshot = client.get(base).json()["snapshot"]
    return {
        "snapshot_id": snapshot,
        "proof_id": proof.json()["id"],
        "control_id": "BAK-02",
        "exception_id": exception.json()["id"],
    }


def _kept_report(service: Service, admin: str, finess: str) -> str:
    """A maturity report the monthly job kept for the establishment (as of next month)."""
    now = datetime.now(UTC)
    month = (now.replace(day=1) + timedelta(days=32)).replace(day=1, hour=3, minute=0)
    with service.client(admin, timeout=120) as client:
        run = client.post("/jobs/report_maturity/run", params={"now": month.isoformat()})
        assert run.json()["outcome"] == "ok", run.text
        kept = client.get("/reports/runs", params={"finess": finess, "kind": "maturity"}).json()
    return str(kept[0]["id"])


MATURITY_EXCEPTION = {
    "control": "EXP-01",
    "kind": "risk_accepted",
    "reason": "télémaintenance du PACS pendant la migration",
    "approver": "Directeur",
    "expires_at": (datetime.now(UTC) + timedelta(days=100)).isoformat(),
}


def operations(service: Service) -> list[tuple[str, str, list[str]]]:
    with service.client() as client:
        spec = client.get("/openapi.json").json()
    return [
        (method.upper(), path, op["x-roles"])
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]


# Operations answered only with a query: the one their callers send.
QUERIES = {
    "/establishments/{finess}/events": "?ids={item_uid}",
    "/establishments/{finess}/detections": "?ids={item_uid}",
    "/establishments/{finess}/maturity/proofs": "?control=BAK-02&filename=pv.pdf",
    "/stats/incidents": "?by=severity",  # by region or kind: national roles only (below)
    "/reports/{kind}": "?finess={finess}",  # kind: maturity, one establishment's
}


def fill(path: str, values: dict[str, str]) -> str | None:
    try:
        return (path + QUERIES.get(path, "")).format(**values)
    except KeyError:
        return None


def body_for(method: str, path: str) -> dict[str, Any] | None:
    """A well-formed body, so that the answer is about access, not validation."""
    if method in ("GET", "DELETE"):
        return None
    now = datetime.now(UTC)
    bodies: dict[str, dict[str, Any]] = {
        "/incidents/{incident_id}": {"description": "mis à jour"},
        "/incidents/{incident_id}/status": {"status": "acknowledged"},
        "/incidents/{incident_id}/comments": {"text": "vu"},
        "/incidents/{incident_id}/reports": {"kind": "early_warning"},
        "/establishments/{finess}": {"beds": 10},
        "/establishments/{finess}/enrollment-tokens": {"max_uses": 1},
        "/campaigns/{campaign_id}": {"title": "campagne renommée"},
        "/alerts/{alert_id}": {"description": "mise à jour"},
        "/alerts/{alert_id}/acknowledge": {"comment": "pris en compte"},
        "/alerts/{alert_id}/retro-hunt": {"days": 1},
        "/incidents": form(establishment=BORDEAUX, aware_at=now.isoformat()),
        "/api-keys": {"name": "x-key", "role": "establishment", "establishment": BORDEAUX},
        "/alerts": _alert("x alert", {"all": True}),
        "/establishments": {"finess": "2B0004246", "name": "CH de Corte", "kind": "CH"},
        "/users": {"username": "x_user", "password": "correct horse battery", "role": "cert"},
        "/users/{username}": {"active": True},
        "/users/{username}/password": {"password": "Bruyères-Vertes-2042"},
        "/auth/password": {"current_password": "x", "new_password": "Bruyères-Vertes-2042"},
        "/establishments/{finess}/maturity/profile": {"flags": {}, "reason": "essai d'accès"},
        "/establishments/{finess}/maturity/answers/{control_id}": {"date": "2026-06-02"},
        "/establishments/{finess}/maturity/answers/{control_id}/review": {"review": "proven"},
        "/establishments/{finess}/maturity/exceptions": MATURITY_EXCEPTION,
    }
    return bodies.get(path, {})


def call(service: Service, token: str | None, method: str, url: str, body: Any) -> httpx.Response:
    with service.client(token) as client:
        return client.request(method, url, json=body)


@pytest.fixture
def world(service: Service) -> World:
    return build_world(service)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_operation_is_walked(service: Service, world: World) -> None:
    missing = [
        f"{method} {path}"
        for method, path, _ in operations(service)
        if fill(path, world.own) is None
    ]
    assert not missing, f"no own/other values for the path parameters of: {missing}"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_roles_are_enforced_as_declared(service: Service, world: World) -> None:
    failures = []
    for method, path, roles in operations(service):
        if "public" in roles:
            continue
        url = fill(path, world.own)
        assert url is not None
        for caller in ROLES:
            token = world.tokens.get(caller)
            allowed = caller != "anonymous" and ROLE_OF[caller] in roles
            if allowed and method != "GET":
                continue  # writes by allowed roles change the world: the feature tests do them
            answer = call(service, token, method, url, body_for(method, path))
            if caller == "anonymous":
                expected = {401}
            elif not allowed:
                expected = {403}
            else:
                expected = {200}
            if answer.status_code not in expected:
                failures.append(
                    f"{caller} {method} {url}: {answer.status_code} {answer.text[:120]}"
                )
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_establishment_never_reaches_another(service: Service, world: World) -> None:
    failures = []
    # A control's id is the framework's, the same for everyone: not Bordeaux's to leak.
    # The report kind is a word of the API; a run's id a small number found in any answer.
    shared = ("finess", "control_id", "kind", "run_id")
    secrets_of_other = {BORDEAUX, *(v for k, v in world.other.items() if k not in shared)}
    for method, path, roles in operations(service):
        for caller in SCOPED:
            if ROLE_OF[caller] not in roles:
                continue  # refused outright: test_roles_are_enforced_as_declared
            token = world.tokens[caller]
            other_url = fill(path, world.other)
            if other_url is not None and other_url != fill(path, world.own):
                answer = call(service, token, method, other_url, body_for(method, path))
                if answer.status_code not in (403, 404):
                    failures.append(f"{caller} {method} {other_url}: {answer.status_code}")
            if method == "GET":
                own_url = fill(path, world.own)
                assert own_url is not None
                text = call(service, token, method, own_url, None).text
                leaked = [s for s in secrets_of_other if s in text]
                if leaked:
                    failures.append(f"{caller} GET {own_url} shows Bordeaux's {leaked}")
        if path in ("/incidents", "/agents", "/deadlines") and method == "GET":
            listing = call(
                service, world.tokens["it_pitie"], "GET", f"{path}?establishment={BORDEAUX}", None
            )
            if listing.status_code == 200 and listing.json()["total"] != 0:
                failures.append(f"it_pitie GET {path}?establishment={BORDEAUX}: not empty")
    # Questions about another establishment, or comparing establishments, are refused.
    for url, refused in (
        (f"/alerts?pending_for={BORDEAUX}", 404),
        (f"/stats/incidents?by=severity&establishment={BORDEAUX}", None),
        ("/stats/incidents?by=region", 403),
        ("/stats/incidents?by=kind", 403),
    ):
        answer = call(service, world.tokens["it_pitie"], "GET", url, None)
        if refused is not None and answer.status_code != refused:
            failures.append(f"it_pitie GET {url}: {answer.status_code}, not {refused}")
        if refused is None and answer.json()["total"] != 0:
            failures.append(f"it_pitie GET {url}: counts Bordeaux's incidents")
    assert not failures, "\n".join(failures)
    # And nothing of Bordeaux's changed: its incident is as the admin made it.
    with service.client(world.tokens["admin"]) as client:
        theirs = client.get(f"/incidents/{world.other['incident_id']}").json()
    assert theirs["status"] == "new"
    assert [e["kind"] for e in theirs["timeline"]] == ["created"]


# A user's own account: every human may change their password and log out, auditors too.
SELF_SERVICE = {("POST", "/auth/password"), ("POST", "/auth/logout")}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_auditors_never_write(service: Service, world: World) -> None:
    writes = [
        (m, p, r)
        for m, p, r in operations(service)
        if m != "GET" and "public" not in r and (m, p) not in SELF_SERVICE
    ]
    assert writes
    listed = [f"{m} {p}" for m, p, r in writes if "auditor" in r]
    assert not listed, f"auditors may write through: {listed}"
    for method, path, _ in writes:
        url = fill(path, world.own)
        assert url is not None
        answer = call(service, world.tokens["inspector"], method, url, body_for(method, path))
        assert answer.status_code == 403, f"{method} {url}: {answer.status_code}"
    with service.client(world.tokens["inspector"]) as client:
        entries = client.get("/audit").json()
    changes = [e for e in entries if e["action"] not in ("read", "login")]
    assert not [e for e in changes if e["actor"] == "inspector"]
