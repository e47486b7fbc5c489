"""Windows event exports dropped in a watched folder: EVTX files and JSON/JSONL exports.

Where no agent runs on the Windows hosts, their logs arrive as files (a scheduled `wevtutil
epl`, an export from the Event Viewer, a JSON export from a SIEM or a script). Each new file
matching `patterns` is read once, with the readers of `vigie scan` (`detection.sources`).

- A file is read only once it has settled: unchanged in size and time between two polls, or
  last written more than `settle_seconds` ago (a copy in progress is not read half-way).
- Reading is bounded per poll (`max_events`); a file is resumed at its record position.
- The checkpoint lists the files done (path -> identity and record count) and the file being
  read with its position (records handed out). A file that changes after it was done is read
  again: from where it was left when it only grew (same inode, larger), else from its start.
- A corrupt record is counted (`skipped`) and skipped; a file that cannot be read at all is
  counted (`failed`) and not retried until it changes.
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.sources.base import keep_error
from detection.event import Event
from detection.sources.evtx import read_evtx
from detection.sources.jsonlog import read_json
from detection.sources.sniff import EVTX_MAGIC
from detection.sources.stats import ReadStats

CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class _Identity:
    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> _Identity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def as_dict(self) -> dict[str, int]:
        return {"dev": self.dev, "ino": self.ino, "size": self.size, "mtime_ns": self.mtime_ns}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _Identity:
        return cls(int(data["dev"]), int(data["ino"]), int(data["size"]), int(data["mtime_ns"]))


@dataclass
class _Reading:
    """The file being read: its records come from a reader resumed at `start`."""

    path: str
    identity: _Identity
    start: int  # records already handed out (by an earlier run, or before it grew)
    records: Iterator[Event]
    stats: ReadStats
    position: int = 0  # records of the file gone through (read or skipped)
    skipped_seen: int = 0  # of stats.records_skipped, those already counted


class WatchedFolder:
    """Read each new EVTX or JSON export file of `folder` once; see the module docstring."""

    def __init__(
        self,
        folder: str | Path,
        patterns: Sequence[str] = ("*.evtx", "*.json", "*.jsonl"),
        *,
        settle_seconds: float = 5.0,
        max_events: int = 5000,
    ) -> None:
        self.folder = Path(folder)
        self.patterns = tuple(patterns)
        self.name = f"winlog:{self.folder}"
        self.settle_seconds = settle_seconds
        self.max_events = max_events
        self._done: dict[str, tuple[_Identity, int]] = {}  # path -> (identity, records)
        self._reading: _Reading | None = None
        self._resume: tuple[str, _Identity, int] | None = None  # from a checkpoint
        self._sizes: dict[str, tuple[int, int]] = {}  # path -> (size, mtime_ns) at last poll
        self._read = self._skipped = self._failed = self._files = 0
        self._errors: list[str] = []
        self._lag: float | None = None

    # -- Source interface ------------------------------------------------------------------

    def poll(self) -> list[Event]:
        events: list[Event] = []
        while len(events) < self.max_events:
            if self._reading is None:
                self._reading = self._next_file()
                if self._reading is None:
                    break
            self._pull(self._reading, events)
        return events

    def checkpoint(self) -> dict[str, Any]:
        current = None
        if self._reading is not None:
            current = {
                "path": self._reading.path,
                **self._reading.identity.as_dict(),
                "records": max(self._reading.start, self._reading.position),
            }
        return {
            "version": CHECKPOINT_VERSION,
            "done": {
                path: {**identity.as_dict(), "records": records}
                for path, (identity, records) in self._done.items()
            },
            "reading": current,
        }

    def restore(self, state: dict[str, Any]) -> None:
        try:
            for path, entry in (state.get("done") or {}).items():
                self._done[str(path)] = (_Identity.from_dict(entry), int(entry["records"]))
            current = state.get("reading")
            if current:
                self._resume = (
                    str(current["path"]),
                    _Identity.from_dict(current),
                    int(current["records"]),
                )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            keep_error(self._errors, f"bad checkpoint: {exc!r}")

    def close(self) -> None:
        if self._reading is not None:
            close = getattr(self._reading.records, "close", None)
            if close is not None:
                close()  # the reader's file handle
            self._reading = None

    def stats(self) -> dict[str, Any]:
        return {
            "read": self._read,
            "skipped": self._skipped,
            "failed": self._failed,
            "files_read": self._files,
            "files_done": len(self._done),
            "lag_seconds": self._lag,
            "errors": list(self._errors),
        }

    # -- choosing files --------------------------------------------------------------------

    def _candidates(self) -> list[tuple[str, os.stat_result]]:
        found: list[tuple[str, os.stat_result]] = []
        try:
            entries = sorted(os.scandir(self.folder), key=lambda entry: entry.name)
        except OSError as exc:
            keep_error(self._errors, f"{self.folder}: cannot list: {exc.strerror or exc}")
            return found
        for entry in entries:
            if entry.name.startswith(".") or not any(
                fnmatch.fnmatch(entry.name.lower(), pattern.lower()) for pattern in self.patterns
            ):
                continue
            try:
                if entry.is_file():
                    found.append((entry.path, entry.stat()))
            except OSError:
                continue  # gone since the listing
        return found

    def _next_file(self) -> _Reading | None:
        now = time.time()
        candidates = self._candidates()
        present = {path for path, _ in candidates}
        # Files no longer there are forgotten: the state does not grow without end.
        for path in [p for p in self._done if p not in present]:
            del self._done[path]
        sizes = {path: (st.st_size, st.st_mtime_ns) for path, st in candidates}
        previous, self._sizes = self._sizes, sizes
        oldest: float | None = None
        chosen: _Reading | None = None
        for path, st in candidates:
            identity = _Identity.of(st)
            start = self._start(path, identity)
            if start is None:
                continue  # done, unchanged
            settled = previous.get(path) == sizes[path] or (
                now - st.st_mtime >= self.settle_seconds
            )
            if not settled:
                continue
            oldest = st.st_mtime if oldest is None else min(oldest, st.st_mtime)
            if chosen is None:
                chosen = self._open(path, identity, start)
                if self._resume is not None and self._resume[0] == path:
                    self._resume = None
        self._lag = max(0.0, now - oldest) if oldest is not None else 0.0
        return chosen

    def _start(self, path: str, identity: _Identity) -> int | None:
        """Records to pass over in the file (None: it is done and unchanged)."""
        if self._resume is not None and self._resume[0] == path:
            _, saved, records = self._resume
            if (saved.dev, saved.ino) == (identity.dev, identity.ino):
                return records
            return 0
        done = self._done.get(path)
        if done is None:
            return 0
        saved, records = done
        if saved == identity:
            return None
        same_file = (saved.dev, saved.ino) == (identity.dev, identity.ino)
        return records if same_file and identity.size >= saved.size else 0

    def _open(self, path: str, identity: _Identity, start: int) -> _Reading:
        stats = ReadStats()
        records = _read_file(Path(path), stats)
        return _Reading(path, identity, start, records, stats)

    # -- reading ---------------------------------------------------------------------------

    def _pull(self, reading: _Reading, events: list[Event]) -> None:
        while len(events) < self.max_events:
            try:
                event = next(reading.records)
            except StopIteration:
                self._finish(reading, failed=None)
                return
            except Exception as exc:  # the reader is done for: the file failed, visibly
                self._finish(reading, failed=f"cannot read: {exc!r}")
                return
            self._count_skips(reading)
            reading.position = reading.stats.records_read + reading.stats.records_skipped
            if reading.position > reading.start:
                events.append(event)
                self._read += 1

    def _count_skips(self, reading: _Reading) -> None:
        new = reading.stats.records_skipped - reading.skipped_seen
        if new <= 0:
            return
        reading.skipped_seen = reading.stats.records_skipped
        # Records before `start` were counted by the run that first read them.
        before = reading.stats.records_read + reading.stats.records_skipped
        if before > reading.start:
            self._skipped += new
            for error in reading.stats.errors[-new:]:
                keep_error(self._errors, str(error))

    def _finish(self, reading: _Reading, failed: str | None) -> None:
        self._count_skips(reading)
        total = reading.stats.records_read + reading.stats.records_skipped
        if failed is not None:
            self._failed += 1
            keep_error(self._errors, f"{reading.path}: {failed}")
        else:
            self._files += 1
        # Done even when it failed: it is read again only if it changes.
        self._done[reading.path] = (reading.identity, max(total, reading.start))
        self._reading = None


def _read_file(path: Path, stats: ReadStats) -> Iterator[Event]:
    """The EVTX reader for EVTX content (whatever the name), the JSON reader otherwise.

    A generator: the file is opened at the first record asked for, where errors are caught.
    """
    with path.open("rb") as fh:
        head = fh.read(len(EVTX_MAGIC))
    if head == EVTX_MAGIC or path.suffix.lower() == ".evtx":
        yield from read_evtx(path, stats)
    else:
        yield from read_json(path, stats)
