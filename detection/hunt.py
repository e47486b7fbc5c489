"""Offline hunting: Sigma and YARA over files and folders, on every core.

The inputs are cut into units (a file, or a slice of a large JSONL file) and scanned by a
pool of forked processes that share the compiled rules. Each unit's detections come back in
input order. Matches of rules that correlation rules consume come back too; once every unit
is done they are put in time order and fed to the correlations in this process.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from detection.detection import Detection
from detection.errors import RecordError
from detection.event import Event
from detection.sources.jsonlog import event_from_object
from detection.sources.read import iter_input_files, read_events
from detection.sources.sniff import sniff
from detection.sources.stats import ReadStats

if TYPE_CHECKING:
    # Imported where used: loading pySigma takes a quarter of a second that a YARA-only scan
    # need not pay.
    from detection.sigma.engine import SigmaEngine

# Large JSONL files are cut into slices of at most this size so every core shares one file;
# smaller ones when that gives each worker several slices (the last slice is not left alone).
SLICE_BYTES = 8 * 2**20
MIN_SLICE_BYTES = 2**20
_JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True, slots=True)
class Unit:
    path: Path
    start: int = 0
    end: int | None = None  # None: the whole file, through its reader


@dataclass
class HuntStats:
    read: ReadStats = field(default_factory=ReadStats)
    events: int = 0
    bytes: int = 0
    rules_evaluated: int = 0
    hits: Counter[str] = field(default_factory=Counter)
    titles: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    # Work planned and done, for a progress display: each file once per engine that reads it.
    files_total: int = 0
    bytes_total: int = 0
    files_done: int = 0
    bytes_done: int = 0

    def count(self, detection: Detection) -> Detection:
        self.hits[detection.rule_id] += 1
        self.titles.setdefault(detection.rule_id, detection.rule_title)
        return detection

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


@dataclass(frozen=True, slots=True)
class HuntProgress:
    """How far a hunt has gone: files and bytes done of the planned total, events read."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    events: int
    seconds: float


@dataclass
class _UnitResult:
    detections: list[Detection]
    correlated: list[tuple[str, Event]]
    read: ReadStats
    events: int
    rules_evaluated: int


class Hunt:
    """Scan inputs with a Sigma engine and/or a YARA scanner."""

    def __init__(
        self,
        sigma: SigmaEngine | None = None,
        yara: Any | None = None,  # detection.yara.YaraScanner
        *,
        workers: int | None = None,
        on_progress: Callable[[HuntProgress], None] | None = None,
    ) -> None:
        self.sigma = sigma
        self.yara = yara
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.stats = HuntStats()
        # Called in this thread as work gets done (a unit of logs read, a file taken by YARA):
        # no thread of its own, so that the worker pools can still fork.
        self.on_progress = on_progress
        self._started: float | None = None

    def run(self, inputs: Sequence[Path]) -> Iterator[Detection]:
        started = self._started = time.perf_counter()
        files = list(iter_input_files(inputs))
        engines = (self.sigma is not None) + (self.yara is not None)
        self.stats.files_total = len(files) * engines
        self.stats.bytes_total = sum(_size(p) for p in files) * engines
        try:
            self._tick()
            if self.sigma is not None:
                yield from self._sigma(files)
            if self.yara is not None:
                for detection in self.yara.scan_paths(self._ticking(files)):
                    yield self.stats.count(detection)
            self._tick()
        finally:
            self.stats.seconds = time.perf_counter() - started

    def _tick(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress())

    def _ticking(self, files: list[Path]) -> Iterator[Path]:
        """The files, reporting progress each time the YARA scanner takes the next one."""
        for path in files:
            self._tick()
            yield path

    def progress(self) -> HuntProgress:
        """A snapshot of how far `run` has gone."""
        stats = self.stats
        files, size = stats.files_done, stats.bytes_done
        if self.yara is not None:  # the YARA scanner counts its own files as they finish
            ys = self.yara.stats
            files += ys.files_scanned + ys.files_skipped
            size += ys.bytes_scanned
        seconds = time.perf_counter() - self._started if self._started is not None else 0.0
        return HuntProgress(
            files_done=min(files, stats.files_total),
            files_total=stats.files_total,
            bytes_done=min(size, stats.bytes_total),
            bytes_total=stats.bytes_total,
            events=stats.events,
            seconds=seconds,
        )

    def _sigma(self, files: list[Path]) -> Iterator[Detection]:
        assert self.sigma is not None
        units = list(_units(files, self.stats.read, self.workers))
        self.stats.bytes += sum(_size(p) for p in files)
        # Files with no events to read (captures, binaries, unreadable) are done at once.
        whole = {unit.path for unit in units}
        self.stats.files_done += sum(1 for p in files if p not in whole)
        self.stats.bytes_done += sum(_size(p) for p in files if p not in whole)
        correlated: list[tuple[str, Event]] = []
        for unit, result in zip(units, self._map(units), strict=True):
            self.stats.bytes_done += _unit_size(unit)
            self.stats.files_done += int(unit.end is None or unit.end >= _size(unit.path))
            self.stats.read.merge(result.read)
            self.stats.events += result.events
            self._tick()
            self.stats.rules_evaluated += result.rules_evaluated
            correlated.extend(result.correlated)
            for detection in result.detections:
                yield self.stats.count(detection)
        if self.sigma.ruleset.correlations:
            from detection.sigma.context import MatchContext
            from detection.sigma.engine import Correlator

            correlator = Correlator(self.sigma)
            correlated.sort(key=lambda pair: pair[1].timestamp)
            for rule_id, event in correlated:
                ctx = MatchContext(event.sigma_view(), event.timestamp)
                for detection in correlator.feed(event, ctx, [rule_id]):
                    yield self.stats.count(detection)
            for detection in correlator.flush():
                yield self.stats.count(detection)

    def _map(self, units: list[Unit]) -> Iterator[_UnitResult]:
        if self.workers == 1 or len(units) <= 1:
            for unit in units:
                yield _scan_unit(self.sigma, unit)  # type: ignore[arg-type]
            return
        # Forked workers inherit the compiled rules; nothing is pickled but results. Freezing
        # the objects that exist now keeps the workers' garbage collector off the rules (it
        # would walk them all, and touch every page they share with this process).
        gc.freeze()
        context = multiprocessing.get_context("fork")
        with context.Pool(self.workers, initializer=_init_worker, initargs=(self.sigma,)) as pool:
            yield from pool.imap(_scan_in_worker, units)


_WORKER_ENGINE: list[SigmaEngine] = []  # set once in each forked worker


def _init_worker(engine: SigmaEngine) -> None:
    _WORKER_ENGINE.append(engine)


def _scan_in_worker(unit: Unit) -> _UnitResult:
    return _scan_unit(_WORKER_ENGINE[0], unit)


def _scan_unit(engine: SigmaEngine, unit: Unit) -> _UnitResult:
    read = ReadStats()
    detections: list[Detection] = []
    correlated: list[tuple[str, Event]] = []
    wanted = engine.correlated_rule_ids
    before_events, before_rules = engine.stats.events, engine.stats.rules_evaluated
    events = read_events(unit.path, read) if unit.end is None else _read_slice(unit, read)
    for event in events:
        _, matched = engine.matching_rules(event)
        for rule in matched:
            if rule.id in wanted:
                correlated.append((rule.id, event))
            if engine.reports(rule.id):
                detections.append(engine.detection(rule, event))
    return _UnitResult(
        detections,
        correlated,
        read,
        engine.stats.events - before_events,
        engine.stats.rules_evaluated - before_rules,
    )


def _units(files: list[Path], read: ReadStats, workers: int) -> Iterator[Unit]:
    for path in files:
        size = _size(path)
        step = min(SLICE_BYTES, max(MIN_SLICE_BYTES, size // (4 * workers) + 1))
        if path.suffix.lower() in _JSONL_SUFFIXES and size > step:
            for start in range(0, size, step):
                yield Unit(path, start, min(start + step, size))
            continue
        try:
            kind = sniff(path)
        except OSError as exc:
            read.files_failed += 1
            read.errors.append(RecordError(str(path), 0, f"cannot read: {exc}"))
            continue
        if kind not in ("pcap", "binary"):
            yield Unit(path)


def _read_slice(unit: Unit, read: ReadStats) -> Iterator[Event]:
    """The JSONL records that *start* within [start, end)."""
    source = str(unit.path)
    assert unit.end is not None
    with unit.path.open("rb") as fh:
        if unit.start:
            fh.seek(unit.start - 1)
            fh.readline()  # finish the line that began before this slice
        if unit.start == 0:
            read.files_read += 1
        while fh.tell() < unit.end:
            offset = fh.tell()
            line = fh.readline()
            if not line:
                break
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError("not a JSON object")
                event = event_from_object(obj, source)
            except (orjson.JSONDecodeError, ValueError) as exc:
                read.skip(source, offset, f"bad JSON record at byte {offset}: {exc}")
                continue
            read.records_read += 1
            yield event


def _unit_size(unit: Unit) -> int:
    return _size(unit.path) if unit.end is None else unit.end - unit.start


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
