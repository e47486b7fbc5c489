"""Spread file scans over every core, the way each engine allows (measured: benchmarks/RESULTS.md).

- yara-python releases the GIL while it scans, and one compiled rule set is safe to share:
  threads.
- yara-x holds the GIL while it scans: worker processes. They are forked, so they share the
  parent's compiled rules at no cost (a group's set that the parent has not loaded yet, see
  `load.py`, is loaded by each worker that meets a file of the group). yara-x enforces
  timeouts with a helper thread that a fork does not copy, and forking a process that runs
  other threads is unsafe; so once this process has scanned with yara-x, or runs other
  threads, workers start from a clean process (forkserver) and load the rules from their
  serialized form instead.

Small files go to workers in batches: one round trip per file would cost more than the scan.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from detection.yara import engines
from detection.yara.engines import FileScanner, Outcome, XMatcher
from detection.yara.load import Engine, YaraRuleSet, from_portable

# A batch closes at this many files or bytes, whichever comes first.
BATCH_FILES = 32
BATCH_BYTES = 2 * 2**20
# Batches queued per worker: keeps every core busy while memory stays bounded on huge folders.
QUEUE_PER_WORKER = 4

Task = Callable[[list[str]], list[Outcome]]

# The file scanner of a worker process, set once by `_init_worker`.
_worker: FileScanner | None = None


Portable = tuple[Engine, bytes, dict[bytes, bytes | Path]]


def _init_worker(rules: YaraRuleSet | Portable, timeout: int, max_size: int) -> None:
    global _worker
    if not isinstance(rules, YaraRuleSet):
        engine, blob, groups = rules
        compiled, loaded = from_portable(engine, blob, groups)
        rules = YaraRuleSet([], [], 0, engine, compiled, groups=loaded)
    _worker = FileScanner(XMatcher(rules, timeout), max_size)


def _scan_in_worker(paths: list[str]) -> list[Outcome]:
    assert _worker is not None, "worker process not initialised"
    return [_worker.scan_file(path) for path in paths]


def batches(files: Iterator[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    size = 0
    for path in files:
        with contextlib.suppress(OSError):  # the worker reports it
            size += os.stat(path).st_size
        batch.append(path)
        if len(batch) >= BATCH_FILES or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def scan_pooled(
    rules: YaraRuleSet, local: FileScanner, files: Iterator[str], *, workers: int, timeout: int
) -> Iterator[Outcome]:
    """Outcomes as batches finish (not in input order: one big file at the head of the queue
    would leave the other workers idle once the files behind it are done)."""
    task, new_executor = _pool_kind(rules, local, workers, timeout)
    pool = _Pool(task, new_executor)
    try:
        for batch in batches(files):
            pool.submit(batch)
            while pool.in_flight >= QUEUE_PER_WORKER * workers:
                yield from pool.finished()
        while pool.in_flight:
            yield from pool.finished()
    finally:
        pool.shutdown()


def _pool_kind(
    rules: YaraRuleSet, local: FileScanner, workers: int, timeout: int
) -> tuple[Task, Callable[[], Executor]]:
    if rules.engine != "yara-x":
        return (lambda paths: [local.scan_file(p) for p in paths]), (
            lambda: ThreadPoolExecutor(workers)
        )
    portable: YaraRuleSet | Portable = rules
    methods = multiprocessing.get_all_start_methods()
    context: multiprocessing.context.BaseContext
    if "fork" in methods and threading.active_count() == 1 and not engines.x_timer_started:
        context = multiprocessing.get_context("fork")
    else:
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        portable = rules.portable()
    initargs = (portable, timeout, local.max_size)

    def new_executor() -> Executor:
        return ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=initargs
        )

    return _scan_in_worker, new_executor


class _Pool:
    """Batches in flight on an executor. A process pool whose worker dies (a crash inside the
    engine, or killed) is replaced and its files resubmitted one by one; a file in flight during
    two such deaths is reported, so a crash costs at most a file, never the scan."""

    def __init__(self, task: Task, new: Callable[[], Executor]) -> None:
        self._task = task
        self._new = new
        self._executor = new()
        self._pending: dict[Future[list[Outcome]], list[str]] = {}
        self._deaths: Counter[str] = Counter()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def submit(self, batch: list[str]) -> None:
        self._pending[self._executor.submit(self._task, batch)] = batch

    def finished(self) -> list[Outcome]:
        """Wait until at least one batch is done; the outcomes of all those done."""
        done, _ = wait(self._pending, return_when=FIRST_COMPLETED)
        outcomes: list[Outcome] = []
        lost: list[str] = []
        for future in done:
            batch = self._pending.pop(future)
            try:
                outcomes.extend(future.result())
            except BrokenProcessPool:
                lost.extend(batch)
        if lost:
            # Every queued batch fails with the pool: collect them all, then start afresh.
            for batch in self._pending.values():
                lost.extend(batch)
            self._pending.clear()
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = self._new()
            for path in lost:
                self._deaths[path] += 1
                if self._deaths[path] >= 2:
                    reason = "scan failed: the scanning process died while scanning it"
                    outcomes.append(Outcome(path, 0, skipped=reason))
                else:
                    self.submit([path])
        return outcomes

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
