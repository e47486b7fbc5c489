"""The daily snapshots: scoring every establishment, and reading a snapshot back.

`take_all` scores every establishment as of a moment and writes one new, immutable snapshot
each (a recompute adds a row, it never updates one): the `maturity` job runs it nightly and
an admin at once. Establishments are read and scored 500 at a time, with one query per table
and chunk (`api.maturity.inputs.load`).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, defer, sessionmaker

from api.agents.models import as_utc, utcnow
from api.db import transaction
from api.establishments.models import Establishment
from api.maturity import inputs as facts
from api.maturity.checks.base import evidence_windows
from api.maturity.framework import Framework, default
from api.maturity.models import Snapshot
from api.maturity.scoring import as_json, evaluate

CHUNK = 500


def take_all(
    *,
    sessions: sessionmaker[Session],
    now: datetime,
    retention_days: int,
    framework: Framework | None = None,
) -> dict[str, int]:
    """Score every establishment as of `now` (its day is the snapshot's `as_of`)."""
    framework = framework or default()
    as_of = now.astimezone(UTC).date()
    with sessions() as session:
        finesses = list(
            session.scalars(select(Establishment.finess).order_by(Establishment.finess))
        )
    written = 0
    for i in range(0, len(finesses), CHUNK):
        with transaction(sessions) as session:
            chunk = list(
                session.scalars(
                    select(Establishment)
                    .where(Establishment.finess.in_(finesses[i : i + CHUNK]))
                    .order_by(Establishment.finess)
                )
            )
            written += _take(session, chunk, framework, as_of, now, retention_days)
    return {"establishments": len(finesses), "snapshots": written}


def _take(
    session: Session,
    establishments: list[Establishment],
    framework: Framework,
    as_of: date,
    cutoff: datetime,
    retention_days: int,
) -> int:
    loaded = facts.load(
        session,
        establishments,
        as_of=as_of,
        cutoff=cutoff,
        retention_days=retention_days,
        windows=evidence_windows(framework),
    )
    held = _held(session, [e.finess for e in establishments], framework, as_of)
    computed = utcnow()
    rows: list[dict[str, Any]] = []
    for e in establishments:
        mine = loaded[e.finess]
        days = held.get(e.finess, set())
        result = evaluate(framework, mine, days)
        digest = mine.digest(framework.digest + "|" + ",".join(sorted(map(str, days))))
        doc = as_json(result)
        doc["cutoff"] = cutoff.astimezone(UTC).isoformat().replace("+00:00", "Z")
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "finess": e.finess,
                "as_of": as_of,
                "kind": e.kind,
                "region": e.region,
                "framework_id": framework.id,
                "framework_version": framework.version,
                "framework_digest": framework.digest,
                "computed_at": computed,
                "score": result.score,
                "level": result.level,
                "coverage": result.coverage,
                "proof_ratio": result.proof_ratio,
                "inputs_digest": digest,
                "result": doc,
            }
        )
    if rows:
        session.execute(insert(Snapshot), rows)
    return len(rows)


def _held(
    session: Session, finesses: list[str], framework: Framework, as_of: date
) -> dict[str, set[date]]:
    """The days (among those level 5 looks back to) each establishment was at level 4+."""
    top = framework.level_def(5)
    days = [as_of - timedelta(days=d) for d in (top.held_days or [])] if top else []
    out: dict[str, set[date]] = defaultdict(set)
    if not days:
        return out
    query = select(Snapshot.finess, Snapshot.as_of).where(
        Snapshot.finess.in_(finesses),
        Snapshot.as_of.in_(days),
        Snapshot.framework_version == framework.version,
        Snapshot.level >= 4,
    )
    for finess, day in session.execute(query):
        out[finess].add(day)
    return out


def latest(
    session: Session, finess: str, as_of: date | None, *, known_at: datetime | None = None
) -> Snapshot | None:
    """The snapshot that held on `as_of` (the latest day on or before it, the latest computed
    that day); None: none yet. `known_at`: only those computed by then (a report as of a
    moment must not change when the day is scored again later)."""
    query = select(Snapshot).where(Snapshot.finess == finess)
    if as_of is not None:
        query = query.where(Snapshot.as_of <= as_of)
    if known_at is not None:
        query = query.where(Snapshot.computed_at <= known_at)
    query = query.order_by(Snapshot.as_of.desc(), Snapshot.computed_at.desc(), Snapshot.id)
    return session.scalars(query.limit(1)).first()


def latest_of(session: Session, finesses: Sequence[str]) -> dict[str, Snapshot]:
    """Each establishment's latest snapshot (`latest` without a day), in one query; its
    `result` (domains, controls, fixes) is left unread."""
    if not finesses:
        return {}
    rank = (
        func.row_number()
        .over(
            partition_by=Snapshot.finess,
            order_by=(Snapshot.as_of.desc(), Snapshot.computed_at.desc(), Snapshot.id),
        )
        .label("rank")
    )
    ranked = select(Snapshot.id, rank).where(Snapshot.finess.in_(list(finesses))).subquery()
    query = (
        select(Snapshot)
        .join(ranked, ranked.c.id == Snapshot.id)
        .where(ranked.c.rank == 1)
        .options(defer(Snapshot.result))
    )
    return {s.finess: s for s in session.scalars(query)}


def history(
    session: Session,
    finess: str,
    since: date | None,
    *,
    until: date | None = None,
    known_at: datetime | None = None,
) -> list[Snapshot]:
    """One snapshot per day (the latest computed), oldest first; `until`, `known_at`: as
    `latest`. The result documents (about 40 kB each) are left unread."""
    query = select(Snapshot).where(Snapshot.finess == finess).options(defer(Snapshot.result))
    if since is not None:
        query = query.where(Snapshot.as_of >= since)
    if until is not None:
        query = query.where(Snapshot.as_of <= until)
    if known_at is not None:
        query = query.where(Snapshot.computed_at <= known_at)
    by_day: dict[date, Snapshot] = {}
    for s in session.scalars(query.order_by(Snapshot.as_of, Snapshot.computed_at, Snapshot.id)):
        by_day[s.as_of] = s
    return list(by_day.values())


def cutoff_of(snapshot: Snapshot) -> datetime:
    text = snapshot.result.get("cutoff")
    if isinstance(text, str):
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return as_utc(datetime.combine(snapshot.as_of, time.max))


def recompute(
    session: Session, snapshot: Snapshot, retention_days: int, framework: Framework | None = None
) -> dict[str, Any]:
    """Score again from what is stored now, as of the snapshot's day and cutoff: the same
    digest proves the same inputs (and so the same scores)."""
    framework = framework or default()
    establishment = session.get(Establishment, snapshot.finess)
    assert establishment is not None
    if framework.digest != snapshot.framework_digest:
        return {
            "identical": False,
            "reason": f"the snapshot used framework {snapshot.framework_version} "
            f"({snapshot.framework_digest[:12]}), the service runs {framework.version} "
            f"({framework.digest[:12]})",
        }
    cutoff = cutoff_of(snapshot)
    loaded = facts.load(
        session,
        [establishment],
        as_of=snapshot.as_of,
        cutoff=cutoff,
        retention_days=retention_days,
        windows=evidence_windows(framework),
    )[snapshot.finess]
    days = _held(session, [snapshot.finess], framework, snapshot.as_of).get(snapshot.finess, set())
    digest = loaded.digest(framework.digest + "|" + ",".join(sorted(map(str, days))))
    result = evaluate(framework, loaded, days)
    identical = digest == snapshot.inputs_digest
    return {
        "identical": identical,
        "inputs_digest": digest,
        "stored_digest": snapshot.inputs_digest,
        "score": result.score,
        "level": result.level,
        "reason": None
        if identical
        else "the stored inputs changed since (late evidence, "
        "declarations, or data purged by retention)",
    }
