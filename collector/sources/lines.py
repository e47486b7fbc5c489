"""One line of log text (from a file or a syslog frame) -> one `Event`.

Parsers: `syslog` (RFC 5424, RFC 3164 and the file layouts of rsyslog and syslog-ng, plain
text kept as `message`), `json` (one object per line, Windows renderings included), `text`
(the line as `message`), and `auto`: a line that is a JSON object is read as JSON, any other
as syslog (which falls back to plain text).

A line is refused (BadRecord) when it is binary rather than text: control characters (tab,
line ends, form feed and escape aside), or mostly bytes that are not UTF-8; and when it is
JSON nested deeper than `MAX_DEPTH` levels. Text that is not UTF-8 (Latin-1 from an old
application, say) is kept with replacement characters, as `vigie scan` reads it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, get_args

import orjson

from collector.sources.base import BadRecord
from detection.event import Event
from detection.sources.jsonlog import EPOCH, MAX_DEPTH, event_from_object, too_deep
from detection.sources.syslog import FACILITIES, SEVERITIES, parse_line

ParserName = Literal["auto", "syslog", "json", "text"]
PARSERS: tuple[str, ...] = get_args(ParserName)

_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_BARE_PRI = re.compile(r"<(\d{1,3})>")
# Above this share of replacement characters a line is taken for binary data.
_MAX_REPLACED = 0.3


def check_parser(name: str) -> ParserName:
    if name not in PARSERS:
        raise ValueError(f"unknown parser {name!r}; expected one of {', '.join(PARSERS)}")
    return name  # type: ignore[return-value]  # checked just above


def decode_line(raw: bytes) -> str:
    """The text of one line (its line end already removed); BadRecord if it is binary."""
    raw = raw.rstrip(b"\r\x00")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        if text.count("\ufffd") > _MAX_REPLACED * len(text):
            raise BadRecord("binary data, not text") from None
    text = text.removeprefix("\ufeff")
    bad = _CONTROL.search(text)
    if bad is not None:
        raise BadRecord(f"binary data, not text (control character {ord(bad.group()):#04x})")
    return text


def parse_text(
    text: str, parser: ParserName, source: str, now: datetime, extra: dict[str, Any] | None = None
) -> Event:
    """The event of one decoded line; `now` stands in for a time the line does not carry.

    `extra` is merged into the event's `log` object (the file offset, the sender address).
    """
    timestamp: datetime | None = None
    fields: dict[str, Any] | None = None
    if parser in ("auto", "json") and text.lstrip().startswith("{"):
        event = _json_event(text, source, strict=parser == "json")
        if event is not None:
            timestamp, fields = event.timestamp, dict(event.fields)
            if timestamp == EPOCH:  # no time in the record: when it was read
                timestamp = None
    elif parser == "json":
        raise BadRecord("not a JSON object")
    if fields is None:
        if parser == "text":
            fields = {"message": text}
        else:
            timestamp, fields = parse_line(text, now=now)
            if "log" not in fields:
                _bare_priority(text, fields)
    if extra:
        current = fields.get("log")
        if current is None or isinstance(current, dict):
            fields["log"] = {**(current or {}), **extra}
    return Event(timestamp=timestamp or now, fields=fields, source=source)


def _json_event(text: str, source: str, *, strict: bool) -> Event | None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if strict:
            raise BadRecord(f"invalid JSON: {exc}") from None
        return None  # `auto`: a line that merely starts with a brace is text
    if not isinstance(value, dict):
        if strict:
            raise BadRecord(f"not a JSON object: {type(value).__name__}")
        return None
    if too_deep(value, text):
        raise BadRecord(f"JSON nested deeper than {MAX_DEPTH} levels")
    return event_from_object(value, source)


def _bare_priority(text: str, fields: dict[str, Any]) -> None:
    """`<PRI>message` with no header (Python's SysLogHandler, many appliances): the priority
    is still the sender's word on facility and severity (RFC 3164, 4.3.3)."""
    match = _BARE_PRI.match(text)
    if match is None or int(match.group(1)) > 191:
        return
    facility, severity = divmod(int(match.group(1)), 8)
    fields["log"] = {
        "level": SEVERITIES[severity],
        "syslog": {
            "priority": int(match.group(1)),
            "facility": {"code": facility, "name": FACILITIES[facility]},
            "severity": {"code": severity, "name": SEVERITIES[severity]},
            "message": text[match.end() :],
        },
    }
