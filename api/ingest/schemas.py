from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Batch(BaseModel):
    """What an agent posts (usually gzip-compressed: `Content-Encoding: gzip`)."""

    batch_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    events: list[dict[str, Any]] = Field(default_factory=list, max_length=50_000)
    detections: list[dict[str, Any]] = Field(default_factory=list, max_length=50_000)


class Rejected(BaseModel):
    kind: str  # event | detection
    index: int
    reason: str


class BatchResult(BaseModel):
    batch_id: str
    duplicate: bool = False
    events_accepted: int = 0
    detections_accepted: int = 0
    server_detections: int = 0
    incidents: int = Field(default=0, description="incidents opened or extended by this batch")
    rejected: list[Rejected] = Field(default_factory=list)
