"""Alerts: the CERT publishes, establishments read and acknowledge, agents fetch the bundle."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api.alerts import bundle as bundles
from api.alerts import hunt, service, stix
from api.alerts.live import LiveRules
from api.alerts.models import Alert, AlertStatus
from api.alerts.schemas import (
    Acknowledge,
    AcknowledgementRead,
    AcknowledgementReport,
    AlertCreate,
    AlertPage,
    AlertRead,
    AlertUpdate,
    PublicKey,
    RetroHuntRequest,
)
from api.audit.service import record_list, record_request
from api.deps import PUBLIC, CurrentUser, Offset, Principal, SessionDep, allow
from api.roles import Role

router = APIRouter(tags=["alerts"])
WRITERS = (Role.CERT, Role.ADMIN)
# An alert may carry up to 1 MiB of rule text plus its indicators (api/alerts/schemas.py):
# its body gets more room than the 1 MiB of the other JSON routes, bounded all the same.
MAX_ALERT_BODY = 4 * 2**20
NATIONAL = (Role.CERT, Role.ADMIN, Role.AUDITOR)
READERS = (Role.ESTABLISHMENT, *NATIONAL)  # an establishment: the alerts meant for it


def _audit(request: Request, session: Session, who: Principal, action: str, target: str) -> None:
    record_request(request, session, who, action, "alert", target)


def _live(request: Request) -> LiveRules:
    live: LiveRules = request.app.state.live_rules
    return live


def _read_one(session: Session, who: Principal, alert: Alert) -> AlertRead:
    (out,) = service.read(session=session, who=who, alerts=[alert])
    return out


def _hunt_later(request: Request, tasks: BackgroundTasks, session: Session, alert: Alert) -> None:
    """Mark the hunt pending and run it once the response is out (the alert is committed)."""
    if alert.retro_hunt_days <= 0:
        return
    service.record_hunt(
        session=session, alert_id=alert.id, outcome=hunt.pending(alert.retro_hunt_days)
    )
    tasks.add_task(
        hunt.run,
        sessions=request.app.state.sessions,
        store=request.app.state.event_store,
        alert_id=alert.id,
        days=alert.retro_hunt_days,
    )


@router.get(
    "/alerts/bundle",
    responses={304: {"description": "the agent's version is the current one"}},
    **allow(Role.AGENT),
)
def get_bundle(
    request: Request,
    session: SessionDep,
    who: CurrentUser,
    version: Annotated[
        int | None, Query(ge=0, le=2**62, description="the version the agent has")
    ] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The signed rules and indicators of the alerts meant for the agent's establishment, at
    that establishment's own version (up by one each time its content changes)."""
    current = bundles.current_version(session=session, who=who)
    etag = f'"{current}"'
    if version == current or if_none_match == etag:
        return Response(status_code=304, headers={"ETag": etag})
    envelope = _live(request).signer.sign(bundles.bundle(session=session, who=who))
    return JSONResponse(envelope, headers={"ETag": f'"{envelope["bundle"]["version"]}"'})


@router.get("/alerts/bundle/public-key", **allow(PUBLIC))
def bundle_public_key(request: Request) -> PublicKey:
    """The key that signs bundles, for agents to pin at enrollment."""
    return PublicKey(**_live(request).signer.public())


@router.post("/alerts", status_code=201, max_body_size=MAX_ALERT_BODY, **allow(*WRITERS))
def publish_alert(
    body: AlertCreate,
    request: Request,
    tasks: BackgroundTasks,
    session: SessionDep,
    who: CurrentUser,
) -> AlertRead:
    settings = request.app.state.settings
    live = _live(request)
    alert = service.create(
        session=session,
        who=who,
        data=body,
        default_days=settings.retro_hunt_days,
        cache=live.cache,
        reserved=live.own_rule_ids,
    )
    _audit(request, session, who, "create", alert.id)
    _hunt_later(request, tasks, session, alert)
    _live(request).published(alert.bundle_version)
    return _read_one(session, who, alert)


@router.get("/alerts", **allow(*READERS))
def list_alerts(
    request: Request,
    session: SessionDep,
    who: CurrentUser,
    status: AlertStatus | None = None,
    pending_for: Annotated[
        str | None,
        Query(
            max_length=11,
            description="FINESS: the published alerts meant for it that it has not "
            "acknowledged (an establishment: its own only)",
        ),
    ] = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AlertPage:
    items, total = service.page(
        session=session,
        who=who,
        status=status,
        offset=offset,
        limit=limit,
        pending_for=pending_for,
    )
    target = f"{status or '*'}/pending:{pending_for}" if pending_for else status or "*"
    record_list(request, session, who, "alert", target, (a.id for a in items))
    return AlertPage(items=service.read(session=session, who=who, alerts=items), total=total)


@router.get("/alerts/{alert_id}", **allow(*READERS))
def get_alert(alert_id: str, request: Request, session: SessionDep, who: CurrentUser) -> AlertRead:
    alert = service.get(session=session, who=who, alert_id=alert_id)
    _audit(request, session, who, "read", alert.id)
    return _read_one(session, who, alert)


@router.patch("/alerts/{alert_id}", max_body_size=MAX_ALERT_BODY, **allow(*WRITERS))
def edit_alert(
    alert_id: str, body: AlertUpdate, request: Request, session: SessionDep, who: CurrentUser
) -> AlertRead:
    live = _live(request)
    alert = service.edit(
        session=session,
        who=who,
        alert_id=alert_id,
        data=body,
        cache=live.cache,
        reserved=live.own_rule_ids,
    )
    _audit(request, session, who, "update", alert.id)
    live.published(alert.bundle_version)
    return _read_one(session, who, alert)


@router.post("/alerts/{alert_id}/withdraw", **allow(*WRITERS))
def withdraw_alert(
    alert_id: str, request: Request, session: SessionDep, who: CurrentUser
) -> AlertRead:
    alert = service.withdraw(session=session, who=who, alert_id=alert_id)
    _audit(request, session, who, "update", alert.id)
    _live(request).published(alert.bundle_version)
    return _read_one(session, who, alert)


@router.post("/alerts/{alert_id}/acknowledge", **allow(Role.ESTABLISHMENT))
def acknowledge_alert(
    alert_id: str, body: Acknowledge, request: Request, session: SessionDep, who: CurrentUser
) -> AcknowledgementRead:
    """The caller's establishment has read the alert (again: the first acknowledgement)."""
    ack = service.acknowledge(session=session, who=who, alert_id=alert_id, comment=body.comment)
    _audit(request, session, who, "update", alert_id)
    return AcknowledgementRead.model_validate(ack)


@router.get("/alerts/{alert_id}/acknowledgements", **allow(*NATIONAL))
def alert_acknowledgements(
    alert_id: str, request: Request, session: SessionDep, who: CurrentUser
) -> AcknowledgementReport:
    """Who among the alert's targets has acknowledged it, and who has not."""
    report = service.acknowledgements(session=session, who=who, alert_id=alert_id)
    _audit(request, session, who, "read", alert_id)
    return report


@router.get("/alerts/{alert_id}/retro-hunt", **allow(*NATIONAL))
def alert_retro_hunt(
    alert_id: str, request: Request, session: SessionDep, who: CurrentUser
) -> dict[str, Any]:
    """The last retro-hunt: rules hunted, errors per rule, hits per establishment, incidents."""
    alert = service.get(session=session, who=who, alert_id=alert_id)
    _audit(request, session, who, "read", alert.id)
    return alert.retro_hunt or {"status": "none"}


@router.post("/alerts/{alert_id}/retro-hunt", status_code=202, **allow(*WRITERS))
def hunt_again(
    alert_id: str,
    body: RetroHuntRequest,
    request: Request,
    tasks: BackgroundTasks,
    session: SessionDep,
    who: CurrentUser,
) -> dict[str, Any]:
    """Hunt the alert's rules and indicators again over the last `days` of stored events."""
    alert = service.get(session=session, who=who, alert_id=alert_id)
    if body.days is not None:
        alert.retro_hunt_days = body.days
    _audit(request, session, who, "update", alert.id)
    _hunt_later(request, tasks, session, alert)
    return alert.retro_hunt or {"status": "none"}


@router.get("/alerts/{alert_id}/stix", **allow(*READERS))
def alert_stix(
    alert_id: str, request: Request, session: SessionDep, who: CurrentUser
) -> dict[str, Any]:
    """The alert as a STIX 2.1 bundle: indicators, vulnerabilities, a report, its TLP marking."""
    alert = service.get(session=session, who=who, alert_id=alert_id)
    _audit(request, session, who, "read", alert.id)
    return stix.export(alert)
