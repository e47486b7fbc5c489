"""The readers on the shared corpora: SigmaHQ's regression samples, the EVTX attack samples,
and damaged copies of a real EVTX file."""

from __future__ import annotations

from pathlib import Path

import pytest

from detection.sources.read import iter_input_files, read_events
from detection.sources.stats import ReadStats
from tests.conftest import corpus_path

pytestmark = pytest.mark.corpus


def _identity(path: Path, stats: ReadStats) -> list[tuple[object, object, object]]:
    return [
        (
            e.sigma_view().get("EventID"),
            e.sigma_view().get("Channel"),
            e.fields["winlog"]["record_id"],
        )
        for e in read_events(path, stats)
    ]


def test_regression_json_samples_read_as_their_evtx_twins() -> None:
    """Each JSON rendering gives the same Windows events (EventID, Channel, record) as the EVTX
    file it was made from. Most hold one event; a few hold several pretty-printed objects."""
    root = corpus_path("sigma", "regression")
    samples = sorted(root.rglob("*.json"))
    assert len(samples) >= 140
    stats = ReadStats()
    problems = []
    singles = 0
    for sample in samples:
        from_json = _identity(sample, stats)
        twin = sample.with_suffix(".evtx")
        from_evtx = _identity(twin, ReadStats()) if twin.exists() else None
        singles += len(from_json) == 1
        if not from_json or any(not isinstance(event_id, int) for event_id, _, _ in from_json):
            problems.append(f"{sample.relative_to(root)}: {from_json}")
        elif from_evtx is not None and from_json != from_evtx:
            problems.append(f"{sample.relative_to(root)}: json {from_json} != evtx {from_evtx}")
    assert problems == []
    assert stats.records_skipped == 0
    assert stats.files_failed == 0
    assert stats.files_read == len(samples)
    assert singles >= len(samples) * 0.9


def test_every_evtx_attack_sample_reads_without_fatal_error() -> None:
    root = corpus_path("evtx")
    files = list(iter_input_files([root]))
    assert len(files) >= 188
    stats = ReadStats()
    channels = set()
    for path in files:
        for event in read_events(path, stats):
            assert isinstance(event.fields["winlog"]["event_id"], int)
            assert event.timestamp.year >= 2000  # the record's own time, not the epoch default
            channels.add(event.fields["winlog"].get("channel"))
    assert stats.files_failed == 0, stats.errors
    assert stats.files_read == len(files)
    assert stats.records_read > 4000
    # The samples are clean: a skipped record here is a reader bug, not bad data.
    assert stats.records_skipped == 0, stats.errors
    assert {"Security", "Microsoft-Windows-Sysmon/Operational", "System"} <= channels


@pytest.fixture
def multi_chunk_evtx() -> bytes:
    """A real EVTX file with records in more than one 64 KiB chunk."""
    path = corpus_path("evtx", "attack-samples", "Credential Access", "etw_rpc_zerologon.evtx")
    return path.read_bytes()


CHUNK0 = 0x1000  # after the 4 KiB file header
CHUNK1 = CHUNK0 + 0x10000


def _read(tmp_path: Path, data: bytes) -> tuple[int, ReadStats]:
    path = tmp_path / "damaged.evtx"
    path.write_bytes(data)
    stats = ReadStats()
    return sum(1 for _ in read_events(path, stats)), stats


def test_corrupt_records_are_counted_and_the_rest_is_read(
    tmp_path: Path, multi_chunk_evtx: bytes
) -> None:
    intact, stats = _read(tmp_path, multi_chunk_evtx)
    assert stats.records_skipped == 0
    # Random-looking bytes over records in the middle of the first chunk.
    start = CHUNK0 + 0x2000
    damaged = (
        multi_chunk_evtx[:start] + bytes(range(200, 256)) * 9 + multi_chunk_evtx[start + 504 :]
    )
    read, stats = _read(tmp_path, damaged)
    assert 0 < read < intact
    assert stats.records_skipped >= 1
    assert stats.files_failed == 0
    assert stats.files_read == 1
    assert all("EVTX record" in err.reason for err in stats.errors)


def test_a_chunk_with_a_broken_header_loses_that_chunk_only(
    tmp_path: Path, multi_chunk_evtx: bytes
) -> None:
    intact, _ = _read(tmp_path, multi_chunk_evtx)
    damaged = multi_chunk_evtx[:CHUNK0] + b"XXXXXXXX" + multi_chunk_evtx[CHUNK0 + 8 :]
    read, stats = _read(tmp_path, damaged)
    # The evtx package reports a lost chunk as one error, however many records it held.
    assert 0 < read < intact
    assert stats.records_skipped == 1
    assert "chunk" in stats.errors[0].reason
    assert stats.files_read == 1


def test_truncated_files(tmp_path: Path, multi_chunk_evtx: bytes) -> None:
    # Cut after the first chunk: what is whole is read.
    read, stats = _read(tmp_path, multi_chunk_evtx[:CHUNK1])
    assert read > 0
    assert stats.files_failed == 0
    # Cut inside the file header: the file cannot be read at all; reported, not raised.
    read, stats = _read(tmp_path, multi_chunk_evtx[:2000])
    assert read == 0
    assert stats.files_failed == 1
    assert stats.errors[0].record == 0
    assert "header" in stats.errors[0].reason


def test_a_cut_last_chunk_is_counted(tmp_path: Path, multi_chunk_evtx: bytes) -> None:
    # The parser passes over an incomplete chunk without a word: its records must show as lost.
    whole, _ = _read(tmp_path, multi_chunk_evtx[:CHUNK1])
    read, stats = _read(tmp_path, multi_chunk_evtx[: CHUNK1 + 0x8000])
    assert read == whole
    assert stats.records_skipped == 1
    assert stats.errors[0].reason.startswith("truncated EVTX file: its last chunk has 32768 of")
    assert stats.files_failed == 0
