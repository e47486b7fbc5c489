from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base


class Establishment(Base):
    """A health establishment (site), keyed by its FINESS number."""

    __tablename__ = "establishments"

    finess: Mapped[str] = mapped_column(String(9), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Indexed: the dashboard's filters and counts by kind and by region.
    kind: Mapped[str] = mapped_column(String(20), index=True)  # CHU, CH, clinic, EHPAD, ...
    region: Mapped[str] = mapped_column(String(60), index=True)
    beds: Mapped[int | None] = mapped_column(Integer)
    legal_entity_finess: Mapped[str | None] = mapped_column(String(9))
    legal_status: Mapped[str | None] = mapped_column(String(30))  # schemas.LegalStatus
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
