"""A service process that dies mid-batch, for the claim tests: `python -m tests.api.dying_ingest
DATA_DIR DATABASE_URL AGENT_ID FINESS STAGE BATCH_FILE`.

It runs the real ingestion (`api.ingest.service.ingest`) on the batch in BATCH_FILE, with the
real SQLite event store of DATA_DIR, and SIGKILLs itself at STAGE: `claimed` (before anything
is stored), `events` (the events stored, not the detections), `detections` (everything
stored, the batch not marked done); or `hold`: it keeps the claim, alive, until killed. The
store is the real one, wrapped only to die at the right moment: what a crash leaves behind.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from api.alerts.live import LiveRules
from api.db import make_engine, session_factory, transaction
from api.deps import Principal
from api.events.sqlite_store import SQLiteEventStore
from api.ingest import service
from api.ingest.claims import ClaimOwner, claim
from api.settings import Settings


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class DyingStore:
    def __init__(self, real: SQLiteEventStore, stage: str) -> None:
        self.real = real
        self.stage = stage

    def add_events(
        self,
        establishment: str,
        agent: str,
        events: list[dict[str, Any]],
        views: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        if self.stage == "claimed":
            die()
        stored = self.real.add_events(establishment, agent, events, views, ids)
        if self.stage == "events":
            die()
        return stored

    def add_detections(
        self,
        establishment: str,
        detections: list[dict[str, Any]],
        ids: Sequence[str] | None = None,
    ) -> int:
        stored = self.real.add_detections(establishment, detections, ids)
        if self.stage == "detections":
            die()
        return stored


def main() -> None:
    data_dir, url, agent_id, finess, stage, batch_file = sys.argv[1:]
    settings = Settings(Path(data_dir), url, "t" * 40)
    sessions = session_factory(make_engine(url))
    who = Principal(f"agent:{agent_id}", "agent", finess)
    batch = service.parse_batch(Path(batch_file).read_bytes())
    owner = ClaimOwner()
    if stage == "hold":
        owner.start(sessions)
        claim(sessions, batch.batch_id, who, owner)
        print("held", flush=True)
        while True:
            time.sleep(1)
    store = DyingStore(SQLiteEventStore.in_data_dir(settings.data_dir), stage)
    with transaction(sessions) as session:
        service.ingest(
            session=session,
            sessions=sessions,
            store=store,
            live=LiveRules(settings, sessions),
            who=who,
            batch=batch,
            owner=owner,
        )
    raise SystemExit("the batch went through: the stage was never reached")


if __name__ == "__main__":
    main()
