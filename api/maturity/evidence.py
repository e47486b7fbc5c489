"""Evidence gathered as events arrive: one small row per establishment, signal, key and day.

Ingestion hands its observations (`api.maturity.signals`) to `gather`, in its own
transaction: a batch rolled back (a crash, a takeover) leaves no evidence behind, and a batch
stored once counts once. Each row keeps a count, the first and last time, a few sample ids
and a bounded set of subjects (hosts, servers, peers), so that the nightly snapshot reads
kilobytes per establishment, never its raw events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import Text, Update, bindparam, cast, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from api.agents.models import as_utc
from api.maturity.models import Evidence
from api.maturity.signals import Observation

SAMPLES = 5
# Enough for the shares the checks compute (hosts on SMBv1, servers on TLS 1.0) in an
# establishment's day; beyond it, a check says "at least".
SUBJECTS = 256


@dataclass
class _Fold:
    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    samples: list[str] = field(default_factory=list)
    subjects: set[str] = field(default_factory=set)

    def add(self, seen: Observation) -> None:
        self.count += 1
        self.first = seen.at if self.first is None or seen.at < self.first else self.first
        self.last = seen.at if self.last is None or seen.at > self.last else self.last
        if len(self.samples) < SAMPLES and seen.item not in self.samples:
            self.samples.append(seen.item)
        if len(self.subjects) < SUBJECTS:
            self.subjects.add(seen.subject)


def gather(session: Session, finess: str, observations: Iterable[Observation]) -> int:
    """Fold the observations into the establishment's rows; returns the rows touched."""
    folds: dict[tuple[str, str, date], _Fold] = {}
    for seen in observations:
        at = seen.at
        day = at.date() if at.tzinfo is UTC else at.astimezone(UTC).date()
        key = (seen.signal, seen.key[:200], day)
        fold = folds.get(key)
        if fold is None:
            fold = folds[key] = _Fold()
        fold.add(seen)
    if folds:
        # In one order everywhere: two PostgreSQL transactions locking the same rows in
        # different orders would deadlock.
        _merge(session, finess, dict(sorted(folds.items(), key=lambda kv: kv[0])))
    return len(folds)


_TABLE = Evidence.metadata.tables[Evidence.__tablename__]
_KEY = [_TABLE.c.finess, _TABLE.c.signal, _TABLE.c.key, _TABLE.c.day]
# Rows not there yet, added empty (count 0, no samples or subjects) and filled by the update.
_INSERT_MISSING = {
    "sqlite": sqlite_insert(_TABLE).on_conflict_do_nothing(index_elements=_KEY),
    "postgresql": postgresql_insert(_TABLE).on_conflict_do_nothing(index_elements=_KEY),
}
_READ = (
    select(
        _TABLE.c.signal,
        _TABLE.c.key,
        _TABLE.c.day,
        _TABLE.c.count,
        _TABLE.c.first_seen,
        _TABLE.c.last_seen,
        cast(_TABLE.c.samples, Text),  # decoded by orjson
        cast(_TABLE.c.subjects, Text),
    )
    .where(
        _TABLE.c.finess == bindparam("finess"),
        tuple_(_TABLE.c.signal, _TABLE.c.key, _TABLE.c.day).in_(bindparam("keys", expanding=True)),
    )
    .order_by(_TABLE.c.signal, _TABLE.c.key, _TABLE.c.day)
    .with_for_update()
)


def _update(samples: bool, subjects: bool) -> Update:
    """The UPDATE of a row's count and times, and of its lists only when they changed (once
    full, they do not: most rows of a day are rewritten without their JSON)."""
    names = ["count", "first_seen", "last_seen"]
    names += ["samples"] * samples + ["subjects"] * subjects
    values: dict[str, Any] = {name: bindparam(name) for name in names}
    return (
        update(_TABLE)
        .where(
            _TABLE.c.finess == bindparam("w_finess"),
            _TABLE.c.signal == bindparam("w_signal"),
            _TABLE.c.key == bindparam("w_key"),
            _TABLE.c.day == bindparam("w_day"),
        )
        .values(values)
    )


_UPDATES = {(a, b): _update(a, b) for a in (False, True) for b in (False, True)}


def _merge(session: Session, finess: str, folds: dict[tuple[str, str, date], _Fold]) -> None:
    # Core statements, not ORM objects: every ingested batch comes here, and the unit of work
    # for a dozen rows cost as much as the rest of the evidence (benchmarks/ingest_load.py).
    # Written first, read after: the missing rows are inserted empty before any is read, so
    # - SQLite takes its write lock at the first statement, waiting for its turn: a read
    #   first, then a write, fails at once ("database is locked") when another process wrote
    #   in between (in WAL mode a read snapshot cannot become a write);
    # - two PostgreSQL transactions never insert the same row (the second waits, then adds
    #   nothing: no IntegrityError to retry in a savepoint), and every row is then locked by
    #   the SELECT ... FOR UPDATE.
    session.flush()  # what this session holds unwritten, as the ORM query autoflushed it
    connection = session.connection()
    connection.execute(
        _INSERT_MISSING[connection.dialect.name],
        [
            {
                "finess": finess,
                "signal": signal,
                "key": key,
                "day": day,
                "count": 0,
                "first_seen": fold.first,
                "last_seen": fold.last,
                "samples": [],
                "subjects": [],
            }
            for (signal, key, day), fold in folds.items()
        ],
    )
    found: Any = connection.execute(_READ, {"finess": finess, "keys": list(folds)})
    current: dict[tuple[str, str, date], tuple[int, datetime, datetime, list[str], list[str]]]
    current = {
        (r[0], r[1], r[2]): (r[3], r[4], r[5], orjson.loads(r[6]), orjson.loads(r[7]))
        for r in found
    }
    changed: dict[tuple[bool, bool], list[dict[str, Any]]] = {}
    for (signal, key, day), fold in folds.items():
        assert fold.first is not None
        assert fold.last is not None
        count, first, last, samples, subjects = current[(signal, key, day)]
        row = {
            "w_finess": finess,
            "w_signal": signal,
            "w_key": key,
            "w_day": day,
            "count": count + fold.count,
            "first_seen": min(as_utc(first), fold.first),
            "last_seen": max(as_utc(last), fold.last),
        }
        new_samples = len(samples) < SAMPLES and any(s not in samples for s in fold.samples)
        if new_samples:
            row["samples"] = (samples + [s for s in fold.samples if s not in samples])[:SAMPLES]
        new_subjects = len(subjects) < SUBJECTS and not fold.subjects <= set(subjects)
        if new_subjects:
            row["subjects"] = sorted(set(subjects) | fold.subjects)[:SUBJECTS]
        changed.setdefault((new_samples, new_subjects), []).append(row)
    for which, rows in changed.items():
        connection.execute(_UPDATES[which], rows)
    # Rows this session had loaded as objects are stale now: read again when next used.
    for held in list(session.identity_map.values()):
        if isinstance(held, Evidence):
            session.expire(held)
