"""Syslog text: RFC 5424 and RFC 3164 lines, the file layouts of rsyslog and syslog-ng
(`Mmm dd hh:mm:ss host prog[pid]: msg`, or an RFC 3339 stamp first), and plain text lines.

Each line becomes ECS fields: `host.hostname`, `process.name`, `process.pid`, `log.syslog.*`
(priority, facility, severity, hostname, appname, procid, msgid, version, structured_data),
`log.level`. `message` holds the whole line as written, because Sigma's Linux rules are
keyword searches written against the raw line; the message part alone is in
`log.syslog.message`. A line in no known layout is kept as a `message` only.

RFC 3164 stamps have no year and no zone: the year is the caller's, or the one that puts the
line at most a day after the reference time (the file's modification time, or now); the zone
is taken to be UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from detection.event import Event, iso_utc
from detection.sources.jsonlog import EPOCH, to_utc
from detection.sources.sniff import open_text
from detection.sources.stats import ReadStats

FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
SEVERITIES = (
    "emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug",
)  # fmt: skip
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}

_RFC5424 = re.compile(
    r"<(?P<pri>\d{1,3})>(?P<version>\d{1,2}) (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+)"
    r" (?P<procid>\S+) (?P<msgid>\S+) "
)
_RFC3164 = re.compile(
    r"(?:<(?P<pri>\d{1,3})>)?"
    r"(?:(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?:(?P<year>\d{4}) )?"
    r"(?P<hms>\d\d:\d\d:\d\d)(?:\.(?P<frac>\d{1,6})\d*)?"
    r"|(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?))"
    r":? +(?P<rest>.*)",
    re.DOTALL,
)
# The tag: `prog[pid]:` or `prog:`; a first word not shaped like one is the host name.
_TAG = re.compile(r"(?P<app>[^\s\[\]:]{1,64})(?:\[(?P<pid>[^\]\s]*)\])?: ?(?P<msg>.*)", re.DOTALL)
_SD_ELEMENT = re.compile(
    r"\[(?P<id>[^\s\]=\"]+)(?P<params>(?: [^\s=\]\"]+=\"(?:[^\"\\]|\\.)*\")*)\]"
)
_SD_PARAM = re.compile(r" (?P<name>[^\s=\]\"]+)=\"(?P<value>(?:[^\"\\]|\\.)*)\"")
_SD_ESCAPE = re.compile(r"\\([\"\\\]])")
# sudo's `alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/sh`
_SUDO_PAIR = re.compile(r"(?:^|; |: )(?P<key>[A-Z]+)=(?P<value>.*?)(?= ; |$)")


def parse_syslog_line(line: str, *, year: int | None = None) -> dict[str, Any]:
    """The ECS fields of one syslog line (with `@timestamp` in ISO 8601 UTC when it has one)."""
    timestamp, fields = parse_line(line, year=year)
    if timestamp is not None:
        fields["@timestamp"] = iso_utc(timestamp)
    return fields


def parse_line(
    line: str, *, year: int | None = None, now: datetime | None = None
) -> tuple[datetime | None, dict[str, Any]]:
    """The time (UTC, None if the line has none) and the ECS fields of one syslog line.

    `now` is the reference for a year-less RFC 3164 stamp when `year` is not given.
    """
    line = line.rstrip("\r\n\x00")
    match = _RFC5424.match(line)
    if match:
        parsed = _rfc5424(line, match)
        if parsed is not None:
            return parsed
    match = _RFC3164.match(line)
    if match:
        timestamp = _stamp(line, match, year, now)
        if timestamp is not None:
            return timestamp, _rfc3164_fields(line, match)
    return None, {"message": line}


def read_syslog(path: Path, stats: ReadStats, *, year: int | None = None) -> Iterator[Event]:
    """Yield one event per non-blank line of a syslog text file (gzip-compressed or not)."""
    source = str(path)
    reference = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    last = EPOCH  # a line without a stamp (a continuation, say) takes the previous line's
    with open_text(path, errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            timestamp, fields = parse_line(line, year=year, now=reference)
            last = timestamp or last
            stats.records_read += 1
            yield Event(timestamp=last, fields=fields, source=source)


def _rfc5424(line: str, match: re.Match[str]) -> tuple[datetime | None, dict[str, Any]] | None:
    rest = line[match.end() :]
    structured: dict[str, dict[str, str]] = {}
    if rest.startswith("-"):
        rest = rest[1:]
    elif rest.startswith("["):
        pos = 0
        while element := _SD_ELEMENT.match(rest, pos):
            params = structured.setdefault(element["id"], {})
            for param in _SD_PARAM.finditer(element["params"]):
                params[param["name"]] = _SD_ESCAPE.sub(r"\1", param["value"])
            pos = element.end()
        if pos == 0:
            return None  # not structured data: not RFC 5424 after all
        rest = rest[pos:]
    else:
        return None
    if rest and not rest.startswith(" "):
        return None
    message = rest[1:].removeprefix("\ufeff")
    timestamp = None if match["ts"] == "-" else to_utc(match["ts"])
    syslog = _priority(int(match["pri"]))
    syslog["version"] = int(match["version"])
    fields: dict[str, Any] = {"message": line, "log": {"syslog": syslog}}
    _set_origin(fields, _nil(match["host"]), _nil(match["app"]), _nil(match["procid"]))
    if match["msgid"] != "-":
        syslog["msgid"] = match["msgid"]
    if structured:
        syslog["structured_data"] = structured
    syslog["message"] = message
    return timestamp, fields


def _rfc3164_fields(line: str, match: re.Match[str]) -> dict[str, Any]:
    syslog: dict[str, Any] = {} if match["pri"] is None else _priority(int(match["pri"]))
    fields: dict[str, Any] = {"message": line, "log": {"syslog": syslog}}
    rest = match["rest"]
    host: str | None = None
    tag = _TAG.fullmatch(rest)
    if tag is None:  # `host prog[pid]: msg`
        word, _, after = rest.partition(" ")
        if after and not word.endswith(":"):
            host, rest = word, after
            tag = _TAG.fullmatch(rest)
    if tag is not None:
        _set_origin(fields, host, tag["app"], tag["pid"])
        syslog["message"] = tag["msg"]
        if tag["app"] == "sudo":
            for pair in _SUDO_PAIR.finditer(tag["msg"]):
                fields.setdefault(pair["key"], pair["value"])
    else:
        _set_origin(fields, host, None, None)
        syslog["message"] = rest
    if not syslog:
        del fields["log"]
    return fields


# Stamps already read, by their text, year and reference time: a log's lines share their
# second, and a file is read with one reference time (a followed file: one per poll).
_STAMPS: dict[tuple[str, int | None, datetime], datetime | None] = {}
_MAX_STAMPS = 4096


def _stamp(
    line: str, match: re.Match[str], year: int | None, now: datetime | None
) -> datetime | None:
    if now is None:  # the reference is this very moment: nothing to share with other lines
        return _rfc3164_time(match, year, datetime.now(UTC))
    key = (line[: match.start("rest")], year, now)  # the text up to the host or tag
    try:
        return _STAMPS[key]
    except KeyError:
        pass
    if len(_STAMPS) >= _MAX_STAMPS:
        _STAMPS.clear()
    found = _STAMPS[key] = _rfc3164_time(match, year, now)
    return found


def _rfc3164_time(match: re.Match[str], year: int | None, now: datetime) -> datetime | None:
    if match["iso"] is not None:
        return to_utc(match["iso"])
    month = _MONTHS.get(match["mon"])
    if month is None:
        return None
    hour, minute, second = (int(part) for part in match["hms"].split(":"))
    micro = int(match["frac"].ljust(6, "0")) if match["frac"] else 0
    explicit = int(match["year"]) if match["year"] else year
    try:
        stamp = datetime(
            explicit or now.year, month, int(match["day"]), hour, minute, second, micro, UTC
        )
        if explicit is None and stamp > now + timedelta(days=1):
            stamp = stamp.replace(year=stamp.year - 1)  # December's lines read in January
    except ValueError:  # 31 Feb, or 29 Feb outside a leap year
        return None
    return stamp


def _priority(pri: int) -> dict[str, Any]:
    facility, severity = divmod(pri, 8)
    out: dict[str, Any] = {"priority": pri, "severity": {"code": severity}}
    out["severity"]["name"] = SEVERITIES[severity]
    out["facility"] = {"code": facility}
    if facility < len(FACILITIES):
        out["facility"]["name"] = FACILITIES[facility]
    return out


def _set_origin(fields: dict[str, Any], host: str | None, app: str | None, pid: str | None) -> None:
    syslog = fields["log"]["syslog"]
    if "severity" in syslog:
        fields["log"]["level"] = syslog["severity"]["name"]
    if host:
        syslog["hostname"] = host
        fields["host"] = {"hostname": host}
    if app:
        syslog["appname"] = app
        fields["process"] = {"name": app}
    if pid:
        syslog["procid"] = pid
        if pid.isdigit():
            fields.setdefault("process", {})["pid"] = int(pid)


def _nil(value: str) -> str | None:
    return None if value == "-" else value
