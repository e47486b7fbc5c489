from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class JobRunRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    job: str
    trigger: str = Field(description="schedule, or manual:<who asked>")
    holder: str = Field(description="the process (host:pid:id) that ran it, or tried to")
    started_at: datetime
    finished_at: datetime
    as_of: datetime = Field(description="the time the job judged by")
    outcome: str = Field(description="ok | error | skipped-locked")
    detail: str
    counts: dict[str, Any]


class JobRead(BaseModel):
    name: str
    description: str
    schedule: str
    next_run_at: datetime | None = Field(description="by this process's scheduler")
    locked_by: str | None = Field(description="who runs it right now, if anyone")
    last_run: JobRunRead | None
