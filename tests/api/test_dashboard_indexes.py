"""The dashboard's queries read the indexes made for them (migration 0017), on SQLite and
PostgreSQL: each statement a page runs is captured and explained as the database would run it.

Without them the national overview took seconds over a year of national data
(benchmarks/dashboard_load.py). A partial index is only used when the query states its
condition the way the database can match it, and a query rewritten later may no longer reach
its index: what is asserted here. PostgreSQL is told not to scan tables (`enable_seqscan`), as
its planner would prefer that on these few rows; an index it cannot use stays unused.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from api.db import make_engine, session_factory, transaction, upgrade
from api.deps import Principal
from api.establishments.models import Establishment
from api.incidents import deadlines
from api.incidents import service as incidents
from api.incidents.models import Incident
from api.ingest.models import IngestedBatch
from api.maturity import peers
from api.maturity.models import Snapshot
from api.stats import service as stats

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
CERT = Principal("analyst", "cert", None)
OPEN_REPORTS = (
    "ix_incidents_early_warning_open",
    "ix_incidents_notification_open",
    "ix_incidents_final_report_open",
)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    with transaction(session_factory(engine)) as session:
        session.add(
            Establishment(finess="750100125", name="Pitié", kind="CHU", region="Île-de-France")
        )
        session.flush()
        for n, notifiable in enumerate((True, False)):
            session.add(
                Incident(
                    id=str(uuid.uuid4()), establishment_finess="750100125", origin="declared",
                    title=f"incident {n}", category="intrusion", severity="high", status="new",
                    aware_at=NOW - timedelta(days=n + 2), created_by="it", created_at=NOW,
                    updated_at=NOW, notifiable=notifiable, overdue=[],
                )
            )  # fmt: skip
            session.add(
                IngestedBatch(
                    batch_id=uuid.uuid4().hex, agent="agent:x", establishment="750100125",
                    received_at=NOW - timedelta(days=n), events_accepted=10,
                    detections_accepted=n, rejected=0, server_detections=0, state="done",
                )
            )  # fmt: skip
        session.add(
            Snapshot(
                id=str(uuid.uuid4()), finess="750100125", as_of=NOW.date(), kind="CHU",
                region="Île-de-France", framework_id="vigie-care", framework_version="2026.1",
                framework_digest="d" * 64, score=2.5, level=2, coverage=1.0, proof_ratio=1.0,
                inputs_digest="i" * 64, result={},
            )
        )  # fmt: skip
    yield engine
    engine.dispose()


def plans(engine: Engine, call: Callable[[Session], Any], table: str) -> list[str]:
    """The plan of each statement `call` runs that reads `table`."""
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with session_factory(engine)() as session:
            call(session)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    out = []
    with engine.connect() as connection:
        postgres = engine.dialect.name == "postgresql"
        if postgres:
            connection.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in seen:
            if f"FROM {table}" not in statement:
                continue
            explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
            rows = connection.exec_driver_sql(explain + statement, parameters).all()
            out.append("\n".join(str(row[-1]) for row in rows))
    assert out, f"no statement read {table}"
    return out


def test_the_90_day_series_reads_the_batches_that_carried_detections(engine: Engine) -> None:
    (plan,) = plans(
        engine,
        lambda s: stats.incident_series(session=s, who=CERT, interval="day", days=90, now=NOW),
        "ingested_batches",
    )
    assert "ix_ingested_batches_detections" in plan


def test_overdue_counts_and_deadlines_read_the_indexes_of_reports_not_sent(
    engine: Engine,
) -> None:
    overview = plans(
        engine,
        lambda s: stats.overview(session=s, who=CERT, now=NOW, silent_after=timedelta(hours=1)),
        "incidents",
    )
    counted = [plan for plan in overview if all(name in plan for name in OPEN_REPORTS)]
    assert counted, overview
    listed = plans(
        engine,
        lambda s: deadlines.page(session=s, who=CERT, now=NOW, open_only=True, limit=10),
        "incidents",
    )
    assert all(all(name in plan for name in OPEN_REPORTS) for plan in listed), listed


def test_the_incident_list_reads_its_order_from_an_index(engine: Engine) -> None:
    found = plans(engine, lambda s: incidents.page(session=s, who=CERT, offset=50), "incidents")
    assert any("ix_incidents_updated_at" in plan for plan in found), found


def test_peer_statistics_read_the_scores_index(engine: Engine) -> None:
    peers._STATS.clear()
    found = plans(
        engine, lambda s: peers.stats(s, "2026.1", date(2026, 12, 6), "kind"), "maturity_snapshots"
    )
    assert len(found) == 2  # what the statistics were computed from, then the scores
    assert all("ix_maturity_snapshots_scores" in plan for plan in found), found
