"""Event.to_ecs: the document the agent spools and the service stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from detection.event import Event, iso_utc, parse_timestamp

WHEN = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_to_ecs_adds_source_agent_and_establishment() -> None:
    event = Event(WHEN, {"log": {"level": "info"}}, "/var/log/app.log", "750000001", "agent-1")
    doc = event.to_ecs()
    assert doc["@timestamp"] == "2024-05-01T10:00:00Z"
    assert doc["log"] == {"level": "info", "file": {"path": "/var/log/app.log"}}
    assert doc["organization"] == {"id": "750000001"}
    assert doc["agent"] == {"id": "agent-1"}


def test_to_ecs_keeps_a_record_value_that_is_no_object() -> None:
    # A JSON log line `{"log": "...", "agent": "nginx"}`: no crash, nothing of it lost.
    fields = {"log": "GET / 200", "agent": "nginx", "organization": ["a"]}
    doc = Event(WHEN, fields, "/var/log/app.jsonl", "750000001", "agent-1").to_ecs()
    assert doc["log"] == {"value": "GET / 200", "file": {"path": "/var/log/app.jsonl"}}
    assert doc["agent"] == {"value": "nginx", "id": "agent-1"}
    assert doc["organization"] == {"value": ["a"], "id": "750000001"}
    orjson.dumps(doc)


@pytest.mark.parametrize("value", [1e20, float("inf"), float("nan"), -1e18, 2**70, 253402300800])
def test_parse_timestamp_of_a_number_out_of_range_is_none(value: float) -> None:
    # A Windows rendering with `"SystemTime": 1e20` raised OverflowError out of the readers.
    assert parse_timestamp(value) is None


def test_parse_timestamp_of_epoch_seconds() -> None:
    assert parse_timestamp(1714557600) == WHEN


def test_iso_utc_of_equal_instants_and_of_naive_times() -> None:
    # iso_utc remembers what it wrote: equal instants in other zones write the same UTC
    # text, and a naive time (taken as UTC) is not confused with an aware one.
    paris = timezone(timedelta(hours=1))
    utc = datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)
    for _ in range(2):
        assert iso_utc(utc) == "2026-11-20T10:00:00.123456Z"
        assert iso_utc(utc.astimezone(paris)) == "2026-11-20T10:00:00.123456Z"
        assert iso_utc(datetime(2026, 11, 20, 11, 0)) == "2026-11-20T11:00:00Z"
        assert iso_utc(datetime(2026, 11, 20, 11, 0, tzinfo=paris)) == "2026-11-20T10:00:00Z"
