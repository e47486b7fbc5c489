"""What an engine reports: one `Detection` per rule hit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from detection.event import Event, iso_utc

Engine = Literal["sigma", "yara", "indicator"]


@dataclass(frozen=True, slots=True)
class StringMatch:
    """One YARA string hit: its identifier and where it was found."""

    identifier: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class Detection:
    engine: Engine
    rule_id: str  # Sigma (or correlation) rule UUID; YARA rule name
    rule_title: str
    level: str  # informational|low|medium|high|critical
    source: str  # the input (file, stream) the hit came from
    timestamp: datetime
    event: Event | None = None  # Sigma: the matched event
    events: tuple[Event, ...] = ()  # correlation: the events that made it fire
    file: str | None = None  # YARA: the scanned file
    strings: tuple[StringMatch, ...] = ()  # YARA: the strings that matched
    tags: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `vigie scan --format jsonl` (DESIGN.md)."""
        out: dict[str, Any] = {
            "engine": self.engine,
            "rule_id": self.rule_id,
            "rule_title": self.rule_title,
            "level": self.level,
            "source": self.source,
            "timestamp": iso_utc(self.timestamp),
        }
        if self.tags:
            out["tags"] = list(self.tags)
        if self.meta:
            out["meta"] = dict(self.meta)
        if self.event is not None:
            out["event"] = self.event.to_ecs()
        if self.events:
            out["events"] = [e.to_ecs() for e in self.events]
        if self.file is not None:
            out["file"] = self.file
            out["strings"] = [
                {"identifier": s.identifier, "offset": s.offset, "length": s.length}
                for s in self.strings
            ]
        return out
