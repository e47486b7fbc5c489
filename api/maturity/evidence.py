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
from sqlalchemy import Text, Update, bindparam, cast, func, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

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
_RETURNED = (
    _TABLE.c.signal,
    _TABLE.c.key,
    _TABLE.c.day,
    cast(_TABLE.c.samples, Text),  # decoded by orjson
    cast(_TABLE.c.subjects, Text),
)


def _upsert(dialect: str) -> Any:
    """A new row as the fold made it; an existing one gets the count added and its first and
    last times widened. Its lists come back, for `_merge` to grow."""
    if dialect == "postgresql":
        pg = postgresql_insert(_TABLE)
        return pg.on_conflict_do_update(
            index_elements=_KEY,
            set_={
                "count": _TABLE.c.count + pg.excluded.count,
                "first_seen": func.least(_TABLE.c.first_seen, pg.excluded.first_seen),
                "last_seen": func.greatest(_TABLE.c.last_seen, pg.excluded.last_seen),
            },
        ).returning(*_RETURNED)
    lite = sqlite_insert(_TABLE)
    # SQLite keeps the times as text of one fixed width: min and max of the text are those of
    # the times.
    return lite.on_conflict_do_update(
        index_elements=_KEY,
        set_={
            "count": _TABLE.c.count + lite.excluded.count,
            "first_seen": func.min(_TABLE.c.first_seen, lite.excluded.first_seen),
            "last_seen": func.max(_TABLE.c.last_seen, lite.excluded.last_seen),
        },
    ).returning(*_RETURNED)


_UPSERTS = {"sqlite": _upsert("sqlite"), "postgresql": _upsert("postgresql")}


def _lists(samples: bool, subjects: bool) -> Update:
    names = ["samples"] * samples + ["subjects"] * subjects
    return (
        update(_TABLE)
        .where(
            _TABLE.c.finess == bindparam("w_finess"),
            _TABLE.c.signal == bindparam("w_signal"),
            _TABLE.c.key == bindparam("w_key"),
            _TABLE.c.day == bindparam("w_day"),
        )
        .values({name: bindparam(name) for name in names})
    )


_GROWN = {(a, b): _lists(a, b) for a, b in ((True, False), (False, True), (True, True))}


def _merge(session: Session, finess: str, folds: dict[tuple[str, str, date], _Fold]) -> None:
    # Core statements, not ORM objects, for every ingested batch comes here: one upsert of
    # every row (a batch seldom brings a new sample or subject once a day's row has filled
    # up), then an update of the lists that grew. The first statement is a write, so that
    # - SQLite takes its write lock at once, waiting for its turn: a read first, then a
    #   write, fails at once ("database is locked") when another process wrote in between
    #   (in WAL mode a read snapshot cannot become a write);
    # - two PostgreSQL transactions never insert the same row (the second waits, then
    #   updates it), and the rows stay locked until the lists are written.
    session.flush()  # what this session holds unwritten, as the ORM query autoflushed it
    connection = session.connection()
    found: Any = connection.execute(
        _UPSERTS[connection.dialect.name],
        [
            {
                "finess": finess,
                "signal": signal,
                "key": key,
                "day": day,
                "count": fold.count,
                "first_seen": fold.first,
                "last_seen": fold.last,
                "samples": fold.samples,
                "subjects": sorted(fold.subjects),
            }
            for (signal, key, day), fold in folds.items()
        ],
    )
    grown: dict[tuple[bool, bool], list[dict[str, Any]]] = {}
    for signal, key, day, samples_text, subjects_text in found:
        fold = folds[(signal, key, day)]
        samples, subjects = orjson.loads(samples_text), orjson.loads(subjects_text)
        row: dict[str, Any] = {"w_finess": finess, "w_signal": signal, "w_key": key, "w_day": day}
        more_samples = len(samples) < SAMPLES and any(s not in samples for s in fold.samples)
        if more_samples:
            row["samples"] = (samples + [s for s in fold.samples if s not in samples])[:SAMPLES]
        more_subjects = len(subjects) < SUBJECTS and not fold.subjects <= set(subjects)
        if more_subjects:
            row["subjects"] = sorted(set(subjects) | fold.subjects)[:SUBJECTS]
        if more_samples or more_subjects:
            grown.setdefault((more_samples, more_subjects), []).append(row)
    for which, rows in grown.items():
        connection.execute(_GROWN[which], rows)
    # Rows this session had loaded as objects are stale now: read again when next used.
    for held in list(session.identity_map.values()):
        if isinstance(held, Evidence):
            session.expire(held)
