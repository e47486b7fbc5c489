"""Content digests of rule files, without reading the files that have not changed.

The compiled-rules cache is keyed by the rule files' contents. Reading and hashing every file of
a large rule set at each start costs more than the rest of a warm load but the engine's own, so
the digests are kept in an index beside the cache, each with the file's metadata when it was
hashed: device, inode, size, modification and status-change times (nanoseconds). A file whose
metadata are all the same is taken as unchanged.

Why the status-change time (ctime) and not only the modification time: mtime can be set back
by anyone (`touch -d`, `cp -p`, `rsync -t`, archive extraction), ctime cannot; any write, rename
onto the path, or change of mtime moves it. A new file under the old name has a new inode.

On Windows `st_ctime` is the creation time, which an edit does not move: there the index is
not trusted and every file is hashed (a few tens of milliseconds for signature-base).

Timestamps have a coarse grain (a kernel tick): a file written twice within one tick, with the
same size, keeps the same metadata. So, as git does for its index, an entry is only recorded
once the file's times are older than `SETTLED_NS`; a file changed just before a load is hashed
again at the next one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

INDEX_NAME = "sources.index"  # not *.json: the cache's pruning counts those as entries
SETTLED_NS = 2_000_000_000
# Where st_ctime_ns is the time of the last change of the file (POSIX), not its creation.
TRUST_METADATA = os.name == "posix"
# Files remembered per cache folder (several rule sets may share it); past this, the entries
# of files not in the current load are dropped.
MAX_INDEXED = 50_000

Stamp = tuple[int, int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns


@dataclass
class Digests:
    """The rule files' digests, the contents read to compute some, and the unreadable files."""

    digests: list[tuple[Path, bytes]] = field(default_factory=list)  # readable files, in order
    contents: dict[Path, bytes] = field(default_factory=dict)
    unreadable: dict[Path, str] = field(default_factory=dict)  # path -> reason


class DigestIndex:
    """The index file of one cache folder."""

    def __init__(self, cache_dir: Path) -> None:
        self.path = cache_dir / INDEX_NAME
        self._entries: dict[str, list[int | str]] = {}
        self._changed = False
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self._entries = loaded
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.warning("ignoring the unreadable YARA digest index %s: %s", self.path, exc)

    def digests(self, files: Sequence[Path]) -> Digests:
        """Each file's SHA-256: from the index when its metadata are unchanged, else read."""
        out = Digests()
        now = time.time_ns()
        for path in files:
            try:
                info = os.stat(path)
            except OSError as exc:
                out.unreadable[path] = f"cannot read: {exc.strerror or exc}"
                continue
            stamp: Stamp = (
                info.st_dev,
                info.st_ino,
                info.st_size,
                info.st_mtime_ns,
                info.st_ctime_ns,
            )
            known = self._entries.get(str(path)) if TRUST_METADATA else None
            if isinstance(known, list) and len(known) == 6 and tuple(known[:5]) == stamp:
                try:
                    out.digests.append((path, bytes.fromhex(str(known[5]))))
                    continue
                except ValueError:
                    pass  # a damaged entry: hash the file

            try:
                content = path.read_bytes()
            except OSError as exc:
                out.unreadable[path] = f"cannot read: {exc.strerror or exc}"
                continue
            digest = hashlib.sha256(content).digest()
            out.digests.append((path, digest))
            out.contents[path] = content
            if now - max(info.st_mtime_ns, info.st_ctime_ns) > SETTLED_NS:
                self._entries[str(path)] = [*stamp, digest.hex()]
                self._changed = True
            elif self._entries.pop(str(path), None) is not None:
                self._changed = True
        if len(self._entries) > MAX_INDEXED:
            current = {str(p) for p, _ in out.digests}
            self._entries = {k: v for k, v in self._entries.items() if k in current}
            self._changed = True
        return out

    def save(self) -> None:
        """Write the index if it changed; failing to only costs re-reading the files next time."""
        if not self._changed:
            return
        tmp = self.path.with_name(f".{INDEX_NAME}.{os.getpid()}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self._entries), encoding="utf-8")
            os.replace(tmp, self.path)
            self._changed = False
        except OSError as exc:
            log.warning("could not write the YARA digest index %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()
