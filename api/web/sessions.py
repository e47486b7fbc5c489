"""Cookie sessions for the people using the dashboard, kept on the server.

The browser holds a random id; the database holds its SHA-256, the user, the version of the
user's tokens it was opened with, and the session's CSRF token. A session ends at logout, after
30 minutes without a request, after 12 hours in any case, and whenever the user's rights change
(role, establishment, password, disabled: `User.token_version` moves on, as for login tokens).
A JWT in a cookie would be simpler, but could not be revoked before it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import DateTime, ForeignKey, Integer, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from api.agents.models import as_utc
from api.auth.models import User
from api.auth.tokens import active_user
from api.db import Base
from api.deps import Principal

IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)
COOKIE = "vigie_session"
# Over TLS the cookie takes the __Host- prefix: the browser then refuses it unless it is
# Secure, host-only and for the whole site.
SECURE_COOKIE = "__Host-vigie_session"


class WebSession(Base):
    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(120), ForeignKey("users.username"), index=True)
    token_version: Mapped[int] = mapped_column(Integer)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    client: Mapped[str | None] = mapped_column(String(64))


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def open_session(session: Session, user: User, now: datetime, client: str | None) -> str:
    """A new session for `user`; its id (for the cookie) is returned and stored nowhere."""
    session_id = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            id_hash=_hash(session_id),
            username=user.username,
            token_version=user.token_version,
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            client=(client or "")[:64] or None,
        )
    )
    session.flush()
    return session_id


def find(session: Session, session_id: str | None, now: datetime) -> tuple[WebSession, User] | None:
    """The live session of this id and its user, its idle clock restarted; None otherwise."""
    if not session_id or len(session_id) > 100:
        return None
    row = session.get(WebSession, _hash(session_id))
    if row is None or row.ended_at is not None:
        return None
    if now - as_utc(row.last_seen_at) > IDLE or now - as_utc(row.created_at) > ABSOLUTE:
        row.ended_at = now
        return None
    user = active_user(session=session, username=row.username, version=row.token_version)
    if user is None:  # disabled, or rights changed since it opened
        row.ended_at = now
        return None
    row.last_seen_at = now
    return row, user


def principal(user: User) -> Principal:
    return Principal(
        user.username,
        user.role,
        user.establishment_finess,
        must_change_password=user.must_change_password,
    )


def csrf_matches(row: WebSession, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(row.csrf.encode(), given.encode())


def end(session: Session, row: WebSession, now: datetime) -> None:
    row.ended_at = now


def end_all(session: Session, username: str, now: datetime) -> int:
    """End every open session of a user (an admin's action); how many were open."""
    result = session.execute(
        update(WebSession)
        .where(WebSession.username == username, WebSession.ended_at.is_(None))
        .values(ended_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def open_count(session: Session, username: str) -> int:
    return len(
        session.scalars(
            select(WebSession.id_hash).where(
                WebSession.username == username, WebSession.ended_at.is_(None)
            )
        ).all()
    )
