"""Scheduled jobs (admins): what runs when, how the last run went, run one now.

The notifications the jobs raise are read under /notifications (their own router, included
here so that the application's list of routers stays as it is).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.audit.service import record
from api.deps import CurrentSettings, CurrentUser, SessionDep, allow, client_of
from api.errors import Invalid
from api.jobs import lock, service
from api.jobs.scheduler import jobs_of
from api.jobs.schemas import JobRead, JobRunRead
from api.notifications.routes import router as notifications_router
from api.roles import Role

router = APIRouter(tags=["jobs"])
router.include_router(notifications_router)


@router.get("/jobs", **allow(Role.ADMIN))
def list_jobs(request: Request, session: SessionDep) -> list[JobRead]:
    jobs, latest = jobs_of(request.app), service.last_runs(session=session)
    out = []
    for spec in service.JOBS.values():
        lease = lock.current(session, spec.name)
        last = latest.get(spec.name)
        out.append(
            JobRead(
                name=spec.name,
                description=spec.description,
                schedule=spec.schedule,
                next_run_at=jobs.next_run(spec.name),
                locked_by=lease.holder if lease is not None and lease.held else None,
                last_run=JobRunRead.model_validate(last) if last is not None else None,
            )
        )
    return out


@router.get("/jobs/{name}/runs", **allow(Role.ADMIN))
def list_job_runs(
    name: str, session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[JobRunRead]:
    """The latest runs of a job, newest first."""
    return [
        JobRunRead.model_validate(r) for r in service.runs(session=session, name=name, limit=limit)
    ]


@router.post("/jobs/{name}/run", **allow(Role.ADMIN))
def run_job(
    name: str,
    request: Request,
    session: SessionDep,
    who: CurrentUser,
    settings: CurrentSettings,
    now: Annotated[
        datetime | None,
        Query(description="tests only: run as if it were this time (ISO 8601, with zone)"),
    ] = None,
) -> JobRunRead:
    """Run a job now and wait for it; a job already running elsewhere answers `skipped-locked`."""
    service.spec(name)
    if now is not None:
        if not settings.allow_time_override:
            raise Invalid("`now` is for tests only: a job runs at the present time")
        if now.tzinfo is None:
            raise Invalid("`now` needs a time zone, e.g. 2030-01-01T00:00:00Z")
        now = now.astimezone(UTC)
    done = jobs_of(request.app).run_now(name, who.username, now)
    record(session=session, who=who, action="update", kind="job", target=name,
           client=client_of(request))  # fmt: skip
    return JobRunRead.model_validate(done)
