"""Enrollment tokens and agents over real HTTP: enrollment, agent keys, heartbeats, scoping,
revocation, the access matrix of every agent endpoint, and `vigie agent enroll`."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy

from tests.api.conftest import Service, tagged_operations_missing
from tests.api.test_service import BORDEAUX, PITIE, setup_world

REPO = Path(__file__).resolve().parents[2]
SOURCES = [{"name": "syslog-udp-514", "kind": "syslog"}, {"name": "dc01-security", "kind": "evtx"}]


def new_token(service: Service, bearer: str, finess: str, **body: Any) -> dict[str, Any]:
    with service.client(bearer) as client:
        answer = client.post(f"/establishments/{finess}/enrollment-tokens", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def enroll(service: Service, token: str, hostname: str = "srv-collect-01") -> httpx.Response:
    with service.client() as client:
        return client.post(
            "/agents/enroll",
            json={"token": token, "hostname": hostname, "version": "0.1.0", "sources": SOURCES},
        )


def enrolled(service: Service, token: str, hostname: str = "srv-collect-01") -> dict[str, Any]:
    answer = enroll(service, token, hostname)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def backdate(service: Service, token_id: str) -> None:
    """Let a token expire without waiting a week: its expiry moved to yesterday, in the database."""
    engine = sqlalchemy.create_engine(service.settings.database_url)
    with engine.begin() as connection:
        connection.execute(
            sqlalchemy.text("UPDATE enrollment_tokens SET expires_at = :at WHERE id = :id"),
            {"at": datetime.now(UTC) - timedelta(days=1), "id": token_id},
        )
    engine.dispose()


def test_enroll_heartbeat_and_listing(service: Service) -> None:
    tokens = setup_world(service)
    made = new_token(service, tokens["it_pitie"], PITIE, max_uses=2, label="servers")
    assert made["token"].startswith("vge_")
    assert made["token"].startswith(made["prefix"])
    assert made["establishment"] == PITIE
    assert made["state"] == "active"
    assert made["uses"] == 0
    expires = datetime.fromisoformat(made["expires_at"])
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)

    agent = enrolled(service, made["token"])
    assert agent["agent_key"].startswith("vga_")
    assert agent["establishment"] == PITIE
    assert agent["hostname"] == "srv-collect-01"
    assert [s["name"] for s in agent["sources"]] == ["syslog-udp-514", "dc01-security"]
    assert agent["last_heartbeat"] is None
    assert agent["revoked"] is False
    # The bundle key comes with the answer the token pays for: the same as the public one.
    with service.client() as client:
        public = client.get("/alerts/bundle/public-key").json()
    assert (agent["bundle_key"], agent["bundle_key_id"]) == (public["public_key"], public["key_id"])

    with service.client(agent["agent_key"]) as client:
        me = client.get("/agents/me")
        assert me.status_code == 200, me.text
        assert me.json()["id"] == agent["id"]
        assert "agent_key" not in me.json()
        beat = client.post(
            "/agents/heartbeat",
            json={
                "version": "0.2.0",
                "sources": [
                    {"name": "syslog-udp-514", "kind": "syslog", "lag_seconds": 1.5},
                    {"name": "dc01-security", "kind": "evtx", "lag_seconds": 42},
                    "pcap-span",  # a bare name is a source without a lag
                ],
            },
        )
        assert beat.status_code == 200, beat.text
    assert beat.json()["version"] == "0.2.0"
    assert beat.json()["lag_seconds"] == 42
    assert beat.json()["last_heartbeat"] is not None

    with service.client(tokens["it_pitie"]) as client:
        listing = client.get("/agents").json()
        listed = client.get(f"/establishments/{PITIE}/enrollment-tokens").json()
    assert listing["total"] == 1
    (row,) = listing["items"]
    assert row["version"] == "0.2.0"
    assert row["lag_seconds"] == 42
    assert [s["name"] for s in row["sources"]] == ["syslog-udp-514", "dc01-security", "pcap-span"]
    assert "agent_key" not in row
    (token_row,) = listed
    assert token_row["uses"] == 1
    assert token_row["label"] == "servers"
    assert token_row["created_by"] == "it_pitie"
    assert "token" not in token_row  # shown once, at creation


def test_tokens_used_up_expired_revoked_unknown(service: Service) -> None:
    tokens = setup_world(service)
    analyst = tokens["analyst"]
    once = new_token(service, analyst, PITIE, max_uses=1)
    enrolled(service, once["token"])
    again = enroll(service, once["token"], "srv-collect-02")
    assert again.status_code == 401
    assert again.json()["code"] == "enrollment_token_used_up"

    late = new_token(service, analyst, PITIE)
    backdate(service, late["id"])
    expired = enroll(service, late["token"])
    assert expired.status_code == 401
    assert expired.json()["code"] == "enrollment_token_expired"

    cancelled = new_token(service, tokens["it_pitie"], PITIE)
    with service.client(tokens["it_pitie"]) as client:
        revoked = client.post(f"/establishments/{PITIE}/enrollment-tokens/{cancelled['id']}/revoke")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["state"] == "revoked"
        states = {
            t["id"]: t["state"]
            for t in client.get(f"/establishments/{PITIE}/enrollment-tokens").json()
        }
    assert states == {once["id"]: "used_up", late["id"]: "expired", cancelled["id"]: "revoked"}
    refused = enroll(service, cancelled["token"])
    assert refused.status_code == 401
    assert refused.json()["code"] == "enrollment_token_revoked"

    unknown = enroll(service, "vge_" + "x" * 43)
    assert unknown.status_code == 401
    assert unknown.json()["code"] == "invalid_enrollment_token"

    with service.client() as client:
        malformed = client.post(
            "/agents/enroll", json={"token": once["token"], "hostname": "bad host", "version": "1"}
        )
    assert malformed.status_code == 422


def test_unlimited_token_enrolls_many_until_revoked(service: Service) -> None:
    tokens = setup_world(service)
    fleet = new_token(service, tokens["admin"], BORDEAUX)
    assert fleet["max_uses"] is None
    ids = {enrolled(service, fleet["token"], f"ward-{n}")["id"] for n in range(3)}
    assert len(ids) == 3
    with service.client(tokens["admin"]) as client:
        revoked = client.post(f"/establishments/{BORDEAUX}/enrollment-tokens/{fleet['id']}/revoke")
        assert revoked.json()["uses"] == 3
        # Revoking a token stops new enrollments, not the agents enrolled with it.
        assert client.get("/agents", params={"establishment": BORDEAUX}).json()["total"] == 3
    assert enroll(service, fleet["token"]).json()["code"] == "enrollment_token_revoked"


def test_agent_keys_authenticate_agents_only(service: Service) -> None:
    tokens = setup_world(service)
    agent = enrolled(service, new_token(service, tokens["admin"], PITIE)["token"])
    with service.client(agent["agent_key"]) as client:
        # An agent is no human: establishment data and the agents' registry are not for it.
        assert client.get("/establishments").status_code == 403
        assert client.get("/agents").status_code == 403
        assert client.get(f"/agents/{agent['id']}").status_code == 403
        assert client.post(f"/establishments/{PITIE}/enrollment-tokens", json={}).status_code == 403
    for bad in ("vga_" + "A" * 43, agent["agent_key"] + "x", agent["agent_key"][:-1]):
        with service.client(bad) as client:
            answer = client.post("/agents/heartbeat", json={"version": "1.0"})
        assert answer.status_code == 401
        assert answer.json()["code"] == "invalid_agent_key"
    with service.client(tokens["it_pitie"]) as client:
        assert client.post("/agents/heartbeat", json={"version": "1.0"}).status_code == 403
        assert client.get("/agents/me").status_code == 403
    with service.client() as client:
        assert client.post("/agents/heartbeat", json={"version": "1.0"}).status_code == 401


def test_revoked_agent_is_refused(service: Service) -> None:
    tokens = setup_world(service)
    agent = enrolled(service, new_token(service, tokens["it_pitie"], PITIE)["token"])
    with service.client(tokens["it_pitie"]) as client:
        revoked = client.post(f"/agents/{agent['id']}/revoke")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["revoked"] is True
        assert client.post(f"/agents/{agent['id']}/revoke").json()["revoked"] is True  # again
    with service.client(agent["agent_key"]) as client:
        for answer in (
            client.post("/agents/heartbeat", json={"version": "1.0"}),
            client.get("/agents/me"),
        ):
            assert answer.status_code == 401
            assert answer.json()["code"] == "agent_revoked"
    with service.client(tokens["analyst"]) as client:
        assert client.get(f"/agents/{agent['id']}").json()["revoked_at"] is not None


def test_establishments_see_their_own_agents_only(service: Service) -> None:
    tokens = setup_world(service)
    pitie = enrolled(service, new_token(service, tokens["it_pitie"], PITIE)["token"], "pitie-1")
    bordeaux = enrolled(service, new_token(service, tokens["admin"], BORDEAUX)["token"], "bx-1")
    with service.client(tokens["it_pitie"]) as client:
        mine = client.get("/agents").json()
        assert [a["id"] for a in mine["items"]] == [pitie["id"]]
        assert mine["total"] == 1
        theirs = client.get("/agents", params={"establishment": BORDEAUX}).json()
        assert theirs == {"items": [], "total": 0}
        hidden = client.get(f"/agents/{bordeaux['id']}")
        absent = client.get("/agents/00000000-0000-0000-0000-000000000000")
        # Another's agent and no agent answer alike: nothing to probe.
        assert hidden.status_code == absent.status_code == 404
        assert hidden.json()["code"] == absent.json()["code"] == "not_found"
        assert client.get(f"/establishments/{BORDEAUX}/enrollment-tokens").status_code == 404
        assert client.post(f"/agents/{bordeaux['id']}/revoke").status_code == 404
    with service.client(tokens["analyst"]) as client:
        everyone = client.get("/agents").json()
        assert {a["id"] for a in everyone["items"]} == {pitie["id"], bordeaux["id"]}
        only = client.get("/agents", params={"establishment": BORDEAUX}).json()
        assert [a["id"] for a in only["items"]] == [bordeaux["id"]]
    with service.client(bordeaux["agent_key"]) as client:
        assert client.get("/agents/me").json()["establishment"] == BORDEAUX
    with service.client(tokens["admin"]) as client:
        assert client.get(f"/agents/{bordeaux['id']}").json()["revoked"] is False


def test_human_access_to_agents_is_audited(service: Service) -> None:
    tokens = setup_world(service)
    made = new_token(service, tokens["it_pitie"], PITIE)
    agent = enrolled(service, made["token"])
    with service.client(agent["agent_key"]) as client:
        assert client.post("/agents/heartbeat", json={"version": "1.0"}).status_code == 200
    with service.client(tokens["it_pitie"]) as client:
        assert client.get(f"/agents/{agent['id']}").status_code == 200
        assert client.post(f"/agents/{agent['id']}/revoke").status_code == 200
    with service.client(tokens["inspector"]) as client:
        entries = client.get("/audit").json()
    seen = {(e["actor"], e["action"], e["target_kind"], e["target_id"]) for e in entries}
    assert ("it_pitie", "create", "enrollment_token", made["id"]) in seen
    assert ("it_pitie", "read", "agent", agent["id"]) in seen
    assert ("it_pitie", "update", "agent", agent["id"]) in seen
    assert not [e for e in entries if e["role"] == "agent"]  # machine traffic is not audited


# The access matrix of the agent endpoints ------------------------------------------------------

ROLES = ("it_pitie", "analyst", "inspector", "admin", "agent", "anonymous")


def _row(
    method: str, path: str, body: Any, **expected: int
) -> tuple[str, str, Any, dict[str, int]]:
    assert set(expected) == set(ROLES), f"{method} {path}: every role is stated"
    return method, path, body, expected


def _matrix(world: dict[str, str]) -> list[tuple[str, str, Any, dict[str, int]]]:
    """Every agent endpoint x every role x own (Pitié's) / other (Bordeaux's) data."""
    humans_read = {"it_pitie": 200, "analyst": 200, "inspector": 200, "admin": 200}
    others_read = {**humans_read, "it_pitie": 404}
    managers = {"it_pitie": 200, "analyst": 200, "inspector": 403, "admin": 200}
    refused = {"agent": 403, "anonymous": 401}
    created = {"it_pitie": 201, "analyst": 201, "admin": 201}
    tokens = "/establishments/{}/enrollment-tokens"
    own_tokens, other_tokens = tokens.format(PITIE), tokens.format(BORDEAUX)
    beat = {"version": "1.0", "sources": ["syslog"]}
    return [
        _row("POST", own_tokens, {}, **{**managers, **created}, **refused),
        _row("POST", other_tokens, {}, **{**managers, **created, "it_pitie": 404}, **refused),
        _row("GET", own_tokens, None, **humans_read, **refused),
        _row("GET", other_tokens, None, **others_read, **refused),
        _row("POST", f"{own_tokens}/{world['own_token']}/revoke", None, **managers, **refused),
        _row(
            "POST",
            f"{other_tokens}/{world['other_token']}/revoke",
            None,
            **{**managers, "it_pitie": 404},
            **refused,
        ),
        # Another's token through one's own establishment: not found, for everyone.
        _row(
            "POST",
            f"{own_tokens}/{world['other_token']}/revoke",
            None,
            it_pitie=404,
            analyst=404,
            inspector=403,
            admin=404,
            **refused,
        ),
        _row(
            "POST",
            "/agents/enroll",
            {"token": world["fleet_token"], "hostname": "h", "version": "1.0"},
            **dict.fromkeys(ROLES, 201),
        ),
        _row(
            "POST",
            "/agents/heartbeat",
            beat,
            **dict.fromkeys(("it_pitie", "analyst", "inspector", "admin"), 403),
            agent=200,
            anonymous=401,
        ),
        _row(
            "GET",
            "/agents/me",
            None,
            **dict.fromkeys(("it_pitie", "analyst", "inspector", "admin"), 403),
            agent=200,
            anonymous=401,
        ),
        _row("GET", "/agents", None, **humans_read, **refused),
        _row("GET", f"/agents?establishment={BORDEAUX}", None, **humans_read, **refused),
        _row("GET", f"/agents/{world['own_agent']}", None, **humans_read, **refused),
        _row("GET", f"/agents/{world['other_agent']}", None, **others_read, **refused),
        _row("POST", f"/agents/{world['own_spare']}/revoke", None, **managers, **refused),
        _row(
            "POST",
            f"/agents/{world['other_spare']}/revoke",
            None,
            **{**managers, "it_pitie": 404},
            **refused,
        ),
    ]


def _agent_world(service: Service) -> dict[str, str]:
    tokens = setup_world(service)
    admin = tokens["admin"]
    own = new_token(service, admin, PITIE)
    other = new_token(service, admin, BORDEAUX)
    own_agent = enrolled(service, own["token"], "pitie-1")
    world = {
        **tokens,
        "agent": own_agent["agent_key"],
        "anonymous": "",
        "own_agent": own_agent["id"],
        "own_spare": enrolled(service, own["token"], "pitie-2")["id"],
        "other_agent": enrolled(service, other["token"], "bx-1")["id"],
        "other_spare": enrolled(service, other["token"], "bx-2")["id"],
        "own_token": new_token(service, admin, PITIE)["id"],
        "other_token": new_token(service, admin, BORDEAUX)["id"],
        "fleet_token": new_token(service, admin, PITIE)["token"],
    }
    return world


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_agent_access_matrix(service: Service) -> None:
    world = _agent_world(service)
    matrix = _matrix(world)
    clients = {role: service.client(world[role] or None) for role in ROLES}
    failures = []
    for method, path, body, expected in matrix:
        for role, status in expected.items():
            answer = clients[role].request(method, path, json=body)
            if answer.status_code != status:
                failures.append(f"{role} {method} {path}: {answer.status_code}, expected {status}")
    for client in clients.values():
        client.close()
    assert not failures, "\n".join(failures)
    # An auditor never writes: every write it tries is refused (enrolling needs no role at all).
    writes = [row for row in matrix if row[0] != "GET" and row[1] != "/agents/enroll"]
    assert all(expected["inspector"] == 403 for _, _, _, expected in writes)
    # Every agent endpoint in the OpenAPI document is in the matrix, with its roles stated.
    count, missing = tagged_operations_missing(service, "agents", matrix)
    assert count == 9
    assert not missing, "\n".join(missing)


# vigie agent enroll ------------------------------------------------------------------------------


def vigie(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_enroll(service: Service, tmp_path: Path) -> None:
    tokens = setup_world(service)
    made = new_token(service, tokens["it_pitie"], PITIE, max_uses=1)
    config = tmp_path / "etc" / "agent.json"
    done = vigie(
        "agent", "enroll", "--server", service.url + "/", "--token", made["token"],
        "--hostname", "ehpad-pc-1", "--source", "syslog-udp-514", "--config", str(config),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    credential = json.loads(config.read_text(encoding="utf-8"))
    assert credential["server"] == service.url
    assert credential["establishment"] == PITIE
    assert credential["hostname"] == "ehpad-pc-1"
    assert credential["agent_id"] in done.stdout
    with service.client(credential["agent_key"]) as client:
        me = client.get("/agents/me").json()
    assert me["id"] == credential["agent_id"]
    assert [s["name"] for s in me["sources"]] == ["syslog-udp-514"]

    # The credential in place is never overwritten by accident.
    kept = vigie("agent", "enroll", "--server", service.url, "--token", made["token"],
                 "--config", str(config))  # fmt: skip
    assert kept.returncode != 0
    assert "--force" in kept.stderr
    assert json.loads(config.read_text(encoding="utf-8")) == credential

    # A spent token: one clear line naming the reason, and no file written.
    other = tmp_path / "other.json"
    spent = vigie("agent", "enroll", "--server", service.url, "--token", made["token"],
                  "--config", str(other))  # fmt: skip
    assert spent.returncode != 0
    assert spent.stderr.count("\n") == 1
    assert "enrollment_token_used_up" in spent.stderr
    assert not other.exists()


def test_cli_enroll_unreachable_server(tmp_path: Path) -> None:
    config = tmp_path / "agent.json"
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = vigie("agent", "enroll", "--server", f"http://127.0.0.1:{port}", "--token", "vge_x" * 4,
                 "--config", str(config))  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.startswith("vigie: error: cannot reach")
    assert done.stderr.count("\n") == 1
    assert not config.exists()
    bad = vigie("agent", "enroll", "--server", "ftp://example.org", "--token", "t" * 10,
                "--config", str(config))  # fmt: skip
    assert bad.returncode != 0
    assert "not an http" in bad.stderr


def test_migration_matches_the_models(service: Service) -> None:
    """What 0002 created is what the models describe (Alembic finds nothing to add or change)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from api.db import Base
    from api.models import load_all

    load_all()
    engine = sqlalchemy.create_engine(service.settings.database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    ours = [d for d in differences if "agents" in repr(d) or "enrollment_tokens" in repr(d)]
    assert not ours, ours


def test_concurrent_enrollments_never_exceed_max_uses(service: Service) -> None:
    tokens = setup_world(service)
    made = new_token(service, tokens["admin"], PITIE, max_uses=3)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda n: enroll(service, made["token"], f"pc-{n}"), range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 3 + [401] * 5, [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 401} == {
        "enrollment_token_used_up"
    }
