"""The sample an incident keeps of the detection that opened it: enough to triage, bounded.

The detection's own fields and its event (or the first few events of a correlation) are kept
with long strings cut, wide objects and lists cut, and deep nesting cut; a sample still larger
than `MAX_SAMPLE_BYTES` keeps its event's top-level scalars only, then no event at all.
Before, the whole detection was kept: 5 MB in one incident row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

MAX_SAMPLE_BYTES = 16 * 1024
MAX_TEXT = 512  # characters of one string
MAX_ITEMS = 40  # keys of one object, items of one list
MAX_DEPTH = 5
MAX_EVENTS = 3  # of a correlation's events
# What the incident page shows of it: which engine, agent- or service-side (`origin`), the
# input, the YARA file and the strings that matched, the event(s).
_KEEP = (
    "engine",
    "rule_id",
    "rule_title",
    "level",
    "timestamp",
    "source",
    "origin",
    "file",
    "strings",
    "tags",
    "event",
)
CUT = "…"


def sample_of(detection: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: trimmed(detection[k]) for k in _KEEP if k in detection}
    events = detection.get("events")
    if isinstance(events, list) and events:
        out["events"] = [trimmed(e) for e in events[:MAX_EVENTS]]
    if _size(out) <= MAX_SAMPLE_BYTES:
        return out
    out.pop("events", None)
    event = out.get("event")
    if isinstance(event, dict):
        out["event"] = {k: v for k, v in event.items() if not isinstance(v, dict | list)}
    if _size(out) > MAX_SAMPLE_BYTES:
        out.pop("event", None)
        out["tags"] = out.get("tags", [])[:10] if isinstance(out.get("tags"), list) else []
    out["trimmed"] = True
    return out


def trimmed(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + CUT
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return CUT
        items = list(value.items())[:MAX_ITEMS]
        return {str(k)[:MAX_TEXT]: trimmed(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            return CUT
        return [trimmed(v, depth + 1) for v in value[:MAX_ITEMS]]
    return value


def _size(value: Any) -> int:
    return len(orjson.dumps(value, default=str))
