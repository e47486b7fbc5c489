"""Enrollment tokens, agents, and agent keys.

Secrets. Enrollment tokens (`vge_...`) and agent keys (`vga_...`) are 256 random bits from
`secrets`, shown once and kept as their SHA-256. A slow password hash (argon2) exists to make
guessing *low-entropy* human passwords expensive; against 256 random bits there is nothing to
guess, so a fast hash loses nothing, and it lets a key be found by an indexed lookup of its
hash (one query per agent request, no per-row verification, nothing to tell apart by timing).
The prefix lets `current_principal` route a bearer credential without trying it as a JWT.

Errors (under `api.errors`; the codes are stable, agents act on them):

    AuthError (401)
    ├── EnrollmentRefused           invalid_enrollment_token: unknown token
    │   ├── TokenExpired            enrollment_token_expired
    │   ├── TokenUsedUp             enrollment_token_used_up
    │   └── TokenRevoked            enrollment_token_revoked
    └── AgentKeyRefused             invalid_agent_key: unknown key
        └── AgentRevoked            agent_revoked
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from api.agents import states
from api.agents.models import Agent, EnrollmentToken, TokenState, utcnow
from api.agents.schemas import AgentEnroll, AgentHeartbeat, EnrollmentTokenCreate, SourceStatus
from api.agents.states import AgentState
from api.deps import Principal
from api.errors import AuthError, Invalid, NotFound
from api.establishments import service as establishments
from api.establishments.models import Establishment
from api.roles import Role

TOKEN_PREFIX = "vge_"  # noqa: S105 - a prefix, not a secret
AGENT_KEY_PREFIX = "vga_"
_SHOWN = 8  # characters of a token kept in clear (prefix included) to tell tokens apart


class EnrollmentRefused(AuthError):
    code = "invalid_enrollment_token"


class TokenExpired(EnrollmentRefused):
    code = "enrollment_token_expired"


class TokenUsedUp(EnrollmentRefused):
    code = "enrollment_token_used_up"


class TokenRevoked(EnrollmentRefused):
    code = "enrollment_token_revoked"


class AgentKeyRefused(AuthError):
    code = "invalid_agent_key"


class AgentRevoked(AgentKeyRefused):
    code = "agent_revoked"


_REFUSALS: dict[TokenState, type[EnrollmentRefused]] = {
    TokenState.EXPIRED: TokenExpired,
    TokenState.USED_UP: TokenUsedUp,
    TokenState.REVOKED: TokenRevoked,
}


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


# Enrollment tokens ------------------------------------------------------------------------------


def create_token(
    *, session: Session, who: Principal, finess: str, data: EnrollmentTokenCreate
) -> tuple[EnrollmentToken, str]:
    """A new token for an establishment the caller sees; the token in clear is returned once."""
    establishment = establishments.get(session=session, who=who, finess=finess)
    secret = _new_secret(TOKEN_PREFIX)
    token = EnrollmentToken(
        id=str(uuid.uuid4()),
        establishment_finess=establishment.finess,
        token_hash=digest(secret),
        prefix=secret[:_SHOWN],
        label=data.label,
        site=data.site,
        created_by=who.username,
        created_at=utcnow(),
        expires_at=utcnow() + timedelta(days=data.expires_in_days),
        max_uses=data.max_uses,
        uses=0,
    )
    session.add(token)
    session.flush()
    return token, secret


def list_tokens(*, session: Session, who: Principal, finess: str) -> list[EnrollmentToken]:
    establishment = establishments.get(session=session, who=who, finess=finess)
    query = select(EnrollmentToken).where(
        EnrollmentToken.establishment_finess == establishment.finess
    )
    return list(session.scalars(query.order_by(EnrollmentToken.created_at.desc())))


def revoke_token(
    *, session: Session, who: Principal, finess: str, token_id: str
) -> EnrollmentToken:
    """Revoke a token (again: no change). Agents enrolled with it keep their keys."""
    establishment = establishments.get(session=session, who=who, finess=finess)
    token = session.get(EnrollmentToken, token_id)
    absent = f"no enrollment token {token_id} for establishment {finess}"
    if token is None or (token.establishment_finess != establishment.finess and not who.scope):
        raise NotFound(absent)
    if token.establishment_finess != establishment.finess:  # another establishment's token
        raise who.not_yours(absent, kind="enrollment_token", target=token.id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        token.revoked_by = who.username
        session.flush()
    return token


def _spend(*, session: Session, secret: str) -> EnrollmentToken:
    """The token behind `secret`, with one use counted; refused with the reason why not."""
    token = session.scalar(
        select(EnrollmentToken).where(EnrollmentToken.token_hash == digest(secret))
    )
    if token is None:
        raise EnrollmentRefused("unknown enrollment token")
    state = token.state
    if state is not TokenState.ACTIVE:
        raise _REFUSALS[state](f"enrollment token {token.prefix}... is {state}")
    # Counted by the database, so that two agents enrolling at once cannot both take the
    # last use (the row is locked by the update; the WHERE is checked again under the lock).
    spent = cast(
        CursorResult[Any],
        session.execute(
            update(EnrollmentToken)
            .where(
                EnrollmentToken.id == token.id,
                EnrollmentToken.revoked_at.is_(None),
                (EnrollmentToken.max_uses.is_(None))
                | (EnrollmentToken.uses < EnrollmentToken.max_uses),
            )
            .values(uses=EnrollmentToken.uses + 1)
            .execution_options(synchronize_session=False),
        ),
    )
    if spent.rowcount != 1:
        session.refresh(token)
        state = token.state
        refusal = _REFUSALS.get(state, TokenUsedUp)
        raise refusal(f"enrollment token {token.prefix}... is {state}")
    session.refresh(token)
    return token


# Agents -----------------------------------------------------------------------------------------


def _sources(sources: list[SourceStatus]) -> tuple[list[dict[str, Any]], float | None]:
    rows = [s.model_dump() for s in sources]
    lags = [s.lag_seconds for s in sources if s.lag_seconds is not None]
    return rows, max(lags) if lags else None


def enroll(*, session: Session, data: AgentEnroll, client: str | None) -> tuple[Agent, str]:
    """Trade an enrollment token for a new agent; its key in clear is returned once."""
    token = _spend(session=session, secret=data.token)
    key = _new_secret(AGENT_KEY_PREFIX)
    sources, lag = _sources(data.sources)
    agent = Agent(
        id=str(uuid.uuid4()),
        establishment_finess=token.establishment_finess,
        hostname=data.hostname,
        site=token.site,
        version=data.version,
        sources=sources,
        key_hash=digest(key),
        enrollment_token_id=token.id,
        enrolled_from=client,
        enrolled_at=utcnow(),
        lag_seconds=lag,
        revoked=False,
    )
    session.add(agent)
    session.flush()
    return agent, key


def principal_from_agent_key(*, session: Session, key: str) -> Principal:
    agent = session.scalar(select(Agent).where(Agent.key_hash == digest(key)))
    if agent is None:
        raise AgentKeyRefused("unknown agent key")
    if agent.revoked:
        raise AgentRevoked(f"agent {agent.id} was revoked: enroll it again")
    return Principal(f"agent:{agent.id}", str(Role.AGENT), agent.establishment_finess)


def heartbeat(*, session: Session, who: Principal, data: AgentHeartbeat) -> Agent:
    agent = mine(session=session, who=who)
    agent.version = data.version
    agent.sources, agent.lag_seconds = _sources(data.sources)
    agent.last_heartbeat = utcnow()
    agent.counters = dict(data.counters)
    session.flush()
    _heard(session, agent)
    return agent


def _heard(session: Session, agent: Agent) -> None:
    """A day's heartbeats are maturity evidence: the agent's silences are the days without."""
    from api.maturity.evidence import gather
    from api.maturity.signals import Observation

    assert agent.last_heartbeat is not None
    kinds = sorted({str(s.get("kind")) for s in agent.sources or [] if s.get("kind")}) or ["-"]
    gather(
        session,
        agent.establishment_finess,
        [Observation("agent", agent.id, agent.last_heartbeat, "heartbeat", k) for k in kinds],
    )


def mine(*, session: Session, who: Principal) -> Agent:
    """The calling agent's own record."""
    if who.agent_id is None:
        raise Invalid("only an agent has an agent record of its own")
    return get(session=session, who=who, agent_id=who.agent_id)


def get(*, session: Session, who: Principal, agent_id: str) -> Agent:
    agent = session.get(Agent, agent_id)
    # Not yours and absent answer alike: an establishment cannot probe for others' agents.
    if agent is None:
        raise NotFound(f"no agent {agent_id}")
    if not who.sees(agent.establishment_finess):
        raise who.not_yours(f"no agent {agent_id}", kind="agent", target=agent.id)
    return agent


def page(
    *,
    session: Session,
    who: Principal,
    establishment: str | None,
    offset: int,
    limit: int,
    state: AgentState | None = None,
    region: str | None = None,
    silent_after: timedelta = timedelta(minutes=60),
) -> tuple[list[Agent], int]:
    """`state` as `api.agents.states` defines it now (`silent_after`: the service's
    silence threshold); `region`: the establishment's."""
    query = select(Agent)
    if who.scope is not None:
        query = query.where(Agent.establishment_finess == who.scope)
    if establishment is not None:
        query = query.where(Agent.establishment_finess == establishment.strip().upper())
    if state is not None:
        query = query.where(states.condition(state, utcnow(), silent_after))
    if region is not None:
        in_region = select(Establishment.finess).where(Establishment.region == region)
        query = query.where(Agent.establishment_finess.in_(in_region))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(
        query.order_by(Agent.establishment_finess, Agent.hostname, Agent.id)
        .offset(offset)
        .limit(limit)
    )
    return list(items), total


def revoke(*, session: Session, who: Principal, agent_id: str) -> Agent:
    """Revoke an agent (again: no change): its key is refused from now on."""
    agent = get(session=session, who=who, agent_id=agent_id)
    if not agent.revoked:
        agent.revoked = True
        agent.revoked_at = utcnow()
        agent.revoked_by = who.username
        session.flush()
    return agent
