from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.agents.models import utcnow
from api.db import Base


class Notification(Base):
    """Something an establishment and the CERT should look at; open until `resolved_at`.

    One open notification per (kind, subject): a condition that lasts is not raised again at
    every check, and is raised anew once it was resolved and comes back.
    """

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_kind_subject", "kind", "subject"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    establishment_finess: Mapped[str] = mapped_column(
        String(9), ForeignKey("establishments.finess"), index=True
    )
    kind: Mapped[str] = mapped_column(String(40))  # e.g. agent_silent
    subject: Mapped[str] = mapped_column(String(80))  # what it is about, e.g. an agent id
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
