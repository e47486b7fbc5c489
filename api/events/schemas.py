"""What the events routes answer: stored documents read back by their stable ids."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class StoredDocument(BaseModel):
    id: str = Field(description="the stable id the store keeps it under")
    document: dict[str, Any] = Field(description="the document as stored")


class EventsByIds(BaseModel):
    finess: str
    events: list[StoredDocument] = Field(description="in the order asked, each once")
    missing: list[str] = Field(description="ids asked for that this establishment has not")


class DetectionsByIds(BaseModel):
    finess: str
    detections: list[StoredDocument] = Field(description="in the order asked, each once")
    missing: list[str] = Field(description="ids asked for that this establishment has not")
