"""Enrollment tokens (under their establishment) and agents."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.agents import service
from api.agents.schemas import (
    AgentEnroll,
    AgentEnrolled,
    AgentHeartbeat,
    AgentPage,
    AgentRead,
    EnrollmentTokenCreate,
    EnrollmentTokenCreated,
    EnrollmentTokenRead,
)
from api.agents.states import AgentState
from api.audit.service import record_list
from api.audit.service import record_request as _audit
from api.deps import (
    PUBLIC,
    CurrentSettings,
    CurrentUser,
    Offset,
    RegionQuery,
    SessionDep,
    allow,
    client_of,
)
from api.roles import Role

router = APIRouter(tags=["agents"])
READERS = (Role.ESTABLISHMENT, Role.CERT, Role.AUDITOR, Role.ADMIN)
MANAGERS = (Role.ESTABLISHMENT, Role.CERT, Role.ADMIN)  # an establishment: its own only
TOKENS = "/establishments/{finess}/enrollment-tokens"


@router.post(TOKENS, status_code=201, **allow(*MANAGERS))
def create_enrollment_token(
    finess: str,
    body: EnrollmentTokenCreate,
    request: Request,
    session: SessionDep,
    who: CurrentUser,
) -> EnrollmentTokenCreated:
    token, secret = service.create_token(session=session, who=who, finess=finess, data=body)
    _audit(request, session, who, "create", "enrollment_token", token.id)
    return EnrollmentTokenCreated(
        **EnrollmentTokenRead.model_validate(token).model_dump(), token=secret
    )


@router.get(TOKENS, **allow(*READERS))
def list_enrollment_tokens(
    finess: str, request: Request, session: SessionDep, who: CurrentUser
) -> list[EnrollmentTokenRead]:
    tokens = service.list_tokens(session=session, who=who, finess=finess)
    record_list(request, session, who, "enrollment_token", f"{finess}/*", (t.id for t in tokens))
    return [EnrollmentTokenRead.model_validate(t) for t in tokens]


@router.post(TOKENS + "/{token_id}/revoke", **allow(*MANAGERS))
def revoke_enrollment_token(
    finess: str, token_id: str, request: Request, session: SessionDep, who: CurrentUser
) -> EnrollmentTokenRead:
    token = service.revoke_token(session=session, who=who, finess=finess, token_id=token_id)
    _audit(request, session, who, "update", "enrollment_token", token.id)
    return EnrollmentTokenRead.model_validate(token)


@router.post("/agents/enroll", status_code=201, **allow(PUBLIC))
def enroll_agent(body: AgentEnroll, request: Request, session: SessionDep) -> AgentEnrolled:
    """The enrollment token is the credential: no bearer token needed."""
    agent, key = service.enroll(session=session, data=body, client=client_of(request))
    signer = request.app.state.live_rules.signer.public()  # what the agent pins
    return AgentEnrolled(
        **AgentRead.model_validate(agent).model_dump(),
        agent_key=key,
        bundle_key=signer["public_key"],
        bundle_key_id=signer["key_id"],
    )


@router.post("/agents/heartbeat", **allow(Role.AGENT))
def agent_heartbeat(body: AgentHeartbeat, session: SessionDep, who: CurrentUser) -> AgentRead:
    return AgentRead.model_validate(service.heartbeat(session=session, who=who, data=body))


@router.get("/agents/me", **allow(Role.AGENT))
def agent_itself(session: SessionDep, who: CurrentUser) -> AgentRead:
    return AgentRead.model_validate(service.mine(session=session, who=who))


@router.get("/agents", **allow(*READERS))
def list_agents(
    request: Request,
    session: SessionDep,
    who: CurrentUser,
    settings: CurrentSettings,
    establishment: Annotated[str | None, Query(max_length=11, description="FINESS")] = None,
    status: Annotated[
        AgentState | None,
        Query(
            description="revoked; never: no heartbeat yet; silent: none for longer than the "
            "service's threshold (VIGIE_AGENT_SILENT_MINUTES); active: one within it"
        ),
    ] = None,
    region: RegionQuery = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AgentPage:
    items, total = service.page(
        session=session,
        who=who,
        establishment=establishment,
        offset=offset,
        limit=limit,
        state=status,
        region=region,
        silent_after=timedelta(minutes=settings.agent_silent_minutes),
    )
    record_list(request, session, who, "agent", f"{establishment or '*'}/*", (a.id for a in items))
    return AgentPage(items=[AgentRead.model_validate(a) for a in items], total=total)


@router.get("/agents/{agent_id}", **allow(*READERS))
def get_agent(agent_id: str, request: Request, session: SessionDep, who: CurrentUser) -> AgentRead:
    agent = service.get(session=session, who=who, agent_id=agent_id)
    _audit(request, session, who, "read", "agent", agent.id)
    return AgentRead.model_validate(agent)


@router.post("/agents/{agent_id}/revoke", **allow(*MANAGERS))
def revoke_agent(
    agent_id: str, request: Request, session: SessionDep, who: CurrentUser
) -> AgentRead:
    agent = service.revoke(session=session, who=who, agent_id=agent_id)
    _audit(request, session, who, "update", "agent", agent.id)
    return AgentRead.model_validate(agent)
