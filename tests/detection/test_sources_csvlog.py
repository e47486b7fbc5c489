"""CSV logs: columns as top-level fields, the time column, bad rows."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from detection.sources.csvlog import column_names, csv_time, read_csv
from detection.sources.jsonlog import EPOCH
from detection.sources.stats import ReadStats

LOGS = Path(__file__).resolve().parent.parent / "data" / "logs"


def test_rows_become_events_and_a_short_row_is_skipped() -> None:
    stats = ReadStats()
    events = list(read_csv(LOGS / "events.csv", stats))
    assert [e.fields["EventID"] for e in events] == ["4688", "4688", "4624"]
    first = events[0]
    assert first.fields["Image"] == r"C:\Windows\System32\vssadmin.exe"
    assert first.sigma_view()["CommandLine"] == "vssadmin.exe delete shadows /all /quiet"
    assert first.timestamp == datetime(2024, 3, 3, 10, 0, 0, 123456, tzinfo=UTC)
    assert events[1].fields["CommandLine"] == 'cmd.exe /c "echo, quoted"'
    assert events[1].timestamp == datetime(2024, 3, 3, 9, 0, 5, tzinfo=UTC)
    assert events[2].timestamp == datetime(2024, 3, 3, 10, 0, 10, tzinfo=UTC)  # epoch seconds
    assert events[2].fields["Image"] == ""
    assert stats.records_read == 3
    assert [(err.record, err.reason) for err in stats.errors] == [
        (4, "4 columns where the header has 6")
    ]


def test_semicolons_bom_and_locale_dates(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "\ufeffDate and Time;Source;Event ID\n10/03/2024 14:05:00;Service Control Manager;7036\n",
        encoding="utf-8",
    )
    (event,) = read_csv(path, ReadStats())
    assert event.fields == {
        "Date and Time": "10/03/2024 14:05:00",
        "Source": "Service Control Manager",
        "Event ID": "7036",
    }
    assert event.timestamp == datetime(2024, 3, 10, 14, 5, tzinfo=UTC)  # day first (24 h clock)


def test_tsv_without_a_time_column(tmp_path: Path) -> None:
    path = tmp_path / "hosts.tsv"
    path.write_text("host\tip, mask\nws01\t10.0.0.1, /24\n")
    (event,) = read_csv(path, ReadStats())
    assert event.fields == {"host": "ws01", "ip, mask": "10.0.0.1, /24"}
    assert event.timestamp == EPOCH


def test_oversized_field_is_skipped_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text(f"a,b\n1,{'x' * (csv.field_size_limit() + 10)}\n2,ok\n")
    stats = ReadStats()
    events = list(read_csv(path, stats))
    assert [e.fields["a"] for e in events] == ["2"]
    assert stats.records_skipped == 1
    assert "invalid CSV row" in stats.errors[0].reason


def test_header_only_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    for content in ("", "a,b\n"):
        path.write_text(content)
        assert list(read_csv(path, ReadStats())) == []


def test_column_names() -> None:
    assert column_names([" Time ", "", "x", "x", "x"]) == ["Time", "column_2", "x", "x_2", "x_3"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3/10/2024 2:05:00 PM", datetime(2024, 3, 10, 14, 5, tzinfo=UTC)),
        ("2024/03/10 14:05:00", datetime(2024, 3, 10, 14, 5, tzinfo=UTC)),
        ("10/Mar/2024:15:05:00 +0100", datetime(2024, 3, 10, 14, 5, tzinfo=UTC)),
        ("not a date", None),
        ("", None),
    ],
)
def test_csv_time(value: str, expected: datetime | None) -> None:
    assert csv_time(value) == expected
