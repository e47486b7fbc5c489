"""Zeek's ASCII (TSV) logs: `conn.log`, `dns.log`, `http.log`, `ssl.log`, ... as events.

A log opens with header lines that say how to read the rest:

    #separator \\x09            the field separator, written escaped
    #set_separator  ,           between the elements of a set or vector
    #empty_field    (empty)     an empty string, set or vector
    #unset_field    -           a field without a value
    #path   conn                which log this is (Sigma's `service` for `product: zeek`)
    #fields ts  uid  id.orig_h  ...
    #types  time  string  addr  ...

Each data line becomes an event whose fields are Zeek's own names (`id.orig_h`, `query`,
`status_code`...) and `_path`, as Vigie's own network records are (collector/netmeta), so that
the Sigma engine sends it to the `product: zeek` rules of its log. Values are typed as
`#types` says: count, int and port as int; double and interval as float; bool `T`/`F`;
`set[...]` and `vector[...]` as lists; time as UTC (`ts` becomes the event's time, other
times ISO 8601 text). An unset field is left out; `\\xHH` escapes are decoded. A value that
does not read as its type (Zeek's tests mask times as `XXXXXXXXXX.XXXXXX`) is kept as the text
it is, so nothing is lost. A line whose value count differs from `#fields`, or a data line
before any `#fields`, is counted and skipped. A file may hold several header blocks (logs
concatenated across rotations): each new header applies to the lines after it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detection.event import Event, iso_utc
from detection.sources.jsonlog import EPOCH
from detection.sources.sniff import open_text
from detection.sources.stats import ReadStats

_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")
# Zeek's defaults, used until (or unless) the header says otherwise.
_DEFAULT_SEPARATOR = "\t"
_DEFAULT_SET_SEPARATOR = ","
_DEFAULT_EMPTY = "(empty)"
_DEFAULT_UNSET = "-"


def unescape(text: str) -> str:
    """Zeek's `\\xHH` escapes decoded; bytes that are not UTF-8 stay written as `\\xHH`."""
    if "\\x" not in text:
        return text
    raw = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), text.encode("utf-8", "replace"))
    return raw.decode("utf-8", "backslashreplace")


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _bool(text: str) -> bool:
    if text == "T":
        return True
    if text == "F":
        return False
    raise ValueError(text)


def _time_text(text: str) -> str:
    found = _time(text)
    if found is None:
        raise ValueError(text)
    return iso_utc(found)


# Zeek type -> how one value of it is read (ValueError: keep the text).
_SCALARS: dict[str, Callable[[str], Any]] = {
    "count": int,
    "int": int,
    "port": int,
    "double": float,
    "interval": float,
    "bool": _bool,
    "time": _time_text,
}


def _element_type(zeek_type: str) -> tuple[bool, str]:
    """`set[string]` -> (True, `string`); `count` -> (False, `count`)."""
    for container in ("set[", "vector[", "table["):
        if zeek_type.startswith(container) and zeek_type.endswith("]"):
            return True, zeek_type[len(container) : -1]
    return False, zeek_type


@dataclass
class Header:
    """What the `#` lines of one block say."""

    separator: str = _DEFAULT_SEPARATOR
    set_separator: str = _DEFAULT_SET_SEPARATOR
    empty: str = _DEFAULT_EMPTY
    unset: str = _DEFAULT_UNSET
    path: str | None = None
    fields: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)

    def directive(self, line: str) -> None:
        """Take in one `#` line. `#separator` is followed by a space, the others by the
        separator it set."""
        if line.startswith("#separator"):
            self.separator = unescape(line[len("#separator") :].strip(" ")) or "\t"
            return
        name, _, value = line[1:].partition(self.separator)
        if name == "set_separator":
            self.set_separator = unescape(value)
        elif name == "empty_field":
            self.empty = value
        elif name == "unset_field":
            self.unset = value
        elif name == "path":
            self.path = value
        elif name == "fields":
            self.fields = value.split(self.separator)
            self.types = []
        elif name == "types":
            self.types = value.split(self.separator)
        # `#open`, `#close` and comments (Zeek's test baselines start with `###`) say nothing
        # about the values.


class _Columns:
    """One header's fields, each with the function that reads its values."""

    def __init__(self, header: Header) -> None:
        self.header = header
        self.names = header.fields
        types = header.types if len(header.types) == len(header.fields) else []
        self.readers = [self._reader(t) for t in types] or [self._reader("string")] * len(
            self.names
        )
        # `ts` is read apart: it becomes the event's time, not a field.
        self.ts = self.names.index("ts") if "ts" in self.names else None
        if self.ts is not None and types and types[self.ts] != "time":
            self.ts = None
        if self.ts is not None:
            self.readers[self.ts] = str  # kept as written only if it is no time

    def _reader(self, zeek_type: str) -> Callable[[str], Any]:
        container, element = _element_type(zeek_type)
        scalar = _SCALARS.get(element)
        unset, empty, set_separator = (
            self.header.unset,
            self.header.empty,
            self.header.set_separator,
        )

        def one(text: str) -> Any:
            if scalar is None:
                return unescape(text)
            try:
                return scalar(text)
            except ValueError:
                return unescape(text)

        if not container:
            return lambda text: "" if text == empty else one(text)

        def many(text: str) -> list[Any]:
            if text == empty:
                return []
            return [None if item == unset else one(item) for item in text.split(set_separator)]

        return many


def read_zeek(path: Path, stats: ReadStats) -> Iterator[Event]:
    """Yield one event per data line of a Zeek ASCII log (gzip-compressed or not)."""
    source = str(path)
    header = Header(path=_path_from_name(path))
    columns: _Columns | None = None
    with open_text(path, errors="replace") as fh:
        for number, raw in enumerate(fh, 1):
            line = raw.rstrip("\r\n")
            if not line:
                continue
            if line.startswith("#"):
                if line.startswith("#separator"):  # a new block: its own header from scratch
                    header = Header(path=_path_from_name(path))
                header.directive(line)
                columns = None
                continue
            if columns is None:
                if not header.fields:
                    stats.skip(source, number, "Zeek log line before any #fields header")
                    continue
                columns = _Columns(header)
            values = line.split(header.separator)
            if len(values) != len(columns.names):
                reason = f"{len(values)} values where #fields names {len(columns.names)}"
                stats.skip(source, number, f"bad Zeek log line: {reason}")
                continue
            stats.records_read += 1
            yield _event(columns, values, source)


def _event(columns: _Columns, values: list[str], source: str) -> Event:
    unset = columns.header.unset
    fields: dict[str, Any] = {}
    for name, read, text in zip(columns.names, columns.readers, values, strict=True):
        if text != unset:
            fields[name] = read(text)
    timestamp = None
    if columns.ts is not None:
        timestamp = _time(values[columns.ts])
        if timestamp is not None:
            fields.pop("ts", None)  # the event's own time, as for Vigie's network records
    if columns.header.path:
        fields["_path"] = columns.header.path
    return Event(timestamp=timestamp or EPOCH, fields=fields, source=source)


def _path_from_name(path: Path) -> str | None:
    """`conn.log`, `dns.09:00:00-10:00:00.log.gz` -> `conn`, `dns`: the log a file holds when
    its header has no `#path`."""
    stem = path.name.split(".", 1)[0]
    return stem or None
