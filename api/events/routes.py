"""Stored events and detections read back by their stable ids: what maturity evidence links
to (`/establishments/{finess}/events?ids=...`). An establishment reads its own (another's
answers 404, as an absent one); the CERT, auditors and admins any. Agents do not read back.
Every read is in the audit log with the ids it answered."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api.audit.service import record_list
from api.deps import CurrentUser, SessionDep, allow
from api.errors import Invalid
from api.establishments import service as establishments
from api.events.schemas import DetectionsByIds, EventsByIds, StoredDocument
from api.events.store import EventStore
from api.roles import Role

router = APIRouter(tags=["events"])
READERS = (Role.ESTABLISHMENT, Role.CERT, Role.AUDITOR, Role.ADMIN)
MAX_IDS = 100
MAX_ID_LENGTH = 200  # ingestion's ids: "agent:<uuid>/<item id, <= 80>[/s<rule>.<n>]"
# The characters of ingestion's ids (api/ingest/service.py): anything else was never stored.
_ID = re.compile(rf"^[A-Za-z0-9_.:/-]{{1,{MAX_ID_LENGTH}}}$")

Ids = Annotated[
    str,
    Query(
        min_length=1,
        max_length=MAX_IDS * (MAX_ID_LENGTH + 1),
        description=f"comma-separated stable ids, at most {MAX_IDS}",
    ),
]


def parse_ids(text: str) -> list[str]:
    """The ids of `?ids=a,b,c`, each once, in order; refused (422) beyond `MAX_IDS` or when
    one cannot be an id."""
    given = [part.strip() for part in text.split(",") if part.strip()]
    if not given:
        raise Invalid("ids: no id given")
    if len(given) > MAX_IDS:
        raise Invalid(f"ids: {len(given)} given, at most {MAX_IDS} at a time")
    bad = next((i for i in given if not _ID.match(i)), None)
    if bad is not None:
        raise Invalid(
            f"ids: {bad[:40]!r} is not an id (1-{MAX_ID_LENGTH} of A-Z a-z 0-9 _ . : / -)"
        )
    return list(dict.fromkeys(given))


def _store(request: Request) -> EventStore:
    store: EventStore = request.app.state.event_store
    return store


def _missing(wanted: list[str], found: list[dict[str, Any]]) -> list[str]:
    have = {d["id"] for d in found}
    return [i for i in wanted if i not in have]


@router.get("/establishments/{finess}/events", **allow(*READERS))
def events_by_ids(
    finess: str, ids: Ids, request: Request, session: SessionDep, who: CurrentUser
) -> EventsByIds:
    """The establishment's events with these ids; the ids it has not are listed in `missing`."""
    wanted = parse_ids(ids)
    finess = establishments.get(session=session, who=who, finess=finess).finess
    found = _store(request).events_by_ids(finess, wanted)
    record_list(request, session, who, "event", finess, (d["id"] for d in found))
    return EventsByIds(
        finess=finess,
        events=[StoredDocument(**d) for d in found],
        missing=_missing(wanted, found),
    )


@router.get("/establishments/{finess}/detections", **allow(*READERS))
def detections_by_ids(
    finess: str, ids: Ids, request: Request, session: SessionDep, who: CurrentUser
) -> DetectionsByIds:
    """The establishment's detections with these ids; the others are listed in `missing`."""
    wanted = parse_ids(ids)
    finess = establishments.get(session=session, who=who, finess=finess).finess
    found = _store(request).detections_by_ids(finess, wanted)
    record_list(request, session, who, "detection", finess, (d["id"] for d in found))
    return DetectionsByIds(
        finess=finess,
        detections=[StoredDocument(**d) for d in found],
        missing=_missing(wanted, found),
    )
