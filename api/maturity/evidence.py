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

from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
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
        day = seen.at.astimezone(UTC).date()
        folds.setdefault((seen.signal, seen.key[:200], day), _Fold()).add(seen)
    if not folds:
        return 0
    for attempt in range(3):
        try:
            with session.begin_nested():  # another process may insert the same row meanwhile
                _merge(session, finess, folds)
            break
        except IntegrityError:
            if attempt == 2:
                raise
    return len(folds)


def _merge(session: Session, finess: str, folds: dict[tuple[str, str, date], _Fold]) -> None:
    rows = {
        (row.signal, row.key, row.day): row
        for row in session.scalars(
            select(Evidence)
            .where(
                Evidence.finess == finess,
                tuple_(Evidence.signal, Evidence.key, Evidence.day).in_(list(folds)),
            )
            .with_for_update()
        )
    }
    for (signal, key, day), fold in folds.items():
        assert fold.first is not None
        assert fold.last is not None
        row = rows.get((signal, key, day))
        if row is None:
            session.add(
                Evidence(
                    finess=finess,
                    signal=signal,
                    key=key,
                    day=day,
                    count=fold.count,
                    first_seen=fold.first,
                    last_seen=fold.last,
                    samples=fold.samples,
                    subjects=sorted(fold.subjects),
                )
            )
            continue
        row.count += fold.count
        row.first_seen = min(as_utc(row.first_seen), fold.first)
        row.last_seen = max(as_utc(row.last_seen), fold.last)
        if len(row.samples) < SAMPLES:
            row.samples = (row.samples + [s for s in fold.samples if s not in row.samples])[
                :SAMPLES
            ]
        if len(row.subjects) < SUBJECTS and not fold.subjects <= set(row.subjects):
            row.subjects = sorted(set(row.subjects) | fold.subjects)[:SUBJECTS]
    session.flush()
