"""What a YARA scan did: files and bytes scanned, files skipped and why, hits per rule."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from detection.sources.stats import MAX_KEPT_ERRORS


@dataclass(frozen=True, slots=True)
class SkippedFile:
    path: str
    reason: str  # "too big: ...", "unreadable: ...", "timeout: ...", "not a regular file"


@dataclass
class YaraScanStats:
    files_scanned: int = 0
    bytes_scanned: int = 0
    files_skipped: int = 0
    detections: int = 0
    # The first MAX_KEPT_ERRORS skipped files in full; the rest are only counted.
    skipped: list[SkippedFile] = field(default_factory=list)
    rule_hits: Counter[str] = field(default_factory=Counter)

    def skip(self, path: str, reason: str) -> None:
        self.files_skipped += 1
        if len(self.skipped) < MAX_KEPT_ERRORS:
            self.skipped.append(SkippedFile(path, reason))

    def skip_reasons(self) -> Counter[str]:
        """Skipped files kept, by kind of reason (the part before the colon)."""
        return Counter(s.reason.split(":", 1)[0] for s in self.skipped)
