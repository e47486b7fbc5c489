"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL,
and an upgrade keeps the data that was there."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from api.agents.models import as_utc
from api.db import Base, make_engine, upgrade
from api.models import load_all


def test_migrations_build_what_the_models_describe(database_url: str) -> None:
    load_all()
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_an_upgrade_keeps_the_data(database_url: str) -> None:
    """Stop at 0007, write a row, upgrade to the newest: the row is still there."""
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0007")
        with engine.begin() as connection:
            connection.execute(
                sqlalchemy.text(
                    "INSERT INTO establishments (finess, name, kind, region) "
                    "VALUES ('750100125', 'Pitié-Salpêtrière', 'CHU', 'Île-de-France')"
                )
            )
        upgrade(engine)
        with engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.text("SELECT name, created_at FROM establishments")
            ).all()
    finally:
        engine.dispose()
    assert len(rows) == 1
    assert rows[0][0] == "Pitié-Salpêtrière"
    assert rows[0][1] is not None


def test_incidents_get_their_nis2_due_dates(database_url: str) -> None:
    """0015 computes the due dates of the incidents already there, as nis2.py does: the
    final report one calendar month later (31 January: 28 February)."""
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0014")
        aware = datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
        with engine.begin() as connection:
            connection.execute(
                sqlalchemy.text(
                    "INSERT INTO establishments (finess, name, kind, region) "
                    "VALUES ('750100125', 'Pitié-Salpêtrière', 'CHU', 'Île-de-France')"
                )
            )
            connection.execute(
                sqlalchemy.text(
                    "INSERT INTO incidents (id, establishment_finess, origin, title, category, "
                    "severity, status, care_impact, description, affected_systems, aware_at, "
                    "created_by, created_at, updated_at, detection_count, notifiable, overdue) "
                    "VALUES ('i-1', '750100125', 'declared', 'Rançongiciel', 'ransomware', "
                    "'critical', 'new', 'unknown', '', '[]', :aware, 'x', :aware, :aware, 0, "
                    "true, '[]')"
                ),
                {"aware": aware},
            )
        upgrade(engine)
        with engine.connect() as connection:
            row = connection.execute(
                sqlalchemy.select(
                    sqlalchemy.column("early_warning_due", sqlalchemy.DateTime(timezone=True)),
                    sqlalchemy.column("notification_due", sqlalchemy.DateTime(timezone=True)),
                    sqlalchemy.column("final_report_due", sqlalchemy.DateTime(timezone=True)),
                ).select_from(sqlalchemy.table("incidents"))
            ).one()
    finally:
        engine.dispose()
    due = [as_utc(moment) for moment in row]
    assert due == [
        datetime(2026, 2, 1, 10, 0, tzinfo=UTC),
        datetime(2026, 2, 3, 10, 0, tzinfo=UTC),
        datetime(2026, 2, 28, 10, 0, tzinfo=UTC),
    ]
