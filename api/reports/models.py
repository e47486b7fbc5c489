from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from api.agents.models import utcnow
from api.db import Base


class ReportRun(Base):
    """One report made: what was asked, by whom, with which library versions, and the sha256
    of the file. `path` (under the data directory) is set when the file was kept: scheduled
    runs are, downloads are not (their bytes can be made again from the same `as_of`)."""

    __tablename__ = "report_runs"
    __table_args__ = (Index("ix_report_runs_kind_finess", "kind", "finess", "as_of"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(30))
    format: Mapped[str] = mapped_column(String(10))
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finess: Mapped[str | None] = mapped_column(String(9))
    region: Mapped[str | None] = mapped_column(String(60))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    versions: Mapped[dict[str, str]] = mapped_column(JSON)  # vigie and the report libraries
    trigger: Mapped[str] = mapped_column(String(130))  # "api:<user>", "cli:<user>", "schedule"
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(200))
    path: Mapped[str | None] = mapped_column(String(300))
