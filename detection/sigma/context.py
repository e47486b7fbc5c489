"""One event as the compiled rules see it: field lookups with per-event caches."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any


def _leaves(value: Any) -> Iterator[Any]:
    """Scalars of a field: list elements (nested lists flattened) or the value itself."""
    if isinstance(value, list | tuple):
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


def fold_name(name: str) -> str:
    """Field names compared loosely: Defender writes `Threat Name` where rules say `ThreatName`."""
    return name.replace(" ", "").lower()


class MatchContext:
    """Per-event lookups. Field names match exactly, then case-insensitively."""

    __slots__ = ("view", "timestamp", "_lower", "_folded", "_text")

    def __init__(self, view: Mapping[str, Any], timestamp: datetime) -> None:
        self.view = view
        self.timestamp = timestamp
        self._lower: dict[str, list[str]] = {}
        self._folded: dict[str, str] | None = None
        self._text: str | None = None

    def _raw(self, field: str) -> Any:
        if field in self.view:
            return self.view[field]
        if self._folded is None:
            self._folded = {fold_name(k): k for k in self.view}
        key = self._folded.get(fold_name(field))
        return None if key is None else self.view[key]

    def values(self, field: str) -> list[Any]:
        return list(_leaves(self._raw(field)))

    def strings(self, field: str) -> list[str]:
        return [t for t in map(as_text, _leaves(self._raw(field))) if t is not None]

    def lower_strings(self, field: str) -> list[str]:
        cached = self._lower.get(field)
        if cached is None:
            cached = [s.lower() for s in self.strings(field)]
            self._lower[field] = cached
        return cached

    def all_values(self) -> Iterator[Any]:
        for value in self.view.values():
            yield from _leaves(value)

    def all_strings(self) -> Iterator[str]:
        for value in self.all_values():
            text = as_text(value)
            if text is not None:
                yield text

    def all_lower_strings(self) -> Iterator[str]:
        for text in self.all_strings():
            yield text.lower()

    def text(self) -> str:
        """Every value, lowercased, in one string: what rule anchors are searched in."""
        if self._text is None:
            self._text = "\x1f".join(self.all_lower_strings())
        return self._text
