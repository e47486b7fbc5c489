"""Log files followed like `tail -F`, resumable from a checkpoint without loss or repeat.

A file is known by its identity: (device, inode) and a fingerprint (a hash of its first bytes,
up to FINGERPRINT_BYTES), so that an inode reused by another file after a restart is noticed.
Each poll:

- the glob patterns are evaluated again: new files are read from their start;
- rotation by rename: a file that leaves its path (renamed, deleted) stays open and is read to
  its end, then closed once nothing was added for `rotate_wait` seconds (the writer may not
  have reopened its log yet; a listing that raced with a rename may miss a file for one poll);
  the new file at the path is a new file. A closed file is remembered (and checkpointed):
  listed again, it resumes where it was left;
- rotation by copy-truncate: a file shorter than what was read, or whose first bytes changed
  (checked before and after each chunk read), is read again from its start; the copy, when
  the patterns match it, is recognised by its fingerprint and read from where the original
  was left (not a second time from its start);
- only whole lines are handed out: a last line without its newline waits to be completed (a
  rotated file's last line is handed out when the file is closed);
- reading is bounded per poll (`max_bytes` in all, taken in turns across the files).

The checkpoint holds, per file, its identity and the offset just after the last line handed
out. On restore a file is looked for at its path, then among the files of the same folder
(a file rotated while the agent was stopped is still read to its end).
"""

from __future__ import annotations

import collections
import contextlib
import glob
import hashlib
import os
import stat
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from collector.sources.base import BadRecord, keep_error
from collector.sources.lines import ParserName, check_parser, decode_line, parse_text
from detection.event import Event

FINGERPRINT_BYTES = 1024
GZIP_MAGIC = b"\x1f\x8b"  # compressed rotations (`app.log.2.gz`) are not followed
CHECKPOINT_VERSION = 1
MAX_CLOSED = 256  # closed files remembered (and checkpointed)


@dataclass
class _File:
    """One followed file: identity, the committed offset, and what is read past it."""

    path: str
    dev: int
    ino: int
    fh: BinaryIO
    fp_len: int = 0  # how many first bytes the fingerprint covers
    fp: str = ""
    offset: int = 0  # just after the last whole line handed out (what a checkpoint says)
    pending: bytes = b""  # read past `offset`: the start of a line without its newline yet
    discarding: bool = False  # inside an over-long line, dropped up to its newline
    gone_since: float | None = None  # when it left the patterns (rotated or deleted)
    idle_since: float | None = None  # when it was last found with nothing new, once gone
    unread_since: float | None = None  # wall time of the oldest data not read yet

    @property
    def key(self) -> tuple[int, int]:
        return (self.dev, self.ino)

    @property
    def position(self) -> int:
        return self.offset + len(self.pending)


@dataclass
class _Truncated:
    """A file found truncated: its copy (if the patterns match it) resumes at `offset`."""

    fp_len: int
    fp: str
    offset: int
    poll: int  # the poll that found it: a copy is made just before its original is truncated


@dataclass
class _Counters:
    read: int = 0
    skipped: int = 0
    truncations: int = 0
    rotations: int = 0
    missing_on_restore: int = 0
    errors: list[str] = field(default_factory=list)


class FileTail:
    """Follow the files matching glob `patterns`; see the module docstring."""

    def __init__(
        self,
        patterns: list[str],
        parser: str = "auto",
        *,
        rotate_wait: float = 5.0,
        max_bytes: int = 4 * 1024 * 1024,
        max_line_bytes: int = 1024 * 1024,
        read_chunk: int = 256 * 1024,
    ) -> None:
        if not patterns:
            raise ValueError("FileTail needs at least one glob pattern")
        self.patterns = list(patterns)
        self.parser: ParserName = check_parser(parser)
        self.name = "tail:" + ",".join(self.patterns)
        self.rotate_wait = rotate_wait
        self.max_bytes = max_bytes
        self.max_line_bytes = max_line_bytes
        self.read_chunk = read_chunk
        self._files: dict[tuple[int, int], _File] = {}
        self._truncated: list[_Truncated] = []
        # Files closed after rotation: should one be listed again (a glob that raced with a
        # rename), it resumes where it was left instead of being read twice.
        self._closed: collections.OrderedDict[tuple[int, int], tuple[int, str, int]] = (
            collections.OrderedDict()
        )
        self._polls = 0  # also says which file reads first, taking turns under the budget
        self._counters = _Counters()

    # -- Source interface ------------------------------------------------------------------

    def poll(self) -> list[Event]:
        now_wall = time.time()
        now_mono = time.monotonic()
        now = datetime.fromtimestamp(now_wall, UTC)
        self._polls += 1
        # A copy is looked for in the poll that saw the truncation and the next one only: a
        # later file that merely starts alike must not be taken for one (its start is skipped).
        self._truncated = [t for t in self._truncated if t.poll >= self._polls - 1]
        self._scan(now_mono)
        events: list[Event] = []
        # Rotated files first (their data is older), then the others taking turns.
        gone = [f for f in self._files.values() if f.gone_since is not None]
        live = [f for f in self._files.values() if f.gone_since is None]
        start = self._polls % len(live) if live else 0
        files = gone + live[start:] + live[:start]
        budget = self.max_bytes
        for tracked in files:
            if budget <= 0:
                break
            budget -= self._read(tracked, budget, now, events)
        for tracked in files:
            self._note_lag(tracked, now_wall)
            if tracked.gone_since is not None:
                self._maybe_close(tracked, now_mono, now, events)
        return events

    def checkpoint(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "files": [
                {
                    "path": f.path,
                    "dev": f.dev,
                    "ino": f.ino,
                    "fp_len": f.fp_len,
                    "fp": f.fp,
                    "offset": f.offset,
                    "discarding": f.discarding,
                }
                for f in self._files.values()
            ],
            "closed": [
                {"dev": key[0], "ino": key[1], "fp_len": fp_len, "fp": fp, "offset": offset}
                for key, (fp_len, fp, offset) in self._closed.items()
            ],
        }

    def restore(self, state: dict[str, Any]) -> None:
        for entry in state.get("closed", []):
            try:
                key = (int(entry["dev"]), int(entry["ino"]))
                self._remember_closed(
                    key, int(entry["fp_len"]), str(entry["fp"]), int(entry["offset"])
                )
            except (KeyError, TypeError, ValueError) as exc:
                keep_error(self._counters.errors, f"bad checkpoint entry {entry!r}: {exc}")
        for entry in state.get("files", []):
            try:
                self._restore_one(entry)
            except (KeyError, TypeError, ValueError) as exc:
                self._counters.missing_on_restore += 1
                keep_error(self._counters.errors, f"bad checkpoint entry {entry!r}: {exc}")

    def close(self) -> None:
        for tracked in self._files.values():
            tracked.fh.close()
        self._files.clear()

    def stats(self) -> dict[str, Any]:
        c = self._counters
        lag: float | None = None
        if self._polls:
            since = [f.unread_since for f in self._files.values() if f.unread_since is not None]
            lag = max(0.0, time.time() - min(since)) if since else 0.0
        return {
            "read": c.read,
            "skipped": c.skipped,
            "lag_seconds": lag,
            "files": len(self._files),
            "truncations": c.truncations,
            "rotations": c.rotations,
            "missing_on_restore": c.missing_on_restore,
            "errors": list(c.errors),
        }

    # -- finding files ---------------------------------------------------------------------

    def _matches(self) -> dict[tuple[int, int], tuple[str, os.stat_result]]:
        found: dict[tuple[int, int], tuple[str, os.stat_result]] = {}
        for pattern in self.patterns:
            for path in sorted(glob.glob(os.path.expanduser(pattern), recursive=True)):
                try:
                    st = os.stat(path)
                except OSError:
                    continue  # gone between the listing and the stat
                if stat.S_ISREG(st.st_mode):
                    found.setdefault((st.st_dev, st.st_ino), (path, st))
        return found

    def _scan(self, now_mono: float) -> None:
        matches = self._matches()
        # Known files first, so that a truncation is seen before its copy is met as new.
        for key, tracked in list(self._files.items()):
            seen = matches.get(key)
            if seen is not None:
                tracked.path = seen[0]
                tracked.gone_since = tracked.idle_since = None
            elif tracked.gone_since is None:
                tracked.gone_since = now_mono
                self._counters.rotations += 1
            self._check_identity(tracked)
        for key, (path, _) in matches.items():
            if key not in self._files:
                self._open_new(path)

    def _open_new(self, path: str) -> None:
        try:
            fh = open(path, "rb")  # noqa: SIM115 - stays open while the file is followed
        except OSError as exc:
            keep_error(self._counters.errors, f"{path}: cannot open: {exc.strerror or exc}")
            return
        st = os.fstat(fh.fileno())
        if fh.read(2) == GZIP_MAGIC:
            fh.close()
            return
        tracked = _File(path=path, dev=st.st_dev, ino=st.st_ino, fh=fh)
        tracked.fp_len, tracked.fp = _fingerprint(fh, min(st.st_size, FINGERPRINT_BYTES))
        closed = self._closed.pop(tracked.key, None)
        if closed is not None:
            fp_len, fp, offset = closed
            if offset <= st.st_size and _fingerprint(fh, fp_len) == (fp_len, fp):
                tracked.offset = offset
                self._files[tracked.key] = tracked
                return
        for old in self._truncated:
            # A copy of a truncated file carries on where the original was left.
            if old.offset <= st.st_size and _fingerprint(fh, old.fp_len) == (old.fp_len, old.fp):
                tracked.offset = old.offset
                self._truncated.remove(old)
                break
        self._files[tracked.key] = tracked

    def _check_identity(self, tracked: _File) -> None:
        """Start over when the file was truncated or its first bytes were rewritten."""
        if not self._still_same(tracked):
            self._start_over(tracked)

    def _still_same(self, tracked: _File) -> bool:
        """Whether the file still holds what was read of it (its size, its first bytes read
        in one go); the fingerprint grows with the file, up to FINGERPRINT_BYTES."""
        try:
            size = os.fstat(tracked.fh.fileno()).st_size
            head = os.pread(tracked.fh.fileno(), FINGERPRINT_BYTES, 0)
        except OSError:
            return True  # unreadable for now: nothing is known to have changed
        if size < tracked.position or _hash(head[: tracked.fp_len]) != (
            tracked.fp_len,
            tracked.fp,
        ):
            return False
        if len(head) > tracked.fp_len:
            tracked.fp_len, tracked.fp = _hash(head)
        return True

    def _start_over(self, tracked: _File) -> None:
        self._counters.truncations += 1
        self._truncated.append(_Truncated(tracked.fp_len, tracked.fp, tracked.offset, self._polls))
        tracked.offset, tracked.pending, tracked.discarding = 0, b"", False
        try:
            tracked.fp_len, tracked.fp = _hash(os.pread(tracked.fh.fileno(), FINGERPRINT_BYTES, 0))
        except OSError:
            tracked.fp_len, tracked.fp = _hash(b"")

    def _restore_one(self, entry: dict[str, Any]) -> None:
        path = str(entry["path"])
        key = (int(entry["dev"]), int(entry["ino"]))
        fp_len, fp = int(entry["fp_len"]), str(entry["fp"])
        found = _find_file(path, key, fp_len, fp)
        if found is None:
            self._counters.missing_on_restore += 1
            keep_error(self._counters.errors, f"{path}: not found on restore")
            # Still a copy's original: `logrotate copytruncate` while the agent was stopped.
            self._truncated.append(_Truncated(fp_len, fp, int(entry["offset"]), self._polls))
            return
        where, fh = found
        tracked = _File(path=where, dev=key[0], ino=key[1], fh=fh, fp_len=fp_len, fp=fp)
        tracked.offset = int(entry["offset"])
        tracked.discarding = bool(entry.get("discarding", False))
        self._files[key] = tracked

    # -- reading ---------------------------------------------------------------------------

    def _read(self, tracked: _File, budget: int, now: datetime, events: list[Event]) -> int:
        """Read up to `budget` bytes of one file into events; return the bytes read."""
        used = 0
        while used < budget:
            tracked.fh.seek(tracked.position)
            try:
                chunk = tracked.fh.read(min(self.read_chunk, budget - used))
            except OSError as exc:
                keep_error(self._counters.errors, f"{tracked.path}: {exc.strerror or exc}")
                break
            if not chunk:
                break
            used += len(chunk)
            # Truncated (copytruncate) between the check and the read: the chunk may be the
            # new content read from the middle; what it replaced is in the copy.
            if not self._still_same(tracked):
                self._start_over(tracked)
                continue
            self._split(tracked, chunk, now, events)
        return used

    def _split(self, tracked: _File, chunk: bytes, now: datetime, events: list[Event]) -> None:
        start = 0
        if tracked.discarding:
            newline = chunk.find(b"\n")
            if newline < 0:
                tracked.offset += len(chunk)
                return
            tracked.offset += newline + 1
            tracked.discarding = False
            start = newline + 1
        data = tracked.pending + chunk[start:] if tracked.pending else chunk[start:]
        base = tracked.offset
        pos = 0
        while True:
            newline = data.find(b"\n", pos)
            if newline < 0:
                break
            self._emit(tracked, data[pos:newline], base + pos, now, events)
            pos = newline + 1
        tracked.offset = base + pos
        tracked.pending = data[pos:]
        if len(tracked.pending) > self.max_line_bytes:
            self._skip(tracked.path, tracked.offset, f"line over {self.max_line_bytes} bytes")
            tracked.offset += len(tracked.pending)
            tracked.pending = b""
            tracked.discarding = True

    def _emit(
        self, tracked: _File, raw: bytes, offset: int, now: datetime, events: list[Event]
    ) -> None:
        if len(raw) > self.max_line_bytes:  # whole, but as over-long as one cut by a read
            self._skip(tracked.path, offset, f"line over {self.max_line_bytes} bytes")
            return
        if not raw.strip():
            return
        try:
            text = decode_line(raw)
            event = parse_text(text, self.parser, tracked.path, now, {"offset": offset})
        except BadRecord as exc:
            self._skip(tracked.path, offset, str(exc))
            return
        except Exception as exc:  # a parser's bug: raised, the line would stop the file
            self._skip(tracked.path, offset, f"parser error: {exc!r}")
            return
        self._counters.read += 1
        events.append(event)

    def _skip(self, path: str, offset: int, reason: str) -> None:
        self._counters.skipped += 1
        keep_error(self._counters.errors, f"{path} at byte {offset}: {reason}")

    def _maybe_close(
        self, tracked: _File, now_mono: float, now: datetime, events: list[Event]
    ) -> None:
        """Close a rotated or deleted file once read to its end and quiet for `rotate_wait`."""
        try:
            size = os.fstat(tracked.fh.fileno()).st_size
        except OSError:
            size = tracked.position
        if size > tracked.position:
            tracked.idle_since = None
            return
        if tracked.idle_since is None:
            tracked.idle_since = now_mono
        if now_mono - tracked.idle_since < self.rotate_wait:
            return
        if tracked.pending and not tracked.discarding:  # its last line will get no newline
            self._emit(tracked, tracked.pending, tracked.offset, now, events)
        self._remember_closed(tracked.key, tracked.fp_len, tracked.fp, tracked.position)
        tracked.fh.close()
        del self._files[tracked.key]

    def _remember_closed(self, key: tuple[int, int], fp_len: int, fp: str, offset: int) -> None:
        self._closed[key] = (fp_len, fp, offset)
        self._closed.move_to_end(key)
        while len(self._closed) > MAX_CLOSED:
            self._closed.popitem(last=False)

    def _note_lag(self, tracked: _File, now_wall: float) -> None:
        try:
            st = os.fstat(tracked.fh.fileno())
        except OSError:
            return
        if st.st_size <= tracked.position:
            tracked.unread_since = None
        elif tracked.unread_since is None:
            # Unread data is at least as old as this; the file's time says when it last grew.
            tracked.unread_since = min(now_wall, st.st_mtime)


def _fingerprint(fh: BinaryIO, length: int) -> tuple[int, str]:
    """(length, hash) of the first `length` bytes of an open file (fewer if it is shorter)."""
    return _hash(os.pread(fh.fileno(), length, 0) if length > 0 else b"")


def _hash(head: bytes) -> tuple[int, str]:
    return len(head), hashlib.blake2b(head, digest_size=16).hexdigest()


def _find_file(
    path: str, key: tuple[int, int], fp_len: int, fp: str
) -> tuple[str, BinaryIO] | None:
    """The file of a checkpoint entry: at its path, else renamed within the same folder."""
    candidates = [path]
    folder = Path(path).parent
    with contextlib.suppress(OSError):  # an unreadable folder: the path alone is tried
        candidates += sorted(str(p) for p in folder.iterdir() if str(p) != path)
    for candidate in candidates:
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) != key or not stat.S_ISREG(st.st_mode):
            continue
        try:
            fh = open(candidate, "rb")  # noqa: SIM115 - kept by the caller
        except OSError:
            return None
        if _fingerprint(fh, fp_len) == (fp_len, fp):
            return candidate, fh
        fh.close()  # the inode was reused by another file: not the one checkpointed
        return None
    return None
