from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class NotificationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, validate_by_name=True)

    id: str
    establishment: str = Field(validation_alias="establishment_finess")
    kind: str
    subject: str
    message: str
    created_at: datetime
    resolved_at: datetime | None


class NotificationPage(BaseModel):
    items: list[NotificationRead]
    total: int
