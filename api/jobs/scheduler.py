"""The service's scheduled jobs (APScheduler), started and stopped with the application.

Every service process runs a scheduler, but only one of them at a time runs the schedule: the
one holding the `scheduler` lease in `job_locks`, renewed every minute. If it stops (or dies),
another process takes the lease over within `LEADER_LEASE`. Each run also takes its job's own
lease, so a scheduled run and a run asked for by an admin (in any process) never overlap.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from fastapi import FastAPI

from api.jobs import lock, service
from api.jobs.models import JobRun

log = logging.getLogger("vigie.jobs")

LEADER = "scheduler"  # the lease of the process that runs the schedule
LEADER_LEASE = timedelta(minutes=3)
_RENEW_SECONDS = 60


@dataclass
class Jobs:
    """What the application keeps of its scheduler (`app.state.jobs`)."""

    app: FastAPI
    instance: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    )
    scheduler: BackgroundScheduler | None = None

    def next_run(self, name: str) -> datetime | None:
        if self.scheduler is None:
            return None
        job = self.scheduler.get_job(name)
        moment: datetime | None = job.next_run_time if job is not None else None
        return moment.astimezone(UTC) if moment is not None else None

    def leads(self) -> bool:
        """Take or renew the schedule's lease; False: another process runs the schedule."""
        return lock.acquire(self.app.state.sessions, LEADER, self.instance, lease=LEADER_LEASE)

    def run_scheduled(self, name: str) -> None:
        try:
            if not self.leads():
                log.debug("job %s: another process runs the schedule", name)
                return
            self._run(name, "schedule")
        except Exception:
            # The database may be away for a moment: say so, and try again at the next run.
            log.exception("scheduled job %s could not run", name)

    def run_now(self, name: str, who: str, now: datetime | None = None) -> JobRun:
        return self._run(name, f"manual:{who}", now)

    def _run(self, name: str, trigger: str, now: datetime | None = None) -> JobRun:
        state = self.app.state
        return service.run(
            job=service.spec(name),
            sessions=state.sessions,
            store=state.event_store,
            settings=state.settings,
            instance=self.instance,
            trigger=trigger,
            now=now,
        )

    def renew(self) -> None:
        try:
            self.leads()
        except Exception:
            log.exception("could not renew the scheduler's lease")


def jobs_of(app: FastAPI) -> Jobs:
    """The application's jobs (made on first use when the lifespan did not start them)."""
    jobs: Jobs | None = getattr(app.state, "jobs", None)
    if jobs is None:
        jobs = app.state.jobs = Jobs(app)
    return jobs


def start(app: FastAPI) -> None:
    jobs = jobs_of(app)
    scheduler = BackgroundScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 120},
    )
    for spec in service.JOBS.values():
        scheduler.add_job(jobs.run_scheduled, spec.trigger(), args=[spec.name], id=spec.name)
    scheduler.add_job(
        jobs.renew, IntervalTrigger(seconds=_RENEW_SECONDS, timezone=UTC), id=f"{LEADER}-lease"
    )
    scheduler.start()
    jobs.scheduler = scheduler
    log.info("scheduler started as %s", jobs.instance)


def stop(app: FastAPI) -> None:
    jobs: Jobs | None = getattr(app.state, "jobs", None)
    if jobs is None or jobs.scheduler is None:
        return
    jobs.scheduler.shutdown(wait=True)  # lets a running job finish and release its lease
    jobs.scheduler = None
    try:
        lock.release(app.state.sessions, LEADER, jobs.instance)  # another process takes over now
    except Exception:
        log.exception("could not give back the scheduler's lease")
