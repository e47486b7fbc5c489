"""Scan files, folders and byte buffers with a compiled `YaraRuleSet`, on every core.

How the work is spread follows what was measured (benchmarks/RESULTS.md):
- yara-python releases the GIL while it scans, and one compiled rule set is safe to share:
  threads.
- yara-x holds the GIL while it scans: worker processes. They are forked, so they share the
  parent's compiled rules at no cost. yara-x enforces timeouts with a helper thread that a fork
  does not copy, and forking a process that runs other threads is unsafe; so once this process
  has scanned with yara-x, or runs other threads, workers start from a clean process
  (forkserver) and load the rules from their serialized form instead.

A file that cannot be scanned (missing, unreadable, not a regular file, too big, too slow) is
counted in `stats` with its reason; the scan goes on.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain, islice
from pathlib import Path

import yara
import yara_x

from detection.detection import Detection
from detection.yara.externals import HEAD_SIZE, externals_for
from detection.yara.load import CompiledRules, YaraRuleSet, serialize_rules
from detection.yara.matches import from_yara_python, from_yara_x
from detection.yara.stats import YaraScanStats

# Fewer files than this are scanned in this process: starting workers would cost more.
SMALL_BATCH = 8
# Files queued per worker: keeps every core busy while memory stays bounded on huge folders.
QUEUE_PER_WORKER = 4


class _Skip(Exception):
    """A file or buffer that could not be scanned; the message is the reason."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    path: str
    size: int
    detections: list[Detection] = field(default_factory=list)
    skipped: str | None = None


class _PythonMatcher:
    def __init__(self, rules: yara.Rules, timeout: int) -> None:
        self._rules = rules
        self._timeout = timeout

    def match(
        self, name: str, externals: dict[str, str], *, path: str = "", data: bytes = b""
    ) -> list[Detection]:
        try:
            if path:
                found = self._rules.match(path, externals=externals, timeout=self._timeout)
            else:
                found = self._rules.match(data=data, externals=externals, timeout=self._timeout)
        except yara.TimeoutError:
            raise _Skip(f"timeout: not scanned within {self._timeout} s") from None
        except yara.Error as exc:
            raise _Skip(f"unreadable: {exc}") from None
        now = datetime.now(UTC)
        return [from_yara_python(m, name, now) for m in found]


# yara-x starts its timeout thread on the first scan with a timeout; a fork after that gives
# children whose scans never time out (seen with yara-x 1.23). Process-wide, as that thread is.
_x_timer_started = False


class _XMatcher:
    def __init__(self, rules: yara_x.Rules, timeout: int) -> None:
        self._rules = rules
        self._timeout = timeout
        self._local = threading.local()  # a yara-x Scanner serves one thread at a time

    def _scanner(self) -> yara_x.Scanner:
        global _x_timer_started
        scanner: yara_x.Scanner | None = getattr(self._local, "scanner", None)
        if scanner is None:
            scanner = yara_x.Scanner(self._rules)
            scanner.set_timeout(self._timeout)
            self._local.scanner = scanner
        _x_timer_started = True
        return scanner

    def match(
        self, name: str, externals: dict[str, str], *, path: str = "", data: bytes = b""
    ) -> list[Detection]:
        scanner = self._scanner()
        for key, value in externals.items():
            scanner.set_global(key, value)
        try:
            results = scanner.scan_file(path) if path else scanner.scan(data)
        except yara_x.TimeoutError:
            raise _Skip(f"timeout: not scanned within {self._timeout} s") from None
        except yara_x.ScanError as exc:
            raise _Skip(f"unreadable: {exc}") from None
        now = datetime.now(UTC)
        return [from_yara_x(r, name, now) for r in results.matching_rules]


_Matcher = _PythonMatcher | _XMatcher


def _matcher(rules: CompiledRules, timeout: int) -> _Matcher:
    if isinstance(rules, yara_x.Rules):
        return _XMatcher(rules, timeout)
    return _PythonMatcher(rules, timeout)


class _FileScanner:
    """Scans one file: the part that runs in a worker thread or process."""

    def __init__(self, matcher: _Matcher, max_size: int) -> None:
        self._matcher = matcher
        self._max_size = max_size

    def scan_file(self, path: str) -> _Outcome:
        try:
            info = os.stat(path)
        except OSError as exc:
            return _Outcome(path, 0, skipped=f"unreadable: {exc.strerror or exc}")
        if not stat.S_ISREG(info.st_mode):
            # A FIFO or a device could block forever or never end.
            return _Outcome(path, 0, skipped="not a regular file")
        if info.st_size > self._max_size:
            return _Outcome(
                path, 0, skipped=f"too big: {info.st_size} bytes, limit {self._max_size}"
            )
        try:
            with open(path, "rb") as handle:
                head = handle.read(HEAD_SIZE)
        except OSError as exc:
            return _Outcome(path, 0, skipped=f"unreadable: {exc.strerror or exc}")
        externals = externals_for(path, head, info.st_uid)
        try:
            found = self._matcher.match(path, externals, path=path)
        except _Skip as skip:
            return _Outcome(path, 0, skipped=str(skip))
        return _Outcome(path, info.st_size, found)


# The file scanner of a worker process, set once by `_init_worker`.
_worker: _FileScanner | None = None


def _init_worker(rules: yara_x.Rules | bytes, timeout: int, max_size: int) -> None:
    global _worker
    if isinstance(rules, bytes):
        import io

        rules = yara_x.Rules.deserialize_from(io.BytesIO(rules))
    _worker = _FileScanner(_XMatcher(rules, timeout), max_size)


def _scan_in_worker(path: str) -> _Outcome:
    assert _worker is not None, "worker process not initialised"
    return _worker.scan_file(path)


class _Pool:
    """Files in flight on an executor. A process pool whose worker dies (a crash inside the
    engine, or killed) is replaced and its files resubmitted; a file in flight during two
    such deaths is reported, so a crash costs at most a file, never the scan."""

    def __init__(self, task: Callable[[str], _Outcome], new: Callable[[], Executor]) -> None:
        self._task = task
        self._new = new
        self._executor = new()
        self._pending: dict[Future[_Outcome], str] = {}
        self._deaths: Counter[str] = Counter()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def submit(self, path: str) -> None:
        self._pending[self._executor.submit(self._task, path)] = path

    def finished(self) -> list[_Outcome]:
        """Wait until at least one file is done; the outcomes of all those done."""
        done, _ = wait(self._pending, return_when=FIRST_COMPLETED)
        outcomes, lost = [], []
        for future in done:
            path = self._pending.pop(future)
            try:
                outcomes.append(future.result())
            except BrokenProcessPool:
                lost.append(path)
        if lost:
            # Every queued file fails with the pool: collect them all, then start afresh.
            lost.extend(self._pending.values())
            self._pending.clear()
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = self._new()
            for path in lost:
                self._deaths[path] += 1
                if self._deaths[path] >= 2:
                    reason = "scan failed: the scanning process died while scanning it"
                    outcomes.append(_Outcome(path, 0, skipped=reason))
                else:
                    self.submit(path)
        return outcomes

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


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
        self.workers = max(1, workers or len(os.sched_getaffinity(0)))
        self.stats = YaraScanStats()
        self._lock = threading.Lock()  # scan_bytes may be called from several threads
        self._local = _FileScanner(_matcher(rules.compiled, timeout), max_size)

    def scan_bytes(self, data: bytes, *, name: str) -> list[Detection]:
        """Scan one buffer; `name` stands for its file name in detections and externals."""
        if len(data) > self.max_size:
            outcome = _Outcome(
                name, 0, skipped=f"too big: {len(data)} bytes, limit {self.max_size}"
            )
        else:
            externals = externals_for(name, data[:HEAD_SIZE])
            try:
                found = self._local._matcher.match(name, externals, data=data)
                outcome = _Outcome(name, len(data), found)
            except _Skip as skip:
                outcome = _Outcome(name, 0, skipped=str(skip))
        self._record(outcome)
        return outcome.detections

    def scan_paths(self, paths: Iterable[Path]) -> Iterator[Detection]:
        """Scan files, and the files under folders (walked in sorted order); detections come as
        files finish, so their order is only stable with `workers=1`."""
        files = self._walk(paths)
        first = list(islice(files, SMALL_BATCH))
        outcomes: Iterator[_Outcome]
        if self.workers == 1 or len(first) < SMALL_BATCH:
            outcomes = map(self._local.scan_file, chain(first, files))
        else:
            outcomes = self._pooled(chain(first, files))
        for outcome in outcomes:
            self._record(outcome)
            yield from outcome.detections

    def _record(self, outcome: _Outcome) -> None:
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

    def _pooled(self, files: Iterator[str]) -> Iterator[_Outcome]:
        """Outcomes as files finish, with at most QUEUE_PER_WORKER files queued per worker.

        Completion order, not input order: in input order one big file at the head of the
        queue would leave the other workers idle once the files behind it are done.
        """
        task, new_pool = self._pool_kind()
        pool = _Pool(task, new_pool)
        limit = QUEUE_PER_WORKER * self.workers
        try:
            for path in files:
                pool.submit(path)
                while pool.in_flight >= limit:
                    yield from pool.finished()
            while pool.in_flight:
                yield from pool.finished()
        finally:
            pool.shutdown()

    def _pool_kind(self) -> tuple[Callable[[str], _Outcome], Callable[[], Executor]]:
        if not isinstance(self.rules.compiled, yara_x.Rules):
            return self._local.scan_file, lambda: ThreadPoolExecutor(self.workers)
        rules: yara_x.Rules | bytes = self.rules.compiled
        methods = multiprocessing.get_all_start_methods()
        context: multiprocessing.context.BaseContext
        if "fork" in methods and threading.active_count() == 1 and not _x_timer_started:
            context = multiprocessing.get_context("fork")
        else:
            context = multiprocessing.get_context(
                "forkserver" if "forkserver" in methods else "spawn"
            )
            rules = serialize_rules(self.rules.compiled)
        initargs = (rules, self.timeout, self.max_size)

        def new_pool() -> Executor:
            return ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_init_worker, initargs=initargs
            )

        return _scan_in_worker, new_pool
