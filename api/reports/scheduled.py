"""The reports the service makes by itself (api/jobs/): each establishment's maturity report
on the first of every month, the national statistics on the first of every quarter. Both are
kept in the data directory and listed by `GET /reports/runs`.

Their `as_of` is midnight UTC on the first of the month the run falls in: a run made late or
again (by an admin, after a failure) reports on the same moment, and one already kept for that
moment is not made twice.
"""

from __future__ import annotations

from datetime import datetime

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

SCHEDULE = "schedule"


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def maturity(
    *, sessions: sessionmaker[Session], store: EventStore, settings: Settings, now: datetime
) -> dict[str, int]:
    """Each scored establishment's maturity report, PDF and XLSX, as of the month's start."""
    del store
    as_of = month_start(now)
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
    made = skipped = 0
    for finess in finesses:
        for format in ("pdf", "xlsx"):
            done = _keep(sessions, settings, checked("maturity", format, as_of, finess))
            made, skipped = made + done, skipped + (not done)
    return {"establishments": len(finesses), "made": made, "already_kept": skipped}


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
