"""W3C extended logs (IIS): split `date` and `time` as one UTC instant, `#Date` for lines with
only a time, bad lines counted, and SigmaHQ's webserver rules firing on IIS's names."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from detection.sources.read import read_events
from detection.sources.sniff import sniff
from detection.sources.stats import ReadStats
from detection.sources.w3c import read_w3c
from tests.conftest import corpus_path

FIELDS = (
    "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
    "cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken\n"
)
IIS = (
    "#Software: Microsoft Internet Information Services 10.0\n"
    "#Version: 1.0\n"
    "#Date: 2026-11-20 23:59:58\n"
    + FIELDS
    + "2026-11-20 23:59:59 10.1.0.5 GET /owa/auth/logon.aspx - 443 - 203.0.113.7 "
    "Mozilla/5.0+(Windows+NT+10.0;+Win64;+x64) - 200 0 0 15\n"
    "2026-11-21 00:00:01.250 10.1.0.5 GET /dossier/view.aspx file=../../../../windows/win.ini "
    "443 - 203.0.113.7 Fuzz+Faster+U+Fool/v2.1.0-dev https://pacs.chu.fr/ 404 0 2 3\n"
    "2026-11-21 00:00:02 10.1.0.5 GET /cut-short\n"
    # IIS restarted: a new header, here one without a date column.
    "#Software: Microsoft Internet Information Services 10.0\n"
    "#Date: 2026-11-22 08:00:00\n"
    "#Fields: time c-ip cs-method cs-uri-stem sc-status\n"
    "08:00:05 10.2.0.9 POST /api/rdv 201\n"
)


@pytest.fixture
def iis_log(tmp_path: Path) -> Path:
    path = tmp_path / "u_ex261120.log"
    path.write_text(IIS, encoding="utf-8")
    return path


def test_date_and_time_become_one_utc_instant(iis_log: Path) -> None:
    assert sniff(iis_log) == "w3c"
    stats = ReadStats()
    events = list(read_events(iis_log, stats))
    assert [e.timestamp for e in events] == [
        datetime(2026, 11, 20, 23, 59, 59, tzinfo=UTC),
        datetime(2026, 11, 21, 0, 0, 1, 250000, tzinfo=UTC),
        datetime(2026, 11, 22, 8, 0, 5, tzinfo=UTC),  # the day of `#Date`
    ]
    first = events[0].fields
    assert first["cs-uri-stem"] == "/owa/auth/logon.aspx"
    assert first["sc-status"] == "200"
    assert "cs-uri-query" not in first  # `-`: no value
    assert first["cs(User-Agent)"] == "Mozilla/5.0+(Windows+NT+10.0;+Win64;+x64)"
    assert first["cs-user-agent"] == "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
    assert events[1].fields["cs-referer"] == "https://pacs.chu.fr/"
    assert events[2].fields == {
        "time": "08:00:05",
        "c-ip": "10.2.0.9",
        "cs-method": "POST",
        "cs-uri-stem": "/api/rdv",
        "sc-status": "201",
    }
    assert [(e.record, e.reason) for e in stats.errors] == [
        (7, "bad W3C log line: 5 values where #Fields names 15")
    ]


def test_tab_separated_and_lines_before_any_fields(tmp_path: Path) -> None:
    path = tmp_path / "proxy.log"
    path.write_text(
        "#Version: 1.0\n2026-11-20 10:00:00 orphan\n"
        "#Fields:\tdate\ttime\tcs-uri-stem\tcs(User-Agent)\n"
        "2026-11-20\t10:00:00\t/a b\tcurl/8.0\n",
        encoding="utf-8",
    )
    stats = ReadStats()
    [event] = list(read_w3c(path, stats))
    assert event.fields["cs-uri-stem"] == "/a b"
    assert event.timestamp == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert [e.reason for e in stats.errors] == ["W3C log line before any #Fields directive"]


@pytest.mark.corpus
def test_vigie_scan_fires_sigmahq_webserver_rules_on_iis(iis_log: Path) -> None:
    generic = corpus_path("sigma", "rules", "web", "webserver_generic")
    command = [sys.executable, "-m", "cli.main", "scan", "--format", "jsonl"]
    for name in ("web_path_traversal_exploitation_attempt.yml", "web_susp_useragents.yml"):
        command += ["--sigma", str(generic / name)]
    result = subprocess.run([*command, str(iis_log)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    found = [json.loads(line) for line in result.stdout.splitlines()]
    # Both on the fuzzer's line only: its query and its user agent (spaces written `+` by IIS).
    assert sorted(d["rule_title"] for d in found) == [
        "Path Traversal Exploitation Attempts",
        "Suspicious User-Agents Related To Recon Tools",
    ]
    assert {d["timestamp"] for d in found} == {"2026-11-21T00:00:01.250000Z"}
