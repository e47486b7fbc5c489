"""YARA on the folders an establishment names (file shares, web roots, mail attachment drops).

Each poll walks a bounded number of folder entries and queues the files that are new or
changed since they were last scanned (size and modification time); the queue is scanned
within a CPU budget, a share of one core measured on the agent's own thread time, so that a
share full of files never takes the machine. Once a walk ends, the next starts after
`rewalk_seconds`: that is how creations and changes are seen. Every `full_pass_hours` what was
scanned is forgotten, so every file is scanned again with the rules of the day.

New rules (a bundle brought YARA rules, `use_rules`) are compiled in at once and start a full
pass at once, within the same CPU budget: an alert's YARA rule is meant for the files already
on the share (the web shell dropped last week), not only for those written from now on. Only
rules not scanned with before count: a bundle that withdraws a rule, or changes only Sigma
rules or indicators, does not start a pass. The rule files' digests are kept with the state,
so a restart with rules that arrived meanwhile starts the pass too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.files import write_atomically
from detection.yara.engines import FileScanner, make_matcher
from detection.yara.load import YaraRuleSet

log = logging.getLogger("vigie.agent")
STATE_FILE = "filescan.json"
WALK_STEP = 2000  # folder entries looked at per poll


@dataclass
class FolderScanner:
    folders: list[Path]
    rules: YaraRuleSet
    state_dir: Path
    cpu_share: float = 0.2
    full_pass_hours: float = 24.0
    rewalk_seconds: float = 60.0
    max_size: int = 64 * 2**20
    counters: dict[str, int] = field(
        default_factory=lambda: {"scanned": 0, "skipped": 0, "passes": 0}
    )
    _seen: dict[str, list[int]] = field(default_factory=dict)
    _queue: deque[tuple[str, list[int]]] = field(default_factory=deque)
    _queued: set[str] = field(default_factory=set)
    _walk: Iterator[str] | None = None
    _next_walk: float = 0.0
    _pass_started: float = 0.0
    _last_poll: float = 0.0
    _credit: float = 0.0  # CPU seconds the budget still allows
    _digests: set[str] = field(default_factory=set)  # the rule files the seen were scanned with

    def __post_init__(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._scanner = FileScanner(make_matcher(self.rules, 60), self.max_size)
        self._digests = rule_digests(self.rules)
        try:
            saved = json.loads((self.state_dir / STATE_FILE).read_text(encoding="utf-8"))
            self._seen = dict(saved.get("seen", {}))
            self._pass_started = float(saved.get("pass_started", 0.0))
            # A state written before digests were kept: taken as scanned with these rules.
            before = set(saved.get("rules", self._digests))
        except (OSError, ValueError, TypeError):
            self._pass_started = time.time()
            before = self._digests
        self._last_poll = time.monotonic()
        if self._seen and self._digests - before:
            log.info("YARA rules changed while the agent was stopped: a full pass starts")
            self._start_pass()

    def use_rules(self, rules: YaraRuleSet) -> bool:
        """Scan with `rules` from now on; True when that starts a full pass (new rules).

        Call it from the thread that polls: the matcher it replaces holds that thread's yara-x
        scanner, which may only be dropped there.
        """
        self.rules = rules
        self._scanner = FileScanner(make_matcher(rules, 60), self.max_size)
        digests = rule_digests(rules)
        new = digests - self._digests
        self._digests = digests
        if new:
            log.info("%d new YARA rule file(s): a full pass starts", len(new))
            self._start_pass()
        self._save()
        return bool(new)

    def poll(self) -> list[dict[str, Any]]:
        """Detections (`Detection.to_dict()` shape) of the files scanned this turn."""
        now = time.monotonic()
        # The budget: a share of the wall time since the last poll, at most a few seconds'
        # worth kept over (an idle agent does not save up for a burst).
        self._credit = min(self._credit + (now - self._last_poll) * self.cpu_share, 2.0)
        self._last_poll = now
        if time.time() - self._pass_started > self.full_pass_hours * 3600:
            self._start_pass()  # everything again, with today's rules
        self._advance_walk(now)
        found: list[dict[str, Any]] = []
        started = time.thread_time()
        while self._queue and self._credit > 0:
            path, signature = self._queue.popleft()
            self._queued.discard(path)
            outcome = self._scanner.scan_file(path)
            # Known once scanned, not once queued: a crash before the scan means scan again.
            self._seen[path] = signature
            if outcome.skipped:
                self.counters["skipped"] += 1
                log.info("not scanned: %s: %s", path, outcome.skipped)
            else:
                self.counters["scanned"] += 1
                found.extend(d.to_dict() for d in outcome.detections)
            spent = time.thread_time() - started
            started += spent
            self._credit -= spent
        if found or not self._queue:
            self._save()
        return found

    def stats(self) -> dict[str, Any]:
        return {**self.counters, "queued": len(self._queue), "known": len(self._seen)}

    # --- internals --------------------------------------------------------------------------

    def _start_pass(self) -> None:
        """Forget what was scanned and walk the folders again from their start."""
        self._seen.clear()
        self._pass_started = time.time()
        self._walk = None
        self._next_walk = 0.0
        self.counters["passes"] += 1

    def _advance_walk(self, now: float) -> None:
        if self._walk is None:
            if now < self._next_walk:
                return
            self._walk = self._files()
        for _ in range(WALK_STEP):
            path = next(self._walk, None)
            if path is None:
                self._walk = None
                self._next_walk = now + self.rewalk_seconds
                return
            try:
                info = os.stat(path)
            except OSError:
                continue
            signature = [info.st_size, info.st_mtime_ns]
            if self._seen.get(path) != signature and path not in self._queued:
                self._queued.add(path)
                self._queue.append((path, signature))

    def _files(self) -> Iterator[str]:
        for folder in self.folders:
            for root, _dirs, files in os.walk(folder):
                for name in files:
                    yield os.path.join(root, name)

    def _save(self) -> None:
        state = {
            "seen": self._seen,
            "pass_started": self._pass_started,
            "rules": sorted(self._digests),
        }
        write_atomically(self.state_dir / STATE_FILE, json.dumps(state))


def rule_digests(rules: YaraRuleSet) -> set[str]:
    """SHA-256 of each rule file that compiled into `rules` (a file gone: its path instead)."""
    digests = set()
    for path in rules.paths:
        try:
            digests.add(hashlib.sha256(Path(path).read_bytes()).hexdigest())
        except OSError:
            digests.add(f"path:{path}")
    return digests
