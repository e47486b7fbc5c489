"""The dashboard's pages. Each states its roles (`viewer(...)`) and calls the same service
functions as the JSON route it mirrors, with the same principal, then audits the read the same
way: what a page shows is exactly what its user may read through the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from api.agents import service as agent_service
from api.agents.models import Agent, as_utc, utcnow
from api.agents.schemas import AgentRead
from api.alerts import routes as alert_routes
from api.alerts import service as alert_service
from api.audit.routes import AuditFilter
from api.audit.routes import count as audit_count
from api.audit.routes import entries as audit_entries
from api.audit.service import record_list, record_request
from api.deps import Principal, RegionQuery, SessionDep
from api.errors import VigieServiceError
from api.establishments.finess import Region
from api.establishments.schemas import Kind
from api.incidents import deadlines as deadline_list
from api.incidents import service as incidents
from api.incidents.filters import IncidentFilter, StatusFilter
from api.incidents.models import Severity, Status
from api.incidents.routes import READERS, WRITERS, incident_detail, incident_read
from api.incidents.schemas import Comment, StatusChange
from api.maturity import peers, snapshots
from api.maturity.framework import default as maturity_framework
from api.maturity.routes import maturity_read
from api.roles import Role
from api.stats import service as stats
from api.stats.schemas import Overview
from api.web import map as region_map
from api.web.deps import Viewer, viewer
from api.web.export import csv_response
from api.web.render import PARIS, SEVERITIES, STATUSES, page, paris

router = APIRouter(prefix="/ui", include_in_schema=False)

Reader = Annotated[Viewer, Depends(viewer(*READERS))]
Writer = Annotated[Viewer, Depends(viewer(*WRITERS))]
PAGE_SIZE = 50


def roles(*names: Any) -> dict[str, Any]:
    return {"openapi_extra": {"x-roles": [str(n) for n in names]}}


@router.get("/", **roles(*READERS))
def home(request: Request, session: SessionDep, v: Reader) -> Response:
    """Every reader: their home (the national overview, or their establishment's)."""
    if v.who.scope is None:
        return _national(request, session, v)
    return _establishment_home(request, session, v)


def _filters(request: Request) -> dict[str, str]:
    keep = ("establishment", "region", "kind", "status", "severity", "overdue", "campaign")
    return {k: request.query_params[k] for k in keep if request.query_params.get(k)}


Finess = Annotated[str | None, Query(max_length=11)]


@dataclass(frozen=True)
class IncidentQuery:
    """The incident list's filters, as the page and its CSV read them from the query."""

    establishment: Finess = None
    region: RegionQuery = None
    kind: Kind | None = None
    status: StatusFilter | None = None
    severity: Severity | None = None
    overdue: bool | None = None

    def page(self, session: Session, who: Principal, offset: int, limit: int,
             campaign: str | None = None) -> tuple[list[Any], int]:  # fmt: skip
        return incidents.page(session=session, who=who, **vars(self),
                              campaign=campaign if who.scope is None else None,
                              offset=offset, limit=limit)  # fmt: skip


Filters = Annotated[IncidentQuery, Depends()]


@router.get("/incidents", **roles(*READERS))
def incident_list(
    request: Request,
    session: SessionDep,
    v: Reader,
    query: Filters,
    campaign: Annotated[str | None, Query(max_length=36)] = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> HTMLResponse:
    """Every reader: incidents, filtered and paginated (an establishment: its own)."""
    items, total = query.page(session, v.who, offset, PAGE_SIZE, campaign)
    record_list(request, session, v.who, "incident", f"{query.establishment or '*'}/*",
                (i.id for i in items))  # fmt: skip
    return page(
        request,
        "incidents.html",
        {
            "v": v,
            "items": [incident_read(i, v.who) for i in items],
            "total": total,
            "offset": offset,
            "size": PAGE_SIZE,
            "filters": _filters(request),
            "statuses": ["open", *(s.value for s in Status)],
            "severities": list(Severity),
            "regions": [str(r) for r in Region],
            "kinds": [str(k) for k in Kind],
        },
    )


@router.get("/incidents.csv", **roles(*READERS))
def incident_csv(request: Request, session: SessionDep, v: Reader, query: Filters) -> Response:
    """Every reader: the filtered list as CSV, every row (at most 100,000)."""
    items, _ = query.page(session, v.who, 0, 100_000)
    record_list(request, session, v.who, "incident", f"{query.establishment or '*'}/* (csv)",
                (i.id for i in items))  # fmt: skip
    reads = [incident_read(i, v.who) for i in items]
    return csv_response(
        "incidents.csv",
        ["id", "finess", "titre", "sévérité", "statut", "notifiable", "ouvert le (Paris)",
         "échéances dépassées"],
        ([r.id, r.establishment, r.title, r.severity, STATUSES.get(r.status, r.status),
          "oui" if r.notifiable else "non", paris(r.created_at), " ".join(r.overdue)]
         for r in reads),
    )  # fmt: skip


@router.get("/incidents/{incident_id}", **roles(*READERS))
def incident_page(
    incident_id: Annotated[str, Path(max_length=36)],
    request: Request,
    session: SessionDep,
    v: Reader,
    error: str | None = None,
) -> HTMLResponse:
    """Every reader: one incident, its timeline first (an establishment: its own only)."""
    incident = incidents.get(session=session, who=v.who, incident_id=incident_id)
    record_request(request, session, v.who, "read", "incident", incident.id)
    detail = incident_detail(session, incident, v.who)
    can_write = v.who.role in {str(r) for r in WRITERS}
    return page(
        request,
        "incident.html",
        {
            "v": v,
            "i": detail,
            "can_write": can_write,
            "next_statuses": _next_statuses(detail.status) if can_write else [],
            "error": error,
        },
    )


def _next_statuses(current: str) -> list[str]:
    order = [s.value for s in Status]
    if current == Status.CLOSED:
        return []
    later = order[order.index(current) + 1 :]
    return (["acknowledged"] if current == Status.RESOLVED else []) + later


@router.post("/incidents/{incident_id}/status", **roles(*WRITERS))
def incident_status(
    incident_id: Annotated[str, Path(max_length=36)],
    request: Request,
    session: SessionDep,
    v: Writer,
    status: Annotated[Status, Form()],
    comment: Annotated[str, Form(max_length=5_000)] = "",
) -> Response:
    """CERT, admin, an establishment (its own): moves the incident along its workflow."""
    try:
        change = StatusChange(status=status, comment=comment)
        incident = incidents.change_status(
            session=session, who=v.who, incident_id=incident_id, data=change
        )
    except VigieServiceError as exc:
        if exc.status == 404:
            raise
        return _back(incident_id, exc.detail)
    record_request(request, session, v.who, "update", "incident", incident.id,
                   f"status={incident.status}")  # fmt: skip
    return _back(incident_id)


@router.post("/incidents/{incident_id}/comments", **roles(*WRITERS))
def incident_comment(
    incident_id: Annotated[str, Path(max_length=36)],
    request: Request,
    session: SessionDep,
    v: Writer,
    text: Annotated[str, Form(min_length=1, max_length=5_000)],
) -> Response:
    """CERT, admin, an establishment (its own): adds a comment to the timeline."""
    incident = incidents.comment(
        session=session, who=v.who, incident_id=incident_id, text=Comment(text=text).text
    )
    record_request(request, session, v.who, "update", "incident", incident.id, "comment")
    return _back(incident_id)


def _back(incident_id: str, error: str | None = None) -> Response:
    target = f"/ui/incidents/{incident_id}"
    if error:
        from urllib.parse import quote

        target += f"?error={quote(error[:300])}"
    return RedirectResponse(target, status_code=303)


# --- homes -------------------------------------------------------------------------------------

NATIONAL_READERS = (Role.CERT, Role.AUDITOR, Role.ADMIN)
DEADLINES = {
    "early_warning": "Alerte précoce (24 h)",
    "notification": "Notification (72 h)",
    "final_report": "Rapport final (1 mois)",
}


def _overview_counts(request: Request, session: Session, who: Principal) -> Overview:
    settings = request.app.state.settings
    silent_after = timedelta(minutes=settings.agent_silent_minutes)
    found = stats.overview(session=session, who=who, now=utcnow(), silent_after=silent_after)
    record_request(request, session, who, "read", "stats", "overview")
    return found


@router.get("/panels/kpis", **roles(*READERS))
def kpis(request: Request, session: SessionDep, v: Reader) -> HTMLResponse:
    """Every reader: the headline counts (htmx refreshes them every minute)."""
    return page(
        request, "partials/kpis.html", {"v": v, "o": _overview_counts(request, session, v.who)}
    )


def _national(request: Request, session: Session, v: Viewer) -> HTMLResponse:
    who = v.who
    o = _overview_counts(request, session, who)
    opened = IncidentFilter(status="open")
    regions = stats.incident_groups(session=session, who=who, by="region", filters=opened)
    record_request(request, session, who, "read", "stats", "incidents/region", opened.describe())
    counts = {g.key: g.incidents for g in regions.groups}
    svg = region_map.svg(
        counts,
        lambda name: f"/ui/incidents?region={quote(name)}&status=open",
        what="incidents ouverts",
        what_one="incident ouvert",
    )
    series = stats.incident_series(session=session, who=who, interval="day", days=90, now=utcnow())
    record_request(
        request, session, who, "read", "stats", "incidents/series", "interval=day days=90"
    )
    chart = {
        "x": [int(b.since.timestamp()) for b in series.buckets],
        "series": [
            {"label": SEVERITIES[s], "values": [b.incidents.get(s, 0) for b in series.buckets]}
            for s in SEVERITIES
        ],
    }
    due, due_total = deadline_list.page(
        session=session, who=who, now=utcnow(), open_only=True, offset=0, limit=10
    )
    record_list(request, session, who, "incident", "deadlines/*",
                dict.fromkeys(d.incident_id for d in due))  # fmt: skip
    day = utcnow().date()
    maturity = peers.stats(session, maturity_framework().version, day, "kind")
    record_request(request, session, who, "read", "maturity_stats", "kind", day.isoformat())
    groups = maturity["groups"] if maturity["national"]["count"] else []
    return page(
        request,
        "overview.html",
        {
            "v": v,
            "o": o,
            "regions": regions,
            "map_svg": svg,
            "legend": region_map.legend(counts),
            "credit": region_map.credit(),
            "series": series,
            "chart": chart,
            "deadlines": due,
            "deadlines_total": due_total,
            "DEADLINES": DEADLINES,
            "maturity": groups,
            "maturity_day": day,
        },
    )


def _agent_state(agent: Agent, silent_after: timedelta) -> str:
    if agent.revoked:
        return "révoqué"
    if agent.last_heartbeat is None:
        return "jamais vu"
    if utcnow() - as_utc(agent.last_heartbeat) > silent_after:
        return "silencieux"
    return "actif"


def _establishment_home(request: Request, session: Session, v: Viewer) -> HTMLResponse:
    who = v.who
    finess = who.scope or "-"
    o = _overview_counts(request, session, who)
    open_items, open_total = incidents.page(session=session, who=who, status="open",
                                            sort="due", limit=10)  # fmt: skip
    record_list(request, session, who, "incident", f"{finess}/* (open)",
                (i.id for i in open_items))  # fmt: skip
    pending, pending_total = alert_service.page(session=session, who=who, status=None,
                                                offset=0, limit=20, pending_for=finess)  # fmt: skip
    record_list(request, session, who, "alert", f"pending_for={finess}", (a.id for a in pending))
    settings = request.app.state.settings
    silent_after = timedelta(minutes=settings.agent_silent_minutes)
    agents, agents_total = agent_service.page(
        session=session,
        who=who,
        establishment=finess,
        offset=0,
        limit=50,
        silent_after=silent_after,
    )
    record_list(request, session, who, "agent", f"{finess}/*", (a.id for a in agents))
    snapshot = snapshots.latest(session, finess, None)
    maturity = None
    if snapshot is not None:
        record_request(request, session, who, "read", "maturity", finess,
                       f"snapshot {snapshot.id}")  # fmt: skip
        maturity = maturity_read(session, snapshot)
    return page(
        request,
        "establishment.html",
        {
            "v": v,
            "o": o,
            "open_items": [incident_read(i, who) for i in open_items],
            "open_total": open_total,
            "pending": pending,
            "pending_total": pending_total,
            "agents": [
                (AgentRead.model_validate(a), _agent_state(a, silent_after)) for a in agents
            ],  # fmt: skip
            "agents_total": agents_total,
            "maturity": maturity,
        },
    )


EstablishmentOnly = Annotated[Viewer, Depends(viewer(Role.ESTABLISHMENT))]


@router.post("/alerts/{alert_id}/acknowledge", **roles(Role.ESTABLISHMENT))
def acknowledge(
    alert_id: Annotated[str, Path(max_length=36)],
    request: Request,
    session: SessionDep,
    v: EstablishmentOnly,
    comment: Annotated[str, Form(max_length=1_000)] = "",
) -> Response:
    """An establishment: acknowledges an alert meant for it (as POST /alerts/{id}/acknowledge)."""
    alert_service.acknowledge(session=session, who=v.who, alert_id=alert_id,
                              comment=comment.strip() or None)  # fmt: skip
    record_request(request, session, v.who, "update", "alert", alert_id)
    return RedirectResponse("/ui/#alertes", status_code=303)


# --- alerts ------------------------------------------------------------------------------------


@router.get("/alerts", **roles(*alert_routes.READERS))
def alert_list(
    request: Request,
    session: SessionDep,
    v: Reader,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> HTMLResponse:
    """Every reader: the CERT's alerts (an establishment: those meant for it)."""
    items, total = alert_service.page(session=session, who=v.who, status=None, offset=offset,
                                      limit=PAGE_SIZE)  # fmt: skip
    record_list(request, session, v.who, "alert", "*", (a.id for a in items))
    reads = alert_service.read(session=session, who=v.who, alerts=items)
    return page(request, "alerts.html", {"v": v, "items": reads, "total": total,
                                         "offset": offset, "size": PAGE_SIZE})  # fmt: skip


@router.get("/alerts/{alert_id}", **roles(*alert_routes.READERS))
def alert_page(
    alert_id: Annotated[str, Path(max_length=36)],
    request: Request,
    session: SessionDep,
    v: Reader,
) -> HTMLResponse:
    """Every reader: one alert; national readers also see who has not acknowledged it."""
    alert = alert_service.get(session=session, who=v.who, alert_id=alert_id)
    record_request(request, session, v.who, "read", "alert", alert.id)
    (read,) = alert_service.read(session=session, who=v.who, alerts=[alert])
    report = None
    if v.who.scope is None:
        report = alert_service.acknowledgements(session=session, who=v.who, alert_id=alert.id)
        record_request(request, session, v.who, "read", "alert", alert.id, "acknowledgements")
    by_region: dict[str, list[Any]] = {}
    for pending in report.pending if report else []:
        by_region.setdefault(pending.region, []).append(pending)
    return page(
        request,
        "alert.html",
        {"v": v, "a": read, "report": report, "by_region": dict(sorted(by_region.items()))},
    )


# --- the audit log -----------------------------------------------------------------------------

Auditor = Annotated[Viewer, Depends(viewer(Role.AUDITOR, Role.ADMIN))]
AUDIT_CSV_MAX = 100_000


AuditText = Annotated[str | None, Query(max_length=120)]


def _audit_filter(
    actor: AuditText = None,
    action: AuditText = None,
    kind: AuditText = None,
    since: date | None = None,
    until: date | None = None,
) -> AuditFilter:
    """The audit page's filters, read from its query (its CSV's too). Days are Paris days:
    `until` included."""

    def start(day: date | None) -> datetime | None:
        return None if day is None else datetime.combine(day, time(), PARIS).astimezone(UTC)

    end = start(until + timedelta(days=1)) if until else None
    return AuditFilter(actor=actor or None, action=action or None, kind=kind or None,
                       since=start(since), until=end)  # fmt: skip


AuditFilters = Annotated[AuditFilter, Depends(_audit_filter)]


@router.get("/audit", **roles(Role.AUDITOR, Role.ADMIN))
def audit_page(
    request: Request,
    session: SessionDep,
    v: Auditor,
    found: AuditFilters,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> HTMLResponse:
    """Auditors and admins: the audit trail, filtered and paginated, newest first."""
    rows = audit_entries(session, found, offset, PAGE_SIZE)
    total = audit_count(session, found)
    span = f"{rows[-1].id}-{rows[0].id}" if rows else ""
    record_request(request, session, v.who, "read", "audit", f"offset={offset} {found}", span)
    keep = {k: str(val) for k, val in request.query_params.items() if k != "offset" and val}
    return page(request, "audit.html", {"v": v, "rows": rows, "total": total, "offset": offset,
                                        "size": PAGE_SIZE, "filters": keep})  # fmt: skip


@router.get("/audit.csv", **roles(Role.AUDITOR, Role.ADMIN))
def audit_csv(
    request: Request,
    session: SessionDep,
    v: Auditor,
    found: AuditFilters,
) -> Response:
    """Auditors and admins: the filtered trail as CSV (at most 100,000 rows, newest first)."""
    rows = audit_entries(session, found, 0, AUDIT_CSV_MAX)
    span = f"{rows[-1].id}-{rows[0].id}" if rows else ""
    record_request(request, session, v.who, "read", "audit", f"csv {found}", span)
    return csv_response(
        "journal-audit.csv",
        ["id", "heure (UTC)", "compte", "rôle", "action", "objet", "identifiant", "adresse",
         "détail"],
        ([r.id, as_utc(r.at).isoformat(), r.actor, r.role, r.action, r.target_kind,
          r.target_id, r.client or "", r.detail or ""] for r in rows),
    )  # fmt: skip
