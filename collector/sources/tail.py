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
  (checked before and after each chunk read), is read again from its start. The copy, when
  the patterns match it, is recognised and never read twice:
  - met after the truncation (that poll or the next), by the fingerprint the original had:
    it is read from where the original was left;
  - met before it (`logrotate` copies, then truncates; a poll may fall in between, and the
    copy may still be growing): a new file whose first bytes are those of a followed file,
    and whose bytes just before what was read of that file are the same too, is that file's
    copy. It is not read while the original is followed untruncated (what it holds is read
    from the original), its offset follows the original's, and once the original is
    truncated (or closed) it is read from where the original was left: the lines the copy
    caught that the original had not handed out yet. Under MIN_COPY_BYTES of the same first
    bytes nothing tells a copy from a file that merely starts alike: such a copy is read
    whole (twice rather than never);
  Lines written after the copy ended and before the truncation are in neither file once
  truncated: those not read from the original in between are lost by copy-truncate itself;
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
MIN_COPY_BYTES = 256  # a copy is told by at least this many first bytes (less: read twice)
COPY_WINDOW = 4096  # bytes compared just before the read offset to tell a copy from a look-alike
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
    copy_of: tuple[int, int] | None = None  # a copy of this followed file, not truncated yet

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
            if tracked.copy_of is None:  # a copy's content is read from its original
                budget -= self._read(tracked, budget, now, events)
        self._follow_copies()
        for tracked in files:
            self._note_lag(tracked, now_wall)
            if tracked.gone_since is None:
                continue
            if tracked.copy_of is None:
                self._maybe_close(tracked, now_mono, now, events)
            elif now_mono - tracked.gone_since >= self.rotate_wait:
                self._close_copy(tracked)
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
                    "copy_of": list(f.copy_of) if f.copy_of is not None else None,
                }
                for f in self._files.values()
            ],
            "closed": [
                {"dev": key[0], "ino": key[1], "fp_len": fp_len, "fp": fp, "offset": offset}
                for key, (fp_len, fp, offset) in self._closed.items()
            ],
            # A truncation just seen whose copy is not yet: after a restart the copy is
            # still placed where the original was left.
            "truncated": [
                {"fp_len": t.fp_len, "fp": t.fp, "offset": t.offset} for t in self._truncated
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
        for entry in state.get("truncated", []):
            try:
                self._truncated.append(
                    _Truncated(int(entry["fp_len"]), str(entry["fp"]), int(entry["offset"]), 0)
                )
            except (KeyError, TypeError, ValueError) as exc:
                keep_error(self._counters.errors, f"bad checkpoint entry {entry!r}: {exc}")
        for entry in state.get("files", []):
            try:
                self._restore_one(entry)
            except (KeyError, TypeError, ValueError) as exc:
                self._counters.missing_on_restore += 1
                keep_error(self._counters.errors, f"bad checkpoint entry {entry!r}: {exc}")
        for tracked in list(self._files.values()):
            if tracked.copy_of is not None and tracked.copy_of not in self._files:
                self._release_copy(tracked, tracked.offset)  # its original was truncated

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
        # New files met together: the larger, then the older first, so that of an original and
        # its copy (never larger, written later) the original is the one followed.
        new = [(p, st) for key, (p, st) in matches.items() if key not in self._files]
        for path, st in sorted(new, key=lambda m: (-m[1].st_size, m[1].st_mtime_ns, m[0])):
            if st.st_size > 0:  # an empty file waits: it may be a copy just begun
                self._open_new(path)

    def _open_new(self, path: str) -> None:
        try:
            # Unbuffered: a buffer hands out stale bytes after a seek once the file is truncated.
            fh = open(path, "rb", buffering=0)  # noqa: SIM115 - stays open while followed
        except OSError as exc:
            keep_error(self._counters.errors, f"{path}: cannot open: {exc.strerror or exc}")
            return
        st = os.fstat(fh.fileno())
        if fh.read(2) == GZIP_MAGIC:
            fh.close()
            return
        tracked = _File(path=path, dev=st.st_dev, ino=st.st_ino, fh=fh)
        tracked.fp_len, tracked.fp = _fingerprint(fh, min(st.st_size, FINGERPRINT_BYTES))
        self._release_copies_of(tracked.key, None)  # their original's inode is another file now
        # A copy of a followed file first: its inode may be a closed file's, reused.
        closed = self._closed.pop(tracked.key, None)
        original = self._copied_from(fh, st.st_size, tracked.key)
        if original is not None:
            tracked.copy_of, tracked.offset = original.key, original.offset
        elif closed is not None and (
            closed[2] <= st.st_size and _fingerprint(fh, closed[0]) == closed[:2]
        ):
            tracked.offset = closed[2]
        else:
            for old in self._truncated:
                # A copy of a truncated file carries on where the original was left (shorter
                # when the original was read past the copy's end before its truncation).
                if old.fp_len and _fingerprint(fh, old.fp_len) == (old.fp_len, old.fp):
                    tracked.offset = min(old.offset, st.st_size)
                    self._truncated.remove(old)
                    break
        self._files[tracked.key] = tracked

    def _copied_from(self, fh: BinaryIO, size: int, key: tuple[int, int]) -> _File | None:
        """The followed file this new file is a copy of, if any (see the module docstring).
        An original found truncated meanwhile is started over here: its `_Truncated` entry
        then places the copy."""
        try:
            head = os.pread(fh.fileno(), FINGERPRINT_BYTES, 0)
        except OSError:
            return None
        for original in list(self._files.values()):
            if original.key == key or original.copy_of is not None:
                continue
            if min(len(head), original.fp_len) < MIN_COPY_BYTES:
                continue  # too little to tell a copy from a file that merely starts alike
            if len(head) >= original.fp_len:
                same_head = _hash(head[: original.fp_len]) == (original.fp_len, original.fp)
            else:  # a copy still being written, shorter than the original's fingerprint
                same_head = _same_bytes(fh, original.fh, 0, len(head))
            if not same_head:
                continue
            if _same_window(fh, original.fh, min(size, original.position)):
                return original
            if not self._still_same(original):  # truncated since `_scan` checked it
                self._start_over(original)
                return None
        return None

    def _follow_copies(self) -> None:
        """Each poll, after the reads: a copy's offset follows its original's; a copy whose
        original was closed is released; a look-alike that stops being a copy is read whole."""
        for tracked in list(self._files.values()):
            if tracked.copy_of is None:
                continue
            original = self._files.get(tracked.copy_of)
            if original is None:
                self._release_copy(tracked, tracked.offset)
                continue
            try:
                size = os.fstat(tracked.fh.fileno()).st_size
            except OSError:
                continue
            end = min(size, original.position)
            head = min(end, FINGERPRINT_BYTES)
            if _same_bytes(tracked.fh, original.fh, 0, head) and _same_window(
                tracked.fh, original.fh, end
            ):
                if size > _size(original) and self._still_same(original):
                    # A copy never outgrows its original: this one is the live file and the
                    # other its copy. What was read of that one is not read again.
                    tracked.copy_of, tracked.offset, tracked.pending = None, original.offset, b""
                    original.copy_of, original.pending = tracked.key, b""
                    continue
                tracked.offset = max(tracked.offset, original.offset)
            elif not self._still_same(original):
                self._start_over(original)  # truncated since it was checked: releases it
            else:  # grew apart from the file it started like: another file after all
                tracked.copy_of, tracked.offset, tracked.pending = None, 0, b""

    def _close_copy(self, copy: _File) -> None:
        """A copy gone from the patterns (`logrotate copy` then compress) while its original is
        still followed: closed unread, its content being the original's."""
        offset = min(copy.offset, _size(copy))
        self._remember_closed(copy.key, copy.fp_len, copy.fp, offset)
        copy.fh.close()
        del self._files[copy.key]

    def _release_copies_of(self, key: tuple[int, int], offset: int | None) -> None:
        """Release the copies of a file truncated at `offset` (None: where they are)."""
        for copy in self._files.values():
            if copy.copy_of == key:
                self._release_copy(copy, copy.offset if offset is None else offset)

    def _release_copy(self, copy: _File, offset: int) -> None:
        """The original was truncated (or closed) at `offset`: the copy, complete by now,
        is read from there (from its end if the original was read further)."""
        copy.copy_of = None
        try:
            size = os.fstat(copy.fh.fileno()).st_size
        except OSError:
            size = offset
        copy.offset, copy.pending = min(offset, size), b""

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
        shrunk = size < tracked.position and tracked.copy_of is None  # a copy may lag behind
        if shrunk or _hash(head[: tracked.fp_len]) != (
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
        self._release_copies_of(tracked.key, tracked.offset)
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
        copy_of = entry.get("copy_of")
        if copy_of is not None:  # its original, if not restored, releases it at the first poll
            tracked.copy_of = (int(copy_of[0]), int(copy_of[1]))
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
        self._release_copies_of(tracked.key, tracked.offset)
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


def _size(tracked: _File) -> int:
    try:
        return os.fstat(tracked.fh.fileno()).st_size
    except OSError:
        return tracked.position


def _same_bytes(one: BinaryIO, other: BinaryIO, start: int, end: int) -> bool:
    try:
        return os.pread(one.fileno(), end - start, start) == os.pread(
            other.fileno(), end - start, start
        )
    except OSError:
        return False


def _same_window(copy: BinaryIO, original: BinaryIO, end: int) -> bool:
    """Whether two files hold the same bytes just before `end` (past the fingerprint: two
    files may well start with the same header)."""
    if end <= FINGERPRINT_BYTES:
        return True  # covered by the fingerprint
    return _same_bytes(copy, original, max(FINGERPRINT_BYTES, end - COPY_WINDOW), end)


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
            fh = open(candidate, "rb", buffering=0)  # noqa: SIM115 - kept by the caller
        except OSError:
            return None
        if _fingerprint(fh, fp_len) == (fp_len, fp):
            return candidate, fh
        fh.close()  # the inode was reused by another file: not the one checkpointed
        return None
    return None
