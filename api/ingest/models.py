from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base


class IngestedBatch(Base):
    """A batch an agent sent: its id makes a retried batch a no-op.

    The row is written (`processing`) and committed before the batch is processed, so that a
    retry arriving while the first attempt still runs is told to wait instead of storing the
    events a second time; `done` when the batch's outcome is kept. `owner` is the process that
    claimed it (`api.ingest.claims`); `duplicates` counts the events and detections of the
    batch that the event store had already (a retry, a takeover after a crash): ignored.
    """

    __tablename__ = "ingested_batches"
    __table_args__ = (
        Index("ix_ingested_batches_agent", "agent"),
        # Detections received per day, nationally and for one establishment (api/stats).
        Index("ix_ingested_batches_received_at", "received_at"),
        Index("ix_ingested_batches_establishment_received_at", "establishment", "received_at"),
    )

    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent: Mapped[str] = mapped_column(String(80))
    establishment: Mapped[str] = mapped_column(String(9))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    events_accepted: Mapped[int] = mapped_column(Integer)
    detections_accepted: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    server_detections: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(12), default="done")  # processing | done
    owner: Mapped[str | None] = mapped_column(String(160))
    duplicates: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
