"""Counters every reader fills: what was read, what was skipped and why."""

from __future__ import annotations

from dataclasses import dataclass, field

from detection.errors import RecordError

# Keep the first errors in full; count the rest (a corrupt file can have millions).
MAX_KEPT_ERRORS = 100


@dataclass
class ReadStats:
    records_read: int = 0
    records_skipped: int = 0
    files_read: int = 0
    files_failed: int = 0
    errors: list[RecordError] = field(default_factory=list)

    def skip(self, source: str, record: int, reason: str) -> None:
        """Count one bad record and keep its reason (the first MAX_KEPT_ERRORS of them)."""
        self.records_skipped += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(RecordError(source, record, reason))

    def merge(self, other: ReadStats) -> None:
        self.records_read += other.records_read
        self.records_skipped += other.records_skipped
        self.files_read += other.files_read
        self.files_failed += other.files_failed
        room = MAX_KEPT_ERRORS - len(self.errors)
        if room > 0:
            self.errors.extend(other.errors[:room])
