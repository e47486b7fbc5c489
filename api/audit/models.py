from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base


class AuditEntry(Base):
    """One human read or write of incident, alert, establishment or account data, a login,
    or a refused read of another establishment's object (`denied`)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(20))
    # read | create | update | delete | login | login_failed | logout | denied
    action: Mapped[str] = mapped_column(String(20))
    target_kind: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[str] = mapped_column(String(80))
    client: Mapped[str | None] = mapped_column(String(64))  # the caller's address
    # What a list answered (the ids returned), or what changed: one short text.
    detail: Mapped[str | None] = mapped_column(Text)
    # The hash chain (api/audit/chain.py): the previous row's hash, and this row's.
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))
