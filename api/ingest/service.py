"""Ingestion: validate each item on its own, keep the valid ones, detect, never twice.

A batch id seen before answers with the first outcome and stores nothing (agents retry after
timeouts). A malformed item is rejected with its index and reason; the rest of the batch is
kept. Arriving events go through the server's Sigma rules and the indicators of published
alerts (correlation rules need streams and are left to the agents for now); detections, the
agent's and the server's, open or extend incidents.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from api.agents.models import as_utc, utcnow
from api.alerts.live import LiveRules
from api.db import transaction
from api.deps import Principal
from api.errors import Conflict, Invalid
from api.establishments.models import Establishment
from api.events.store import stamped_event
from api.incidents import service as incidents
from api.ingest.models import IngestedBatch
from api.ingest.schemas import Batch, BatchResult, Rejected
from detection.event import Event, parse_timestamp

MAX_EVENT_BYTES = 256 * 1024
STALE_CLAIM = timedelta(minutes=10)  # far beyond any batch's processing time
MAX_ITEMS = 50_000
_BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_DETECTION_FIELDS = ("engine", "rule_id", "rule_title", "level", "timestamp")
_LEVELS = {"informational", "low", "medium", "high", "critical"}


class Store(Protocol):
    def add_events(
        self,
        establishment: str,
        agent: str,
        events: list[dict[str, Any]],
        views: Sequence[Mapping[str, Any]] | None = None,
    ) -> int: ...

    def add_detections(self, establishment: str, detections: list[dict[str, Any]]) -> int: ...


def parse_batch(data: bytes) -> Batch:
    """The batch from its JSON, the envelope checked; items are checked one by one later.

    orjson and a hand check of the envelope rather than pydantic over the whole batch: the
    items are free-form objects, and validating 1,000 of them through a model costs a fifth
    of the route's time for nothing that the per-item checks do not do again.
    """
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"body is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise Invalid("the batch is a JSON object with batch_id, events, detections")
    batch_id = doc.get("batch_id")
    if not isinstance(batch_id, str) or not _BATCH_ID.match(batch_id):
        raise Invalid("batch_id: 8 to 64 characters among A-Z a-z 0-9 _ -")
    lists = {}
    for key in ("events", "detections"):
        items = doc.get(key, [])
        if not isinstance(items, list):
            raise Invalid(f"{key} is a list")
        if len(items) > MAX_ITEMS:
            raise Invalid(f"{key}: at most {MAX_ITEMS} per batch, got {len(items)}")
        lists[key] = items
    unknown = set(doc) - {"batch_id", "events", "detections"}
    if unknown:
        raise Invalid(f"unknown batch fields: {', '.join(sorted(unknown))}")
    return Batch.model_construct(
        batch_id=batch_id, events=lists["events"], detections=lists["detections"]
    )


class BatchInProgress(Conflict):
    code = "batch_in_progress"


def claim(sessions: sessionmaker[Session], batch_id: str, who: Principal) -> IngestedBatch | None:
    """Take `batch_id` for this request, in a transaction of its own (committed at once).

    Returns the earlier outcome when the batch was done before (the caller answers it as a
    duplicate); raises `BatchInProgress` while another request processes it. A claim older
    than `STALE_CLAIM` was abandoned (a crash mid-batch) and is taken over: some of its events
    may then be stored twice, which beats losing them.
    """
    now = utcnow()
    try:
        with transaction(sessions) as session:
            previous = session.get(IngestedBatch, batch_id)
            if previous is None:
                session.add(_row(batch_id, who, state="processing", received_at=now))
                return None
            if previous.agent != who.username:
                raise Invalid(f"batch id {batch_id} was used by another agent")
            if previous.state == "done":
                return previous
            if as_utc(previous.received_at) > now - STALE_CLAIM:
                raise BatchInProgress(f"batch {batch_id} is being processed; retry later")
            previous.received_at = now
            return None
    except IntegrityError as exc:  # another request claimed it between our read and write
        raise BatchInProgress(f"batch {batch_id} is being processed; retry later") from exc


def release(sessions: sessionmaker[Session], batch_id: str) -> None:
    """Give a claim back when processing failed, so that the agent's retry is processed."""
    with transaction(sessions) as session:
        session.execute(
            delete(IngestedBatch).where(
                IngestedBatch.batch_id == batch_id, IngestedBatch.state == "processing"
            )
        )


def ingest(
    *,
    session: Session,
    sessions: sessionmaker[Session],
    store: Store,
    live: LiveRules,
    who: Principal,
    batch: Batch,
) -> BatchResult:
    if who.establishment is None:
        raise Invalid("this agent belongs to no establishment")
    previous = claim(sessions, batch.batch_id, who)
    if previous is not None:
        return BatchResult(
            batch_id=batch.batch_id,
            duplicate=True,
            events_accepted=previous.events_accepted,
            detections_accepted=previous.detections_accepted,
            server_detections=previous.server_detections,
        )
    try:
        return _process(session, store, live, who, batch)
    except BaseException:
        # The request's own transaction rolls back as the error goes up; the claim was
        # committed apart and is given back here.
        release(sessions, batch.batch_id)
        raise


def _process(
    session: Session, store: Store, live: LiveRules, who: Principal, batch: Batch
) -> BatchResult:
    assert who.establishment is not None
    rejected: list[Rejected] = []
    events = _valid_events(batch.events, rejected)
    detections = _valid_detections(batch.detections, rejected)
    # Stamped here rather than in the store, so that Sigma sees the events as they are kept
    # and the store can keep the views Sigma computed instead of computing them again.
    events = [stamped_event(doc, who.establishment, who.username) for doc in events]
    parsed = _events(events, who)
    found = _detect(live, parsed)
    here = session.get(Establishment, who.establishment)
    if here is not None:  # an alert's rules apply where the alert is targeted only
        found = [d for d in found if live.meant_for(d["rule_id"], here.region, here.kind)]
    store.add_events(who.establishment, who.username, events, [e.sigma_view() for e in parsed])
    store.add_detections(who.establishment, detections + found)
    touched = incidents.open_from_detections(
        session=session, establishment=who.establishment, detections=detections + found
    )
    row = session.get(IngestedBatch, batch.batch_id)
    assert row is not None  # claimed above
    row.state = "done"
    row.events_accepted = len(events)
    row.detections_accepted = len(detections)
    row.rejected = len(rejected)
    row.server_detections = len(found)
    return BatchResult(
        batch_id=batch.batch_id,
        events_accepted=len(events),
        detections_accepted=len(detections),
        server_detections=len(found),
        incidents=len(touched),
        rejected=rejected,
    )


def _row(batch_id: str, who: Principal, *, state: str, received_at: datetime) -> IngestedBatch:
    return IngestedBatch(
        batch_id=batch_id,
        agent=who.username,
        establishment=who.establishment,
        received_at=received_at,
        events_accepted=0,
        detections_accepted=0,
        rejected=0,
        server_detections=0,
        state=state,
    )


def _valid_events(
    items: Sequence[dict[str, Any]], rejected: list[Rejected]
) -> list[dict[str, Any]]:
    good = []
    for index, item in enumerate(items):
        reason = _event_problem(item)
        if reason:
            rejected.append(Rejected(kind="event", index=index, reason=reason))
        else:
            good.append(item)
    return good


def _event_problem(item: Any) -> str | None:
    if not isinstance(item, dict):
        return "not a JSON object"
    if parse_timestamp(item.get("@timestamp")) is None:
        return "missing or unreadable @timestamp"
    if len(orjson.dumps(item)) > MAX_EVENT_BYTES:
        return f"event larger than {MAX_EVENT_BYTES} bytes"
    return None


def _valid_detections(
    items: Sequence[dict[str, Any]], rejected: list[Rejected]
) -> list[dict[str, Any]]:
    good = []
    for index, item in enumerate(items):
        missing = [f for f in _DETECTION_FIELDS if not isinstance(item, dict) or not item.get(f)]
        if not isinstance(item, dict):
            reason = "not a JSON object"
        elif missing:
            reason = f"missing {', '.join(missing)}"
        elif item["engine"] not in ("sigma", "yara", "indicator"):
            reason = f"unknown engine {item['engine']!r}"
        elif item["level"] not in _LEVELS:
            reason = f"unknown level {item['level']!r}"
        elif parse_timestamp(item["timestamp"]) is None:
            reason = "unreadable timestamp"
        else:
            good.append(item)
            continue
        rejected.append(Rejected(kind="detection", index=index, reason=reason))
    return good


def _events(docs: list[dict[str, Any]], who: Principal) -> list[Event]:
    events = []
    for doc in docs:
        fields = {k: v for k, v in doc.items() if k != "@timestamp"}
        ts = parse_timestamp(doc["@timestamp"])
        assert ts is not None  # checked by _event_problem
        events.append(Event(ts, fields, source=who.username, establishment=who.establishment))
    return events


def _detect(live: LiveRules, events: list[Event]) -> list[dict[str, Any]]:
    """Server-side detections: Sigma rules, then the indicators of published alerts."""
    engine, indicators = live.engines()
    found: list[dict[str, Any]] = []
    if engine is not None:
        # No lock: without a correlator, `match` keeps no state between events (its lazily
        # built buckets are the same whichever thread builds them; only its statistics may
        # miss a count), so one slow batch never holds up the other agents' batches.
        for event in events:
            found.extend(d.to_dict() for d in engine.match(event))
    if indicators is not None:
        found.extend(indicators.match(events))
    for out in found:
        out["origin"] = "server"
    return found
