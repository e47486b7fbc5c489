"""EVTX files, read with the `evtx` package (Rust); a corrupt record is counted and skipped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
from evtx import PyEvtxParser

from detection.event import Event
from detection.sources.stats import ReadStats
from detection.sources.windows import NotWindowsEvent, event_from_rendering

EVTX_MAGIC = b"ElfFile\x00"


def read_evtx(path: Path, stats: ReadStats) -> Iterator[Event]:
    """Yield the events of one EVTX file."""
    source = str(path)
    # One parser thread: the scan already runs one process per core.
    records = PyEvtxParser(source, number_of_threads=1).records_json()
    number = 0
    while True:
        number += 1
        try:
            record = next(records)
        except StopIteration:
            break
        except (RuntimeError, OSError, ValueError) as exc:  # the parser's error for a bad record
            stats.skip(source, number, f"corrupt EVTX record: {exc}")
            continue
        if record is None:  # typed Optional by the package; never seen in practice
            break
        try:
            event = event_from_rendering(orjson.loads(record["data"]), source)
        except (orjson.JSONDecodeError, NotWindowsEvent) as exc:
            stats.skip(source, number, f"unreadable EVTX record: {exc}")
            continue
        stats.records_read += 1
        yield event
