"""Ingestion: validate each item on its own, keep the valid ones, detect, never twice.

A batch id seen before answers with the first outcome and stores nothing (agents retry after
timeouts); a batch is claimed before it is processed (`api.ingest.claims`). Every event and
detection gets a stable id, scoped to the agent: the agent's own (`event_ids`,
`detection_ids`: its spool gives each item one) or else the batch id and the item's place in
the batch; the event store never keeps one id twice, so a batch stored again after a crash
adds nothing, and what it would have added is counted (`duplicates`). A malformed item is
rejected with its index and reason; the rest of the batch is kept. Arriving events go
through the server's Sigma rules and the indicators of published alerts (correlation rules
need streams and are left to the agents for now); detections, the agent's and the server's,
open or extend incidents.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import orjson
from sqlalchemy.orm import Session, sessionmaker

from api.alerts.live import LiveRules
from api.deps import Principal
from api.errors import Invalid
from api.establishments.models import Establishment
from api.events.store import stamped_event
from api.incidents import service as incidents
from api.ingest.claims import STALE_CLAIM, BatchInProgress, ClaimOwner, claim, release
from api.ingest.items import detection_problem, event_problem
from api.ingest.models import IngestedBatch
from api.ingest.schemas import Batch, BatchResult, Rejected
from api.maturity.evidence import gather
from api.maturity.signals import observe, observe_detections
from detection.event import Event, parse_timestamp

__all__ = ["STALE_CLAIM", "BatchInProgress", "claim", "ingest", "parse_batch", "release"]

MAX_ITEMS = 50_000
_BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_ITEM_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")
_ID_LISTS = {"events": "event_ids", "detections": "detection_ids"}


class Store(Protocol):
    def add_events(
        self,
        establishment: str,
        agent: str,
        events: list[dict[str, Any]],
        views: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> int: ...

    def add_detections(
        self,
        establishment: str,
        detections: list[dict[str, Any]],
        ids: Sequence[str] | None = None,
    ) -> int: ...


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
    lists: dict[str, list[Any] | None] = {}
    for key in ("events", "detections"):
        items = doc.get(key, [])
        if not isinstance(items, list):
            raise Invalid(f"{key} is a list")
        if len(items) > MAX_ITEMS:
            raise Invalid(f"{key}: at most {MAX_ITEMS} per batch, got {len(items)}")
        lists[key] = items
        ids = doc.get(_ID_LISTS[key])
        if ids is not None and (not isinstance(ids, list) or len(ids) != len(items)):
            raise Invalid(f"{_ID_LISTS[key]} is a list of one id per item of {key}")
        lists[_ID_LISTS[key]] = ids
    unknown = set(doc) - {"batch_id", "events", "detections", *_ID_LISTS.values()}
    if unknown:
        raise Invalid(f"unknown batch fields: {', '.join(sorted(unknown))}")
    return Batch.model_construct(
        batch_id=batch_id,
        events=lists["events"],
        detections=lists["detections"],
        event_ids=lists["event_ids"],
        detection_ids=lists["detection_ids"],
    )


def ingest(
    *,
    session: Session,
    sessions: sessionmaker[Session],
    store: Store,
    live: LiveRules,
    who: Principal,
    batch: Batch,
    owner: ClaimOwner,
    evidence: bool = True,
) -> BatchResult:
    if who.establishment is None:
        raise Invalid("this agent belongs to no establishment")
    previous = claim(sessions, batch.batch_id, who, owner)
    if previous is not None:
        return BatchResult(
            batch_id=batch.batch_id,
            duplicate=True,
            events_accepted=previous.events_accepted,
            detections_accepted=previous.detections_accepted,
            server_detections=previous.server_detections,
            duplicates=previous.duplicates,
        )
    try:
        return _process(session, store, live, who, batch, evidence)
    except BaseException:
        # The request's own transaction rolls back as the error goes up; the claim was
        # committed apart and is given back here.
        release(sessions, batch.batch_id)
        raise


def _process(
    session: Session, store: Store, live: LiveRules, who: Principal, batch: Batch, evidence: bool
) -> BatchResult:
    assert who.establishment is not None
    rejected: list[Rejected] = []
    events, event_uids = _valid_events(batch, who.username, rejected)
    detections, detection_uids = _valid_detections(batch, who.username, rejected)
    # Stamped here rather than in the store, so that Sigma sees the events as they are kept
    # and the store can keep the views Sigma computed instead of computing them again.
    events = [stamped_event(doc, who.establishment, who.username) for doc in events]
    parsed = _events(events, who)
    sources = _detect(live, parsed)  # (the event's index, the detection)
    here = session.get(Establishment, who.establishment)
    region, kind = (here.region, here.kind) if here is not None else ("", "")
    # An alert's rules apply where the alert is targeted only, told apart by alert.
    sources = [
        (i, d)
        for i, d in sources
        if live.meant_for(d.get("meta", {}).get("alert_id"), region, kind)
    ]
    found = [d for _, d in sources]
    views = [e.sigma_view() for e in parsed]
    stored = store.add_events(who.establishment, who.username, events, views, event_uids)
    uids = detection_uids + _server_uids(sources, event_uids)
    stored += store.add_detections(who.establishment, detections + found, uids)
    if evidence:
        # Maturity evidence, in this transaction: a batch rolled back leaves none behind.
        seen = observe(views, [e.timestamp for e in parsed], event_uids, who.agent_id or "?")
        seen += observe_detections(detections + found, uids)
        gather(session, who.establishment, seen)
    touched = incidents.open_from_detections(
        session=session,
        establishment=who.establishment,
        detections=detections + found,
        # Campaigns span establishments: an agent's word for a rule the service does not
        # know it runs opens its own incidents but links no one else's.
        known=lambda rule_id: live.knows(rule_id, region, kind),
    )
    row = session.get(IngestedBatch, batch.batch_id)
    assert row is not None  # claimed above
    row.state = "done"
    row.events_accepted = len(events)
    row.detections_accepted = len(detections)
    row.rejected = len(rejected)
    row.server_detections = len(found)
    row.duplicates = len(events) + len(detections) + len(found) - stored
    return BatchResult(
        batch_id=batch.batch_id,
        events_accepted=len(events),
        detections_accepted=len(detections),
        server_detections=len(found),
        duplicates=row.duplicates,
        incidents=len(touched),
        rejected=rejected,
    )


def _item_ids(batch: Batch, kind: str, agent: str) -> list[str | None]:
    """Each item's stable id, scoped to the agent (another agent's ids never collide with its
    own): the agent's id for the item, or the batch id and the item's place (an agent's
    pending batch keeps its id and items across restarts). None: a malformed id."""
    given: list[Any] | None = getattr(batch, _ID_LISTS[kind], None)
    items = getattr(batch, kind)
    if given is None:
        return [f"{agent}/{batch.batch_id}/{kind[0]}{i}" for i in range(len(items))]
    return [
        f"{agent}/{uid}" if isinstance(uid, str) and _ITEM_ID.match(uid) else None for uid in given
    ]


def _server_uids(sources: list[tuple[int, dict[str, Any]]], event_uids: list[str]) -> list[str]:
    """Server detections' ids: the id of the event they came from, the rule, and a rank (the
    same events give the same detections again, whatever batch brings them)."""
    seen: dict[str, int] = {}
    uids = []
    for index, detection in sources:
        rule = hashlib.sha256(str(detection.get("rule_id")).encode()).hexdigest()[:16]
        key = f"{event_uids[index]}/s{rule}"
        seen[key] = seen.get(key, -1) + 1
        uids.append(f"{key}.{seen[key]}")
    return uids


_BAD_ID = "its id (event_ids, detection_ids) is not 1-80 characters among A-Z a-z 0-9 _ . : -"


def _valid_events(
    batch: Batch, agent: str, rejected: list[Rejected]
) -> tuple[list[dict[str, Any]], list[str]]:
    ids = _item_ids(batch, "events", agent)
    return _valid(batch.events, ids, "event", event_problem, rejected)


def _valid_detections(
    batch: Batch, agent: str, rejected: list[Rejected]
) -> tuple[list[dict[str, Any]], list[str]]:
    ids = _item_ids(batch, "detections", agent)
    return _valid(batch.detections, ids, "detection", detection_problem, rejected)


def _valid(
    items: Sequence[Any],
    ids: list[str | None],
    kind: str,
    problem: Callable[[Any], str | None],
    rejected: list[Rejected],
) -> tuple[list[dict[str, Any]], list[str]]:
    """The items without a problem (api/ingest/items.py) and their stable ids; the others
    rejected with theirs."""
    good, uids = [], []
    for index, item in enumerate(items):
        uid = ids[index]
        reason = problem(item) or (None if uid else _BAD_ID)
        if reason:
            rejected.append(Rejected(kind=kind, index=index, reason=reason))
        else:
            good.append(item)
            uids.append(str(uid))
    return good, uids


def _events(docs: list[dict[str, Any]], who: Principal) -> list[Event]:
    events = []
    for doc in docs:
        fields = {k: v for k, v in doc.items() if k != "@timestamp"}
        ts = parse_timestamp(doc["@timestamp"])
        assert ts is not None  # checked by event_problem
        events.append(Event(ts, fields, source=who.username, establishment=who.establishment))
    return events


def _detect(live: LiveRules, events: list[Event]) -> list[tuple[int, dict[str, Any]]]:
    """Server-side detections, each with the index of the event it came from: Sigma rules,
    then the indicators of published alerts."""
    engine, indicators = live.engines()
    found: list[tuple[int, dict[str, Any]]] = []
    if engine is not None:
        # No lock: without a correlator, `match` keeps no state between events (its lazily
        # built buckets are the same whichever thread builds them; only its statistics may
        # miss a count), so one slow batch never holds up the other agents' batches.
        for index, event in enumerate(events):
            found.extend((index, d.to_dict()) for d in engine.match(event))
    if indicators is not None:
        for index, event in enumerate(events):
            found.extend((index, d) for d in indicators.match_one(event))
    for _, out in found:
        out["origin"] = "server"
    return found
