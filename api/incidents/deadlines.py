"""NIS2 deadlines as a list of their own: each report (early warning, notification, final
report) of each notifiable incident is one row, sorted and paged by the database.

The three reports are three pairs of columns of an incident (`<kind>_due`, `<kind>_at`):
a UNION ALL of one SELECT per kind makes them rows, so that "soonest first" is one ORDER BY
across kinds and incidents. Open rows (not sent) come first, by due date: the overdue ones,
most overdue first, then the soonest.

A deadline stays open after its incident is resolved or closed, as in `service.overdue_kinds`:
the report is owed all the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Subquery,
    and_,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from api.agents.models import as_utc
from api.deps import Principal
from api.establishments.models import Establishment
from api.incidents import nis2
from api.incidents.filters import IncidentFilter, done, due
from api.incidents.models import Incident
from api.incidents.schemas import DeadlineItem, DeadlineKind, DeadlineState

Sort = Literal["due"]


def page(
    *,
    session: Session,
    who: Principal,
    now: datetime,
    filters: IncidentFilter | None = None,
    deadline: DeadlineKind | None = None,
    open_only: bool | None = None,
    state: DeadlineState | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[DeadlineItem], int]:
    """The deadlines of the notifiable incidents `who` may see. `open_only`: true, not sent
    yet; false, sent. `state`: as `DeadlineItem.state` says, at `now`."""
    conditions = (filters or IncidentFilter()).conditions(who)
    parts = []
    for ordinal, kind in enumerate(nis2.KINDS):
        if deadline is not None and kind != deadline:
            continue
        part = select(
            Incident.id.label("incident_id"),
            literal(kind).label("deadline"),
            literal(ordinal).label("ordinal"),
            due(kind).label("due"),
            done(kind).label("done_at"),
        ).where(Incident.notifiable.is_(True), *conditions)
        if open_only is not None:
            part = part.where(done(kind).is_(None) if open_only else done(kind).is_not(None))
        if state is not None:
            part = part.where(_in_state(kind, state, now))
        parts.append(part)
    rows = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("deadlines")
    total = session.scalar(select(func.count()).select_from(rows)) or 0
    # The page is chosen from the deadlines alone (read from the indexes of reports not
    # sent, `ix_incidents_<report>_open`), then joined: joined first, every deadline's
    # incident and establishment were read to sort them.
    chosen = select(rows).order_by(*_order(rows)).offset(offset).limit(limit).subquery("chosen")
    found = session.execute(_joined(chosen).order_by(*_order(chosen))).all()
    return [_item(row, now) for row in found], total


def _order(rows: Subquery) -> tuple[Any, ...]:
    """Open (not sent) first, then by due date; ties in a stable order."""
    return (rows.c.done_at.is_not(None), rows.c.due, rows.c.incident_id, rows.c.ordinal)


def _in_state(kind: str, state: DeadlineState, now: datetime) -> ColumnElement[bool]:
    sent, due_at = done(kind), due(kind)
    if state == "pending":
        return and_(sent.is_(None), due_at >= now)
    if state == "met":
        return and_(sent.is_not(None), sent <= due_at)
    return or_(and_(sent.is_(None), due_at < now), and_(sent.is_not(None), sent > due_at))


def _joined(rows: Subquery) -> Select[Any]:
    return (
        select(
            rows.c.incident_id,
            rows.c.deadline,
            rows.c.due,
            rows.c.done_at,
            Incident.title,
            Incident.status,
            Incident.severity,
            Establishment.finess,
            Establishment.name,
            Establishment.region,
            Establishment.kind,
        )
        .join(Incident, Incident.id == rows.c.incident_id)
        .join(Establishment, Establishment.finess == Incident.establishment_finess)
    )


def _item(row: Row[Any], now: datetime) -> DeadlineItem:
    report = nis2.Deadline(
        row.deadline, as_utc(row.due), as_utc(row.done_at) if row.done_at else None
    )
    late = report.overdue(now) or report.met is False
    return DeadlineItem(
        incident_id=row.incident_id,
        title=row.title,
        status=row.status,
        severity=row.severity,
        establishment=row.finess,
        establishment_name=row.name,
        region=row.region,
        kind=row.kind,
        deadline=row.deadline,
        due=report.due,
        done_at=report.done_at,
        state="met" if report.met else "late" if late else "pending",
        overdue=report.overdue(now),
    )
