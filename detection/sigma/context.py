"""One event as the compiled rules see it: field lookups with per-event caches."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

_MISSING = object()


_SCALARS = (str, int, float, bool, type(None))


def _leaves(value: Any) -> Iterator[Any]:
    """Scalars of a field: list elements (nested lists flattened) or the value itself."""
    if type(value) in _SCALARS:
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item)
    else:
        yield value


def as_text(value: Any) -> str | None:
    """The string form Sigma compares (`None` has none; booleans as `true`/`false`)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@functools.lru_cache(maxsize=8192)
def fold_name(name: str) -> str:
    """Field names compared loosely: Defender writes `Threat Name` where rules say `ThreatName`."""
    return name.replace(" ", "").lower()


class MatchContext:
    """Per-event lookups. Field names match exactly, then case-insensitively."""

    __slots__ = ("view", "timestamp", "_lower", "_folded", "_text", "_strings", "_lower_all")

    def __init__(self, view: Mapping[str, Any], timestamp: datetime) -> None:
        self.view = view
        self.timestamp = timestamp
        self._lower: dict[str, list[str]] = {}
        self._folded: dict[str, str] | None = None
        self._text: str | None = None
        self._strings: list[str] | None = None
        self._lower_all: list[str] | None = None

    def _raw(self, field: str) -> Any:
        value = self.view.get(field, _MISSING)
        if value is not _MISSING:
            return value
        if self._folded is None:
            self._folded = {fold_name(k): k for k in self.view}
        key = self._folded.get(fold_name(field))
        return None if key is None else self.view[key]

    def folded_keys(self) -> dict[str, str]:
        """Folded field name -> the event's own name for it."""
        if self._folded is None:
            self._folded = {fold_name(k): k for k in self.view}
        return self._folded

    def values(self, field: str) -> list[Any]:
        raw = self._raw(field)
        if type(raw) in _SCALARS:
            return [raw]
        return list(_leaves(raw))

    def strings(self, field: str) -> list[str]:
        raw = self._raw(field)
        if isinstance(raw, str):  # the common case, without the generic walk
            return [raw]
        if raw is None:
            return []
        return [t for t in map(as_text, _leaves(raw)) if t is not None]

    def lower_strings(self, field: str) -> list[str]:
        cached = self._lower.get(field)
        if cached is None:
            cached = [s.lower() for s in self.strings(field)]
            self._lower[field] = cached
        return cached

    def all_values(self) -> Iterator[Any]:
        for value in self.view.values():
            yield from _leaves(value)

    def all_strings(self) -> list[str]:
        if self._strings is None:
            self._strings = [t for t in map(as_text, self.all_values()) if t is not None]
        return self._strings

    def all_lower_strings(self) -> list[str]:
        if self._lower_all is None:
            self._lower_all = [t.lower() for t in self.all_strings()]
        return self._lower_all

    def text(self) -> str:
        """Every value, lowercased, in one string: what rule anchors are searched in."""
        if self._text is None:
            parts: list[str] = []
            for value in self.view.values():
                kind = type(value)
                if kind is str:
                    parts.append(value)
                elif kind is int:
                    parts.append(str(value))
                elif value is not None:
                    parts.extend(t for t in map(as_text, _leaves(value)) if t is not None)
            self._text = "\x1f".join(parts).lower()
        return self._text
