"""Choosing the reader (sniff), walking inputs, and read_events' accounting of bad files."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from detection.errors import InputError
from detection.sources.read import InputKind, iter_input_files, read_events
from detection.sources.sniff import sniff
from detection.sources.stats import ReadStats

LOGS = Path(__file__).resolve().parent.parent / "data" / "logs"
PCAP_HEADER = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")
PCAPNG_HEADER = bytes.fromhex("0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000")


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("a.evtx", b"ElfFile\x00" + bytes(100), "evtx"),
        ("noext", b"ElfFile\x00" + bytes(100), "evtx"),  # content wins over the name
        ("broken.evtx", b"\x00garbage", "evtx"),  # handed to its reader, which reports it
        ("a.pcap", PCAP_HEADER, "pcap"),
        ("capture.bin", PCAPNG_HEADER, "pcap"),
        ("x.json", b'{"a": 1}\n', "json"),
        ("x.txt", b'  [\n  {"a": 1}\n]', "json"),
        ("x.json", b"not json at all", "json"),  # its bad records get reported
        ("empty.jsonl", b"", "json"),
        ("x", b"<34>Oct 11 22:14:15 mymachine su: failed", "syslog"),
        ("x", b"Mar  3 10:02:01 web1 sshd[2231]: Failed password", "syslog"),
        ("x", b"<165>1 2003-10-11T22:14:15.003Z host app - - - msg", "syslog"),
        ("x", b"2024-01-15T10:00:00.123+01:00 web1 kernel: x", "syslog"),
        ("dmesg.log", b"[    0.000000] Linux version 6.1", "syslog"),
        ("notes.log", b"Dear team, the backup failed.", "syslog"),  # a log by its name
        ("notes.txt", b"Dear team, the backup failed.", "binary"),
        ("boot.txt", b"Mar  3 10:02:01 web1 kernel: x", "syslog"),
        ("auth.log.1", b"whatever text", "syslog"),
        ("x", b"time,host,user\n2024-01-01,a,b\n", "csv"),
        ("x", b"time;host;user\n", "csv"),
        ("x.csv", b"single\n", "csv"),
        ("x", b"time,host\n1,2,3,4\nmore\n", "binary"),  # the first row does not fit the header
        ("x", b"Dear team, the backup failed.", "binary"),  # text, but no known layout
        ("x.exe", b"MZ\x90\x00\x03\x00\x00\x00", "binary"),
        ("x.json", b"\x00\x01\x02", "binary"),
        ("x.yml", b"title: a rule\nid: 1\n", "binary"),
    ],
)
def test_sniff(tmp_path: Path, name: str, content: bytes, kind: InputKind) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert sniff(path) == kind


def test_sniff_compressed_and_utf16(tmp_path: Path) -> None:
    text = tmp_path / "auth.log.2.gz"
    text.write_bytes(gzip.compress((LOGS / "auth.log").read_bytes()))
    assert sniff(text) == "syslog"
    packed_evtx = tmp_path / "x.evtx.gz"
    packed_evtx.write_bytes(gzip.compress(b"ElfFile\x00" + bytes(100)))
    assert sniff(packed_evtx) == "binary"  # compressed EVTX is for YARA only
    utf16 = tmp_path / "export"
    utf16.write_text('{"a": 1}', encoding="utf-16")
    assert sniff(utf16) == "json"


def test_sniff_sample_files() -> None:
    kinds = {path.name: sniff(path) for path in sorted(LOGS.iterdir())}
    assert kinds == {
        "auth.log": "syslog",
        "events.csv": "csv",
        "generic.jsonl": "json",
        "rfc3164.log": "syslog",
        "rfc5424.log": "syslog",
        "sysmon.jsonl": "json",
    }


def test_iter_input_files(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.log").write_text("x")
    (tmp_path / "b" / "a.log").write_text("x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("x")
    (tmp_path / ".hidden.log").write_text("x")
    (tmp_path / "a.json").write_text("{}")
    given = tmp_path / ".explicit"
    given.write_text("x")
    files = list(iter_input_files([tmp_path, given, tmp_path / "a.json"]))
    assert files == [tmp_path / "a.json", tmp_path / "b" / "a.log", tmp_path / "b" / "z.log", given]


def test_iter_input_files_missing_path_fails_first(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("x")
    files = iter_input_files([tmp_path, tmp_path / "missing.evtx"])
    with pytest.raises(InputError, match=r"missing\.evtx"):
        next(files)


def test_read_events_dispatches_on_content(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    shutil.copytree(LOGS, folder)
    shutil.copy(LOGS / "auth.log", folder / "renamed.dat")  # a name that says nothing
    (folder / "blob.bin").write_bytes(bytes(range(256)))
    stats = ReadStats()
    counts = {
        path.name: sum(1 for _ in read_events(path, stats)) for path in iter_input_files([folder])
    }
    assert counts == {
        "auth.log": 6,
        "blob.bin": 0,
        "events.csv": 3,
        "generic.jsonl": 4,
        "renamed.dat": 6,  # content decides: `Mmm dd hh:mm:ss` is syslog whatever the name
        "rfc3164.log": 3,
        "rfc5424.log": 4,
        "sysmon.jsonl": 3,
    }
    assert stats.files_read == 7  # every text input; the binary blob yields nothing
    assert stats.files_failed == 0
    assert stats.records_skipped == 3  # two in sysmon.jsonl, one in events.csv


def test_read_events_with_a_given_kind(tmp_path: Path) -> None:
    path = tmp_path / "x.dat"
    path.write_text('{"a": 1}\n')
    assert [e.fields for e in read_events(path, ReadStats(), "syslog")] == [{"message": '{"a": 1}'}]
    assert [e.fields for e in read_events(path, ReadStats(), "winjson")] == [{"a": 1}]
    assert list(read_events(path, ReadStats(), "pcap")) == []


def test_unreadable_files_are_counted_and_the_scan_goes_on(tmp_path: Path) -> None:
    not_evtx = tmp_path / "broken.evtx"
    not_evtx.write_bytes(b"ElfFile\x00 but cut short")
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(gzip.compress(b'{"a": 1}\n' * 10000)[:200])
    stats = ReadStats()
    assert list(read_events(not_evtx, stats)) == []
    events = list(read_events(truncated, stats))
    assert list(read_events(tmp_path / "gone.log", stats)) == []
    assert stats.files_failed == 3
    assert stats.files_read == 0
    assert len(events) < 10000  # what came before the cut is kept
    reasons = {Path(err.source).name: err.reason for err in stats.errors}
    assert reasons["broken.evtx"].startswith("cannot read as evtx")
    assert reasons["cut.jsonl.gz"].startswith("cannot read as json")
    assert reasons["gone.log"].startswith("cannot read")
    assert all(err.record == 0 for err in stats.errors)
