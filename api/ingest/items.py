"""What makes one item of a batch unusable: its reason, or None.

Each item is judged alone, so that one bad item is rejected with its index and reason and the
rest of the batch is kept (a batch that fails whole answers 500, and its agent retries it for
ever). An item must be storable as it is: JSON that orjson writes back (at most 254 levels
deep), a bounded size, and, for detections, the field types and lengths the incident tables
hold (PostgreSQL refuses NUL characters and strings longer than their column).
"""

from __future__ import annotations

from typing import Any

import orjson

from detection.event import parse_timestamp

MAX_EVENT_BYTES = 256 * 1024
MAX_DETECTION_BYTES = 256 * 1024
ENGINES = frozenset({"sigma", "yara", "indicator"})
LEVELS = frozenset({"informational", "low", "medium", "high", "critical"})
# Required text fields and their longest value (rule_id: the incidents' column).
_TEXTS = {"engine": 20, "rule_id": 200, "rule_title": 500, "level": 20}
_OPTIONAL: dict[str, type] = {
    "source": str,
    "host": str,
    "file": str,
    "tags": list,
    "meta": dict,
    "event": dict,
    "events": list,
    "strings": list,
}
_MAX_TAGS = 100
_MAX_TAG = 200


def event_problem(item: Any) -> str | None:
    if not isinstance(item, dict):
        return "not a JSON object"
    if parse_timestamp(item.get("@timestamp")) is None:
        return "missing or unreadable @timestamp"
    return _size_problem(item, "event", MAX_EVENT_BYTES)


def detection_problem(item: Any) -> str | None:
    if not isinstance(item, dict):
        return "not a JSON object"
    missing = [f for f in (*_TEXTS, "timestamp") if not item.get(f)]
    if missing:
        return f"missing {', '.join(missing)}"
    for name, longest in _TEXTS.items():
        value = item[name]
        if not isinstance(value, str):
            return f"{name} is not a string"
        if len(value) > longest:
            return f"{name} longer than {longest} characters"
        if "\x00" in value:
            return f"{name} holds a NUL character"
    if item["engine"] not in ENGINES:
        return f"unknown engine {item['engine'][:20]!r}"
    if item["level"] not in LEVELS:
        return f"unknown level {item['level'][:20]!r}"
    if parse_timestamp(item["timestamp"]) is None:
        return "unreadable timestamp"
    for name, kind in _OPTIONAL.items():
        if item.get(name) is not None and not isinstance(item[name], kind):
            return f"{name} is not a {'string' if kind is str else kind.__name__}"
    tags = item.get("tags") or []
    if len(tags) > _MAX_TAGS or not all(isinstance(t, str) and len(t) <= _MAX_TAG for t in tags):
        return f"tags: at most {_MAX_TAGS} strings of at most {_MAX_TAG} characters"
    if not all(isinstance(e, dict) for e in item.get("events") or []):
        return "events is not a list of objects"
    return _size_problem(item, "detection", MAX_DETECTION_BYTES)


def _size_problem(item: dict[str, Any], kind: str, limit: int) -> str | None:
    try:
        size = len(orjson.dumps(item))
    except orjson.JSONEncodeError as exc:
        return f"{kind} cannot be stored: nested too deep or unencodable ({str(exc)[:80]})"
    if size > limit:
        return f"{kind} larger than {limit} bytes"
    return None
