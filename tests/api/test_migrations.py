"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL,
and an upgrade keeps the data that was there."""

from __future__ import annotations

import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

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
