"""Batch claims: which service process handles a batch now, and when a claim is abandoned.

A batch row is written `processing` (committed at once) before the batch is processed, with
its owner: the process's host, pid and a random token. A retry of a batch whose owner still
runs is told to wait (`BatchInProgress`, 409). A claim whose owner is gone is taken over by the
next retry at once:

- same host, and the pid is no running process (or a zombie): the owner died (SIGKILL, OOM);
- otherwise the owner's *liveness lease* tells: each process keeps a lease named after its
  token in `job_locks` (the jobs' lease table, `api.jobs.lock`), renewed every `RENEW` by a
  thread; a process that is gone, or frozen, lets it expire after `LEASE`. That covers other
  hosts (several service machines on one PostgreSQL) and a pid reused by another process.
  Service machines sharing one database must have host names of their own (containers too),
  or one would take the other's pid for its own.

A claim older than `STALE_CLAIM` is taken over whatever its owner says (a stuck thread). Taking
over is safe because storing a batch is idempotent (each event has a stable id, the event
store ignores one it already has): the new owner stores what is missing and counts the rest
as duplicates.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, delete, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from api.agents.models import as_utc, utcnow
from api.db import transaction
from api.deps import Principal
from api.errors import Conflict, Invalid
from api.ingest.models import IngestedBatch
from api.jobs import lock
from api.jobs.models import JobLock

log = logging.getLogger("vigie.ingest")

LEASE = timedelta(seconds=6)
RENEW = timedelta(seconds=2)
STALE_CLAIM = timedelta(minutes=10)  # far beyond any batch's processing time
FORGET = timedelta(days=1)
_LEASE_PREFIX = "ingest-owner:"


class BatchInProgress(Conflict):
    code = "batch_in_progress"


@dataclass
class ClaimOwner:
    """This process as the owner of the claims it takes. Made in the process that serves
    (after a fork: `create_app` runs in each worker)."""

    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    _renewed: datetime | None = field(default=None, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """As kept in `ingested_batches.owner` (at most 160 characters)."""
        return f"{self.host[:120]}/{self.pid}/{self.token}"

    def renew(self, sessions: sessionmaker[Session]) -> None:
        """Take or extend this process's liveness lease."""
        now = utcnow()
        lock.acquire(sessions, _LEASE_PREFIX + self.token, self.name, lease=LEASE)
        self._renewed = now

    def ensure(self, sessions: sessionmaker[Session]) -> None:
        """The lease renewed if the thread has not done it lately (claims made before the
        thread runs, or without it)."""
        if self._renewed is None or utcnow() - self._renewed > RENEW:
            self.renew(sessions)

    def start(self, sessions: sessionmaker[Session]) -> None:
        def keep() -> None:
            while not self._stop.wait(RENEW.total_seconds()):
                try:
                    self.renew(sessions)
                except SQLAlchemyError as exc:  # the database away for a moment: next turn
                    log.warning("ingest lease not renewed: %s", exc)

        self.renew(sessions)
        forget_old_leases(sessions)
        self._thread = threading.Thread(target=keep, name="vigie-ingest-lease", daemon=True)
        self._thread.start()

    def stop(self, sessions: sessionmaker[Session]) -> None:
        """Stop renewing and give the lease back: this process's claims are free at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            lock.release(sessions, _LEASE_PREFIX + self.token, self.name)
        except SQLAlchemyError as exc:
            log.warning("ingest lease not released: %s", exc)


def forget_old_leases(sessions: sessionmaker[Session], *, older: timedelta = FORGET) -> int:
    """Delete the leases of processes gone long ago (one row per process start otherwise
    piles up). Safe: a claim whose owner has no lease is taken over, as for an expired one."""
    with transaction(sessions) as session:
        gone = session.execute(
            delete(JobLock)
            .where(JobLock.name.like(_LEASE_PREFIX + "%"), JobLock.expires_at < utcnow() - older)
            .execution_options(synchronize_session=False)
        )
    return cast(CursorResult[Any], gone).rowcount


def claim(
    sessions: sessionmaker[Session], batch_id: str, who: Principal, owner: ClaimOwner
) -> IngestedBatch | None:
    """Take `batch_id` for this request, in a transaction of its own (committed at once).

    Returns the earlier outcome when the batch was done before (the caller answers it as a
    duplicate); raises `BatchInProgress` while a running process handles it; takes over the
    claim of a process that is gone (module docstring).
    """
    owner.ensure(sessions)
    now = utcnow()
    try:
        with transaction(sessions) as session:
            previous = session.get(IngestedBatch, batch_id)
            if previous is None:
                session.add(new_row(batch_id, who, owner=owner.name, received_at=now))
                return None
            if previous.agent != who.username:
                raise Invalid(f"batch id {batch_id} was used by another agent")
            if previous.state == "done":
                return previous
            stale = as_utc(previous.received_at) <= now - STALE_CLAIM
            if not stale and not _gone(session, previous.owner, owner):
                raise BatchInProgress(
                    f"batch {batch_id} is being processed by {previous.owner}; retry later"
                )
            # Conditional: of two retries taking the same abandoned claim over, one wins.
            taken = cast(
                CursorResult[Any],
                session.execute(
                    update(IngestedBatch)
                    .where(
                        IngestedBatch.batch_id == batch_id,
                        IngestedBatch.state == "processing",
                        IngestedBatch.owner.is_(None)
                        if previous.owner is None
                        else IngestedBatch.owner == previous.owner,
                    )
                    .values(owner=owner.name, received_at=now)
                    .execution_options(synchronize_session=False)
                ),
            )
            if taken.rowcount != 1:
                raise BatchInProgress(f"batch {batch_id} was just taken over; retry later")
            log.warning("batch %s: claim of %s taken over", batch_id, previous.owner or "?")
            return None
    except IntegrityError as exc:  # another request claimed it between our read and write
        raise BatchInProgress(f"batch {batch_id} is being processed; retry later") from exc


def release(sessions: sessionmaker[Session], batch_id: str) -> None:
    """Give a claim back when processing failed, so that the agent's retry is processed."""
    with transaction(sessions) as session:
        session.execute(
            delete(IngestedBatch).where(
                IngestedBatch.batch_id == batch_id, IngestedBatch.state == "processing"
            )
        )


def new_row(
    batch_id: str, who: Principal, *, owner: str | None, received_at: datetime
) -> IngestedBatch:
    return IngestedBatch(
        batch_id=batch_id,
        agent=who.username,
        establishment=who.establishment,
        received_at=received_at,
        events_accepted=0,
        detections_accepted=0,
        rejected=0,
        server_detections=0,
        duplicates=0,
        state="processing",
        owner=owner,
    )


def _gone(session: Session, holder: str | None, me: ClaimOwner) -> bool:
    """Whether the process named `holder` no longer runs (module docstring)."""
    if holder is None:
        return True  # claimed before owners were recorded: by a process of an older version
    if holder == me.name:
        return False  # another request of this very process
    parts = holder.rsplit("/", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return True  # not written by this code: nobody to wait for
    host, pid, token = parts[0], int(parts[1]), parts[2]
    if host == me.host[:120] and not _running(pid):
        return True
    lease = lock.current(session, _LEASE_PREFIX + token)
    return lease is None or not lease.held


def _running(pid: int) -> bool:
    """A live process has this pid on this host (a zombie is dead: it only waits to be reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc here: the lease decides
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
