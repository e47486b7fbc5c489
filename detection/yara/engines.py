"""Scan one file or buffer with either engine: the part that runs in worker threads and processes.

yara-python and yara-x differ in how they are called, share and time out; `Matcher` hides that,
and `FileScanner` adds what any file needs first (is it a regular file, small enough, readable).
A matcher scans each file with the rules of its group (`YaraRuleSet.group_of`, from the file's
first bytes): the rules that cannot match it are left out.
"""

from __future__ import annotations

import os
import stat
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

import yara
import yara_x

from detection.detection import Detection
from detection.yara.externals import HEAD_SIZE, externals_for
from detection.yara.load import GroupUnusable, YaraRuleSet
from detection.yara.matches import from_yara_python, from_yara_x


class ScanSkipped(Exception):
    """A file or buffer that could not be scanned; the message is the reason."""


@dataclass(frozen=True, slots=True)
class Outcome:
    path: str
    size: int
    detections: list[Detection] = field(default_factory=list)
    skipped: str | None = None


class PythonMatcher:
    def __init__(self, rules: YaraRuleSet, timeout: int) -> None:
        self._rules = rules
        self._timeout = timeout

    def match(
        self,
        name: str,
        externals: dict[str, str],
        *,
        path: str = "",
        data: bytes = b"",
        head: bytes = b"",
    ) -> list[Detection]:
        """Scan `path` (else `data`), whose first bytes are `head` (at least GROUP_BYTES of
        them unless the file is shorter)."""
        try:
            rules: yara.Rules = self._rules.rules_for(self._rules.group_of(head))
        except GroupUnusable as exc:
            raise ScanSkipped(f"not scanned: {exc}") from None
        try:
            if path:
                found = rules.match(path, externals=externals, timeout=self._timeout)
            else:
                found = rules.match(data=data, externals=externals, timeout=self._timeout)
        except yara.TimeoutError:
            raise ScanSkipped(f"timeout: not scanned within {self._timeout} s") from None
        except yara.Error as exc:
            raise ScanSkipped(f"unreadable: {exc}") from None
        now = datetime.now(UTC)
        return [from_yara_python(m, name, now) for m in found]


# yara-x starts its timeout thread on the first scan with a timeout; a fork after that gives
# children whose scans never time out (seen with yara-x 1.23). Process-wide, as that thread is.
x_timer_started = False


class XMatcher:
    def __init__(self, rules: YaraRuleSet, timeout: int) -> None:
        self._rules = rules
        self._timeout = timeout
        self._local = threading.local()  # a yara-x Scanner serves one thread at a time

    def _scanner(self, group: bytes) -> yara_x.Scanner:
        global x_timer_started
        scanners: dict[bytes, yara_x.Scanner] | None = getattr(self._local, "scanners", None)
        if scanners is None:
            scanners = self._local.scanners = {}
        scanner = scanners.get(group)
        if scanner is None:
            rules = self._rules.rules_for(group)
            assert isinstance(rules, yara_x.Rules)
            scanner = scanners[group] = yara_x.Scanner(rules)
            scanner.set_timeout(self._timeout)
        x_timer_started = True
        return scanner

    def match(
        self,
        name: str,
        externals: dict[str, str],
        *,
        path: str = "",
        data: bytes = b"",
        head: bytes = b"",
    ) -> list[Detection]:
        """As `PythonMatcher.match`."""
        try:
            scanner = self._scanner(self._rules.group_of(head))
        except GroupUnusable as exc:
            raise ScanSkipped(f"not scanned: {exc}") from None
        for key, value in externals.items():
            scanner.set_global(key, value)
        try:
            results = scanner.scan_file(path) if path else scanner.scan(data)
        except yara_x.TimeoutError:
            raise ScanSkipped(f"timeout: not scanned within {self._timeout} s") from None
        except yara_x.ScanError as exc:
            raise ScanSkipped(f"unreadable: {exc}") from None
        now = datetime.now(UTC)
        return [from_yara_x(r, name, now) for r in results.matching_rules]


Matcher = PythonMatcher | XMatcher


def make_matcher(rules: YaraRuleSet, timeout: int) -> Matcher:
    if rules.engine == "yara-x":
        return XMatcher(rules, timeout)
    return PythonMatcher(rules, timeout)


class FileScanner:
    """Scans one file: the part that runs in a worker thread or process."""

    def __init__(self, matcher: Matcher, max_size: int) -> None:
        self.matcher = matcher
        self.max_size = max_size

    def scan_file(self, path: str) -> Outcome:
        try:
            info = os.stat(path)
        except OSError as exc:
            return Outcome(path, 0, skipped=f"unreadable: {exc.strerror or exc}")
        if not stat.S_ISREG(info.st_mode):
            # A FIFO or a device could block forever or never end.
            return Outcome(path, 0, skipped="not a regular file")
        if info.st_size > self.max_size:
            return Outcome(path, 0, skipped=f"too big: {info.st_size} bytes, limit {self.max_size}")
        try:
            # A raw descriptor: a buffered file object costs more than reading 16 bytes.
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            try:
                head = os.read(fd, HEAD_SIZE)
            finally:
                os.close(fd)
        except OSError as exc:
            return Outcome(path, 0, skipped=f"unreadable: {exc.strerror or exc}")
        externals = externals_for(path, head, info.st_uid)
        try:
            found = self.matcher.match(path, externals, path=path, head=head)
        except ScanSkipped as skip:
            return Outcome(path, 0, skipped=str(skip))
        return Outcome(path, info.st_size, found)
