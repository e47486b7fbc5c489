"""The jobs the service runs, how each run is guarded by its lease and recorded.

Errors: `UnknownJob` (NotFound, 404) and `Invalid` (422) for an "as of" time refused; a job
that fails is not an error of the caller's: its run is recorded with outcome `error`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.agents.models import utcnow
from api.db import transaction
from api.errors import NotFound
from api.events.store import EventStore
from api.jobs import lock, tasks
from api.jobs.models import JobRun, Outcome
from api.reports import scheduled as scheduled_reports
from api.settings import Settings

log = logging.getLogger("vigie.jobs")

# Longer than any run should take: a process that dies mid-run blocks its job this long.
JOB_LEASE = timedelta(minutes=30)


class UnknownJob(NotFound):
    code = "unknown_job"


@dataclass(frozen=True)
class JobSpec:
    name: str
    description: str
    schedule: str  # said to admins
    trigger: Callable[[], BaseTrigger]  # a new trigger per scheduler (they keep a start date)
    run: tasks.JobFunction


JOBS: dict[str, JobSpec] = {
    spec.name: spec
    for spec in (
        JobSpec(
            "nis2_deadlines",
            "flag incidents whose NIS2 deadlines passed without the report sent",
            "every 5 minutes",
            lambda: IntervalTrigger(minutes=5, timezone=UTC),
            tasks.nis2_deadlines,
        ),
        JobSpec(
            "agent_silent",
            "notify an establishment and the CERT when an agent stops sending heartbeats",
            "every 5 minutes",
            lambda: IntervalTrigger(minutes=5, timezone=UTC),
            tasks.agent_silent,
        ),
        JobSpec(
            "agent_dropped",
            "notify an establishment and the CERT when an agent's disk budget dropped events",
            "every minute",
            lambda: IntervalTrigger(minutes=1, timezone=UTC),
            tasks.agent_dropped,
        ),
        JobSpec(
            "maturity",
            "score every establishment's cyber-maturity: one snapshot each, as of the run",
            "every day at 23:50 UTC",
            # Late in the day, so that the day's snapshot has the day's evidence.
            lambda: CronTrigger(hour=23, minute=50, timezone=UTC),
            tasks.maturity,
        ),
        JobSpec(
            "report_maturity",
            "make and keep each scored establishment's maturity report (PDF, XLSX)",
            "on the 1st of every month, every hour from 02:30 UTC until all are kept",
            lambda: CronTrigger(day=1, hour="2-23", minute=30, timezone=UTC),
            scheduled_reports.maturity,
        ),
        JobSpec(
            "report_stats",
            "make and keep the national statistics (XLSX, CSV)",
            "on the 1st of January, April, July and October at 04:30 UTC",
            lambda: CronTrigger(month="1,4,7,10", day=1, hour=4, minute=30, timezone=UTC),
            scheduled_reports.stats,
        ),
        JobSpec(
            "retention_purge",
            "delete events and detections older than the retention period",
            "every day at 03:15 UTC",
            lambda: CronTrigger(hour=3, minute=15, timezone=UTC),
            tasks.retention_purge,
        ),
    )
}


def spec(name: str) -> JobSpec:
    found = JOBS.get(name)
    if found is None:
        raise UnknownJob(f"no job {name!r}: the jobs are {', '.join(JOBS)}")
    return found


def run(
    *,
    job: JobSpec,
    sessions: sessionmaker[Session],
    store: EventStore,
    settings: Settings,
    instance: str,
    trigger: str,
    now: datetime | None = None,
) -> JobRun:
    """Run `job` now under its lease and record the run (also when the lease is taken)."""
    started = utcnow()
    as_of = (now or started).astimezone(UTC)
    holder = f"{instance}/{uuid.uuid4().hex[:8]}"  # per run: two runs exclude each other too
    counts: dict[str, int] = {}
    if not lock.acquire(sessions, job.name, holder, lease=JOB_LEASE):
        outcome, detail = Outcome.SKIPPED_LOCKED, _held_by(sessions, job.name)
    else:
        try:
            counts = job.run(sessions=sessions, store=store, settings=settings, now=as_of)
            outcome = Outcome.OK
            detail = ", ".join(f"{k}: {v}" for k, v in counts.items())
        except Exception as exc:
            # Recorded for the admins and logged with its traceback; the scheduler goes on.
            log.exception("job %s failed", job.name)
            outcome, detail = Outcome.ERROR, f"{type(exc).__name__}: {exc}"
        finally:
            lock.release(sessions, job.name, holder)
    record = JobRun(
        job=job.name,
        trigger=trigger,
        holder=holder,
        started_at=started,
        finished_at=utcnow(),
        as_of=as_of,
        outcome=str(outcome),
        detail=detail[:4000],
        counts=counts,
    )
    with transaction(sessions) as session:
        session.add(record)
    return record


def _held_by(sessions: sessionmaker[Session], name: str) -> str:
    with transaction(sessions) as session:
        lease = lock.current(session, name)
    if lease is None:
        return "the lock was taken by another run"
    return f"running elsewhere: {lease.holder} holds the lock until {lease.expires_at:%H:%M:%S} UTC"


def last_runs(*, session: Session) -> dict[str, JobRun]:
    """The latest run of each job."""
    latest: dict[str, JobRun] = {}
    for name in JOBS:
        found = session.scalar(
            select(JobRun).where(JobRun.job == name).order_by(JobRun.id.desc()).limit(1)
        )
        if found is not None:
            latest[name] = found
    return latest


def runs(*, session: Session, name: str, limit: int) -> list[JobRun]:
    spec(name)
    query = select(JobRun).where(JobRun.job == name).order_by(JobRun.id.desc()).limit(limit)
    return list(session.scalars(query))
