"""JSON and JSONL logs: Windows renderings, generic objects, layouts, bad records."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from detection.sources.jsonlog import (
    EPOCH,
    MAX_DEPTH,
    event_from_object,
    read_json,
    to_utc,
    too_deep,
)
from detection.sources.stats import ReadStats

LOGS = Path(__file__).resolve().parent.parent / "data" / "logs"


def _windows(event_id: int, record_id: int) -> dict[str, Any]:
    return {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
                "EventID": event_id,
                "EventRecordID": record_id,
                "Channel": "Security",
                "Computer": "DC01",
                "TimeCreated": {"#attributes": {"SystemTime": "2024-03-03T10:00:00.1234567Z"}},
            },
            "EventData": {"TargetUserName": "alice", "LogonType": 10},
        }
    }


def test_jsonl_windows_events_with_a_corrupt_line_and_a_non_object() -> None:
    stats = ReadStats()
    events = list(read_json(LOGS / "sysmon.jsonl", stats))
    assert [e.fields["winlog"]["record_id"] for e in events] == [101, 103, 105]
    assert events[0].sigma_view()["Image"] == r"C:\Windows\System32\vssadmin.exe"
    assert events[0].sigma_view()["EventID"] == 1
    assert events[0].sigma_view()["Channel"] == "Microsoft-Windows-Sysmon/Operational"
    assert events[0].timestamp == datetime(2024, 3, 3, 10, 0, 0, 123456, tzinfo=UTC)
    assert stats.records_read == 3
    assert stats.records_skipped == 2
    assert [(err.record, err.reason.split(":")[0]) for err in stats.errors] == [
        (2, "invalid JSON"),
        (5, "not a JSON object"),
    ]
    assert all(err.source == str(LOGS / "sysmon.jsonl") for err in stats.errors)


def test_generic_objects_keep_their_fields_and_find_their_time() -> None:
    events = list(read_json(LOGS / "generic.jsonl", ReadStats()))
    ecs, zeek, nxlog, timeless = events
    assert ecs.timestamp == datetime(2024, 3, 3, 8, 0, tzinfo=UTC)  # +01:00 moved to UTC
    assert ecs.fields["process"]["command_line"] == "powershell -enc SQBFAFgA"
    assert ecs.sigma_view()["process.name"] == "powershell.exe"
    assert zeek.timestamp == datetime(2024, 3, 3, 9, 0, 0, 123456, tzinfo=UTC)
    assert zeek.fields["id.resp_p"] == 53
    assert zeek.sigma_view()["query"] == "evil.example.com"
    assert nxlog.timestamp == datetime(2024, 3, 3, 8, 0, tzinfo=UTC)
    assert timeless.timestamp == EPOCH
    assert "winlog" not in ecs.fields


def test_pretty_printed_single_document(tmp_path: Path) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(_windows(4624, 7), indent=2))
    stats = ReadStats()
    (event,) = read_json(path, stats)
    assert event.fields["winlog"]["event_id"] == 4624
    assert event.sigma_view()["TargetUserName"] == "alice"
    assert stats.records_read == 1


def test_array_document_with_a_bad_element(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text(json.dumps([_windows(4624, 1), 42, {"time": 0, "msg": "x"}]))
    stats = ReadStats()
    events = list(read_json(path, stats))
    assert [e.fields.get("msg") for e in events] == [None, "x"]
    assert events[1].timestamp == EPOCH
    assert [(err.record, err.reason) for err in stats.errors] == [(2, "not a JSON object: int")]


def test_concatenated_pretty_objects_with_record_headers_and_a_broken_one(tmp_path: Path) -> None:
    # What `evtx_dump -o json` writes; the second object is cut short.
    path = tmp_path / "dump.json"
    first = json.dumps(_windows(4624, 1), indent=2)
    broken = json.dumps(_windows(4625, 2), indent=2)[:-40]
    third = json.dumps(_windows(4688, 3), indent=2)
    path.write_text(f"Record 1\n{first}\nRecord 2\n{broken}\nRecord 3\n{third}\n")
    stats = ReadStats()
    events = list(read_json(path, stats))
    assert [e.fields["winlog"]["event_id"] for e in events] == [4624, 4688]
    assert stats.records_skipped == 1
    assert stats.errors[0].reason.startswith("invalid JSON")


def test_concatenated_objects_are_read_as_every_other_record(tmp_path: Path) -> None:
    # The json module finds where each object ends; orjson reads it, as it reads JSONL: an
    # integer beyond 64 bits becomes a float (the spool's orjson could not write it), NaN and
    # an unpaired surrogate escape are bad records.
    path = tmp_path / "dump.json"
    first = json.dumps(_windows(4624, 1), indent=2)
    big = '{\n  "count": 123456789012345678901234567890\n}'
    nan = '{\n  "ratio": NaN\n}'
    lone = '{\n  "name": "\\udcff"\n}'
    third = json.dumps(_windows(4688, 3), indent=2)
    path.write_text(f"{first}\n{big}\n{nan}\n{lone}\n{third}\n")
    stats = ReadStats()
    events = list(read_json(path, stats))
    assert [e.fields.get("winlog", {}).get("event_id") for e in events] == [4624, None, 4688]
    assert events[1].fields["count"] == 1.2345678901234568e29  # as orjson reads JSONL
    assert stats.records_skipped == 2
    assert [e.record for e in stats.errors] == [3, 4]


def test_records_nested_too_deep_are_counted(tmp_path: Path) -> None:
    # orjson reads 1024 levels, writes 254; Python's recursion stops near 1000.
    def nested(depth: int) -> str:
        return '{"a":' * (depth - 1) + '{"b": 1' + "}" * depth

    jsonl = tmp_path / "deep.jsonl"
    jsonl.write_text(f"{nested(MAX_DEPTH)}\n{nested(MAX_DEPTH + 1)}\n{nested(900)}\n")
    stats = ReadStats()
    assert len(list(read_json(jsonl, stats))) == 1
    assert [e.record for e in stats.errors] == [2, 3]
    assert all("nested deeper than 64 levels" in e.reason for e in stats.errors)
    # In a document, and in evtx_dump's layout (read with the json module: RecursionError).
    document = tmp_path / "deep.json"
    document.write_text(f"[{nested(3)}, {nested(100)}, {nested(3)}]")
    stats = ReadStats()
    assert len(list(read_json(document, stats))) == 2
    assert stats.records_skipped == 1
    dump = tmp_path / "dump.json"
    dump.write_text(f"Record 1\n{nested(3)}\nRecord 2\n{nested(5000)}\nRecord 3\n{nested(3)}\n")
    stats = ReadStats()
    assert len(list(read_json(dump, stats))) == 2
    assert stats.records_skipped == 1
    assert "nested too deep" in stats.errors[0].reason


def test_too_deep() -> None:
    assert not too_deep({"a": [1, {"b": []}]})
    assert too_deep({"a": [[]] * 3, "b": _chain(MAX_DEPTH)})
    assert not too_deep(_chain(MAX_DEPTH))
    assert not too_deep(_chain(MAX_DEPTH + 5), "{}")  # the text says it cannot be


def _chain(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    for _ in range(depth - 1):
        node = {"a": node}
    return node


def test_nested_renderings_from_other_exporters() -> None:
    bare = _windows(4688, 9)["Event"]  # the Event wrapper dropped
    assert event_from_object(bare).fields["winlog"]["event_id"] == 4688
    record = {"event_record_id": 9, "timestamp": "x", "data": json.dumps(_windows(4625, 9))}
    assert event_from_object(record).fields["winlog"]["event_id"] == 4625
    # An "Event" key that is not a rendering leaves the object as it is.
    other = {"Event": {"name": "login"}, "time": "2024-01-01T00:00:00Z"}
    event = event_from_object(other)
    assert event.fields is other
    assert event.timestamp == datetime(2024, 1, 1, tzinfo=UTC)


def test_gzip_utf16_and_non_utf8_lines(tmp_path: Path) -> None:
    lines = [json.dumps(_windows(4624, n)) for n in (1, 2)]
    gz = tmp_path / "events.jsonl.gz"
    gz.write_bytes(gzip.compress("\n".join(lines).encode()))
    assert len(list(read_json(gz, ReadStats()))) == 2
    utf16 = tmp_path / "powershell.json"
    utf16.write_text("\n".join(lines), encoding="utf-16")  # PowerShell 5's Out-File default
    assert len(list(read_json(utf16, ReadStats()))) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"a": "caf\xe9"}\n{"a": "ok"}\n')
    stats = ReadStats()
    assert [e.fields["a"] for e in read_json(bad, stats)] == ["ok"]
    assert stats.errors[0].record == 1


def test_empty_and_blank_files(tmp_path: Path) -> None:
    for content in ("", "\n\n  \n"):
        path = tmp_path / "empty.jsonl"
        path.write_text(content)
        stats = ReadStats()
        assert list(read_json(path, stats)) == []
        assert stats.records_skipped == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-03T10:00:00Z", datetime(2024, 3, 3, 10, tzinfo=UTC)),
        ("2024-03-03T12:00:00+02:00", datetime(2024, 3, 3, 10, tzinfo=UTC)),
        ("2024-03-03 10:00:00", datetime(2024, 3, 3, 10, tzinfo=UTC)),
        (1709460000, datetime(2024, 3, 3, 10, tzinfo=UTC)),
        (1709460000000, datetime(2024, 3, 3, 10, tzinfo=UTC)),  # milliseconds
        (1709460000000000, datetime(2024, 3, 3, 10, tzinfo=UTC)),  # microseconds
        (1709460000000000000, datetime(2024, 3, 3, 10, tzinfo=UTC)),  # nanoseconds
        ("1709460000.5", datetime(2024, 3, 3, 10, 0, 0, 500000, tzinfo=UTC)),
        ("/Date(1709460000000)/", datetime(2024, 3, 3, 10, tzinfo=UTC)),
        ("yesterday", None),
        (True, None),
        (None, None),
        (1e300, None),
    ],
)
def test_to_utc(value: object, expected: datetime | None) -> None:
    result = to_utc(value)
    assert result == expected
    if result is not None:
        assert result.tzinfo is UTC
