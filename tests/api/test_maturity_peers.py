"""Peer percentiles with groups of 3 and of 7, and statistics that hide small groups, on a real
database (SQLite and PostgreSQL): snapshots written as the job writes them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy.orm import Session

from api.db import make_engine, session_factory, transaction, upgrade
from api.establishments.models import Establishment
from api.maturity import peers
from api.maturity.models import Snapshot

AS_OF = date(2026, 11, 30)
# FINESS numbers with a valid key are not needed here: the registry is written directly.
BRETAGNE_EHPAD = [12.0, 30.0, 55.0]  # 3 in the group: too few
BRETAGNE_CH = [10.0, 20.0, 40.0, 40.0, 60.0, 80.0, 90.0]  # 7 in the group


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    engine = make_engine(database_url)
    upgrade(engine)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        n = 0
        for kind, region, scores in (
            ("EHPAD", "Bretagne", BRETAGNE_EHPAD),
            ("EHPAD", "Normandie", [20.0, 70.0, 75.0]),
            ("CH", "Bretagne", BRETAGNE_CH),
        ):
            for score in scores:
                n += 1
                # The two read below are of AS_OF; the others of the days before: each
                # establishment counts by its latest snapshot of the 7 days up to AS_OF.
                days = 0 if score in (30.0, 40.0) else n % 3
                add(session, f"9900{n:05d}", kind, region, score, AS_OF - timedelta(days=days))
        # Too old to count (more than 7 days), and another framework version: not peers.
        add(session, "990009001", "CH", "Bretagne", 99.0, AS_OF - timedelta(days=9))
        add(session, "990009002", "CH", "Bretagne", 99.0, AS_OF, version="2025.9")
    with sessions() as session:
        yield session
    engine.dispose()


def add(
    session: Session,
    finess: str,
    kind: str,
    region: str,
    score: float,
    day: date,
    version: str = "2026.1",
) -> None:
    session.add(Establishment(finess=finess, name=f"É {finess}", kind=kind, region=region))
    session.flush()
    session.add(
        Snapshot(
            id=str(uuid.uuid4()),
            finess=finess,
            as_of=day,
            kind=kind,
            region=region,
            framework_id="vigie-care",
            framework_version=version,
            framework_digest="d" * 64,
            score=score,
            level=1 if score < 50 else 3,
            coverage=1.0,
            proof_ratio=1.0,
            inputs_digest="i" * 64,
            result={},
        )
    )


def snapshot_of(session: Session, score: float, kind: str, region: str) -> Snapshot:
    return next(
        s
        for s in session.query(Snapshot).filter_by(kind=kind, region=region, score=score)
        if s.framework_version == "2026.1"
    )


def test_a_group_of_7_is_used_as_it_is(session: Session) -> None:
    mine = snapshot_of(session, 40.0, "CH", "Bretagne")
    answer = peers.percentile(session, mine)
    assert answer["group"] == "kind_region"
    assert answer["label"] == "CH · Bretagne"
    assert answer["peers"] == 7
    # Mid-rank: 2 below (10, 20), 2 equal (40, 40): 100 x (2 + 1) / 7
    assert answer["value"] == pytest.approx(42.9)
    assert answer["quartiles"] == [30.0, 40.0, 70.0]
    assert set(answer) == {"group", "label", "value", "peers", "quartiles"}  # no one's name


def test_a_group_of_3_widens_to_the_kind_and_says_so(session: Session) -> None:
    mine = snapshot_of(session, 30.0, "EHPAD", "Bretagne")
    answer = peers.percentile(session, mine)
    assert answer["group"] == "kind"  # EHPAD in Bretagne and Normandie: 6
    assert answer["label"] == "EHPAD · national"
    assert answer["peers"] == 6
    assert answer["value"] == pytest.approx(100 * 2.5 / 6, abs=0.05)  # 12, 20 below


def test_statistics_hide_groups_under_5(session: Session) -> None:
    by_kind = peers.stats(session, "2026.1", AS_OF, "kind")
    groups = {g["group"]: g for g in by_kind["groups"]}
    assert groups["CH"]["count"] == 7
    assert groups["CH"]["suppressed"] is False
    assert groups["CH"]["levels"] == {"1": 4, "2": 0, "3": 3, "4": 0, "5": 0}
    assert groups["EHPAD"]["count"] == 6
    by_region = peers.stats(session, "2026.1", AS_OF, "region")
    regions = {g["group"]: g for g in by_region["groups"]}
    assert regions["Normandie"] == {"group": "Normandie", "count": 3, "suppressed": True}
    assert regions["Bretagne"]["count"] == 10
    assert by_region["national"]["count"] == 13


def test_statistics_follow_the_snapshots_written_since(session: Session) -> None:
    """Kept between calls (`peers._STATS`), they are computed again once a snapshot of the
    week is added: by the nightly job, or a recompute of one establishment."""
    before = peers.stats(session, "2026.1", AS_OF, "kind")
    assert peers.stats(session, "2026.1", AS_OF, "kind") == before
    add(session, "990008001", "CH", "Bretagne", 95.0, AS_OF - timedelta(days=1))
    session.commit()
    after = {g["group"]: g for g in peers.stats(session, "2026.1", AS_OF, "kind")["groups"]}
    assert after["CH"]["count"] == 8
    assert after["CH"]["levels"]["3"] == 4
    # A recompute: a second snapshot of the same day, the latest computed, counts instead.
    add_again = Snapshot(**{**_columns(snapshot_of(session, 95.0, "CH", "Bretagne")),
                            "id": str(uuid.uuid4()), "score": 5.0, "level": 1})  # fmt: skip
    session.add(add_again)
    session.commit()
    again = {g["group"]: g for g in peers.stats(session, "2026.1", AS_OF, "kind")["groups"]}
    assert again["CH"]["count"] == 8
    assert again["CH"]["levels"]["3"] == 3


def _columns(snapshot: Snapshot) -> dict[str, object]:
    return {
        c.key: getattr(snapshot, c.key)
        for c in Snapshot.__table__.columns
        if c.key != "computed_at"
    }
