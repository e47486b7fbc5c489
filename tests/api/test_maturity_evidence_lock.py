"""Evidence gathered while another process writes to the same SQLite file: the batch waits for
its turn instead of failing. `vigie serve --workers 2` answered 500 ("database is locked") to
a few batches in ten seconds when `gather` read its rows before writing them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import event, select, text

from api.db import make_engine, session_factory, transaction, upgrade
from api.establishments.models import Establishment
from api.maturity.evidence import gather
from api.maturity.models import Evidence
from api.maturity.signals import Observation

FINESS = "750100125"
AT = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def _seen(n: int) -> list[Observation]:
    return [
        Observation("win.logon", "other", AT + timedelta(minutes=i), f"a/{n}-{i}", f"PC-{i}")
        for i in range(3)
    ]


def test_gather_holds_the_write_lock_before_it_reads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vigie.db'}"
    engine = make_engine(url)
    upgrade(engine)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        session.add(Establishment(finess=FINESS, name="Pitié", kind="CHU", region="IDF"))
    with transaction(sessions) as session:
        gather(session, FINESS, _seen(1))  # the row exists: the next gather updates it
    other = sqlalchemy.create_engine(url, connect_args={"timeout": 0.5})  # another worker
    meanwhile: list[str] = []

    def another_write(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # Between this transaction's read of its rows and its update of them, the other
        # process tries to commit a write of its own.
        if meanwhile or not statement.lstrip().upper().startswith("UPDATE MATURITY_EVIDENCE"):
            return
        try:
            with other.begin() as connection:
                connection.execute(text("UPDATE establishments SET beds = 12"))
            meanwhile.append("committed")
        except sqlalchemy.exc.OperationalError:
            meanwhile.append("waited for us")

    event.listen(engine, "before_cursor_execute", another_write)
    try:
        with transaction(sessions) as session:
            gather(session, FINESS, _seen(2))
    finally:
        event.remove(engine, "before_cursor_execute", another_write)
        other.dispose()
    assert meanwhile == ["waited for us"]  # the write lock was this transaction's already
    with sessions() as session:
        row = session.scalars(select(Evidence)).one()
    assert row.count == 6
    assert row.subjects == ["PC-0", "PC-1", "PC-2"]
    assert row.samples == ["a/1-0", "a/1-1", "a/1-2", "a/2-0", "a/2-1"]
    engine.dispose()
