"""The event store: where events and detections live, behind one interface, two backends.

- `SQLiteEventStore` (`sqlite_store.py`): the embedded default, a SQLite file of its own in
  the data directory.
- `ElasticEventStore` (`elastic_store.py`): the scale option, with the official client.

Both take ECS documents as agents ship them (`Event.to_ecs()`) and detections as engines
report them (`Detection.to_dict()`), stamp them with the establishment (FINESS) and agent that
sent them, and answer every read for one establishment, or for all when the caller (the CERT)
passes `establishment=None`; a document is read back by its stable id within one
establishment (`events_by_ids`: the records behind maturity evidence). A retro-hunt converts
a Sigma rule to the store's own query language with `detection.sigma.convert` and runs it
there; a rule that does not convert is reported in its `RetroHunt`, never raised.

Errors (the store's own tree, free of the service's HTTP errors):

EventStoreError          root
├── InvalidDocument      a document the store cannot keep (no usable @timestamp, ...)
└── StoreWriteError      the backend refused some documents of a batch (the rest is kept)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from detection.event import iso_utc, parse_timestamp
from detection.sigma import CompiledRule

Kind = Literal["events", "detections"]
DEFAULT_HUNT_LIMIT = 10_000


class EventStoreError(Exception):
    """Root of the event store's errors."""


class InvalidDocument(EventStoreError):
    """A document the store cannot keep; `index` is its place in the batch."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"item {index}: {reason}")
        self.index = index
        self.reason = reason


class StoreWriteError(EventStoreError):
    """The backend refused part of a batch: `stored` documents were kept, `errors` were not."""

    def __init__(self, stored: int, errors: list[str]) -> None:
        shown = "; ".join(errors[:3]) + (
            f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        )
        super().__init__(f"{len(errors)} document(s) refused, {stored} stored: {shown}")
        self.stored = stored
        self.errors = errors


@dataclass(frozen=True, slots=True)
class RetroHunt:
    """One rule hunted over stored events.

    `hits` are detections shaped as `Detection.to_dict()` (engine `sigma`, source
    `retro-hunt`), plus `establishment`; `error` says why the rule could not be hunted
    (no conversion for this store, or the store refused the query), in which case `hits`
    is empty. `truncated`: more events matched than the limit asked for.
    """

    rule_id: str
    rule_title: str
    query: str | None = None
    hits: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class EventStore(Protocol):
    """What the service needs from an event store. Every method is safe across threads."""

    def add_events(
        self,
        establishment: str,
        agent: str,
        events: list[dict[str, Any]],
        views: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        """Store ECS events of one agent; returns how many were stored.

        `views`, when the caller has them already (ingestion ran Sigma on the events): each
        event's `sigma_view` *as stamped* (`stamped_event`), kept instead of computed again.
        `ids`: each event's stable id (`ingest` makes them per agent); an event whose id the
        store has already is not stored again, and not counted in the answer, so that a batch
        stored twice (a retry, a takeover after a crash) adds nothing the second time.
        """
        ...

    def add_detections(
        self,
        establishment: str,
        detections: list[dict[str, Any]],
        ids: Sequence[str] | None = None,
    ) -> int:
        """Store detections (`Detection.to_dict()` shape); returns how many were stored
        (`ids` as for events)."""
        ...

    def search_events(
        self,
        *,
        establishment: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Events in `[since, until)`, newest first; `establishment=None`: every one's."""
        ...

    def search_detections(
        self,
        *,
        establishment: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Detections in `[since, until)`, newest first."""
        ...

    def events_by_ids(self, establishment: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The establishment's events among those whose stable ids are `ids` (the ids
        `add_events` was given), in the order of `ids`, each once: `{"id": <its id>,
        "document": <the event as stored>}`. An id the store lacks, or that is another
        establishment's, is left out: the caller says which were not found."""
        ...

    def detections_by_ids(self, establishment: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The same for detections."""
        ...

    def retro_hunt(
        self,
        rule: CompiledRule,
        *,
        since: datetime | None,
        until: datetime | None,
        establishment: str | None = None,
        limit: int = DEFAULT_HUNT_LIMIT,
    ) -> RetroHunt:
        """The stored events in `[since, until)` that `rule` selects, oldest first."""
        ...

    def purge(self, before: datetime) -> int:
        """Delete events and detections older than `before`; returns how many went."""
        ...

    def count(
        self,
        kind: Kind = "events",
        *,
        establishment: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """How many events (or detections) in `[since, until)`."""
        ...

    def close(self) -> None: ...


# --- shared by both stores ------------------------------------------------------------------


def check_ids(ids: Sequence[str] | None, documents: Sequence[Any]) -> None:
    if ids is not None and len(ids) != len(documents):
        raise ValueError(f"{len(ids)} ids for {len(documents)} documents")


def wanted_ids(ids: Sequence[str]) -> list[str]:
    """The ids asked for, each once, in their order (a lone string is a caller's mistake, not
    a list of one-character ids)."""
    if isinstance(ids, str):
        raise TypeError("ids: a sequence of ids, not one string")
    return list(dict.fromkeys(str(i) for i in ids))


def document_time(doc: Mapping[str, Any], index: int, key: str = "@timestamp") -> datetime:
    """The UTC time of a document, or `InvalidDocument`."""
    if not isinstance(doc, Mapping):
        raise InvalidDocument(index, f"not a JSON object: {type(doc).__name__}")
    ts = parse_timestamp(doc.get(key))
    if ts is None:
        raise InvalidDocument(index, f"no usable {key!r}: {doc.get(key)!r}")
    return ts.astimezone(UTC)


def stamped_event(doc: Mapping[str, Any], establishment: str, agent: str) -> dict[str, Any]:
    """The event as stored: the establishment and agent that sent it are the store's word,
    whatever the document claimed (an agent never writes into another establishment)."""
    out = dict(doc)
    organization = out.get("organization")
    out["organization"] = {**(organization if isinstance(organization, Mapping) else {})}
    out["organization"]["id"] = establishment
    agent_part = out.get("agent")
    out["agent"] = {**(agent_part if isinstance(agent_part, Mapping) else {})}
    out["agent"]["id"] = agent
    return out


def hit(
    rule_id: str, title: str, level: str, doc: Mapping[str, Any], establishment: str | None
) -> dict[str, Any]:
    """A retro-hunt hit in the shape of `Detection.to_dict()`."""
    ts = parse_timestamp(doc.get("@timestamp"))
    return {
        "engine": "sigma",
        "rule_id": rule_id,
        "rule_title": title,
        "level": level,
        "source": "retro-hunt",
        "timestamp": iso_utc(ts) if ts else doc.get("@timestamp"),
        "establishment": establishment,
        "event": dict(doc),
    }


def check_range(since: datetime | None, until: datetime | None) -> None:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware: {value!r}")
