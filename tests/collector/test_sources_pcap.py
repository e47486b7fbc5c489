"""Capture files dropped in a folder become network-metadata events: each file once, when it
has stopped growing, across restarts; a damaged capture is counted, never a crash; and an
agent delivers them to the national service."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from api.events.sqlite_store import SQLiteEventStore
from collector.config import AgentConfig
from collector.netmeta import extract
from collector.runner import AgentRunner, build_sources
from collector.sources.pcap import PcapFolder
from tests.api.conftest import Service
from tests.collector.test_agent_delivery import enroll, start, wait_for
from tests.conftest import corpus_path


def _capture() -> Path:
    return corpus_path("pcap", "packets", "dns.pcap")


def _poll_until(source: PcapFolder, polls: int = 5) -> list[object]:
    events: list[object] = []
    for _ in range(polls):
        events += source.poll()
    return events


def test_each_capture_is_read_once_when_settled(tmp_path: Path) -> None:
    folder = tmp_path / "captures"
    folder.mkdir()
    expected = list(extract([_capture()]))
    source = PcapFolder(folder, settle_seconds=0)
    shutil.copy(_capture(), folder / "span-0001.pcap")
    assert source.poll() == []  # new: seen once before it is read, in case it still grows
    events = _poll_until(source)
    assert len(events) == len(expected)
    assert {e.fields["_path"] for e in events} == {r.path for r in expected}  # type: ignore[attr-defined]
    again = PcapFolder(folder, settle_seconds=0)
    again.restore(source.checkpoint())
    assert _poll_until(again) == []
    assert source.stats()["files"] == 1


def test_a_damaged_capture_is_counted_not_fatal(tmp_path: Path) -> None:
    folder = tmp_path / "captures"
    folder.mkdir()
    data = _capture().read_bytes()
    (folder / "cut.pcap").write_bytes(data[: len(data) // 2 + 7])
    (folder / "not-a-capture.pcap").write_text("hello")
    source = PcapFolder(folder, settle_seconds=0)
    events = _poll_until(source)
    assert events  # what the cut capture holds before the cut
    stats = source.stats()
    assert stats["files"] == 2
    assert stats["skipped"] >= 1
    assert stats["errors"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_agent_delivers_captures_to_the_service(service: Service, tmp_path: Path) -> None:
    credential_path, _ = enroll(service, tmp_path)
    folder = tmp_path / "captures"
    folder.mkdir()
    (tmp_path / "agent.toml").write_text(
        f'state_dir = "{tmp_path / "state"}"\ncredentials = "{credential_path}"\n'
        "[delivery]\npoll_seconds = 0.05\n"
        f'[[sources]]\nkind = "pcap"\nfolder = "{folder}"\n'
    )
    config = AgentConfig.load(tmp_path / "agent.toml")
    sources = build_sources(config)
    for source in sources:
        source.settle_seconds = 0  # type: ignore[attr-defined]
    runner = AgentRunner(config, sources, json.loads(credential_path.read_text()))
    stop, thread = start(runner)
    shutil.copy(_capture(), folder / "span-0001.pcap")
    expected = len(list(extract([_capture()])))

    def stored() -> int:
        store = SQLiteEventStore.in_data_dir(service.settings.data_dir)
        try:
            return store.count("events")
        finally:
            store.close()

    try:
        wait_for(lambda: stored() >= expected)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert stored() == expected
