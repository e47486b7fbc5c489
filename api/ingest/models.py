from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base

# The condition of the partial index below; `api.stats` states it the same way.
CARRIED_DETECTIONS = "detections_accepted + server_detections > 0"


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
        # The batches that carried detections, with what the dashboard's series counts of
        # them: it reads this index alone, not every batch of the period (most carry none).
        Index(
            "ix_ingested_batches_detections",
            "received_at",
            "establishment",
            "state",
            "detections_accepted",
            "server_detections",
            sqlite_where=text(CARRIED_DETECTIONS),
            postgresql_where=text(CARRIED_DETECTIONS),
        ),
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
