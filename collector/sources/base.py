"""What every live source of the agent offers the agent's core.

    SourceError        root of what the sources raise
    └── BadRecord      one record (line, frame, message) that cannot be made an event;
                       sources count it in `stats()["skipped"]` and go on, never raise it out

The core calls `poll()` in a loop, writes the events durably to its spool, then persists
`checkpoint()`; after a crash it calls `restore()` with the last persisted checkpoint, so what
came after it is read again (at least once, never lost).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from detection.event import Event

# Reasons of the last bad records kept for `stats()`; the rest are only counted.
MAX_KEPT_ERRORS = 20


class SourceError(Exception):
    """Root of the errors of the agent's sources."""


class BadRecord(SourceError):
    """One record that cannot be turned into an event; carries the reason."""


@runtime_checkable
class Source(Protocol):
    name: str  # unique per agent, e.g. "tail:/var/log/nginx/*.log"

    def poll(self) -> list[Event]:
        """The events ready now (maybe none); never blocks."""
        ...

    def checkpoint(self) -> dict[str, Any]:
        """A JSON-able position covering every event returned by `poll()` so far."""
        ...

    def restore(self, state: dict[str, Any]) -> None:
        """Resume from a checkpoint (before the first `poll()`)."""
        ...

    def close(self) -> None: ...

    def stats(self) -> dict[str, Any]:
        """Counters: `read`, `skipped` (bad records), `lag_seconds` (age of the oldest unread
        data, None if unknown), and what else the source knows."""
        ...


def keep_error(errors: list[str], reason: str) -> None:
    """Keep the last MAX_KEPT_ERRORS reasons (the newest say most about a live source)."""
    errors.append(reason)
    if len(errors) > MAX_KEPT_ERRORS:
        del errors[0]
