"""The jobs themselves: plain functions of (sessions, store, settings, now) returning counts.

`now` is the time a job judges by (deadlines passed, silence, retention); records they write
carry the wall-clock time. They know nothing of locks or schedules (`api.jobs.service`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, Delete, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from api.agents.models import Agent, as_utc, utcnow
from api.db import transaction
from api.events.store import EventStore
from api.incidents import service as incidents
from api.jobs.models import JobRun
from api.notifications import service as notifications
from api.notifications.models import Notification
from api.settings import Settings

AGENT_SILENT = "agent_silent"
AGENT_DROPPED = "agent_dropped"


class JobFunction(Protocol):
    def __call__(
        self,
        *,
        sessions: sessionmaker[Session],
        store: EventStore,
        settings: Settings,
        now: datetime,
    ) -> dict[str, int]: ...


def nis2_deadlines(
    *, sessions: sessionmaker[Session], store: EventStore, settings: Settings, now: datetime
) -> dict[str, int]:
    """Flag incidents whose NIS2 deadlines (early warning, notification, final report) passed."""
    del store, settings
    with transaction(sessions) as session:
        flagged = incidents.flag_overdue(session=session, now=now)
    return {"flagged": flagged}


def agent_silent(
    *, sessions: sessionmaker[Session], store: EventStore, settings: Settings, now: datetime
) -> dict[str, int]:
    """Raise one notification per silence of an agent (no heartbeat, or none since enrolling,
    for longer than the setting); resolve it when the agent speaks again or is revoked, so that
    a new silence raises a new one."""
    del store
    minutes = settings.agent_silent_minutes
    threshold = now - timedelta(minutes=minutes)
    seen = func.coalesce(Agent.last_heartbeat, Agent.enrolled_at)
    with transaction(sessions) as session:
        silent = list(
            session.scalars(
                select(Agent).where(Agent.revoked.is_(False), seen < threshold).order_by(Agent.id)
            )
        )
        opened = notifications.open_for(session=session, kind=AGENT_SILENT)
        raised = 0
        for agent in silent:
            if opened.pop(agent.id, None) is not None:
                continue  # still silent: already said
            heard = agent.last_heartbeat
            what = "its last heartbeat" if heard is not None else "it enrolled"
            when = as_utc(heard or agent.enrolled_at)
            notifications.raise_(
                session=session,
                kind=AGENT_SILENT,
                subject=agent.id,
                finess=agent.establishment_finess,
                message=f"agent {agent.hostname} ({agent.id}) is silent: nothing since {what} "
                f"at {when:%Y-%m-%d %H:%M} UTC, more than {minutes} minutes ago",
                at=utcnow(),
            )
            raised += 1
        # What is left open is about agents heard from again, revoked, or gone.
        for notification in opened.values():
            notification.resolved_at = utcnow()
    return {"silent": len(silent), "raised": raised, "resolved": len(opened)}


def agent_dropped(
    *, sessions: sessionmaker[Session], store: EventStore, settings: Settings, now: datetime
) -> dict[str, int]:
    """Raise a notification when an agent's `dropped` counter (events its disk budget could
    not keep, as its heartbeat reports them) grew since the last one: once per growth, not
    per heartbeat. The new one replaces the agent's open one (resolved), which said less."""
    del store, settings, now
    raised = 0
    with transaction(sessions) as session:
        agents = list(session.scalars(select(Agent).order_by(Agent.id)))
        opened = notifications.open_for(session=session, kind=AGENT_DROPPED)
        for agent in agents:
            dropped = _counter(agent.counters, "dropped")
            if dropped < agent.dropped_notified:  # a new spool: its count started again
                agent.dropped_notified = 0
            if dropped <= agent.dropped_notified:
                continue
            grown = dropped - agent.dropped_notified
            earlier = opened.get(agent.id)
            if earlier is not None:
                earlier.resolved_at = utcnow()
            notifications.raise_(
                session=session,
                kind=AGENT_DROPPED,
                subject=agent.id,
                finess=agent.establishment_finess,
                message=f"agent {agent.hostname} ({agent.id}) dropped {grown} event(s) that its "
                f"disk budget could not keep ({dropped} in all): they will never reach the "
                "service; give the agent more disk, or find why it cannot deliver",
                at=utcnow(),
            )
            agent.dropped_notified = dropped
            raised += 1
    return {"agents": len(agents), "raised": raised}


def _counter(counters: Any, name: str) -> int:
    value = counters.get(name) if isinstance(counters, dict) else None
    return value if isinstance(value, int) and value >= 0 else 0


def maturity(
    *, sessions: sessionmaker[Session], store: EventStore, settings: Settings, now: datetime
) -> dict[str, int]:
    """Score every establishment as of now: one new, immutable snapshot each."""
    from api.maturity.snapshots import take_all

    del store
    return take_all(sessions=sessions, now=now, retention_days=settings.retention_days)


def retention_purge(
    *, sessions: sessionmaker[Session], store: EventStore, settings: Settings, now: datetime
) -> dict[str, int]:
    """Delete events and detections past the retention period, the service's own records of
    the same age (job runs, resolved notifications), and maturity evidence older than any
    check looks back (snapshots stay: they are the history)."""
    from api.maturity.inputs import LOOKBACK_DAYS
    from api.maturity.models import Evidence

    cutoff = now - timedelta(days=settings.retention_days)
    purged = store.purge(before=cutoff)
    with transaction(sessions) as session:
        evidence = _deleted(
            session,
            delete(Evidence).where(Evidence.day < (now - timedelta(days=LOOKBACK_DAYS)).date()),
        )
        runs = _deleted(session, delete(JobRun).where(JobRun.started_at < cutoff))
        resolved = _deleted(
            session,
            delete(Notification).where(
                Notification.resolved_at.is_not(None), Notification.resolved_at < cutoff
            ),
        )
    return {
        "purged": purged,
        "job_runs_deleted": runs,
        "notifications_deleted": resolved,
        "maturity_evidence_deleted": evidence,
    }


def _deleted(session: Session, statement: Delete) -> int:
    return cast(CursorResult[Any], session.execute(statement)).rowcount
