"""Scan files, folders and byte buffers with a compiled `YaraRuleSet`, on every core.

A file that cannot be scanned (missing, unreadable, not a regular file, too big, too slow) is
counted in `stats` with its reason; the scan goes on. How work is spread over the cores is
in `pool.py`; scanning one file with either engine in `engines.py`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from itertools import chain, islice
from pathlib import Path

from detection.detection import Detection
from detection.yara.engines import FileScanner, Outcome, ScanSkipped, make_matcher
from detection.yara.externals import HEAD_SIZE, externals_for
from detection.yara.load import YaraRuleSet
from detection.yara.pool import scan_pooled
from detection.yara.stats import YaraScanStats

# Fewer files than this are scanned in this process: starting workers would cost more.
SMALL_BATCH = 8


class YaraScanner:
    """Scans with one rule set; `stats` adds up over every scan made with this scanner."""

    def __init__(
        self,
        rules: YaraRuleSet,
        *,
        timeout: int = 60,
        max_size: int = 64 * 2**20,
        workers: int | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout}")
        if max_size < 0:
            raise ValueError(f"max_size must not be negative, not {max_size}")
        self.rules = rules
        self.timeout = timeout
        self.max_size = max_size
        self.workers = max(1, workers or _usable_cores())
        self.stats = YaraScanStats()
        self._lock = threading.Lock()  # scan_bytes may be called from several threads
        self._local = FileScanner(make_matcher(rules, timeout), max_size)

    def scan_bytes(self, data: bytes, *, name: str) -> list[Detection]:
        """Scan one buffer; `name` stands for its file name in detections and externals."""
        if len(data) > self.max_size:
            outcome = Outcome(name, 0, skipped=f"too big: {len(data)} bytes, limit {self.max_size}")
        else:
            externals = externals_for(name, data[:HEAD_SIZE])
            try:
                found = self._local.matcher.match(name, externals, data=data, head=data[:HEAD_SIZE])
                outcome = Outcome(name, len(data), found)
            except ScanSkipped as skip:
                outcome = Outcome(name, 0, skipped=str(skip))
        self._record(outcome)
        return outcome.detections

    def scan_paths(self, paths: Iterable[Path]) -> Iterator[Detection]:
        """Scan files, and the files under folders (walked in sorted order); detections come as
        files finish, so their order is only stable with `workers=1`."""
        files = self._walk(paths)
        first = list(islice(files, SMALL_BATCH))
        outcomes: Iterator[Outcome]
        if self.workers == 1 or len(first) < SMALL_BATCH:
            outcomes = map(self._local.scan_file, chain(first, files))
        else:
            outcomes = scan_pooled(
                self.rules,
                self._local,
                chain(first, files),
                workers=self.workers,
                timeout=self.timeout,
            )
        for outcome in outcomes:
            self._record(outcome)
            yield from outcome.detections

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            if outcome.skipped is not None:
                self.stats.skip(outcome.path, outcome.skipped)
                return
            self.stats.files_scanned += 1
            self.stats.bytes_scanned += outcome.size
            self.stats.detections += len(outcome.detections)
            self.stats.rule_hits.update(d.rule_id for d in outcome.detections)

    def _walk(self, paths: Iterable[Path]) -> Iterator[str]:
        def unreadable_folder(exc: OSError) -> None:
            with self._lock:
                self.stats.skip(str(exc.filename), f"unreadable: {exc.strerror or exc}")

        for path in paths:
            if not path.is_dir():
                yield str(path)  # a missing or odd file is reported when it is scanned
                continue
            # Links to folders are not followed (no loops, no escaping the tree); links to
            # files are scanned, as `yara -r` does.
            for root, dirs, names in os.walk(path, onerror=unreadable_folder):
                dirs.sort()
                for name in sorted(names):
                    yield os.path.join(root, name)


def _usable_cores() -> int:
    """Cores this process may run on (a container or `taskset` may allow fewer than exist)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
