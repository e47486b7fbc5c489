from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes: they were written in UTC. PostgreSQL hands back the
    session's time zone: the same instant in UTC, so that what is written of it (a digest, a
    document) does not depend on the server's settings."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


class TokenState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    USED_UP = "used_up"
    REVOKED = "revoked"


class EnrollmentToken(Base):
    """A one-time (or few-times) secret an establishment hands to the agents it installs.

    Only the SHA-256 of the token is kept; `prefix` (its first characters) lets people tell
    tokens apart in a listing without exposing them.
    """

    __tablename__ = "enrollment_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    establishment_finess: Mapped[str] = mapped_column(
        String(9), ForeignKey("establishments.finess"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(120))
    site: Mapped[str | None] = mapped_column(String(120))  # given to the agents it enrolls
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    max_uses: Mapped[int | None] = mapped_column(Integer)  # None: until it expires
    uses: Mapped[int] = mapped_column(Integer, default=0)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(120))

    @property
    def state(self) -> TokenState:
        """Revoked first, then used up, then expired: the reason that cannot go away first."""
        if self.revoked_at is not None:
            return TokenState.REVOKED
        if self.max_uses is not None and self.uses >= self.max_uses:
            return TokenState.USED_UP
        if as_utc(self.expires_at) <= utcnow():
            return TokenState.EXPIRED
        return TokenState.ACTIVE


class Agent(Base):
    """A collector agent enrolled for one establishment; its key is kept as a SHA-256."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    establishment_finess: Mapped[str] = mapped_column(
        String(9), ForeignKey("establishments.finess"), index=True
    )
    hostname: Mapped[str] = mapped_column(String(253))
    site: Mapped[str | None] = mapped_column(String(120))  # from its enrollment token
    version: Mapped[str] = mapped_column(String(40))
    # [{"name": ..., "kind": ..., "lag_seconds": ...}, ...] as last reported
    sources: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    enrollment_token_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("enrollment_tokens.id")
    )
    enrolled_from: Mapped[str | None] = mapped_column(String(64))  # the caller's address
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_heartbeat: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lag_seconds: Mapped[float | None] = mapped_column(Float)  # the largest lag of its sources
    # As last reported: received, shipped, queued, dropped (disk budget), refused, ...
    counters: Mapped[dict[str, int]] = mapped_column(JSON, default=dict, server_default="{}")
    # The `dropped` counter as last notified (job `agent_dropped`): a growth beyond it is news.
    dropped_notified: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(120))
