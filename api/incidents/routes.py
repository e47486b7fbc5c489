"""Incidents (an establishment: its own; the CERT: all; auditors: read) and campaigns (the
CERT only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime
from sqlalchemy.orm import Session

from api.agents.models import utcnow
from api.audit.service import record_list
from api.audit.service import record_request as _audit
from api.deps import CurrentUser, Offset, Principal, RegionQuery, SessionDep, allow
from api.establishments.schemas import Kind
from api.incidents import deadlines, service
from api.incidents.filters import IncidentFilter, StatusFilter
from api.incidents.models import Campaign, Incident, Severity
from api.incidents.schemas import (
    CampaignRead,
    CampaignUpdate,
    Comment,
    DeadlineKind,
    DeadlinePage,
    DeadlineRead,
    DeadlineState,
    IncidentDeclare,
    IncidentDetail,
    IncidentPage,
    IncidentRead,
    IncidentUpdate,
    ReportSent,
    StatusChange,
    TimelineRead,
)
from api.roles import Role

router = APIRouter(tags=["incidents"])
READERS = (Role.ESTABLISHMENT, Role.CERT, Role.AUDITOR, Role.ADMIN)
WRITERS = (Role.ESTABLISHMENT, Role.CERT, Role.ADMIN)  # an establishment: its own only
NATIONAL = (Role.CERT, Role.ADMIN)


def incident_read(incident: Incident, who: Principal) -> IncidentRead:
    """What `who` may read of an incident (the dashboard shows the same)."""
    now = utcnow()
    deadlines = [
        DeadlineRead(kind=d.kind, due=d.due, done_at=d.done_at, overdue=d.overdue(now), met=d.met)
        for d in service.deadlines(incident)
    ]
    return IncidentRead(
        id=incident.id,
        establishment=incident.establishment_finess,
        origin=incident.origin,
        title=incident.title,
        category=incident.category,
        severity=incident.severity,
        status=incident.status,
        care_impact=incident.care_impact,
        personal_data=incident.personal_data,
        description=incident.description,
        affected_systems=incident.affected_systems,
        started_at=incident.started_at,
        aware_at=incident.aware_at,
        created_by=incident.created_by,
        created_at=incident.created_at,
        updated_at=incident.updated_at,
        rule_id=incident.rule_id,
        host=incident.host,
        first_seen=incident.first_seen,
        last_seen=incident.last_seen,
        detection_count=incident.detection_count,
        notifiable=incident.notifiable,
        deadlines=deadlines,
        overdue=[d.kind for d in deadlines if d.overdue],
        # Campaigns are the CERT's view: an establishment does not learn who else was hit.
        campaign_id=incident.campaign_id if who.scope is None else None,
    )


def incident_detail(session: Session, incident: Incident, who: Principal) -> IncidentDetail:
    entries = service.timeline(session=session, incident=incident)
    return IncidentDetail(
        **incident_read(incident, who).model_dump(),
        timeline=[TimelineRead.model_validate(e, from_attributes=True) for e in entries],
        sample=incident.sample,
    )


Since = Annotated[
    AwareDatetime | None, Query(description="created at or after this time (with its zone)")
]
Until = Annotated[AwareDatetime | None, Query(description="created before this time")]


@router.get("/incidents", **allow(*READERS))
def list_incidents(
    request: Request,
    session: SessionDep,
    who: CurrentUser,
    establishment: Annotated[str | None, Query(max_length=11, description="FINESS")] = None,
    region: RegionQuery = None,
    kind: Annotated[Kind | None, Query(description="the establishment's kind")] = None,
    status: Annotated[
        StatusFilter | None, Query(description="a status, or open: new, acknowledged, contained")
    ] = None,
    severity: Severity | None = None,
    overdue: Annotated[bool | None, Query(description="NIS2 deadline passed")] = None,
    campaign: Annotated[str | None, Query(max_length=36, description="CERT only")] = None,
    since: Since = None,
    until: Until = None,
    sort: Annotated[
        service.Sort,
        Query(
            description="updated, created, last_seen: latest first; severity: critical "
            "first; due: the next NIS2 report due soonest first (overdue first)"
        ),
    ] = "updated",
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> IncidentPage:
    """The period (`since`, `until`) is on `created_at`, when the service opened the
    incident (for a declared one: when it was declared, not `aware_at`)."""
    items, total = service.page(
        session=session,
        who=who,
        establishment=establishment,
        region=region,
        kind=kind,
        status=status,
        severity=severity,
        since=since,
        until=until,
        overdue=overdue,
        campaign=campaign,
        sort=sort,
        offset=offset,
        limit=limit,
    )
    record_list(
        request, session, who, "incident", f"{establishment or '*'}/*", (i.id for i in items)
    )
    return IncidentPage(items=[incident_read(i, who) for i in items], total=total)


@router.get("/deadlines", **allow(*READERS))
def list_deadlines(
    request: Request,
    session: SessionDep,
    who: CurrentUser,
    open_only: Annotated[
        bool | None, Query(alias="open", description="true: not sent yet; false: sent")
    ] = None,
    state: Annotated[DeadlineState | None, Query(description="pending, late or met")] = None,
    deadline: Annotated[
        DeadlineKind | None, Query(description="early_warning, notification or final_report")
    ] = None,
    establishment: Annotated[str | None, Query(max_length=11, description="FINESS")] = None,
    region: RegionQuery = None,
    kind: Annotated[Kind | None, Query(description="the establishment's kind")] = None,
    sort: Annotated[deadlines.Sort, Query(description="due: open first, soonest due")] = "due",
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeadlinePage:
    """The NIS2 reports of notifiable incidents, one row per report: the open ones first,
    soonest due first (so the overdue ones lead, most overdue first), then those sent. An
    establishment gets its own only."""
    del sort  # one order so far
    filters = IncidentFilter(establishment=establishment, region=region, kind=kind)
    items, total = deadlines.page(
        session=session,
        who=who,
        now=utcnow(),
        filters=filters,
        deadline=deadline,
        open_only=open_only,
        state=state,
        offset=offset,
        limit=limit,
    )
    ids = dict.fromkeys(i.incident_id for i in items)  # each incident once, in order
    record_list(request, session, who, "incident", f"deadlines/{establishment or '*'}", ids)
    return DeadlinePage(items=items, total=total)


@router.post("/incidents", status_code=201, **allow(*WRITERS))
def declare_incident(
    body: IncidentDeclare, request: Request, session: SessionDep, who: CurrentUser
) -> IncidentDetail:
    """Declare an incident with the fields of the national health-incident report."""
    incident = service.declare(session=session, who=who, data=body)
    _audit(request, session, who, "create", "incident", incident.id)
    return incident_detail(session, incident, who)


@router.get("/incidents/{incident_id}", **allow(*READERS))
def get_incident(
    incident_id: str, request: Request, session: SessionDep, who: CurrentUser
) -> IncidentDetail:
    incident = service.get(session=session, who=who, incident_id=incident_id)
    _audit(request, session, who, "read", "incident", incident.id)
    return incident_detail(session, incident, who)


@router.patch("/incidents/{incident_id}", **allow(*WRITERS))
def update_incident(
    incident_id: str, body: IncidentUpdate, request: Request, session: SessionDep, who: CurrentUser
) -> IncidentDetail:
    incident = service.update(session=session, who=who, incident_id=incident_id, data=body)
    _audit(request, session, who, "update", "incident", incident.id)
    return incident_detail(session, incident, who)


@router.post("/incidents/{incident_id}/status", **allow(*WRITERS))
def change_incident_status(
    incident_id: str, body: StatusChange, request: Request, session: SessionDep, who: CurrentUser
) -> IncidentDetail:
    incident = service.change_status(session=session, who=who, incident_id=incident_id, data=body)
    _audit(request, session, who, "update", "incident", incident.id)
    return incident_detail(session, incident, who)


@router.post("/incidents/{incident_id}/comments", status_code=201, **allow(*WRITERS))
def comment_incident(
    incident_id: str, body: Comment, request: Request, session: SessionDep, who: CurrentUser
) -> IncidentDetail:
    incident = service.comment(session=session, who=who, incident_id=incident_id, text=body.text)
    _audit(request, session, who, "update", "incident", incident.id)
    return incident_detail(session, incident, who)


@router.post("/incidents/{incident_id}/reports", **allow(*WRITERS))
def record_report(
    incident_id: str, body: ReportSent, request: Request, session: SessionDep, who: CurrentUser
) -> IncidentDetail:
    """Record that a NIS2 report (early warning, notification, final report) was sent."""
    incident = service.report_sent(session=session, who=who, incident_id=incident_id, data=body)
    _audit(request, session, who, "update", "incident", incident.id)
    return incident_detail(session, incident, who)


def campaign_read(campaign: Campaign, members: list[Incident]) -> CampaignRead:
    """A campaign as the API and the dashboard show it."""
    return CampaignRead(
        id=campaign.id,
        rule_id=campaign.rule_id,
        title=campaign.title,
        status=campaign.status,
        first_seen=campaign.first_seen,
        last_seen=campaign.last_seen,
        created_at=campaign.created_at,
        establishments=sorted({i.establishment_finess for i in members}),
        incidents=[i.id for i in members],
    )


@router.get("/campaigns", **allow(*NATIONAL))
def list_campaigns(request: Request, session: SessionDep, who: CurrentUser) -> list[CampaignRead]:
    found = service.list_campaigns(session=session)
    record_list(request, session, who, "campaign", "*", (c.id for c, _ in found))
    return [campaign_read(c, m) for c, m in found]


@router.get("/campaigns/{campaign_id}", **allow(*NATIONAL))
def get_campaign(
    campaign_id: str, request: Request, session: SessionDep, who: CurrentUser
) -> CampaignRead:
    campaign, members = service.get_campaign(session=session, campaign_id=campaign_id)
    _audit(request, session, who, "read", "campaign", campaign.id)
    return campaign_read(campaign, members)


@router.patch("/campaigns/{campaign_id}", **allow(*NATIONAL))
def update_campaign(
    campaign_id: str, body: CampaignUpdate, request: Request, session: SessionDep, who: CurrentUser
) -> CampaignRead:
    campaign, members = service.update_campaign(
        session=session, campaign_id=campaign_id, title=body.title, status=body.status
    )
    _audit(request, session, who, "update", "campaign", campaign.id)
    return campaign_read(campaign, members)
