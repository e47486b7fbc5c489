"""The inputs of `vigie scan`: which files, and the events in each.

    iter_input_files(paths)          files as given, folders walked (sorted, hidden skipped)
    read_events(path, stats, kind)   the events of one file, by the reader its kind needs

A bad record is counted and skipped by the reader; a file that cannot be read (missing,
unreadable, truncated gzip, EVTX with a broken header) is counted in `stats.files_failed`
with its reason, and the scan goes on with the next one. `pcap` and `binary` inputs yield no
events here: captures go to the network-metadata reader, every file to YARA.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from detection.errors import InputError, RecordError
from detection.event import Event
from detection.sources.csvlog import read_csv
from detection.sources.evtx import read_evtx
from detection.sources.jsonlog import read_json
from detection.sources.sniff import InputKind, sniff
from detection.sources.stats import MAX_KEPT_ERRORS, ReadStats
from detection.sources.syslog import read_syslog
from detection.sources.w3c import read_w3c
from detection.sources.zeek import read_zeek

__all__ = ["InputKind", "iter_input_files", "read_events", "sniff"]

log = logging.getLogger(__name__)

Reader = Callable[[Path, ReadStats], Iterator[Event]]


def read_event_viewer(path: Path, stats: ReadStats) -> Iterator[Event]:
    """Event Viewer exports, through a module imported when first needed: it maps channels
    with pySigma's tables, whose import (0.1 s) a YARA-only `vigie scan` need not pay."""
    from detection.sources.eventviewer import read_event_viewer as read

    return read(path, stats)


READERS: dict[InputKind, Reader] = {
    "evtx": read_evtx,
    "winjson": read_json,
    "json": read_json,
    "syslog": read_syslog,
    "csv": read_csv,
    "zeek": read_zeek,
    "eventviewer": read_event_viewer,
    "w3c": read_w3c,
}
# What a reader raises when the file as a whole cannot be read (the evtx package raises
# OSError for a broken file header; gzip raises EOFError for a truncated stream).
_FILE_ERRORS = (OSError, EOFError, zlib.error, UnicodeError)


def iter_input_files(paths: Iterable[Path]) -> Iterator[Path]:
    """The files to scan: files as given, folders walked recursively in sorted order with
    hidden files and folders left out; each file once. A missing path raises InputError
    before any file is yielded."""
    given = [Path(path) for path in paths]
    for path in given:
        if not path.exists():
            raise InputError(f"{path}: no such file or directory")
    seen: set[str] = set()
    for path in given:
        # Each file once, by its real path: computed from the folder's for plain files (the
        # walk enters no linked folder), so only links cost a `realpath`, not every file.
        if path.is_dir():
            files: Iterator[tuple[Path, str]] = _walk(path, os.path.realpath(path))
        else:
            files = iter([(path, os.path.realpath(path))])
        for file, key in files:
            if key not in seen:
                seen.add(key)
                yield file


def _walk(folder: Path, real: str) -> Iterator[tuple[Path, str]]:
    """Files under `folder` with their real paths: a folder's files in sorted order, then its
    sub-folders; hidden ones left out, links to folders not followed. One `scandir` per folder
    and no `stat` per plain file (the kind of entry comes with the listing)."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError as error:
        # iter_input_files has no stats to count into; the scan's log says what was left out.
        log.warning("cannot list %s: %s", folder, error.strerror)
        return
    subfolders = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir():
                if not entry.is_symlink():
                    subfolders.append(entry)
            elif entry.is_file():
                link = entry.is_symlink()
                yield (
                    Path(entry.path),
                    os.path.realpath(entry.path) if link else os.path.join(real, entry.name),
                )
        except OSError:
            continue  # gone meanwhile
    for sub in subfolders:
        yield from _walk(Path(sub.path), os.path.join(real, sub.name))


def read_events(path: Path, stats: ReadStats, kind: InputKind | None = None) -> Iterator[Event]:
    """The events of one input file, read by the reader of its kind (sniffed if not given).

    Counts the file in `stats.files_read` once it has been read to the end, or in
    `stats.files_failed` (with the reason in `stats.errors`) if it could not be.
    """
    source = str(path)
    try:
        kind = kind or sniff(path)
    except OSError as exc:
        _file_failed(stats, source, f"cannot read: {exc.strerror or exc}")
        return
    reader = READERS.get(kind)
    if reader is None:  # pcap, binary: no events here
        return
    try:
        yield from reader(path, stats)
    except _FILE_ERRORS as exc:
        _file_failed(stats, source, f"cannot read as {kind}: {exc}")
        return
    stats.files_read += 1


def _file_failed(stats: ReadStats, source: str, reason: str) -> None:
    # Record number 0 stands for the file itself.
    stats.files_failed += 1
    if len(stats.errors) < MAX_KEPT_ERRORS:
        stats.errors.append(RecordError(source, 0, reason))
