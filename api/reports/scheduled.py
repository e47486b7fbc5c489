"""The reports the service makes by itself (api/jobs/): each establishment's maturity report
on the first of every month, the national statistics on the first of every quarter. Both are
kept in the data directory and listed by `GET /reports/runs`.

Their `as_of` is midnight UTC on the first of the month the run falls in: a run made late or
again (by an admin, after a failure) reports on the same moment, and one already kept for that
moment is not made twice. A report that fails to build is logged and left for the next run;
the others are still made.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.db import transaction
from api.establishments.models import Establishment
from api.events.store import EventStore
from api.maturity.models import Snapshot
from api.reports import runs
from api.reports.catalogue import Params, checked
from api.reports.models import ReportRun
from api.settings import Settings

log = logging.getLogger("vigie.reports")

SCHEDULE = "schedule"
# Under the job's lease (api/jobs/service.JOB_LEASE, 30 minutes), with room to spare.
BUDGET = timedelta(minutes=20)


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def maturity(
    *, sessions: sessionmaker[Session], store: EventStore, settings: Settings, now: datetime
) -> dict[str, int]:
    """Each scored establishment's maturity report, PDF and XLSX, as of the month's start.

    A run stops after `BUDGET` (10,500 establishments take longer than a job's lease), and the
    job runs every hour of the 1st: each run goes on where the last one stopped, since reports
    already kept for the month are not made again."""
    del store
    as_of = month_start(now)
    stop = time.monotonic() + BUDGET.total_seconds()
    with transaction(sessions) as session:
        # As the report reads them: a snapshot computed after `as_of` is not in it.
        scored = (
            select(Snapshot.finess)
            .where(Snapshot.as_of <= as_of.date(), Snapshot.computed_at <= as_of)
            .distinct()
        )
        finesses = list(
            session.scalars(
                select(Establishment.finess)
                .where(Establishment.finess.in_(scored))
                .order_by(Establishment.finess)
            )
        )
        kept: set[tuple[str | None, str]] = set(
            session.execute(
                select(ReportRun.finess, ReportRun.format).where(
                    ReportRun.kind == "maturity",
                    ReportRun.as_of == as_of,
                    ReportRun.path.is_not(None),
                )
            ).all()
        )
    todo = [(f, fmt) for f in finesses for fmt in ("pdf", "xlsx") if (f, fmt) not in kept]
    made = failed = 0
    for finess, format in todo:
        if time.monotonic() > stop:
            break
        try:
            made += _keep(sessions, settings, checked("maturity", format, as_of, finess))
        except Exception:
            # One establishment's report must not stop the others': said, and tried again
            # at the next run.
            log.exception("maturity report of %s (%s) could not be made", finess, format)
            failed += 1
    return {
        "establishments": len(finesses),
        "made": made,
        "already_kept": len(finesses) * 2 - len(todo),
        "failed": failed,
        "left": len(todo) - made - failed,
    }


def stats(
    *, sessions: sessionmaker[Session], store: EventStore, settings: Settings, now: datetime
) -> dict[str, int]:
    """The national statistics, XLSX and CSV, as of the month's start (runs quarterly)."""
    del store
    as_of = month_start(now)
    made = 0
    for format in ("xlsx", "csv"):
        made += _keep(sessions, settings, checked("stats", format, as_of))
    return {"made": made, "already_kept": 2 - made}


def _keep(sessions: sessionmaker[Session], settings: Settings, params: Params) -> bool:
    """Make and keep one report unless a kept one has the same parameters; one transaction
    each, so that a failure half way keeps what was made."""
    with transaction(sessions) as session:
        if _kept(session, params):
            return False
        made = runs.make(session, params, trigger=SCHEDULE, data_dir=settings.data_dir)
        made.file.close()
    return True


def _kept(session: Session, params: Params) -> bool:
    query = select(ReportRun.id).where(
        ReportRun.kind == params.kind,
        ReportRun.format == params.format,
        ReportRun.as_of == params.as_of,
        ReportRun.path.is_not(None),
    )
    query = query.where(
        ReportRun.finess == params.finess if params.finess else ReportRun.finess.is_(None)
    )
    query = query.where(
        ReportRun.region == params.region if params.region else ReportRun.region.is_(None)
    )
    return session.scalar(query.limit(1)) is not None
