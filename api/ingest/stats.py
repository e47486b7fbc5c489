"""What the service received from one agent, summed over its batches: what the CERT and the
establishment compare with the agent's own counters (a duplicate shows here)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.ingest.models import IngestedBatch
from api.ingest.schemas import IngestStats


def for_agent(*, session: Session, agent_id: str) -> IngestStats:
    """The agent's batches (its claims by `agent:<id>`), done and in progress."""
    batch = IngestedBatch
    done = batch.state == "done"
    row = session.execute(
        select(
            func.count().filter(done),
            func.count().filter(~done),
            func.coalesce(func.sum(batch.events_accepted), 0),
            func.coalesce(func.sum(batch.detections_accepted), 0),
            func.coalesce(func.sum(batch.server_detections), 0),
            func.coalesce(func.sum(batch.rejected), 0),
            func.coalesce(func.sum(batch.duplicates), 0),
        ).where(batch.agent == f"agent:{agent_id}")
    ).one()
    return IngestStats(
        agent=agent_id,
        batches=row[0],
        processing=row[1],
        events_accepted=row[2],
        detections_accepted=row[3],
        server_detections=row[4],
        rejected=row[5],
        duplicates=row[6],
    )
