"""Counts for the dashboard (national roles: everything; an establishment: its own).

Each call is audited as a read of `stats`: the question as the target, the filters as the
detail (the counts name no incident, so there are no ids to record).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.agents.models import utcnow
from api.audit.service import record_request
from api.deps import CurrentSettings, CurrentUser, RegionQuery, SessionDep, allow
from api.establishments.schemas import Kind
from api.incidents.filters import IncidentFilter, StatusFilter
from api.incidents.models import Severity
from api.incidents.routes import Since, Until
from api.roles import Role
from api.stats import service
from api.stats.schemas import By, IncidentGroups, IncidentSeries, Interval, Overview

router = APIRouter(prefix="/stats", tags=["stats"])
READERS = (Role.ESTABLISHMENT, Role.CERT, Role.AUDITOR, Role.ADMIN)
Establishment = Annotated[str | None, Query(max_length=11, description="FINESS")]
EstablishmentKind = Annotated[Kind | None, Query(description="the establishment's kind")]


@router.get("/overview", **allow(*READERS))
def get_overview(
    request: Request, session: SessionDep, who: CurrentUser, settings: CurrentSettings
) -> Overview:
    """The dashboard's headline counts in one call: open incidents by severity, NIS2
    deadlines overdue, open campaigns, alerts of the last 30 days and their acknowledgements,
    agents by state, establishments. An establishment gets its own (no campaigns)."""
    silent_after = timedelta(minutes=settings.agent_silent_minutes)
    found = service.overview(session=session, who=who, now=utcnow(), silent_after=silent_after)
    record_request(request, session, who, "read", "stats", "overview")
    return found


@router.get("/incidents", **allow(*READERS))
def get_incident_counts(
    request: Request,
    session: SessionDep,
    who: CurrentUser,
    by: Annotated[By, Query(description="region, kind: national roles only")],
    status: Annotated[
        StatusFilter | None, Query(description="a status, or open: new, acknowledged, contained")
    ] = None,
    severity: Severity | None = None,
    since: Since = None,
    until: Until = None,
    establishment: Establishment = None,
    region: RegionQuery = None,
    kind: EstablishmentKind = None,
) -> IncidentGroups:
    """Incidents counted per region, establishment kind, severity or status, every group
    present (0 when none). By region or kind each group also counts its establishments, and
    an establishment's account is refused (403: that compares establishments); by severity
    or status it counts its own incidents."""
    filters = IncidentFilter(
        establishment=establishment,
        region=region,
        kind=kind,
        status=status,
        severity=severity,
        since=since,
        until=until,
    )
    found = service.incident_groups(session=session, who=who, by=by, filters=filters)
    record_request(request, session, who, "read", "stats", f"incidents/{by}", filters.describe())
    return found


@router.get("/incidents/series", **allow(*READERS))
def get_incident_series(
    request: Request,
    session: SessionDep,
    who: CurrentUser,
    interval: Annotated[Interval, Query(description="day, or ISO week (from Monday)")] = "day",
    days: Annotated[int, Query(ge=1, le=366, description="how many days back")] = 90,
    end: Annotated[
        date | None, Query(description="the last day (Europe/Paris); absent: today")
    ] = None,
    establishment: Establishment = None,
    region: RegionQuery = None,
    kind: EstablishmentKind = None,
) -> IncidentSeries:
    """Incidents opened per day or week (Europe/Paris) by severity, and detections received,
    every bucket present (0 when none), oldest first."""
    filters = IncidentFilter(establishment=establishment, region=region, kind=kind)
    found = service.incident_series(
        session=session,
        who=who,
        interval=interval,
        days=days,
        now=utcnow(),
        end=end,
        filters=filters,
    )
    detail = f"interval={interval} days={days} end={found.end} {filters.describe()}".strip()
    record_request(request, session, who, "read", "stats", "incidents/series", detail)
    return found
