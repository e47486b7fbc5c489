"""One bad item in a batch is rejected with its reason; it never fails the whole batch (a 500
that the agent would retry for ever). Events nested deeper than JSON encoders go, detections
whose fields have the wrong type or size."""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx

from api.ingest.items import MAX_DETECTION_BYTES
from tests.api.conftest import Service
from tests.api.test_ingest import agent_key
from tests.api.test_service import setup_world

WHEN = "2026-11-20T10:00:00Z"
GOOD_EVENT = {"@timestamp": WHEN, "message": "fine"}
GOOD_DETECTION = {
    "engine": "sigma",
    "rule_id": "r-good",
    "rule_title": "a good detection",
    "level": "high",
    "timestamp": WHEN,
    "source": "agent",
    "tags": ["attack.t1486"],
}


def post(service: Service, key: str, batch: dict[str, Any]) -> httpx.Response:
    """A gzip batch written by the json module (orjson stops at 254 levels)."""
    body = gzip.compress(json.dumps(batch).encode())
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    with service.client(key) as client:
        return client.post("/ingest", content=body, headers=headers)


def _nested(depth: int, leaf: Any = "deep") -> Any:
    for _ in range(depth):
        leaf = {"n": leaf}
    return leaf


def _listed(depth: int) -> Any:
    leaf: Any = "deep"
    for _ in range(depth):
        leaf = [leaf]
    return leaf


BAD_EVENTS = [
    {"@timestamp": WHEN, "deep": _nested(300)},
    {"@timestamp": WHEN, "deep": _nested(900)},
    {"@timestamp": WHEN, "deep": _listed(400)},
    {"@timestamp": WHEN, "big": "x" * (300 * 1024)},
    {"@timestamp": ["not", "a", "time"]},
    "an event that is a string",
]

BAD_DETECTIONS = [
    {"rule_id": 12},
    {"rule_id": "r" * 1000},
    {"rule_id": ["r-1"]},
    {"tags": 5},
    {"tags": [1, {"a": 2}]},
    {"tags": "attack.t1486"},
    {"level": ["high"]},
    {"level": {"high": 1}},
    {"engine": {"sigma": 1}},
    {"engine": ["sigma"]},
    {"timestamp": [WHEN]},
    {"timestamp": {"at": WHEN}},
    {"meta": "a string"},
    {"event": "a string"},
    {"event": [1, 2]},
    {"events": "x"},
    {"source": 5},
    {"rule_title": 7},
    {"rule_title": "t" * 5000},
    {"host": {"name": "h"}},
    {"event": {"@timestamp": WHEN, "big": "x" * MAX_DETECTION_BYTES}},
    {"event": {"@timestamp": WHEN, "deep": _nested(300)}},
    {"meta": _nested(600)},
]


def test_bad_items_are_rejected_one_by_one(service: Service) -> None:
    tokens = setup_world(service)
    key = agent_key(service, tokens)
    events = [GOOD_EVENT, *BAD_EVENTS, GOOD_EVENT]
    detections = [GOOD_DETECTION, *({**GOOD_DETECTION, **bad} for bad in BAD_DETECTIONS)]
    batch = {"batch_id": "items-one-by-one", "events": events, "detections": detections}
    answer = post(service, key, batch)
    assert answer.status_code == 200, answer.text[:2000]
    result = answer.json()
    assert result["events_accepted"] == 2
    assert result["detections_accepted"] == 1
    rejected = {(r["kind"], r["index"]): r["reason"] for r in result["rejected"]}
    assert set(rejected) == {("event", i) for i in range(1, len(BAD_EVENTS) + 1)} | {
        ("detection", i) for i in range(1, len(BAD_DETECTIONS) + 1)
    }, rejected
    for (kind, index), reason in rejected.items():
        assert 0 < len(reason) < 200, (kind, index, reason)
    assert "nested" in rejected[("event", 1)]
    assert "rule_id" in rejected[("detection", 1)]
    assert "tags" in rejected[("detection", 4)]
    assert "level" in rejected[("detection", 7)]
    assert "engine" in rejected[("detection", 9)]
    assert "timestamp" in rejected[("detection", 11)]
    assert "meta" in rejected[("detection", 13)]
    # The good ones opened their incident; the agent's retry is a duplicate, not a 500.
    with service.client(tokens["it_pitie"]) as client:
        incidents = client.get("/incidents").json()
    assert [i["rule_id"] for i in incidents["items"]] == ["r-good"]
    again = post(service, key, batch)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True


def test_a_batch_of_only_bad_items_is_answered(service: Service) -> None:
    tokens = setup_world(service)
    key = agent_key(service, tokens)
    for n, bad in enumerate(BAD_DETECTIONS):
        batch = {"batch_id": f"only-bad-{n:03d}", "detections": [{**GOOD_DETECTION, **bad}]}
        answer = post(service, key, batch)
        assert answer.status_code == 200, (bad, answer.text[:500])
        assert answer.json()["detections_accepted"] == 0, bad
    for n, bad_event in enumerate(BAD_EVENTS):
        answer = post(service, key, {"batch_id": f"only-bad-event-{n:03d}", "events": [bad_event]})
        assert answer.status_code == 200, answer.text[:500]
        assert answer.json()["events_accepted"] == 0
