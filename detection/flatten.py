"""Nested documents to dotted keys: the flat view Sigma reads of every event that is not a
Windows one (`detection.event.sigma_view`). On its own so that it can be compiled (setup.py,
detection/compiled.py): it runs for every line the agent reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_LEAF_TYPES = frozenset((str, int, float, bool, list, type(None)))


def flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The dotted keys and leaf values of a nested document; lists are leaves."""
    flat: dict[str, Any] = {}
    _flatten_into(flat, doc, prefix)
    return flat


def _flatten_into(flat: dict[str, Any], doc: Mapping[Any, Any], prefix: str) -> None:
    # Into one dict, without generators: this runs for every event Sigma looks at. Keys typed
    # Any: compiled, a key that is no string (a number) must be formatted, not refused.
    for key, value in doc.items():
        kind = type(value)
        # The ABC test only for the rare types that are neither a dict nor a plain leaf.
        if kind is dict or (kind not in _LEAF_TYPES and isinstance(value, Mapping)):
            _flatten_into(flat, value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
