"""Network traffic from capture files: a folder where a capture tool (`tcpdump -G`, a span
port's recorder) drops pcap or pcapng files. Each file, once it has stopped growing, is read
once by `vigie netmeta`'s extractor; its records (Zeek field names and `_path`, as Vigie's
network rules expect them) become events.

A file's records are handed out by one `poll()`, and the checkpoint that marks the file done
goes to the spool in the same transaction as those events: a file is delivered once, even if
the agent dies while reading it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector.netmeta import NetmetaStats, Record, extract
from detection.event import Event

log = logging.getLogger("vigie.agent")


class PcapFolder:
    def __init__(
        self,
        folder: str | Path,
        patterns: Sequence[str] = ("*.pcap", "*.pcapng"),
        *,
        settle_seconds: float = 5.0,
    ) -> None:
        self.folder = Path(folder)
        self.patterns = tuple(patterns)
        self.name = f"pcap:{self.folder}"
        self.settle_seconds = settle_seconds
        self._done: dict[str, list[int]] = {}  # path -> [size, mtime_ns] when read
        self._sizes: dict[str, tuple[int, int, float]] = {}  # path -> size, mtime, first seen
        self._read = self._skipped = self._files = 0
        self._errors: list[str] = []

    def poll(self) -> list[Event]:
        for path in self._candidates():
            events = self._read_file(path)
            if events is not None:
                return events  # one file per poll: its events and its checkpoint together
        return []

    def checkpoint(self) -> dict[str, Any]:
        return {"done": self._done}

    def restore(self, state: dict[str, Any]) -> None:
        self._done = {str(k): list(v) for k, v in state.get("done", {}).items()}

    def close(self) -> None:
        pass

    def stats(self) -> dict[str, Any]:
        return {
            "read": self._read,
            "skipped": self._skipped,
            "files": self._files,
            "lag_seconds": None,
            "errors": self._errors[-20:],
        }

    # --- internals --------------------------------------------------------------------------

    def _candidates(self) -> list[Path]:
        found = sorted({p for pattern in self.patterns for p in self.folder.glob(pattern)})
        now = time.monotonic()
        ready = []
        for path in found:
            try:
                info = path.stat()
            except OSError:
                continue
            key, signature = str(path), [info.st_size, info.st_mtime_ns]
            if self._done.get(key) == signature:
                continue
            seen = self._sizes.get(key)
            if seen is None or seen[:2] != (info.st_size, info.st_mtime_ns):
                self._sizes[key] = (info.st_size, info.st_mtime_ns, now)
                continue  # still growing, or new: wait until it settles
            if now - seen[2] >= self.settle_seconds:
                ready.append(path)
        return ready

    def _read_file(self, path: Path) -> list[Event] | None:
        info = path.stat()
        stats = NetmetaStats()
        events = [record_event(record, f"pcap:{path}") for record in extract([path], stats)]
        self._done[str(path)] = [info.st_size, info.st_mtime_ns]
        self._sizes.pop(str(path), None)
        self._files += 1
        self._read += len(events)
        self._skipped += stats.read.bad_records + stats.malformed
        if stats.read.files_failed:
            self._errors.extend(stats.read.errors[-3:])
            log.warning("capture %s could not be read: %s", path, stats.read.errors[-1:])
        return events


def record_event(record: Record, source: str) -> Event:
    """A network-metadata record as an event: Zeek's field names and `_path`, as Vigie's
    network rules expect them, the record's `ts` as the event's time (also for a live capture,
    collector/sources/live.py)."""
    fields = record.zeek()
    return Event(datetime.fromtimestamp(fields.pop("ts"), UTC), fields, source=source)
