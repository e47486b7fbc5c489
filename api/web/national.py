"""The CERT's national pages: establishments, campaigns, agents (and an establishment's own
agents and enrollment tokens).

As in `pages.py`, each page states its roles, calls the service functions of the JSON route
it mirrors with the same principal, and audits the same way. The counts a list shows of each
row come from grouped queries (`api.stats.service`), a few per page whatever its length.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.agents import routes as agent_routes
from api.agents import service as agent_service
from api.agents.models import Agent, utcnow
from api.agents.schemas import (
    AgentRead,
    EnrollmentTokenCreate,
    EnrollmentTokenCreated,
    EnrollmentTokenRead,
)
from api.agents.states import AgentState, state_of
from api.alerts import service as alert_service
from api.audit.service import record_list, record_request
from api.deps import Offset, Principal, RegionQuery, SessionDep
from api.errors import Invalid
from api.establishments import service as establishments
from api.establishments.finess import Region
from api.establishments.models import Establishment
from api.establishments.schemas import EstablishmentRead, Kind
from api.incidents import routes as incident_routes
from api.incidents import service as incidents
from api.incidents.schemas import CampaignUpdate
from api.maturity import snapshots
from api.maturity.models import Snapshot
from api.maturity.routes import maturity_read
from api.stats import service as stats
from api.web import map as region_map
from api.web.deps import Viewer, viewer
from api.web.export import csv_response
from api.web.pages import NATIONAL_READERS, PAGE_SIZE, roles
from api.web.render import AGENT_STATES, KINDS, page, paris

router = APIRouter(prefix="/ui", include_in_schema=False)

READERS = agent_routes.READERS  # every role; an establishment: its own
MANAGERS = agent_routes.MANAGERS  # tokens and agent revocation; an establishment: its own
CAMPAIGNS = incident_routes.NATIONAL  # the CERT and admins (auditors: not in the JSON API)
National = Annotated[Viewer, Depends(viewer(*NATIONAL_READERS))]
Reader = Annotated[Viewer, Depends(viewer(*READERS))]
Manager = Annotated[Viewer, Depends(viewer(*MANAGERS))]
CampaignViewer = Annotated[Viewer, Depends(viewer(*CAMPAIGNS))]
Finess = Annotated[str | None, Query(max_length=11)]
FinessPath = Annotated[str, Path(max_length=11)]
Id = Annotated[str, Path(max_length=36)]
CSV_MAX = 100_000
CHUNK = 500


def _silent_after(request: Request) -> timedelta:
    return timedelta(minutes=request.app.state.settings.agent_silent_minutes)


def _manages(who: Principal) -> bool:
    return who.role in {str(r) for r in MANAGERS}


# --- establishments ----------------------------------------------------------------------------


def _establishment_rows(
    request: Request, session: Session, who: Principal, items: Sequence[Establishment]
) -> list[tuple[EstablishmentRead, stats.EstablishmentCounts, Snapshot | None]]:
    """Each establishment with its counts and latest maturity snapshot (None: not scored).
    Asked CHUNK establishments at a time: a CSV of every one stays within the databases'
    limits on a query's parameters."""
    finesses = [e.finess for e in items]
    now, silent_after = utcnow(), _silent_after(request)
    counts: dict[str, stats.EstablishmentCounts] = {}
    latest: dict[str, Snapshot] = {}
    for start in range(0, len(finesses), CHUNK):
        chunk = finesses[start : start + CHUNK]
        counts.update(stats.per_establishment(session=session, who=who, finesses=chunk,
                                              now=now, silent_after=silent_after))  # fmt: skip
        latest.update(snapshots.latest_of(session, chunk))
    record_list(request, session, who, "stats", "per_establishment", finesses)
    if latest:
        record_list(request, session, who, "maturity", "latest/*",
                    (latest[f].id for f in finesses if f in latest))  # fmt: skip
    return [
        (EstablishmentRead.model_validate(e), counts[e.finess], latest.get(e.finess)) for e in items
    ]


@router.get("/establishments", **roles(*NATIONAL_READERS))
def establishment_list(
    request: Request,
    session: SessionDep,
    v: National,
    region: RegionQuery = None,
    kind: Kind | None = None,
    finess: Finess = None,
    offset: Offset = 0,
) -> Response:
    """National readers: the registry by region and kind, each establishment with its open
    incidents, agents and latest maturity score; a FINESS typed in opens its page."""
    if finess:
        target = quote(finess.replace(" ", "").upper(), safe="")
        return RedirectResponse(f"/ui/establishments/{target}", status_code=303)
    items, total = establishments.page(session=session, who=v.who, offset=offset,
                                       limit=PAGE_SIZE, region=region, kind=kind)  # fmt: skip
    record_list(request, session, v.who, "establishment", "*", (i.finess for i in items))
    filters = {k: str(val) for k, val in (("region", region), ("kind", kind)) if val}
    return page(
        request,
        "establishments.html",
        {
            "v": v,
            "rows": _establishment_rows(request, session, v.who, items),
            "total": total,
            "offset": offset,
            "size": PAGE_SIZE,
            "filters": filters,
            "regions": [str(r) for r in Region],
            "kinds": [str(k) for k in Kind],
        },
    )


@router.get("/establishments.csv", **roles(*NATIONAL_READERS))
def establishment_csv(
    request: Request,
    session: SessionDep,
    v: National,
    region: RegionQuery = None,
    kind: Kind | None = None,
) -> Response:
    """National readers: the filtered registry as CSV, with the list's counts."""
    items, _ = establishments.page(session=session, who=v.who, offset=0, limit=CSV_MAX,
                                   region=region, kind=kind)  # fmt: skip
    record_list(request, session, v.who, "establishment", "* (csv)", (i.finess for i in items))
    header = ["finess", "nom", "type", "région", "lits", "incidents ouverts", "agents actifs",
              "agents silencieux", "agents jamais vus", "score de maturité", "niveau",
              "instantané du"]  # fmt: skip
    rows = []
    for e, counts, snap in _establishment_rows(request, session, v.who, items):
        maturity = [round(snap.score, 1), snap.level, snap.as_of.isoformat()] if snap else []
        rows.append([e.finess, e.name, KINDS.get(e.kind, e.kind), e.region, e.beds or "",
                     counts.open_incidents, counts.agents[AgentState.ACTIVE],
                     counts.agents[AgentState.SILENT], counts.agents[AgentState.NEVER],
                     *(maturity or ["", "", ""])])  # fmt: skip
    return csv_response("etablissements.csv", header, rows)


def _agent_rows(agents: Sequence[Agent], silent_after: timedelta) -> list[tuple[AgentRead, str]]:
    now = utcnow()
    return [(AgentRead.model_validate(a), str(state_of(a, now, silent_after))) for a in agents]


def _tokens(
    request: Request, session: Session, who: Principal, finess: str
) -> list[EnrollmentTokenRead]:
    """As GET /establishments/{finess}/enrollment-tokens."""
    tokens = agent_service.list_tokens(session=session, who=who, finess=finess)
    record_list(request, session, who, "enrollment_token", f"{finess}/*", (t.id for t in tokens))
    return [EnrollmentTokenRead.model_validate(t) for t in tokens]


@router.get("/establishments/{finess}", **roles(*READERS))
def establishment_page(
    finess: FinessPath, request: Request, session: SessionDep, v: Reader
) -> HTMLResponse:
    """Every reader (an establishment: its own only, another's as an absent one): who it is,
    its incidents, agents, enrollment tokens, alerts not acknowledged and maturity."""
    who = v.who
    item = establishments.get(session=session, who=who, finess=finess)
    record_request(request, session, who, "read", "establishment", item.finess)
    found, found_total = incidents.page(session=session, who=who, establishment=item.finess,
                                        limit=20)  # fmt: skip
    record_list(request, session, who, "incident", f"{item.finess}/*", (i.id for i in found))
    silent_after = _silent_after(request)
    agents, agents_total = agent_service.page(
        session=session,
        who=who,
        establishment=item.finess,
        offset=0,
        limit=PAGE_SIZE,
        silent_after=silent_after,
    )
    record_list(request, session, who, "agent", f"{item.finess}/*", (a.id for a in agents))
    pending, pending_total = alert_service.page(session=session, who=who, status=None,
                                                offset=0, limit=20,
                                                pending_for=item.finess)  # fmt: skip
    record_list(request, session, who, "alert", f"*/pending:{item.finess}",
                (a.id for a in pending))  # fmt: skip
    snapshot = snapshots.latest(session, item.finess, None)
    maturity = None
    if snapshot is not None:
        record_request(request, session, who, "read", "maturity", item.finess,
                       f"snapshot {snapshot.id}")  # fmt: skip
        maturity = maturity_read(session, snapshot)
    return page(
        request,
        "establishment_detail.html",
        {
            "v": v,
            "e": EstablishmentRead.model_validate(item),
            "incidents": [incident_routes.incident_read(i, who) for i in found],
            "incidents_total": found_total,
            "agents": _agent_rows(agents, silent_after),
            "agents_total": agents_total,
            "tokens": _tokens(request, session, who, item.finess),
            "pending": pending,
            "pending_total": pending_total,
            "maturity": maturity,
            "can_manage": _manages(who),
        },
    )


# --- enrollment tokens and agent revocation (forms) ---------------------------------------------


def _home_of(who: Principal, finess: str) -> str:
    """Where a manager's form sends them back: an establishment's agents page, or the
    establishment's page for the CERT and admins."""
    return "/ui/agents" if who.scope is not None else f"/ui/establishments/{quote(finess)}"


@router.post("/establishments/{finess}/enrollment-tokens", **roles(*MANAGERS))
def token_create(
    finess: FinessPath,
    request: Request,
    session: SessionDep,
    v: Manager,
    label: Annotated[str | None, Form(max_length=120)] = None,
    site: Annotated[str | None, Form(max_length=120)] = None,
    max_uses: Annotated[int | None, Form(ge=1, le=10_000)] = None,
    expires_in_days: Annotated[int, Form(ge=1, le=90)] = 7,
) -> HTMLResponse:
    """Managers (an establishment: its own): a new enrollment token, as POST
    /establishments/{finess}/enrollment-tokens. The answer is a page showing the token once:
    it is not kept, and a redirect would have to carry it in its address."""
    try:
        data = EnrollmentTokenCreate(label=label, site=site, max_uses=max_uses,
                                     expires_in_days=expires_in_days)  # fmt: skip
    except ValidationError as exc:
        raise Invalid("; ".join(str(e["msg"]) for e in exc.errors())[:300]) from None
    token, secret = agent_service.create_token(session=session, who=v.who, finess=finess,
                                               data=data)  # fmt: skip
    record_request(request, session, v.who, "create", "enrollment_token", token.id)
    created = EnrollmentTokenCreated(
        **EnrollmentTokenRead.model_validate(token).model_dump(), token=secret
    )
    back = _home_of(v.who, token.establishment_finess)
    server = str(request.base_url).rstrip("/")
    return page(request, "token_created.html",
                {"v": v, "t": created, "back": back, "server": server})  # fmt: skip


@router.post("/establishments/{finess}/enrollment-tokens/{token_id}/revoke", **roles(*MANAGERS))
def token_revoke(
    finess: FinessPath, token_id: Id, request: Request, session: SessionDep, v: Manager
) -> Response:
    """Managers (an establishment: its own): revokes an enrollment token."""
    token = agent_service.revoke_token(session=session, who=v.who, finess=finess,
                                       token_id=token_id)  # fmt: skip
    record_request(request, session, v.who, "update", "enrollment_token", token.id)
    back = _home_of(v.who, token.establishment_finess)
    return RedirectResponse(back + "#jetons", status_code=303)


@router.post("/agents/{agent_id}/revoke", **roles(*MANAGERS))
def agent_revoke(agent_id: Id, request: Request, session: SessionDep, v: Manager) -> Response:
    """Managers (an establishment: its own): revokes an agent, whose key is refused from now."""
    agent = agent_service.revoke(session=session, who=v.who, agent_id=agent_id)
    record_request(request, session, v.who, "update", "agent", agent.id)
    back = _home_of(v.who, agent.establishment_finess)
    return RedirectResponse(back + "#agents", status_code=303)


# --- agents ------------------------------------------------------------------------------------


def _agent_filters(
    who: Principal, establishment: str | None, region: str | None
) -> tuple[str | None, str | None]:
    """The national filters; an establishment's are its own anyway."""
    if who.scope is not None:
        return None, None
    return establishment, region


@router.get("/agents", **roles(*READERS))
def agent_list(
    request: Request,
    session: SessionDep,
    v: Reader,
    state: AgentState | None = None,
    region: RegionQuery = None,
    establishment: Finess = None,
    offset: Offset = 0,
) -> HTMLResponse:
    """Every reader (an establishment: its own, with its enrollment tokens): agents by state,
    with their version, last heartbeat, lag, counters and sources."""
    who = v.who
    establishment, region = _agent_filters(who, establishment, region)
    silent_after = _silent_after(request)
    agents, total = agent_service.page(session=session, who=who, establishment=establishment,
                                       offset=offset, limit=PAGE_SIZE, state=state,
                                       region=region, silent_after=silent_after)  # fmt: skip
    record_list(request, session, who, "agent", f"{establishment or '*'}/*",
                (a.id for a in agents))  # fmt: skip
    buckets = stats.agent_counts(session=session, who=who, now=utcnow(),
                                 silent_after=silent_after, establishment=establishment,
                                 region=region)  # fmt: skip
    record_request(request, session, who, "read", "stats", "agents",
                   f"establishment={establishment or '*'} region={region or '*'}")  # fmt: skip
    filters = {k: str(val) for k, val in
               (("establishment", establishment), ("region", region)) if val}  # fmt: skip
    return page(
        request,
        "agents.html",
        {
            "v": v,
            "agents": _agent_rows(agents, silent_after),
            "total": total,
            "offset": offset,
            "size": PAGE_SIZE,
            "state": str(state) if state else "",
            "filters": filters,
            "buckets": buckets,
            "regions": [str(r) for r in Region],
            "tokens": _tokens(request, session, who, who.establishment)
            if who.scope and who.establishment
            else [],
            "can_manage": _manages(who),
        },
    )


@router.get("/agents.csv", **roles(*READERS))
def agent_csv(
    request: Request,
    session: SessionDep,
    v: Reader,
    state: AgentState | None = None,
    region: RegionQuery = None,
    establishment: Finess = None,
) -> Response:
    """Every reader (an establishment: its own): the filtered agents as CSV."""
    who = v.who
    establishment, region = _agent_filters(who, establishment, region)
    silent_after = _silent_after(request)
    agents, _ = agent_service.page(session=session, who=who, establishment=establishment,
                                   offset=0, limit=CSV_MAX, state=state, region=region,
                                   silent_after=silent_after)  # fmt: skip
    record_list(request, session, who, "agent", f"{establishment or '*'}/* (csv)",
                (a.id for a in agents))  # fmt: skip
    header = ["finess", "machine", "site", "état", "version", "dernier signe de vie (Paris)",
              "retard (s)", "perdus", "en file", "sources", "enrôlé le (Paris)"]  # fmt: skip
    rows = [
        [a.establishment, a.hostname, a.site or "", AGENT_STATES.get(s, s), a.version,
         paris(a.last_heartbeat) if a.last_heartbeat else "",
         "" if a.lag_seconds is None else round(a.lag_seconds), a.counters.get("dropped", 0),
         a.counters.get("queued", 0), " ".join(x.name for x in a.sources),
         paris(a.enrolled_at)]
        for a, s in _agent_rows(agents, silent_after)
    ]  # fmt: skip
    return csv_response("agents.csv", header, rows)


# --- campaigns ---------------------------------------------------------------------------------


@router.get("/campaigns", **roles(*CAMPAIGNS))
def campaign_list(
    request: Request, session: SessionDep, v: CampaignViewer, offset: Offset = 0
) -> HTMLResponse:
    """The CERT and admins: campaigns (a rule or indicator in several establishments), the
    latest seen first, with the regions they reached."""
    found = incidents.list_campaigns(session=session)
    shown = found[offset : offset + PAGE_SIZE]
    record_list(request, session, v.who, "campaign", "*", (c.id for c, _ in shown))
    regions = stats.campaign_regions(session=session, who=v.who,
                                     campaign_ids=[c.id for c, _ in shown])  # fmt: skip
    return page(
        request,
        "campaigns.html",
        {
            "v": v,
            "items": [(incident_routes.campaign_read(c, m), regions[c.id]) for c, m in shown],
            "total": len(found),
            "offset": offset,
            "size": PAGE_SIZE,
        },
    )


@router.get("/campaigns/{campaign_id}", **roles(*CAMPAIGNS))
def campaign_page(
    campaign_id: Id, request: Request, session: SessionDep, v: CampaignViewer
) -> HTMLResponse:
    """The CERT and admins: one campaign, its incidents, the regions it reached (a table
    and the map), and its status to change."""
    campaign, members = incidents.get_campaign(session=session, campaign_id=campaign_id)
    record_request(request, session, v.who, "read", "campaign", campaign.id)
    record_list(request, session, v.who, "incident", f"campaign:{campaign.id}",
                (i.id for i in members))  # fmt: skip
    hits = stats.campaign_regions(session=session, who=v.who, campaign_ids=[campaign.id])
    counts = {h.region: h.establishments for h in hits[campaign.id]}
    link = f"/ui/incidents?campaign={quote(campaign.id)}&region="
    svg = region_map.svg(counts, lambda name: link + quote(name), what="établissements touchés",
                         what_one="établissement touché", ident="carte-campagne")  # fmt: skip
    return page(
        request,
        "campaign.html",
        {
            "v": v,
            "c": incident_routes.campaign_read(campaign, members),
            "members": [incident_routes.incident_read(i, v.who) for i in members],
            "regions": hits[campaign.id],
            "map_svg": svg,
            "legend": region_map.legend(counts),
            "credit": region_map.credit(),
        },
    )


@router.post("/campaigns/{campaign_id}/status", **roles(*CAMPAIGNS))
def campaign_status(
    campaign_id: Id,
    request: Request,
    session: SessionDep,
    v: CampaignViewer,
    status: Annotated[Literal["open", "closed"], Form()],
) -> Response:
    """The CERT and admins: opens or closes a campaign (PATCH /campaigns/{id} with a status)."""
    change = CampaignUpdate(status=status)
    campaign, _ = incidents.update_campaign(session=session, campaign_id=campaign_id,
                                            title=None, status=change.status)  # fmt: skip
    record_request(request, session, v.who, "update", "campaign", campaign.id)
    return RedirectResponse(f"/ui/campaigns/{quote(campaign.id)}", status_code=303)
