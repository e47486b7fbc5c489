"""Login tokens: signed JWTs with a short life, naming a user and the version of its tokens.

A token says who (`sub`) and which generation of that user's tokens it belongs to (`ver`);
everything else (role, establishment, whether the account is active) is read from the database
on each request, so that a change takes effect at once, in every worker process. A token whose
`ver` is behind the user's `token_version` was revoked.

Every refusal answers the same words: the reason (expired, bad signature, revoked, disabled,
unknown user) is nobody's business but the log's.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from fastapi import HTTPException
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.deps import Principal
from api.settings import Settings

log = logging.getLogger("vigie.api.auth")
_ALGORITHM = "HS256"
_REQUIRED = ["exp", "iat", "sub", "ver"]
REFUSED = "invalid or expired token"


def issue(user: User, settings: Settings) -> tuple[str, int]:
    lifetime = settings.token_minutes * 60
    now = datetime.now(UTC)
    claims = {
        "sub": user.username,
        "ver": user.token_version,
        "iat": now,
        "exp": now + timedelta(seconds=lifetime),
    }
    return jwt.encode(claims, settings.secret_key, algorithm=_ALGORITHM), lifetime


def _refused() -> HTTPException:
    return HTTPException(401, REFUSED, headers={"WWW-Authenticate": "Bearer"})


def active_user(*, session: Session, username: str, version: Any) -> User | None:
    """The user a session (token or, later, cookie) of `version` still speaks for, or None."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active or user.token_version != version:
        return None
    return user


def principal_from_token(*, session: Session, token: str, settings: Settings) -> Principal:
    try:
        claims = jwt.decode(
            token, settings.secret_key, algorithms=[_ALGORITHM], options={"require": _REQUIRED}
        )
    except jwt.PyJWTError as exc:
        log.info("token refused: %s", exc)
        raise _refused() from exc
    subject, version = claims["sub"], claims["ver"]
    if not isinstance(subject, str) or isinstance(version, bool) or not isinstance(version, int):
        raise _refused()
    user = active_user(session=session, username=subject, version=version)
    if user is None:
        log.info("token refused: %s is unknown, disabled, or its tokens were revoked", subject)
        raise _refused()
    return Principal(
        user.username,
        user.role,
        user.establishment_finess,
        must_change_password=user.must_change_password,
    )
