from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base


class Outcome(StrEnum):
    OK = "ok"
    ERROR = "error"
    SKIPPED_LOCKED = "skipped-locked"  # another process (or run) held the job's lock


class JobLock(Base):
    """A lease on a job (or on the scheduler itself): whoever holds an unexpired row runs it.

    Taken by an UPDATE whose WHERE is checked by the database under its row lock, so two
    processes on one database never both take it (see `api.jobs.lock`).
    """

    __tablename__ = "job_locks"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    holder: Mapped[str] = mapped_column(String(160))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobRun(Base):
    """One run of a job, scheduled or asked for, with what it did."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(60), index=True)
    trigger: Mapped[str] = mapped_column(String(130))  # "schedule" or "manual:<username>"
    holder: Mapped[str] = mapped_column(String(160))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The time the job judged by: the start, unless an admin ran it "as of" another moment.
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(Text, default="")
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
