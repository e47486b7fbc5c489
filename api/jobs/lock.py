"""Leases in the `job_locks` table, safe between processes on one database.

A lease is taken by one UPDATE ... WHERE name = :name AND (expires_at < :now OR holder = :me):
the database checks the WHERE under the row's write lock (PostgreSQL re-reads the row after
waiting for a concurrent writer; SQLite has one writer at a time), so of two contenders exactly
one sees its row count at 1. The first time a name is used there is no row: an INSERT, and the
primary key turns the loser of a race into an IntegrityError. Each step commits at once, so the
lease is visible to other processes before the work starts.

Times are the wall clock of the process, always (never a job's "as of" time): leases are about
who runs now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from api.agents.models import as_utc, utcnow
from api.db import transaction
from api.jobs.models import JobLock

RELEASED = datetime(1970, 1, 1, tzinfo=UTC)  # expires_at of a lease given back


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    expires_at: datetime

    @property
    def held(self) -> bool:
        return self.expires_at > utcnow()


def acquire(sessions: sessionmaker[Session], name: str, holder: str, *, lease: timedelta) -> bool:
    """Take (or renew, when `holder` has it) the lease on `name`; False: someone else has it."""
    now = utcnow()
    with transaction(sessions) as session:
        taken = cast(
            CursorResult[Any],
            session.execute(
                update(JobLock)
                .where(
                    JobLock.name == name,
                    or_(JobLock.expires_at < now, JobLock.holder == holder),
                )
                .values(holder=holder, expires_at=now + lease)
                .execution_options(synchronize_session=False)
            ),
        )
        if taken.rowcount == 1:
            return True
        if session.scalar(select(JobLock.name).where(JobLock.name == name)) is not None:
            return False  # held, unexpired, by another
    try:
        with transaction(sessions) as session:
            session.add(JobLock(name=name, holder=holder, expires_at=now + lease))
    except IntegrityError:
        return False  # another process created the row first: it holds the lease
    return True


def release(sessions: sessionmaker[Session], name: str, holder: str) -> None:
    """Give the lease back (only if still ours: an expired lease may have passed on)."""
    with transaction(sessions) as session:
        session.execute(
            update(JobLock)
            .where(JobLock.name == name, JobLock.holder == holder)
            .values(expires_at=RELEASED)
            .execution_options(synchronize_session=False)
        )


def current(session: Session, name: str) -> Lease | None:
    row = session.get(JobLock, name)
    if row is None:
        return None
    return Lease(row.name, row.holder, as_utc(row.expires_at))
