from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.roles import Role
from api.text import NulFree


class ApiKeyCreate(NulFree):
    name: str = Field(
        min_length=3, max_length=80, pattern=r"^[A-Za-z0-9._@-]+$", description="e.g. 'siem-export'"
    )
    role: Role = Field(description="establishment, cert, auditor or admin (agents enroll instead)")
    establishment: str | None = Field(
        default=None,
        max_length=11,
        description="FINESS of an establishment key (an establishment user's: its own)",
    )
    expires_in_days: int | None = Field(
        default=None, ge=1, le=3660, description="absent: until revoked"
    )


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, validate_by_name=True)

    id: str
    name: str
    prefix: str = Field(description="the first characters of the key, to tell keys apart")
    role: str
    establishment: str | None = Field(validation_alias="establishment_finess")
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    state: Literal["active", "expired", "revoked"]


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="shown once: send it as `Authorization: Bearer <key>`")
