"""API keys: created by an admin (any human role) or by an establishment (its own, establishment
role only), shown once, kept as their SHA-256 like agent keys (see `api.agents.service` for why
a fast hash is right for 256 random bits), revoked, never deleted (the audit log names them).

A key cannot create keys: a leaked key must not be able to mint others that outlive its
revocation. Disabling a user, or changing their role or establishment, revokes the keys they
created (`revoke_created_by`): they saw them in clear, and must not keep through a key the
rights they lost.

Errors (under `api.errors`; the codes are stable, scripts act on them):

    AuthError (401)
    └── ApiKeyRefused           invalid_api_key: unknown key
        ├── ApiKeyExpired       api_key_expired
        └── ApiKeyRevoked       api_key_revoked
    ApiKeyForbidden (403)       forbidden: a role or establishment the caller may not grant
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.agents.models import as_utc, utcnow
from api.agents.service import digest
from api.apikeys.models import ApiKey
from api.apikeys.schemas import ApiKeyCreate
from api.deps import Principal
from api.errors import AuthError, Conflict, Invalid, NotFound, VigieServiceError
from api.establishments import service as establishments
from api.roles import Role

KEY_PREFIX = "vgk_"
USERNAME_PREFIX = "key:"
_SHOWN = 8  # characters kept in clear (prefix included) to tell keys apart
_USE_GRANULARITY = timedelta(minutes=1)  # last_used_at is written at most this often


class ApiKeyRefused(AuthError):
    code = "invalid_api_key"


class ApiKeyExpired(ApiKeyRefused):
    code = "api_key_expired"


class ApiKeyRevoked(ApiKeyRefused):
    code = "api_key_revoked"


class ApiKeyForbidden(VigieServiceError):
    status = 403
    code = "forbidden"


def create(*, session: Session, who: Principal, data: ApiKeyCreate) -> tuple[ApiKey, str]:
    """A new key; the key in clear is returned once."""
    if who.username.startswith(USERNAME_PREFIX):
        raise ApiKeyForbidden("an API key cannot create API keys: log in as a person")
    if data.role is Role.AGENT:
        raise Invalid("agents get their keys by enrolling, not as API keys")
    if who.role != Role.ADMIN and data.role is not Role.ESTABLISHMENT:
        raise ApiKeyForbidden(f"role {who.role} may only create establishment keys")
    finess: str | None = None
    if data.role is Role.ESTABLISHMENT:
        wanted = data.establishment or who.establishment
        if not wanted:
            raise Invalid("an establishment key needs the FINESS of its establishment")
        # Someone else's establishment answers like an unknown one (nothing to probe).
        finess = establishments.get(session=session, who=who, finess=wanted).finess
    elif data.establishment:
        raise Invalid(f"a {data.role} key is national: it takes no establishment")
    if session.scalar(select(ApiKey.id).where(ApiKey.name == data.name)) is not None:
        raise Conflict(f"an API key named {data.name} already exists")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    key = ApiKey(
        id=str(uuid.uuid4()),
        name=data.name,
        prefix=secret[:_SHOWN],
        key_hash=digest(secret),
        role=str(data.role),
        establishment_finess=finess,
        created_by=who.username,
        created_at=now,
        expires_at=now + timedelta(days=data.expires_in_days) if data.expires_in_days else None,
    )
    try:
        with session.begin_nested():  # a savepoint: the request stays usable after a refusal
            session.add(key)
    except IntegrityError as exc:  # the same name created meanwhile by another request
        raise Conflict(f"an API key named {data.name} already exists") from exc
    return key, secret


def listing(*, session: Session, who: Principal) -> list[ApiKey]:
    """Every key for an admin; an establishment's own keys for it."""
    query = select(ApiKey)
    if who.role != Role.ADMIN:
        query = query.where(ApiKey.establishment_finess == (who.scope or "-"))
    return list(session.scalars(query.order_by(ApiKey.created_at.desc(), ApiKey.name)))


def revoke(*, session: Session, who: Principal, key_id: str) -> ApiKey:
    """Revoke a key (again: no change); it is refused from now on."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no API key {key_id}")
    if who.role != Role.ADMIN and key.establishment_finess != (who.scope or "-"):
        raise who.not_yours(f"no API key {key_id}", kind="api_key", target=key.id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        key.revoked_by = who.username
        session.flush()
    return key


def revoke_created_by(*, session: Session, username: str, by: str) -> list[str]:
    """Revoke the active keys `username` created; their ids."""
    keys = session.scalars(
        select(ApiKey).where(ApiKey.created_by == username, ApiKey.revoked_at.is_(None))
    ).all()
    now = utcnow()
    for key in keys:
        key.revoked_at, key.revoked_by = now, by
    return [k.id for k in keys]


def principal_from_api_key(*, session: Session, key: str) -> Principal:
    found = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest(key)))
    if found is None:
        raise ApiKeyRefused("unknown API key")
    state = found.state
    if state == "revoked":
        raise ApiKeyRevoked(f"API key {found.name} ({found.prefix}...) was revoked")
    if state == "expired":
        raise ApiKeyExpired(f"API key {found.name} ({found.prefix}...) has expired")
    now = utcnow()
    last = found.last_used_at
    if last is None or as_utc(last) < now - _USE_GRANULARITY:
        _mark_used(session, found.id, now)
    return Principal(USERNAME_PREFIX + found.name, found.role, found.establishment_finess)


def _mark_used(session: Session, key_id: str, now: datetime) -> None:
    """Written at most once a minute, in a transaction of its own committed at once: on SQLite
    a write held by the request's transaction would block the whole database until the
    response (a job run by the request, for one, could not write meanwhile)."""
    with Session(session.get_bind()) as own, own.begin():
        own.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
