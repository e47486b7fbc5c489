"""Ingestion over real HTTP: an enrolled agent posts gzip batches; valid items are kept,
bad ones rejected one by one, a retried batch is a no-op, the server detects on arrival."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from api.db import make_engine, session_factory, transaction
from api.deps import Principal
from api.events.sqlite_store import SQLiteEventStore
from api.ingest import service as ingest_service
from api.ingest.claims import ClaimOwner
from api.ingest.models import IngestedBatch
from detection.sources.jsonlog import event_from_object
from tests.api.conftest import Service
from tests.api.test_agents import enrolled, new_token
from tests.api.test_service import BORDEAUX, PITIE, setup_world

CASES = Path(__file__).resolve().parents[1] / "rules" / "sigma"
SHADOW_RULE = "shadow_copy_deletion_vssadmin_wmic"


def case_event(name: str) -> dict[str, Any]:
    doc = json.loads((CASES / f"{name}.json").read_text(encoding="utf-8"))
    return event_from_object(doc, "agent-test").to_ecs()


def agent_key(service: Service, tokens: dict[str, str], finess: str = PITIE) -> str:
    token = new_token(service, tokens["admin"], finess)["token"]
    return str(enrolled(service, token)["agent_key"])


def post(service: Service, key: str, batch: dict[str, Any], *, gzipped: bool = True) -> Any:
    body = orjson.dumps(batch)
    headers = {"Content-Type": "application/json"}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    with service.client(key) as client:
        return client.post("/ingest", content=body, headers=headers)


def test_batch_kept_rejected_detected_and_retried(service: Service) -> None:
    tokens = setup_world(service)
    key = agent_key(service, tokens)
    detection = {
        "engine": "sigma",
        "rule_id": "r-1",
        "rule_title": "agent-side hit",
        "level": "high",
        "timestamp": "2026-11-20T10:00:00Z",
        "source": "x",
    }
    batch = {
        "batch_id": "batch-0001",
        "events": [
            case_event(f"{SHADOW_RULE}.positive"),
            {"message": "no timestamp at all"},
            case_event(f"{SHADOW_RULE}.negative"),
        ],
        "detections": [detection, {**detection, "level": "catastrophic"}],
    }
    answer = post(service, key, batch)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["duplicate"] is False
    assert result["events_accepted"] == 2
    assert result["detections_accepted"] == 1
    assert {(r["kind"], r["index"]) for r in result["rejected"]} == {("event", 1), ("detection", 1)}
    assert "timestamp" in result["rejected"][0]["reason"]
    assert result["server_detections"] >= 1

    store = SQLiteEventStore.in_data_dir(service.settings.data_dir)
    try:
        assert store.count("events", establishment=PITIE) == 2
        assert store.count("events", establishment=BORDEAUX) == 0
        found = store.search_detections(establishment=PITIE)
        titles = {d["rule_title"] for d in found}
        assert "agent-side hit" in titles
        assert any(d.get("origin") == "server" for d in found)

        again = post(service, key, batch)
        assert again.json()["duplicate"] is True
        assert store.count("events", establishment=PITIE) == 2  # nothing stored twice
    finally:
        store.close()


def test_ingest_refuses_humans_bad_bodies_and_bombs(service: Service) -> None:
    tokens = setup_world(service)
    key = agent_key(service, tokens)
    assert (
        post(service, tokens["admin"], {"batch_id": "batch-human", "events": []}).status_code == 403
    )
    with service.client() as client:
        assert client.post("/ingest", content=b"{}").status_code == 401
    not_json = gzip.compress(b"{oops")
    with service.client(key) as client:
        bad = client.post("/ingest", content=not_json, headers={"Content-Encoding": "gzip"})
        assert bad.status_code == 422
        broken = client.post("/ingest", content=b"not gzip", headers={"Content-Encoding": "gzip"})
        assert broken.status_code == 400
        bomb = gzip.compress(b"[" + b" " * (70 * 2**20) + b"]")
        assert (
            client.post("/ingest", content=bomb, headers={"Content-Encoding": "gzip"}).status_code
            == 413
        )
    assert (
        post(service, key, {"batch_id": "plain-batch", "events": []}, gzipped=False).status_code
        == 200
    )


def test_envelope_errors_are_specific_and_odd_items_rejected_alone(service: Service) -> None:
    tokens = setup_world(service)
    key = agent_key(service, tokens)
    not_list = post(service, key, {"batch_id": "batch-odd-01", "events": {"a": 1}})
    assert not_list.status_code == 422
    assert "events is a list" in not_list.json()["detail"]
    bad_id = post(service, key, {"batch_id": "x", "events": []})
    assert bad_id.status_code == 422
    assert "batch_id" in bad_id.json()["detail"]
    extra = post(service, key, {"batch_id": "batch-odd-02", "evnts": []})
    assert "evnts" in extra.json()["detail"]
    odd = {
        "batch_id": "batch-odd-03",
        "events": ["a string", case_event(f"{SHADOW_RULE}.negative"), 42],
        "detections": [["not", "an", "object"]],
    }
    answer = post(service, key, odd)
    assert answer.status_code == 200, answer.text
    assert answer.json()["events_accepted"] == 1
    reasons = {(r["kind"], r["index"]): r["reason"] for r in answer.json()["rejected"]}
    assert reasons == {
        ("event", 0): "not a JSON object",
        ("event", 2): "not a JSON object",
        ("detection", 0): "not a JSON object",
    }


def test_a_batch_is_claimed_before_it_is_processed(service: Service) -> None:
    """A retry that arrives while the first attempt runs is told to wait (409), never stored
    twice; an abandoned claim is taken over; a failed attempt gives its claim back."""
    tokens = setup_world(service)
    key = agent_key(service, tokens)
    with service.client(key) as client:
        agent_id = client.get("/agents/me").json()["id"]
    who = Principal(username=f"agent:{agent_id}", role="agent", establishment=PITIE)
    engine = make_engine(service.settings.database_url)
    sessions = session_factory(engine)
    try:
        here = ClaimOwner()  # this test process, as if it were another service process
        assert ingest_service.claim(sessions, "claimed-0001", who, here) is None
        answer = post(service, key, {"batch_id": "claimed-0001", "events": []})
        assert answer.status_code == 409
        assert answer.json()["code"] == "batch_in_progress"
        with pytest.raises(ingest_service.BatchInProgress):
            ingest_service.claim(sessions, "claimed-0001", who, here)
        # Abandoned ten minutes ago (the process died): the next attempt takes it over.
        with transaction(sessions) as session:
            row = session.get(IngestedBatch, "claimed-0001")
            assert row is not None
            row.received_at = datetime.now(UTC) - timedelta(minutes=11)
        taken = post(
            service,
            key,
            {"batch_id": "claimed-0001", "events": [case_event(f"{SHADOW_RULE}.negative")]},
        )
        assert taken.status_code == 200, taken.text
        assert taken.json()["events_accepted"] == 1
        ingest_service.release(sessions, "claimed-0001")  # a done batch is not given back
        again = post(service, key, {"batch_id": "claimed-0001", "events": []})
        assert again.json()["duplicate"] is True
        assert again.json()["events_accepted"] == 1
    finally:
        engine.dispose()
