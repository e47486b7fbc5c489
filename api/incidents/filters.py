"""Which incidents a list, a count or a deadline query is about: one filter, the caller's scope
included, turned into SQL conditions the same way everywhere (`service.page`, `deadlines.py`,
`api.stats`).

NIS2 deadlines in SQL also live here (`overdue`, `next_due`): they read the due dates the
model stores with each incident (`Incident._aware`), which `nis2.py` computes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import ColumnElement, and_, case, or_, select

from api.deps import Principal
from api.errors import Invalid
from api.establishments.models import Establishment
from api.incidents import nis2
from api.incidents.models import OPEN, Incident

# A status, or "open": new, acknowledged or contained.
StatusFilter = Literal["open", "new", "acknowledged", "contained", "resolved", "closed"]


@dataclass(frozen=True)
class IncidentFilter:
    """What the caller asked for; `conditions(who)` adds what the caller may see."""

    establishment: str | None = None  # FINESS
    region: str | None = None  # the establishment's
    kind: str | None = None  # the establishment's (CHU, CH, clinic, ...)
    status: str | None = None  # a Status, or "open" (new, acknowledged, contained)
    severity: str | None = None
    since: datetime | None = None  # created_at >= since
    until: datetime | None = None  # created_at < until

    def __post_init__(self) -> None:
        since, until = self.since, self.until
        if since is not None:
            object.__setattr__(self, "since", utc(since, "since"))
        if until is not None:
            object.__setattr__(self, "until", utc(until, "until"))
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise Invalid("since must be before until")

    def conditions(self, who: Principal) -> list[ColumnElement[bool]]:
        """On `Incident` alone (the establishment's region and kind through a subquery)."""
        out: list[ColumnElement[bool]] = []
        if who.scope is not None:  # an establishment: its own only, whatever it asks
            out.append(Incident.establishment_finess == who.scope)
        if self.establishment:
            out.append(Incident.establishment_finess == self.establishment.strip().upper())
        if self.region is not None or self.kind is not None:
            wanted = select(Establishment.finess).where(*self.of_establishment(finess=False))
            out.append(Incident.establishment_finess.in_(wanted))
        return out + self.of_incident()

    def of_establishment(self, *, finess: bool = True) -> list[ColumnElement[bool]]:
        """On `Establishment`: which establishments (for counts grouped by them; `finess`
        False: by region and kind only, for a subquery whose caller matches the FINESS)."""
        out: list[ColumnElement[bool]] = []
        if finess and self.establishment:
            out.append(Establishment.finess == self.establishment.strip().upper())
        if self.region is not None:
            out.append(Establishment.region == self.region)
        if self.kind is not None:
            out.append(Establishment.kind == self.kind)
        return out

    def of_incident(self) -> list[ColumnElement[bool]]:
        """On `Incident`'s own columns: status, severity, period."""
        out: list[ColumnElement[bool]] = []
        if self.status == "open":
            out.append(Incident.status.in_(OPEN))
        elif self.status is not None:
            out.append(Incident.status == self.status)
        if self.severity is not None:
            out.append(Incident.severity == self.severity)
        if self.since is not None:
            out.append(Incident.created_at >= self.since)
        if self.until is not None:
            out.append(Incident.created_at < self.until)
        return out

    def describe(self) -> str:
        """The filters asked for, for the audit log ("" for none)."""
        parts = []
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None:
                shown = value.isoformat() if isinstance(value, datetime) else str(value)
                parts.append(f"{field.name}={shown}")
        return " ".join(parts)


def utc(moment: datetime, name: str) -> datetime:
    """A time from a query in UTC (SQLite compares the digits, not the instant); naive
    times are refused."""
    if moment.tzinfo is None:
        raise Invalid(f"{name} needs a time zone, e.g. 2026-01-01T00:00:00+01:00")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise Invalid(f"{name} is outside the calendar once in UTC") from None


# --- NIS2 deadlines in SQL --------------------------------------------------------------------


def due(kind: str) -> ColumnElement[datetime]:
    column: ColumnElement[datetime] = getattr(Incident, f"{kind}_due")
    return column


def done(kind: str) -> ColumnElement[datetime | None]:
    column: ColumnElement[datetime | None] = getattr(Incident, f"{kind}_at")
    return column


def overdue(kind: str, now: datetime) -> ColumnElement[bool]:
    """`nis2.Deadline.overdue`: passed and not sent, for a notifiable incident."""
    return and_(Incident.notifiable.is_(True), done(kind).is_(None), due(kind) < now)


def any_overdue(now: datetime) -> ColumnElement[bool]:
    return or_(*(overdue(kind, now) for kind in nis2.KINDS))


def next_due() -> ColumnElement[datetime | None]:
    """When the next report not yet sent is due (NULL: none, or not notifiable). The kinds
    fall due in their order (24 h, 72 h, a month), so the first unsent is the soonest."""
    notifiable = Incident.notifiable.is_(True)
    return case(
        *((and_(notifiable, done(kind).is_(None)), due(kind)) for kind in nis2.KINDS),
        else_=None,
    )
