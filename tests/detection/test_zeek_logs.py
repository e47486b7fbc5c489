"""Zeek's ASCII logs: header, types, escapes, bad lines; and Zeek's own logs firing SigmaHQ's
`product: zeek` rules through `vigie scan`."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from detection.sources.read import read_events
from detection.sources.sniff import sniff
from detection.sources.stats import ReadStats
from detection.sources.zeek import read_zeek, unescape
from tests.conftest import corpus_path

HEADER = (
    "#separator \\x09\n"
    "#set_separator\t,\n"
    "#empty_field\t(empty)\n"
    "#unset_field\t-\n"
    "#path\tdns\n"
    "#open\t2026-11-20-10-00-00\n"
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\trtt\tquery"
    "\tAA\tZ\tanswers\tTTLs\ttags\n"
    "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tinterval\tstring"
    "\tbool\tcount\tvector[string]\tvector[interval]\tset[string]\n"
)
LINE = (
    "1763632800.250000\tCx1\t10.1.2.3\t53211\t10.1.0.53\t53\tudp\t0.012\tpacs.chu.fr"
    "\tT\t1\tpacs.chu.fr,10.1.9.9\t60.0,60.0\t(empty)\n"
)


def scan_jsonl(*args: str) -> tuple[list[dict[str, Any]], str]:
    """`vigie scan ARGS --format jsonl` in its own process: its detections, and its stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "scan", "--format", "jsonl", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def write(tmp_path: Path, text: str, name: str = "dns.log") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_values_typed_as_the_header_says(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + LINE + "#close\t2026-11-20-11-00-00\n")
    assert sniff(path) == "zeek"
    stats = ReadStats()
    [event] = list(read_events(path, stats))
    assert event.timestamp == datetime(2025, 11, 20, 10, 0, 0, 250000, tzinfo=UTC)
    assert event.fields == {
        "uid": "Cx1",
        "id.orig_h": "10.1.2.3",
        "id.orig_p": 53211,
        "id.resp_h": "10.1.0.53",
        "id.resp_p": 53,
        "proto": "udp",
        "rtt": 0.012,
        "query": "pacs.chu.fr",
        "AA": True,
        "Z": 1,
        "answers": ["pacs.chu.fr", "10.1.9.9"],
        "TTLs": [60.0, 60.0],
        "tags": [],
        "_path": "dns",
    }
    # Sigma's flat view keeps Zeek's dotted names as they are.
    assert event.sigma_view()["id.resp_p"] == 53
    assert (stats.records_read, stats.records_skipped, stats.files_read) == (1, 0, 1)


def test_unset_empty_escapes_and_other_separators(tmp_path: Path) -> None:
    text = (
        "#separator |\n#set_separator|;\n#empty_field|EMPTY\n#unset_field|NONE\n#path|http\n"
        "#fields|ts|id.orig_h|uri|user_agent|referrer|tags|status_code\n"
        "#types|time|addr|string|string|string|set[enum]|count\n"
        "1763632800|10.1.2.3|/a\\x7cb?q=\\x09x|EMPTY|NONE|a;b|NONE\n"
    )
    [event] = list(read_zeek(write(tmp_path, text, "http.log"), ReadStats()))
    assert event.fields["uri"] == "/a|b?q=\tx"  # the separator and a tab, escaped by Zeek
    assert event.fields["user_agent"] == ""
    assert "referrer" not in event.fields
    assert "status_code" not in event.fields
    assert event.fields["tags"] == ["a", "b"]
    assert event.fields["_path"] == "http"


def test_unescape_keeps_bytes_that_are_not_text() -> None:
    assert unescape("caf\\xc3\\xa9") == "café"
    assert unescape("\\xff\\x2d") == "\\xff-"
    assert unescape("plain") == "plain"


def test_bad_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    text = "2 lines before the header\n" + HEADER + LINE + "only\ttwo\n" + LINE
    stats = ReadStats()
    events = list(read_zeek(write(tmp_path, text), stats))
    assert len(events) == 2
    assert stats.records_skipped == 2
    assert [(e.record, e.reason) for e in stats.errors] == [
        (1, "Zeek log line before any #fields header"),
        (11, "bad Zeek log line: 2 values where #fields names 14"),
    ]


def test_a_value_that_is_not_of_its_type_is_kept_as_text(tmp_path: Path) -> None:
    # Zeek's test baselines mask times; a damaged count stays as written, nothing is lost.
    line = LINE.replace("1763632800.250000", "XXXXXXXXXX.XXXXXX").replace("\t1\t", "\tone\t")
    [event] = list(read_zeek(write(tmp_path, HEADER + line), ReadStats()))
    assert event.timestamp == datetime(1970, 1, 1, tzinfo=UTC)
    assert event.fields["ts"] == "XXXXXXXXXX.XXXXXX"
    assert event.fields["Z"] == "one"


def test_blocks_after_rotation_and_gzip_and_path_from_name(tmp_path: Path) -> None:
    conn = (
        "#separator \\x09\n#fields\tts\tuid\tid.orig_h\tduration\n"
        "#types\ttime\tstring\taddr\tinterval\n1763632801\tC2\t10.0.0.1\t1.5\n"
    )
    path = tmp_path / "conn.09:00:00-10:00:00.log.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(HEADER + LINE + conn)
    assert sniff(path) == "zeek"
    events = list(read_events(path, ReadStats()))
    assert [e.fields["_path"] for e in events] == ["dns", "conn"]  # no #path: from the name
    assert events[1].fields == {
        "uid": "C2",
        "id.orig_h": "10.0.0.1",
        "duration": 1.5,
        "_path": "conn",
    }


def test_btest_baselines_are_recognised_by_content(tmp_path: Path) -> None:
    path = write(tmp_path, "### BTest baseline data\n" + HEADER + LINE, "baseline")
    assert sniff(path) == "zeek"
    assert len(list(read_events(path, ReadStats()))) == 1


@pytest.mark.corpus
def test_every_zeek_log_of_the_corpus_reads_without_a_skip() -> None:
    stats = ReadStats()
    logs = [p for p in sorted(corpus_path("pcap", "zeek").glob("*/*.log")) if sniff(p) == "zeek"]
    assert len(logs) > 50
    events = [e for p in logs for e in read_events(p, stats)]
    assert stats.records_skipped == 0, stats.errors[:3]
    assert stats.files_read == len(logs)
    paths = {e.fields["_path"] for e in events}
    assert {"conn", "dns", "http", "ssl"} <= paths
    assert all("id.orig_h" in e.fields for e in events)


@pytest.mark.corpus
def test_vigie_scan_fires_sigmahq_zeek_rules_on_zeek_logs() -> None:
    """Zeek's own dns.log baselines, SigmaHQ's `product: zeek, service: dns` rules: the Z flag
    rule fires where Zeek logged Z=1 or 2 (typed as a count, `not Z: 0` holds), and not on
    the log whose queries all have Z=0."""
    zeek = corpus_path("pcap", "zeek")
    rules = corpus_path("sigma", "rules", "network", "zeek")
    logs = [zeek / "scripts.base.protocols.dns.nsec" / "dns.log"]
    logs.append(zeek / "scripts.base.protocols.dns.dynamic-update" / "dns.log")
    found, stderr = scan_jsonl("--sigma", str(rules), "--stats", *map(str, logs))
    assert {(d["rule_title"], d["event"]["query"], d["event"]["Z"]) for d in found} == {
        ("Suspicious DNS Z Flag Bit Set", "www.upenn.edu", 1),
        ("Suspicious DNS Z Flag Bit Set", "dla.library.upenn.edu", 1),
    }
    assert all(d["event"]["_path"] == "dns" and d["source"] == str(logs[0]) for d in found)
    assert "records skipped: 0" in stderr


@pytest.mark.corpus
def test_zeek_json_logs_get_their_path_from_the_file_name(tmp_path: Path) -> None:
    """Zeek's JSON logs (`LogAscii::use_json`) carry no `_path`: the file's name gives it, so
    the rules of that log apply to them as to the TSV logs."""
    lines = [
        {"ts": 1763632800.25, "uid": "C1", "id.orig_h": "10.1.2.3", "id.orig_p": 53211,
         "id.resp_h": "10.1.0.53", "id.resp_p": 53, "proto": "udp", "query": "pacs.chu.fr",
         "qtype_name": "A", "Z": 1, "rejected": False},
        {"ts": "2025-11-20T10:00:01.000000Z", "uid": "C2", "id.orig_h": "10.1.2.3",
         "id.orig_p": 53212, "id.resp_h": "10.1.0.53", "id.resp_p": 53, "proto": "udp",
         "query": "ris.chu.fr", "qtype_name": "A", "Z": 0, "rejected": False},
    ]  # fmt: skip
    path = tmp_path / "dns.2025-11-20.log"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    events = list(read_events(path, ReadStats()))
    assert [e.fields["_path"] for e in events] == ["dns", "dns"]
    assert events[1].timestamp == datetime(2025, 11, 20, 10, 0, 1, tzinfo=UTC)
    rules = corpus_path("sigma", "rules", "network", "zeek")
    found, _ = scan_jsonl("--sigma", str(rules), str(path))
    assert [(d["rule_title"], d["event"]["uid"]) for d in found] == [
        ("Suspicious DNS Z Flag Bit Set", "C1")
    ]


@pytest.mark.corpus
def test_logs_without_endpoints_get_only_their_own_rules(tmp_path: Path) -> None:
    """x509.log has no `id.orig_h`: its records still go to the x509 rules only, not to every
    Zeek rule (SigmaHQ's RDP rule, `not id.orig_h|cidr: ...`, would fire on each of them)."""
    text = (
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
        "#path\tx509\n#fields\tts\tfingerprint\tcertificate.version\tcertificate.serial"
        "\tcertificate.subject\n#types\ttime\tstring\tcount\tstring\tstring\n"
        "1763632800.1\tf1\t3\t8BB00EE\tCN=Major Cobalt Strike\n"
        "1763632801.1\tf2\t3\t04A1B2\tCN=pacs.chu.fr\n"
    )
    path = write(tmp_path, text, "x509.log")
    rules = corpus_path("sigma", "rules", "network", "zeek")
    found, _ = scan_jsonl("--sigma", str(rules), str(path))
    assert [(d["rule_title"], d["event"]["fingerprint"]) for d in found] == [
        ("Default Cobalt Strike Certificate", "f1")
    ]


@pytest.mark.corpus
def test_zeek_rules_leave_other_logs_alone(tmp_path: Path) -> None:
    """A syslog line is no Zeek record: SigmaHQ's RDP rule (`not id.orig_h|cidr: ...`) used to
    fire on each line of any log that was not Zeek's, since the field is missing there."""
    path = write(
        tmp_path,
        "<34>Oct 11 22:14:15 pacs su: 'su root' failed for lonvick on /dev/pts/8\n"
        "<34>Oct 11 22:14:16 pacs sshd[12]: Failed password for root from 203.0.113.9\n",
        "auth.log",
    )
    zeek_rules = corpus_path("sigma", "rules", "network", "zeek")
    linux_rule = tmp_path / "su.yml"
    linux_rule.write_text(
        "title: su failed\nid: 0d3a3a34-5b8d-4c8e-9a53-0a4c5b0c0e11\nlogsource:\n"
        "  product: linux\ndetection:\n  selection:\n    - 'failed for'\n"
        "  condition: selection\nlevel: low\n",
        encoding="utf-8",
    )
    found, _ = scan_jsonl("--sigma", str(zeek_rules), "--sigma", str(linux_rule), str(path))
    assert [d["rule_title"] for d in found] == ["su failed"]
