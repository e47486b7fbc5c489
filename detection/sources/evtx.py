"""EVTX files, read with the `evtx` package (Rust); a corrupt record is counted and skipped,
and so is an incomplete last chunk (the package passes over it in silence)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
from evtx import PyEvtxParser

from detection.event import Event
from detection.sources.jsonlog import MAX_DEPTH, too_deep
from detection.sources.stats import ReadStats
from detection.sources.windows import NotWindowsEvent, event_from_rendering

EVTX_MAGIC = b"ElfFile\x00"
FILE_HEADER_SIZE = 4096  # then chunks of CHUNK_SIZE bytes, each with its own records
CHUNK_SIZE = 65536


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
            rendering = orjson.loads(record["data"])
            if too_deep(rendering, record["data"]):
                raise NotWindowsEvent(f"nested deeper than {MAX_DEPTH} levels")
            event = event_from_rendering(rendering, source)
        except (orjson.JSONDecodeError, NotWindowsEvent) as exc:
            stats.skip(source, number, f"unreadable EVTX record: {exc}")
            continue
        stats.records_read += 1
        yield event
    # The parser passes over an incomplete last chunk in silence (a copy cut short, a full
    # disk): its records are lost, which must show.
    size = path.stat().st_size
    partial = (size - FILE_HEADER_SIZE) % CHUNK_SIZE
    if size > FILE_HEADER_SIZE and partial:
        stats.skip(
            source,
            number,
            f"truncated EVTX file: its last chunk has {partial} of {CHUNK_SIZE} bytes,"
            " its records are not read",
        )
