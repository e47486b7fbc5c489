"""WatchedFolder: EVTX and JSON exports dropped in a folder are read once, resumably."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from collector.sources.base import Source
from collector.sources.winlog import WatchedFolder
from tests.conftest import corpus_path

EVTX = ("evtx", "attack-samples", "Command and Control", "DE_RDP_Tunneling_4624.evtx")


def rendering(number: int) -> dict[str, Any]:
    return {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
                "EventID": 4625,
                "EventRecordID": number,
                "Channel": "Security",
                "Computer": "ehpad-dc01",
                "TimeCreated": {"#attributes": {"SystemTime": "2024-05-01T10:00:00.000000Z"}},
            },
            "EventData": {"TargetUserName": f"user{number}", "IpAddress": "10.1.2.3"},
        }
    }


def write_jsonl(path: Path, numbers: range, extra: str = "") -> None:
    with path.open("a", encoding="utf-8") as fh:
        for number in numbers:
            fh.write(json.dumps(rendering(number)) + "\n")
        fh.write(extra)


def record_ids(events: list[Any]) -> list[int]:
    return [int(e.fields["winlog"]["record_id"]) for e in events]


def new_folder(folder: Path, state: dict[str, Any] | None = None, **kw: Any) -> WatchedFolder:
    source = WatchedFolder(folder, settle_seconds=0, **kw)
    if state is not None:
        source.restore(json.loads(json.dumps(state)))
    return source


@pytest.mark.corpus
def test_new_evtx_read_once(tmp_path: Path) -> None:
    evtx = corpus_path(*EVTX)
    source = new_folder(tmp_path)
    assert isinstance(source, Source)
    assert source.poll() == []
    shutil.copy(evtx, tmp_path / "Security-export.evtx")
    events = source.poll()
    assert len(events) == 18
    assert {e.fields["winlog"]["event_id"] for e in events} >= {4624}
    assert all(e.source == str(tmp_path / "Security-export.evtx") for e in events)
    assert source.poll() == []  # once only
    state = source.checkpoint()
    source.close()
    again = new_folder(tmp_path, state)
    assert again.poll() == []  # nor after a restart
    assert again.stats()["files_done"] == 1
    again.close()


def test_json_export_read_once_bad_records_counted(tmp_path: Path) -> None:
    source = new_folder(tmp_path)
    (tmp_path / "notes.txt").write_text("not watched\n")
    write_jsonl(tmp_path / "export.jsonl", range(1, 6), extra="{broken\n")
    events = source.poll()
    assert record_ids(events) == [1, 2, 3, 4, 5]
    assert events[0].fields["winlog"]["event_data"]["TargetUserName"] == "user1"
    assert source.poll() == []
    stats = source.stats()
    assert stats["read"] == 5
    assert stats["skipped"] == 1
    assert "invalid JSON" in stats["errors"][0]
    # A pretty-printed array export too.
    (tmp_path / "more.json").write_text(json.dumps([rendering(6), rendering(7)], indent=2))
    assert record_ids(source.poll()) == [6, 7]
    source.close()


def test_restart_mid_file_loses_and_repeats_nothing(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", range(1, 26))
    write_jsonl(tmp_path / "b.jsonl", range(26, 31))
    seen: list[int] = []
    state = None
    for _ in range(10):
        source = new_folder(tmp_path, state, max_events=7)
        seen += record_ids(source.poll())
        state = source.checkpoint()
        source.close()
    assert seen == list(range(1, 31))


def test_grown_file_read_from_where_it_was_left(tmp_path: Path) -> None:
    export = tmp_path / "export.jsonl"
    write_jsonl(export, range(1, 4))
    source = new_folder(tmp_path)
    assert record_ids(source.poll()) == [1, 2, 3]
    write_jsonl(export, range(4, 6))
    assert record_ids(source.poll()) == [4, 5]
    export.unlink()  # replaced by a new export: read from its start
    write_jsonl(export, range(1, 3))
    assert record_ids(source.poll()) == [1, 2]
    source.close()


def test_file_read_only_once_settled(tmp_path: Path) -> None:
    source = WatchedFolder(tmp_path, settle_seconds=3600)
    export = tmp_path / "export.jsonl"
    write_jsonl(export, range(1, 3))
    assert source.poll() == []  # first sight: may still be being copied
    write_jsonl(export, range(3, 5))
    assert source.poll() == []  # it grew: still being copied
    assert source.stats()["lag_seconds"] is not None
    assert record_ids(source.poll()) == [1, 2, 3, 4]  # unchanged since the last poll
    source.close()


def test_unreadable_evtx_counted_not_retried(tmp_path: Path) -> None:
    (tmp_path / "broken.evtx").write_bytes(b"ElfFile\x00" + b"\xff" * 200)
    source = new_folder(tmp_path)
    assert source.poll() == []
    assert source.stats()["failed"] == 1
    assert source.poll() == []
    assert source.stats()["failed"] == 1
    source.close()
