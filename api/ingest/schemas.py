from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Batch(BaseModel):
    """What an agent posts (usually gzip-compressed: `Content-Encoding: gzip`)."""

    batch_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    events: list[dict[str, Any]] = Field(default_factory=list, max_length=50_000)
    detections: list[dict[str, Any]] = Field(default_factory=list, max_length=50_000)
    event_ids: list[str] | None = Field(
        default=None,
        description="one stable id per event, unique for the agent (its spool's): an event "
        "whose id was stored before is not stored again. Absent: the batch id and the "
        "event's place in the batch",
    )
    detection_ids: list[str] | None = Field(
        default=None, description="one stable id per detection, as event_ids"
    )


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
    duplicates: int = Field(
        default=0, description="events and detections already stored (a retry): not again"
    )
    incidents: int = Field(default=0, description="incidents opened or extended by this batch")
    rejected: list[Rejected] = Field(default_factory=list)


class IngestStats(BaseModel):
    """An agent's batches as the service counts them."""

    agent: str
    batches: int = Field(description="batches done")
    processing: int = Field(description="batches claimed and not done (in flight, or crashed)")
    events_accepted: int
    detections_accepted: int
    server_detections: int
    rejected: int = Field(description="items refused one by one (malformed)")
    duplicates: int = Field(
        description="events and detections received again and not stored twice: retries "
        "after a lost answer or a crash; a growing count is worth a look"
    )
