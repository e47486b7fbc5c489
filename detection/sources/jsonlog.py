"""JSON logs: Windows events in the `{"Event": {"System": ..., "EventData": ...}}` rendering
and any other objects (ECS documents, Zeek JSON logs, cloud audit logs...).

Layouts read:
- JSONL: one object per line, streamed; a bad line is counted and skipped.
- one document: a pretty-printed object, or an array of objects (loaded whole);
- concatenated pretty-printed objects, optionally each after a `Record N` line (what
  `evtx_dump -o json` writes).

A Windows rendering goes through `event_from_rendering` (so the event has `winlog.*`); any other
object is kept as it is, its timestamp taken from the first recognisable time field.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from detection.event import Event, parse_timestamp
from detection.sources.sniff import open_text, zeek_log_name
from detection.sources.stats import ReadStats
from detection.sources.windows import NotWindowsEvent, event_from_rendering, is_rendering

# A record without a usable time gets the epoch, as Windows events do: "unknown", visibly.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Time fields in the order they are preferred, compared case-insensitively: ECS, Zeek, NXLog,
# Windows exports, Splunk, CloudTrail and similar.
TIME_FIELDS = (
    "@timestamp",
    "timestamp",
    "ts",
    "time",
    "eventtime",
    "timecreated",
    "utctime",
    "datetime",
    "date",
    "_time",
    "timegenerated",
    "creationtime",
    "created_at",
)
_TIME_RANK = {name: rank for rank, name in enumerate(TIME_FIELDS)}
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_DOTNET_DATE = re.compile(r"/Date\((-?\d+)(?:[+-]\d{4})?\)/")  # PowerShell ConvertTo-Json
_BLANKS = re.compile(r"\s*")
_RECORD_HEADER = re.compile(r"Record \d+[ \t]*(?:\r?\n|$)")
# A record whose objects and arrays nest deeper is a bad record: no log nests so deep, and
# the agent could not go on with it (the spool's orjson writes 254 levels at most, Python's
# recursion stops near 1000).
MAX_DEPTH = 64


def read_json(path: Path, stats: ReadStats) -> Iterator[Event]:
    """Yield the events of one JSON or JSONL file; bad records are counted in `stats`."""
    source = str(path)
    # surrogateescape: a line with bytes that are not UTF-8 is then rejected by the parser
    # (and counted) instead of being read with replacement characters.
    with open_text(path, errors="surrogateescape") as fh:
        lineno = 0
        first = ""
        for first in fh:
            lineno += 1
            if first.strip():
                break
        head = first.strip()
        if not head:
            return
        if head[0] == "{" and head != "{":
            # JSONL: streamed line by line (a lone `{` starts a pretty-printed document).
            for number, line in enumerate(itertools.chain([first], fh), lineno):
                if line.strip():
                    event = _line_event(line, number, source, stats)
                    if event is not None:
                        yield event
            return
        # One document, an array, or concatenated pretty-printed objects: loaded whole.
        yield from _document(first + fh.read(), source, stats)


def _line_event(line: str, number: int, source: str, stats: ReadStats) -> Event | None:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        stats.skip(source, number, f"invalid JSON: {exc}")
        return None
    return _record_event(value, number, source, stats, line)


def _document(text: str, source: str, stats: ReadStats) -> Iterator[Event]:
    try:
        values: Iterator[Any] = iter([orjson.loads(text)])
    except orjson.JSONDecodeError:
        values = _concatenated(_as_valid_text(text), source, stats)
    # Counted once: a document with few brackets needs no look at each record's depth.
    shallow = "" if text.count("{") + text.count("[") <= MAX_DEPTH else None
    number = 0
    for value in values:
        for item in value if isinstance(value, list) else [value]:
            number += 1
            event = _record_event(item, number, source, stats, shallow)
            if event is not None:
                yield event


def _concatenated(text: str, source: str, stats: ReadStats) -> Iterator[Any]:
    """JSON values one after another; after a broken one, resume at the next `{` on a new line."""
    decoder = json.JSONDecoder()
    pos, number = 0, 0
    while True:
        while True:  # skip blanks and evtx_dump's `Record N` lines
            pos = _BLANKS.match(text, pos).end()  # type: ignore[union-attr]  # always matches
            header = _RECORD_HEADER.match(text, pos)
            if header is None:
                break
            pos = header.end()
        if pos >= len(text):
            return
        number += 1
        start = pos
        try:
            _, pos = decoder.raw_decode(text, pos)
            # The json module only finds where the value ends: read by orjson as every other
            # record (integers beyond 64 bits, NaN and lone surrogates would stop the spool).
            value = orjson.loads(text[start:pos])
        except (json.JSONDecodeError, orjson.JSONDecodeError, RecursionError) as exc:
            why = "nested too deep" if isinstance(exc, RecursionError) else exc
            stats.skip(source, number, f"invalid JSON: {why}")
            resume = text.find("\n{", start + 1)
            if resume < 0:
                return
            pos = resume + 1
            continue
        yield value


def _as_valid_text(text: str) -> str:
    """Bytes that were not UTF-8 (kept as surrogates) become U+FFFD: the document is kept."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


def _record_event(
    value: Any, number: int, source: str, stats: ReadStats, text: str | None = None
) -> Event | None:
    if not isinstance(value, dict):
        stats.skip(source, number, f"not a JSON object: {type(value).__name__}")
        return None
    if too_deep(value, text):
        stats.skip(source, number, f"invalid JSON: nested deeper than {MAX_DEPTH} levels")
        return None
    stats.records_read += 1
    return event_from_object(value, source)


def too_deep(value: Any, text: str | None = None) -> bool:
    """Whether objects and arrays nest deeper than MAX_DEPTH in `value`; `text`, the JSON it
    was read from, spares the walk through it when it has too few brackets to be."""
    if text is not None and text.count("{") + text.count("[") <= MAX_DEPTH:
        return False
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack += [(child, depth + 1) for child in children if isinstance(child, dict | list)]
    return False


def event_from_object(obj: dict[str, Any], source: str = "") -> Event:
    """One JSON object as an `Event`: a Windows rendering via `event_from_rendering`, any
    other object with its fields kept as they are."""
    rendering = _windows_rendering(obj)
    if rendering is not None:
        try:
            return event_from_rendering(rendering, source)
        except NotWindowsEvent:
            pass  # {"Event": ...} without System: an ordinary object after all
    if "id.orig_h" in obj and "_path" not in obj and source:
        # Zeek's JSON logs name their log only by the file's name (`_path` is optional).
        log = zeek_log_name(source)
        if log is not None:
            obj["_path"] = log
    return Event(timestamp=record_timestamp(obj) or EPOCH, fields=obj, source=source)


def _windows_rendering(obj: dict[str, Any]) -> Mapping[str, Any] | None:
    if is_rendering(obj):
        return obj
    # A bare `{"System": ..., "EventData": ...}` (the Event wrapper dropped by some exporters).
    if isinstance(obj.get("System"), Mapping) and "EventID" in obj["System"]:
        return {"Event": obj}
    # The `evtx` package's Python records: {"event_record_id", "timestamp", "data": "<json>"}.
    data = obj.get("data")
    if "event_record_id" in obj and isinstance(data, str):
        try:
            inner = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        return inner if is_rendering(inner) else None
    return None


def record_timestamp(record: Mapping[str, Any]) -> datetime | None:
    """The time of a generic record, from its best-ranked time field; None if it has none."""
    best: tuple[int, Any] | None = None
    for key, value in record.items():
        rank = _TIME_RANK.get(key.lower()) if isinstance(key, str) else None
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, value)
    if best is not None:
        found = to_utc(best[1])
        if found is not None:
            return found
    event = record.get("event")  # ECS documents without @timestamp may have event.created
    if isinstance(event, Mapping):
        return to_utc(event.get("created"))
    return None


def to_utc(value: Any) -> datetime | None:
    """A timestamp value (ISO 8601 text, epoch seconds/ms/us/ns as number or text) in UTC."""
    if isinstance(value, str):
        text = value.strip()
        dotnet = _DOTNET_DATE.fullmatch(text)
        if dotnet:
            return _from_epoch(int(dotnet.group(1)) / 1000)
        if _NUMBER.fullmatch(text):
            return _from_epoch(float(text))
        parsed = parse_timestamp(text)
        return parsed.astimezone(UTC) if parsed else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    return None


def _from_epoch(seconds: float) -> datetime | None:
    # Milliseconds, microseconds and nanoseconds since the epoch are all met in logs; seconds
    # since the epoch stay below 1e11 until the year 5138.
    magnitude = abs(seconds)
    if magnitude >= 1e17:
        seconds /= 1e9
    elif magnitude >= 1e14:
        seconds /= 1e6
    elif magnitude >= 1e11:
        seconds /= 1e3
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
