"""Turn yara-python and yara-x matches into Vigie `Detection`s.

Both engines report the same things under different names; this is the one place that knows
both shapes, so every detection looks the same whichever engine produced it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import yara
import yara_x

from detection.detection import Detection, StringMatch

LEVELS = ("informational", "low", "medium", "high", "critical")
DEFAULT_LEVEL = "medium"
# A string hit thousands of times (a pattern like "MZ" in a disk image) would make one
# detection huge: keep the first hits of each string, which is what an analyst reads.
MAX_OFFSETS_PER_STRING = 100

_LEVEL_WORDS = {
    "info": "informational",
    "information": "informational",
    "informational": "informational",
    "notice": "low",
    "low": "low",
    "medium": "medium",
    "moderate": "medium",
    "warning": "medium",
    "high": "high",
    "alert": "high",
    "critical": "critical",
    "crit": "critical",
}


def level_from_meta(meta: Mapping[str, Any]) -> str:
    """The first of `severity`, `level`, `score` that says something; 'medium' otherwise.

    Numbers are scores out of 100, as in signature-base (LOKI/THOR: 40 notable, 60 suspicious,
    75+ alert, 100 certain).
    """
    for key in ("severity", "level", "score"):
        value = meta.get(key)
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, str):
            word = _LEVEL_WORDS.get(value.strip().lower())
            if word:
                return word
            try:
                value = float(value)
            except ValueError:
                continue
        return _level_from_score(float(value))
    return DEFAULT_LEVEL


def _level_from_score(score: float) -> str:
    if score >= 90:
        return "critical"
    if score >= 70:
        return "high"
    if score >= 50:
        return "medium"
    if score >= 30:
        return "low"
    return "informational"


def _detection(
    rule: str,
    tags: Iterable[str],
    meta: Mapping[str, Any],
    strings: tuple[StringMatch, ...],
    name: str,
    now: datetime,
) -> Detection:
    description = meta.get("description")
    return Detection(
        engine="yara",
        rule_id=rule,
        rule_title=description if isinstance(description, str) and description else rule,
        level=level_from_meta(meta),
        source=name,
        timestamp=now,
        file=name,
        strings=strings,
        tags=tuple(tags),
        meta=dict(meta),
    )


def from_yara_python(match: yara.Match, name: str, now: datetime) -> Detection:
    strings = tuple(
        StringMatch(s.identifier, hit.offset, hit.matched_length)
        for s in match.strings
        for hit in s.instances[:MAX_OFFSETS_PER_STRING]
    )
    return _detection(match.rule, match.tags, match.meta, strings, name, now)


def from_yara_x(rule: yara_x.Rule, name: str, now: datetime) -> Detection:
    strings = tuple(
        StringMatch(p.identifier, hit.offset, hit.length)
        for p in rule.patterns
        for hit in p.matches[:MAX_OFFSETS_PER_STRING]
    )
    # yara-x gives meta as (key, value) pairs; a repeated key keeps its last value, as yara-python
    # does. A string with non-UTF-8 escapes comes as bytes, which JSON output cannot carry.
    meta = {
        key: value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        for key, value in rule.metadata
    }
    return _detection(rule.identifier, rule.tags, meta, strings, name, now)
