"""Build one-rule engines and events for the Sigma unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detection.event import Event
from detection.sigma import SigmaEngine, load_sigma_rules

HEADER = """
title: test rule
id: 11111111-2222-4333-8444-555555555555
status: test
logsource:
  product: linux
level: high
"""

TS = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def engine_for(tmp_path: Path, detection: str, header: str = HEADER) -> SigmaEngine:
    path = tmp_path / "rule.yml"
    path.write_text(header + detection, encoding="utf-8")
    ruleset = load_sigma_rules([path])
    assert not ruleset.errors, ruleset.errors
    return SigmaEngine(ruleset)


def event(fields: dict[str, Any], ts: datetime = TS) -> Event:
    return Event(timestamp=ts, fields=fields, source="test")


def matches(engine: SigmaEngine, fields: dict[str, Any]) -> bool:
    return bool(engine.match(event(fields)))
