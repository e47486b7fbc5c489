"""Syslog lines (RFC 3164, RFC 5424, file layouts, plain text) and syslog files."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from detection.event import sigma_view
from detection.sources.stats import ReadStats
from detection.sources.syslog import parse_line, parse_syslog_line, read_syslog

LOGS = Path(__file__).resolve().parent.parent / "data" / "logs"


def test_rfc5424_with_structured_data() -> None:
    line = (
        "<165>1 2003-10-11T22:14:15.003000-07:00 hl7gw evntslog 1234 ID47"
        ' [exampleSDID@32473 iut="3" eventSource="Appli\\"cation" eventID="1011"]'
        '[examplePriority@32473 class="high"] restarted'
    )
    fields = parse_syslog_line(line)
    syslog = fields["log"]["syslog"]
    assert fields["@timestamp"] == "2003-10-12T05:14:15.003000Z"  # -07:00 moved to UTC
    assert fields["message"] == line  # the whole line stays searchable
    assert syslog["message"] == "restarted"
    assert syslog["priority"] == 165
    assert syslog["facility"] == {"code": 20, "name": "local4"}
    assert syslog["severity"] == {"code": 5, "name": "notice"}
    assert syslog["version"] == 1
    assert syslog["msgid"] == "ID47"
    assert syslog["procid"] == "1234"
    assert syslog["appname"] == "evntslog"
    assert syslog["structured_data"] == {
        "exampleSDID@32473": {"iut": "3", "eventSource": 'Appli"cation', "eventID": "1011"},
        "examplePriority@32473": {"class": "high"},
    }
    assert fields["host"] == {"hostname": "hl7gw"}
    assert fields["process"] == {"name": "evntslog", "pid": 1234}
    assert fields["log"]["level"] == "notice"


def test_rfc5424_nil_values_and_bom() -> None:
    fields = parse_syslog_line("<34>1 - - su - - - \ufeff'su root' failed")
    assert "@timestamp" not in fields
    assert "host" not in fields
    assert "msgid" not in fields["log"]["syslog"]
    assert fields["log"]["syslog"]["message"] == "'su root' failed"
    assert fields["process"] == {"name": "su"}


def test_rfc3164_with_priority_uses_given_year() -> None:
    fields = parse_syslog_line(
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick", year=2019
    )
    assert fields["@timestamp"] == "2019-10-11T22:14:15Z"
    assert fields["host"] == {"hostname": "mymachine"}
    assert fields["process"] == {"name": "su"}
    assert fields["log"]["syslog"]["facility"]["name"] == "auth"
    assert fields["log"]["syslog"]["severity"]["name"] == "critical"
    assert fields["log"]["syslog"]["message"] == "'su root' failed for lonvick"


def test_auth_log_line_without_priority() -> None:
    line = "Mar  3 10:02:01 web1 sshd[2231]: Failed password for invalid user admin from 1.2.3.4"
    stamp, fields = parse_line(line, year=2024)
    assert stamp == datetime(2024, 3, 3, 10, 2, 1, tzinfo=UTC)
    assert fields["process"] == {"name": "sshd", "pid": 2231}
    assert fields["log"]["syslog"] == {
        "hostname": "web1",
        "appname": "sshd",
        "procid": "2231",
        "message": "Failed password for invalid user admin from 1.2.3.4",
    }
    # Sigma's Linux keyword rules see the raw line through the flat view.
    assert sigma_view(fields)["message"] == line


def test_sudo_pairs_become_fields() -> None:
    fields = parse_syslog_line(
        "Mar  3 10:05:44 web1 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=#-1 ;"
        " COMMAND=/usr/bin/id -u"
    )
    assert fields["USER"] == "#-1"
    assert fields["COMMAND"] == "/usr/bin/id -u"
    assert fields["TTY"] == "pts/0"


def test_tag_without_host_and_rfc3339_file_layout() -> None:
    fields = parse_syslog_line("<13>Feb  5 17:32:18 myapp[4123]: Use the BFG!", year=2024)
    assert "host" not in fields
    assert fields["process"] == {"name": "myapp", "pid": 4123}
    stamp, fields = parse_line("2024-01-15T10:00:00.123456+01:00 web1 kernel: [ 12.3] usb 1-1: x")
    assert stamp == datetime(2024, 1, 15, 9, 0, 0, 123456, tzinfo=UTC)
    assert fields["process"] == {"name": "kernel"}
    assert fields["log"]["syslog"]["message"] == "[ 12.3] usb 1-1: x"


def test_year_rolls_back_when_the_stamp_would_be_in_the_future() -> None:
    january = datetime(2025, 1, 2, tzinfo=UTC)
    stamp, _ = parse_line("Dec 31 23:59:59 h cron[1]: x", now=january)
    assert stamp == datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)
    # An explicit year is never second-guessed.
    stamp, _ = parse_line("Dec 31 23:59:59 h cron[1]: x", year=2025, now=january)
    assert stamp == datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_a_stamp_read_again_depends_on_its_year_and_reference_time() -> None:
    # Stamps are remembered by their text, the year given and the reference time: the same
    # text read against another reference or year must not take the first answer.
    line = "<13>Dec 31 23:59:59 h cron[1]: x"
    january, june = datetime(2025, 1, 2, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC)
    next_january = datetime(2026, 1, 2, tzinfo=UTC)
    for _ in range(2):  # the second round is answered from what was remembered
        assert parse_line(line, now=january)[0] == datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)
        assert parse_line(line, now=next_january)[0] == datetime(
            2025, 12, 31, 23, 59, 59, tzinfo=UTC
        )
        assert parse_line(line, year=2023, now=june)[0] == datetime(
            2023, 12, 31, 23, 59, 59, tzinfo=UTC
        )
        assert parse_line("Feb 29 10:00:00 h p: x", now=june)[0] is None  # 2025: no 29 Feb
        assert parse_line("Feb 29 10:00:00 h p: x", year=2024, now=june)[0] == datetime(
            2024, 2, 29, 10, tzinfo=UTC
        )
    # Only the text up to the host is the key: the rest of the line is parsed each time.
    _, first = parse_line("Nov 20 10:00:00 srv-a nginx[80]: one", now=june)
    _, second = parse_line("Nov 20 10:00:00 srv-b sshd[22]: two", now=june)
    assert (first["host"], first["log"]["syslog"]["message"]) == ({"hostname": "srv-a"}, "one")
    assert (second["host"], second["process"]) == (
        {"hostname": "srv-b"},
        {"name": "sshd", "pid": 22},
    )


@pytest.mark.parametrize(
    "line",
    ["just some text", "Foo 12 10:00:00 not a month", "<999 broken", "Feb 30 10:00:00 h p: x"],
)
def test_other_lines_are_kept_as_message(line: str) -> None:
    stamp, fields = parse_line(line, year=2023)
    assert stamp is None
    assert fields == {"message": line}


def test_read_files(tmp_path: Path) -> None:
    stats = ReadStats()
    events = list(read_syslog(LOGS / "rfc5424.log", stats))
    assert len(events) == 4 == stats.records_read
    assert [e.fields.get("host", {}).get("hostname") for e in events] == [
        "mymachine.example.com",
        "hl7gw.example.org",
        "192.0.2.1",
        None,
    ]
    assert all(e.timestamp.tzinfo is UTC for e in events)
    assert stats.records_skipped == 0


def test_auth_log_blank_and_continuation_lines(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes((LOGS / "auth.log").read_bytes())
    mtime = datetime(2024, 6, 1, tzinfo=UTC).timestamp()
    os.utime(log, (mtime, mtime))  # the year of a year-less stamp comes from the file's time
    stats = ReadStats()
    events = list(read_syslog(log, stats))
    assert len(events) == 6  # the blank line is not an event
    assert events[0].timestamp == datetime(2024, 3, 3, 10, 2, 1, tzinfo=UTC)
    continuation = events[4]
    assert continuation.fields == {"message": "    continuation line without a stamp"}
    assert continuation.timestamp == events[3].timestamp  # the previous line's time
    assert events[2].fields["COMMAND"] == "/usr/bin/vssadmin delete shadows /all"
    assert events[0].source == str(log)


def test_gzip_and_crlf(tmp_path: Path) -> None:
    log = tmp_path / "messages.1.gz"
    text = (LOGS / "rfc3164.log").read_text().replace("\n", "\r\n")
    log.write_bytes(gzip.compress(text.encode()))
    events = list(read_syslog(log, ReadStats(), year=2020))
    assert [e.fields["process"]["name"] for e in events] == ["su", "myapp", "CRON"]
    assert events[1].fields["host"]["hostname"] == "10.0.0.99"
    assert not events[0].fields["message"].endswith("\r")
    assert events[2].timestamp == datetime(2020, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_non_utf8_bytes_do_not_stop_the_file(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    log.write_bytes(b"Mar  3 10:00:00 h a: caf\xe9\nMar  3 10:00:01 h b: ok\n")
    events = list(read_syslog(log, ReadStats(), year=2024))
    assert [e.fields["process"]["name"] for e in events] == ["a", "b"]
    assert events[0].fields["log"]["syslog"]["message"] == "caf\ufffd"
