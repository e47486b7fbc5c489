from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, false, func
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base


class User(Base):
    """A human account (agents get their own credentials at enrollment).

    Accounts are disabled, never deleted: the audit log and the API keys name them.
    `token_version` is carried by every login token (claim `ver`); raising it revokes them all
    (password change or reset, role or establishment change, disable, logout). A cookie session
    keeps the version it was opened with and is checked the same way.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(120), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    establishment_finess: Mapped[str | None] = mapped_column(
        String(9), ForeignKey("establishments.finess")
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Set for the first admin and after an admin's reset: every route but the password change,
    # /auth/me and logout answers 403 `password_change_required` until the user changes it.
    must_change_password: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginFailure(Base):
    """Failed logins counted per account name (known or not) and per client address.

    Kept in the database, not in the process: `vigie serve --workers N` runs N processes, and a
    guesser spread over them must meet one count.
    """

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)  # user:<name> | addr:<ip>
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
