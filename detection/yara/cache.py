"""A local cache of compiled rule sets, so an agent does not recompile thousands of rules at start.

Rule *sources* are what Vigie ships and what the key is computed from; compiled rules only load
in the library version that wrote them, so the key also holds both engines' versions and the
machine. Changing any rule file, or upgrading yara-python or yara-x, gives a new key and so a
rebuild. An entry is `<key>.rules` (the compiled blob), one `<key>.<group>.rules` per group of
rules set aside by the first bytes they need (`heads.py`), written first, then `<key>.json`
(what `load_yara_rules` reports), whose presence marks the entry complete. A blob is loaded by
the engine from its path, a group's only when a file of the group comes: yara-python reading
it through a Python file object takes four times as long.

The key is made of the files' content digests; `digests.py` saves re-reading every rule file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from detection.errors import YaraRuleError

log = logging.getLogger(__name__)

# Bump when the layout of an entry, or the way rules are cut into sets (heads.py), changes.
CACHE_FORMAT = 2
# Entries kept per cache folder: a few rule sets side by side (Vigie's own, the CERT's, ...).
MAX_ENTRIES = 8


@dataclass(frozen=True)
class CacheEntry:
    engine: str
    paths: list[Path]
    errors: list[YaraRuleError]
    rule_count: int
    blob: bytes = b""  # what store_entry writes
    blob_path: Path | None = None  # what load_entry found, for the engine to load from
    group_blobs: dict[bytes, bytes] = field(default_factory=dict)  # first bytes -> blob
    group_paths: dict[bytes, Path] = field(default_factory=dict)  # what load_entry found


def library_versions() -> dict[str, str]:
    return {
        "yara-python": version("yara-python"),
        "yara-x": version("yara-x"),
        "machine": platform.machine(),
    }


def cache_key(sources: Sequence[tuple[Path, bytes]], engine: str) -> str:
    """A digest of every rule file's path and content digest (SHA-256), the requested engine
    and the libraries."""
    digest = hashlib.sha256()
    header = {"format": CACHE_FORMAT, "engine": engine, **library_versions()}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for path, content_digest in sources:
        digest.update(b"\0" + str(path).encode("utf-8", "surrogateescape") + b"\0")
        digest.update(content_digest)
    return digest.hexdigest()


def load_entry(cache_dir: Path, key: str) -> CacheEntry | None:
    """The entry for `key`, or None if absent or unreadable (then the caller rebuilds it)."""
    meta_path = cache_dir / f"{key}.json"
    if not meta_path.exists():
        return None
    blob_path = cache_dir / f"{key}.rules"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        group_paths = {
            bytes.fromhex(head): cache_dir / f"{key}.{head}.rules" for head in meta["heads"]
        }
        if not all(p.is_file() for p in [blob_path, *group_paths.values()]):
            raise ValueError("its compiled rules are missing")
        entry = CacheEntry(
            engine=meta["engine"],
            paths=[Path(p) for p in meta["paths"]],
            errors=[YaraRuleError(e["path"], e["reason"], e["line"]) for e in meta["errors"]],
            rule_count=int(meta["rule_count"]),
            blob_path=blob_path,
            group_paths=group_paths,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable YARA cache entry %s: %s", meta_path, exc)
        return None
    os.utime(meta_path)  # recently used entries survive pruning
    return entry


def store_entry(cache_dir: Path, key: str, entry: CacheEntry) -> None:
    """Write the entry atomically; a cache that cannot be written only costs a recompile."""
    meta: dict[str, Any] = {
        "engine": entry.engine,
        "paths": [str(p) for p in entry.paths],
        "errors": [{"path": e.path, "reason": e.reason, "line": e.line} for e in entry.errors],
        "rule_count": entry.rule_count,
        "heads": [head.hex() for head in entry.group_blobs],
        "versions": library_versions(),
    }
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(cache_dir / f"{key}.rules", entry.blob)
        for head, blob in entry.group_blobs.items():
            _write_atomic(cache_dir / f"{key}.{head.hex()}.rules", blob)
        _write_atomic(cache_dir / f"{key}.json", json.dumps(meta, indent=1).encode())
        _prune(cache_dir)
    except OSError as exc:
        log.warning("could not write the YARA cache in %s: %s", cache_dir, exc)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _prune(cache_dir: Path) -> None:
    entries = sorted(cache_dir.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[MAX_ENTRIES:]:
        old.unlink(missing_ok=True)
        old.with_suffix(".rules").unlink(missing_ok=True)
        for group in cache_dir.glob(f"{old.stem}.*.rules"):
            group.unlink(missing_ok=True)
