"""W3C extended log files: IIS, and the proxies and mail gateways that write the same layout.

    #Software: Microsoft Internet Information Services 10.0
    #Version: 1.0
    #Date: 2026-11-20 10:00:00
    #Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port c-ip cs(User-Agent) ...
    2026-11-20 10:00:01 10.1.0.5 GET /owa/auth/x.js - 443 203.0.113.7 Mozilla/5.0+(Windows...

Each line becomes an event whose fields are the `#Fields` names, values as text (`-`, no
value, is left out). The time is one instant in UTC, as the W3C format defines it: the `date`
and `time` fields together, or `time` alone on the day of the last `#Date:` directive. IIS's
`cs(User-Agent)` and `cs(Referer)` are also given under the names Sigma's webserver rules use
(`cs-user-agent`, with IIS's `+` for spaces turned back into spaces, and `cs-referer`).
Values are separated by spaces (IIS), or by tabs when the `#Fields` line uses them. A line whose
value count differs from `#Fields` is counted and skipped; a new `#Fields` (IIS starts one at
each restart) applies to the lines after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from detection.event import Event
from detection.sources.jsonlog import EPOCH
from detection.sources.sniff import open_text
from detection.sources.stats import ReadStats

# IIS's names -> those of Sigma's webserver taxonomy, added beside them.
_SIGMA_NAMES = {"cs(User-Agent)": "cs-user-agent", "cs(Referer)": "cs-referer"}


def read_w3c(path: Path, stats: ReadStats) -> Iterator[Event]:
    """Yield one event per data line of a W3C extended log file (gzip-compressed or not)."""
    source = str(path)
    names: list[str] = []
    separator: str | None = None  # None: any run of spaces
    day: date | None = None
    with open_text(path, errors="replace") as fh:
        for number, raw in enumerate(fh, 1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            if line.startswith("#"):
                directive, _, value = line[1:].partition(":")
                if directive == "Fields":
                    value = value.strip(" \t")
                    separator = "\t" if "\t" in value else None
                    names = value.split(separator)
                elif directive == "Date":
                    day = _directive_day(value)
                continue
            if not names:
                stats.skip(source, number, "W3C log line before any #Fields directive")
                continue
            values = line.split(separator)
            if len(values) != len(names):
                reason = f"{len(values)} values where #Fields names {len(names)}"
                stats.skip(source, number, f"bad W3C log line: {reason}")
                continue
            stats.records_read += 1
            fields = {
                name: value for name, value in zip(names, values, strict=True) if value != "-"
            }
            yield Event(
                timestamp=w3c_time(fields, day) or EPOCH,
                fields=_with_sigma_names(fields),
                source=source,
            )


def w3c_time(fields: dict[str, Any], day: date | None = None) -> datetime | None:
    """The UTC instant of a line: its `date` and `time`, or its `time` on `day`."""
    clock = _clock(fields.get("time"))
    if clock is None:
        return None
    on = _day(fields.get("date")) or day
    if on is None:
        return None
    return datetime.combine(on, clock, tzinfo=UTC)


def _clock(text: Any) -> time | None:
    if not isinstance(text, str):
        return None
    try:
        return time.fromisoformat(text.strip())  # 10:00:01, 10:00:01.25
    except ValueError:
        return None


def _day(text: Any) -> date | None:
    if not isinstance(text, str):
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def _directive_day(value: str) -> date | None:
    """`#Date: 2026-11-20 10:00:00` -> its day."""
    return _day(value.strip().split(" ", 1)[0])


def _with_sigma_names(fields: dict[str, Any]) -> dict[str, Any]:
    for name, alias in _SIGMA_NAMES.items():
        value = fields.get(name)
        if value is not None and alias not in fields:
            fields[alias] = value.replace("+", " ") if alias == "cs-user-agent" else value
    return fields
