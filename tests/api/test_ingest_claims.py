"""Delivery exactly once on the service side: a batch left half-done by a service process
that died is taken over by the next retry at once and stores nothing twice; a claim whose
owner still runs is waited for; duplicates are counted and visible to those who may look.

The dead process is real: `tests/api/dying_ingest.py` runs the real ingestion in a process of
its own and SIGKILLs itself at a chosen point; the retry goes to the real service over HTTP.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy

from api.db import make_engine, session_factory
from api.deps import Principal
from api.events.sqlite_store import SQLiteEventStore
from api.ingest.claims import ClaimOwner, claim, forget_old_leases
from tests.api.conftest import Service
from tests.api.test_agents import enrolled, new_token
from tests.api.test_ingest import SHADOW_RULE, agent_key, case_event, post
from tests.api.test_service import BORDEAUX, PITIE, setup_world
from tests.conftest import REPO

EVENTS = 300
DETECTION = {
    "engine": "sigma",
    "rule_id": "r-agent",
    "rule_title": "agent-side hit",
    "level": "high",
    "timestamp": "2026-11-20T10:00:00Z",
    "source": "x",
}


def agent_of(service: Service, key: str) -> str:
    with service.client(key) as client:
        return str(client.get("/agents/me").json()["id"])


def big_batch(batch_id: str, *, ids: bool) -> dict[str, Any]:
    """EVENTS events (every tenth one a hit for the server's rules), two agent detections."""
    events = [
        case_event(f"{SHADOW_RULE}.{'positive' if n % 10 == 0 else 'negative'}")
        for n in range(EVENTS)
    ]
    batch: dict[str, Any] = {
        "batch_id": batch_id,
        "events": events,
        "detections": [DETECTION, {**DETECTION, "rule_id": "r-agent-2"}],
    }
    if ids:
        batch["event_ids"] = [f"spool0-{n}" for n in range(EVENTS)]
        batch["detection_ids"] = ["spool0-d1", "spool0-d2"]
    return batch


def dying(
    service: Service, agent_id: str, stage: str, batch: dict[str, Any], tmp_path: Path
) -> subprocess.Popen[str]:
    path = tmp_path / f"{batch['batch_id']}.json"
    path.write_bytes(orjson.dumps(batch))
    settings = service.settings
    args = [str(settings.data_dir), settings.database_url, agent_id, PITIE, stage, str(path)]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.api.dying_ingest", *args],
        cwd=REPO,
        stdout=subprocess.PIPE if stage == "hold" else subprocess.DEVNULL,
        text=True,
    )


def counted(service: Service) -> tuple[int, int]:
    store = SQLiteEventStore.in_data_dir(service.settings.data_dir)
    try:
        return store.count("events", establishment=PITIE), store.count(
            "detections", establishment=PITIE
        )
    finally:
        store.close()


@pytest.mark.parametrize(
    ("stage", "ids"),
    [("claimed", True), ("events", True), ("detections", True), ("events", False)],
)
def test_a_batch_left_by_a_killed_process_is_taken_over_at_once_and_stored_once(
    service: Service, tmp_path: Path, stage: str, ids: bool
) -> None:
    """Before: the retry got 409 for ten minutes, then the takeover stored the batch again."""
    tokens = setup_world(service)
    key = agent_key(service, tokens)
    agent_id = agent_of(service, key)
    batch = big_batch(f"killed-{stage}-{ids}", ids=ids)
    process = dying(service, agent_id, stage, batch, tmp_path)
    assert process.wait(timeout=120) == -9  # SIGKILLed where asked, and reaped
    left_events, left_detections = counted(service)
    assert left_events == (0 if stage == "claimed" else EVENTS)

    answer = post(service, key, batch)  # the agent's very next retry
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["duplicate"] is False
    assert result["events_accepted"] == EVENTS
    server = result["server_detections"]
    assert server >= EVENTS // 10
    events, detections = counted(service)
    assert events == EVENTS  # nothing twice
    assert detections == 2 + server
    assert result["duplicates"] == left_events + left_detections
    assert left_detections == (2 + server if stage == "detections" else 0)

    again = post(service, key, batch)
    assert again.json()["duplicate"] is True
    assert again.json()["duplicates"] == result["duplicates"]
    assert counted(service) == (events, detections)
    with service.client(tokens["analyst"]) as client:
        stats = client.get(f"/agents/{agent_id}/ingest").json()
    assert stats["batches"] == 1
    assert stats["processing"] == 0
    assert stats["events_accepted"] == EVENTS
    assert stats["duplicates"] == result["duplicates"]


def test_a_claim_whose_owner_runs_is_waited_for_until_it_dies(
    service: Service, tmp_path: Path
) -> None:
    """A live owner (another process, holding the claim): 409 on every retry; once it is
    killed, the next retry goes through."""
    tokens = setup_world(service)
    key = agent_key(service, tokens)
    batch = big_batch("held-batch-01", ids=True)
    process = dying(service, agent_of(service, key), "hold", batch, tmp_path)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held"
        for _ in range(3):
            busy = post(service, key, batch)
            assert busy.status_code == 409, busy.text
            assert busy.json()["code"] == "batch_in_progress"
    finally:
        process.kill()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    answer = post(service, key, batch)
    assert answer.status_code == 200, answer.text
    assert answer.json()["duplicates"] == 0
    assert counted(service)[0] == EVENTS


def test_a_claim_is_taken_over_when_its_owners_lease_has_expired(service: Service) -> None:
    """Owners the service cannot see die: on another host (several service machines on one
    database), or alive with this host's pid but frozen. Their lease decides: held, the
    retry waits; expired or absent, it goes through."""
    tokens = setup_world(service)
    key = agent_key(service, tokens)
    agent_id = agent_of(service, key)
    who = Principal(f"agent:{agent_id}", "agent", PITIE)
    engine = make_engine(service.settings.database_url)
    sessions = session_factory(engine)
    owners = {
        "elsewhere": ClaimOwner(host="vigie-2.example"),
        "frozen": ClaimOwner(),  # this test process: same host, its pid alive
        "no-lease": ClaimOwner(host="vigie-3.example"),
    }
    try:
        for name, owner in owners.items():
            batch = {"batch_id": f"lease-{name}", "events": [case_event(f"{SHADOW_RULE}.negative")]}
            claim(sessions, batch["batch_id"], who, owner)  # takes its lease too
            busy = post(service, key, batch)
            assert busy.status_code == 409, (name, busy.text)
            lease = f"ingest-owner:{owner.token}"
            with engine.begin() as connection:
                if name == "no-lease":
                    statement = "DELETE FROM job_locks WHERE name = :name"
                    connection.execute(sqlalchemy.text(statement), {"name": lease})
                else:
                    connection.execute(
                        sqlalchemy.text("UPDATE job_locks SET expires_at = :at WHERE name = :n"),
                        {"at": datetime.now(UTC) - timedelta(seconds=1), "n": lease},
                    )
            taken = post(service, key, batch)
            assert taken.status_code == 200, (name, taken.text)
            assert taken.json()["events_accepted"] == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_same_events_in_another_batch_are_stored_once(service: Service) -> None:
    """Ids from the agent's spool hold across batches: the same items under a new batch id
    (a spool re-forming its batches) are duplicates, counted, not stored; an item id from
    another agent is another item."""
    tokens = setup_world(service)
    key = agent_key(service, tokens)
    first = big_batch("spool-batch-01", ids=True)
    assert post(service, key, first).json()["duplicates"] == 0
    second = {**first, "batch_id": "spool-batch-02"}
    result = post(service, key, second).json()
    assert result["duplicate"] is False
    assert result["duplicates"] == EVENTS + 2 + result["server_detections"]
    other_key = agent_key(service, tokens)
    assert (
        post(service, other_key, {**first, "batch_id": "other-batch-01"}).json()["duplicates"] == 0
    )
    assert counted(service)[0] == 2 * EVENTS


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_item_ids_are_checked(service: Service) -> None:
    tokens = setup_world(service)
    key = agent_key(service, tokens)
    event = case_event(f"{SHADOW_RULE}.negative")
    short = post(service, key, {"batch_id": "ids-batch-01", "events": [event], "event_ids": []})
    assert short.status_code == 422
    assert "event_ids is a list of one id per item of events" in short.json()["detail"]
    not_list = {"batch_id": "ids-batch-02", "detections": [], "detection_ids": "x"}
    assert post(service, key, not_list).status_code == 422
    odd = {
        "batch_id": "ids-batch-03",
        "events": [event, event, event],
        "event_ids": ["ok-1", "has space", 7],
    }
    answer = post(service, key, odd)
    assert answer.status_code == 200, answer.text
    assert answer.json()["events_accepted"] == 1
    reasons = {r["index"]: r["reason"] for r in answer.json()["rejected"]}
    assert set(reasons) == {1, 2}
    assert "event_ids" in reasons[1]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ingest_counters_are_read_by_those_who_see_the_agent(service: Service) -> None:
    tokens = setup_world(service)
    admin = tokens["admin"]
    key = agent_key(service, tokens)
    own = agent_of(service, key)
    other = enrolled(service, new_token(service, admin, BORDEAUX)["token"], "bx-1")["id"]
    expected = {
        "it_pitie": (200, 404),
        "analyst": (200, 200),
        "inspector": (200, 200),
        "admin": (200, 200),
        key: (403, 403),
        "": (401, 401),
    }
    for who, (mine, theirs) in expected.items():
        with service.client(tokens.get(who, who) or None) as client:
            assert client.get(f"/agents/{own}/ingest").status_code == mine, who
            assert client.get(f"/agents/{other}/ingest").status_code == theirs, who
    with service.client(tokens["it_pitie"]) as client:
        assert client.get("/agents/no-such-agent/ingest").status_code == 404
        spec = client.get("/openapi.json").json()
    roles = spec["paths"]["/agents/{agent_id}/ingest"]["get"]["x-roles"]
    assert set(roles) == {"establishment", "cert", "auditor", "admin"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_leases_of_processes_gone_long_ago_are_forgotten(service: Service) -> None:
    """One lease per process start would pile up: a day after it expired, it goes (and a
    claim of that owner, with no lease, is taken over as with an expired one)."""
    engine = make_engine(service.settings.database_url)
    sessions = session_factory(engine)
    old, recent = ClaimOwner(host="old.example"), ClaimOwner(host="recent.example")
    try:
        old.renew(sessions)
        recent.renew(sessions)
        with engine.begin() as connection:
            connection.execute(
                sqlalchemy.text("UPDATE job_locks SET expires_at = :at WHERE name = :n"),
                {"at": datetime.now(UTC) - timedelta(days=2), "n": f"ingest-owner:{old.token}"},
            )
        assert forget_old_leases(sessions) == 1
        with engine.connect() as connection:
            names = set(connection.execute(sqlalchemy.text("SELECT name FROM job_locks")).scalars())
        assert f"ingest-owner:{old.token}" not in names
        assert f"ingest-owner:{recent.token}" in names
    finally:
        engine.dispose()
