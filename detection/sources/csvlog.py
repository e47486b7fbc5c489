"""CSV logs with a header row (exports of SIEMs, firewalls, EDR consoles, spreadsheets).

Each row becomes an event whose fields are the columns under their header names, at the top
level, so that Sigma rules written against those names match. Values stay text: CSV has no
types. The delimiter is the one of `, ; TAB |` the header uses most (TAB for `.tsv`); the time
is read from the best-ranked recognisable column (`@timestamp`, `timestamp`, `time`, `date`,
`Date and Time`, ...). A row whose column count differs from the header's is counted and skipped.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from detection.event import Event
from detection.sources.jsonlog import EPOCH, TIME_FIELDS, to_utc
from detection.sources.sniff import open_text
from detection.sources.stats import ReadStats

_DELIMITERS = (",", ";", "\t", "|")
# Spreadsheet and console exports write local, non-ISO dates; the zone is taken to be UTC.
_DATE_FORMATS = (
    "%m/%d/%Y %I:%M:%S %p",  # Windows Event Viewer (en-US)
    "%d/%m/%Y %H:%M:%S",  # fr-FR
    "%Y/%m/%d %H:%M:%S",
    "%d/%b/%Y:%H:%M:%S %z",  # web server access logs
)
_EXTRA_TIME_COLUMNS = ("dateandtime", "timegenerated", "eventreceivedtime", "receivedtime")


def _squash(name: str) -> str:
    """`Date and Time`, `date_time`, `@timestamp` -> `dateandtime`, `datetime`, `timestamp`."""
    return "".join(c for c in name.lower() if c.isalnum())


# Reversed so that where two names squash alike (`@timestamp`, `timestamp`) the first ranks.
_TIME_RANK = {
    _squash(name): rank
    for rank, name in reversed(list(enumerate((*TIME_FIELDS, *_EXTRA_TIME_COLUMNS))))
}


def read_csv(path: Path, stats: ReadStats) -> Iterator[Event]:
    """Yield one event per data row of a CSV file (gzip-compressed or not)."""
    source = str(path)
    with open_text(path, errors="replace") as fh:
        first = fh.readline()
        if not first.strip():
            return
        delimiter = "\t" if _is_tsv(path) else _delimiter(first)
        reader = csv.reader(itertools.chain([first], fh), delimiter=delimiter)
        names = column_names(next(reader))
        time_column = _time_column(names)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # e.g. a field over the size limit; the next row is fine
                stats.skip(source, reader.line_num, f"invalid CSV row: {exc}")
                continue
            if not any(row):
                continue  # blank line
            if len(row) != len(names):
                reason = f"{len(row)} columns where the header has {len(names)}"
                stats.skip(source, reader.line_num, reason)
                continue
            timestamp = csv_time(row[time_column]) if time_column is not None else None
            stats.records_read += 1
            yield Event(
                timestamp=timestamp or EPOCH,
                fields=dict(zip(names, row, strict=True)),
                source=source,
            )


def column_names(header: Sequence[str]) -> list[str]:
    """Header cells as field names: trimmed, unnamed ones `column_N`, repeats `name_2`, ..."""
    names: list[str] = []
    seen: set[str] = set()
    for number, cell in enumerate(header, 1):
        name = cell.strip() or f"column_{number}"
        candidate, repeat = name, 1
        while candidate in seen:
            repeat += 1
            candidate = f"{name}_{repeat}"
        seen.add(candidate)
        names.append(candidate)
    return names


def csv_time(value: str) -> datetime | None:
    """A CSV cell as a UTC time: ISO 8601 or epoch first, then the common export formats."""
    found = to_utc(value)
    if found is not None:
        return found
    text = value.strip()
    for layout in _DATE_FORMATS:
        try:
            parsed = datetime.strptime(text, layout)  # noqa: DTZ007 - the zone is set below
        except ValueError:
            continue
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    return None


def _time_column(names: Sequence[str]) -> int | None:
    ranked = [
        (rank, index)
        for index, name in enumerate(names)
        if (rank := _TIME_RANK.get(_squash(name))) is not None
    ]
    return min(ranked)[1] if ranked else None


def _delimiter(header: str) -> str:
    counts = {delimiter: header.count(delimiter) for delimiter in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def _is_tsv(path: Path) -> bool:
    return ".tsv" in (suffix.lower() for suffix in path.suffixes)
