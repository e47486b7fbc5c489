"""The dashboard's pages over a national year of data: indexes found by
benchmarks/dashboard_load.py (10,500 establishments, 100,000 incidents, 2,000,000 batches).

- 0015's incidents by (`status`, `severity`) and by `created_at`, now with `notifiable` and
  `severity`: the overview's open incidents and its 90-day series, counted from the index alone;
- incidents by `updated_at`: the list's default order, read from the index instead of every
  incident sorted;
- incidents by (`notifiable`, `<report>_at`, `<report>_due`, `id`) for each NIS2 report: the
  reports not sent yet, for the deadlines list and the overview's counts, from the index alone;
- the ingested batches that carried detections (a partial index, with the columns the 90-day
  series sums): the series reads them alone, not every batch of the period;
- maturity snapshots' scores by (framework version, day): peers and national statistics read
  a week of them from the index, not from rows that hold 40 kB result documents.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"

_KINDS = ("early_warning", "notification", "final_report")
_CARRIED = "detections_accepted + server_detections > 0"  # as api.ingest.models states it
_SCORES = ["framework_version", "as_of", "computed_at", "id", "finess", "score", "level"]


def upgrade() -> None:
    # 0015's, each with the column its count also reads, so that the count reads it alone.
    op.drop_index("ix_incidents_status_severity", table_name="incidents")
    op.create_index(
        "ix_incidents_status_severity_notifiable", "incidents", ["status", "severity", "notifiable"]
    )
    op.drop_index("ix_incidents_created_at", table_name="incidents")
    op.create_index("ix_incidents_created_at_severity", "incidents", ["created_at", "severity"])
    op.create_index("ix_incidents_updated_at", "incidents", ["updated_at"])
    for kind in _KINDS:
        columns = ["notifiable", f"{kind}_at", f"{kind}_due", "id"]
        op.create_index(f"ix_incidents_{kind}_open", "incidents", columns)
    op.create_index(
        "ix_ingested_batches_detections",
        "ingested_batches",
        ["received_at", "establishment", "state", "detections_accepted", "server_detections"],
        sqlite_where=sa.text(_CARRIED),
        postgresql_where=sa.text(_CARRIED),
    )
    op.create_index(
        "ix_maturity_snapshots_scores", "maturity_snapshots", [*_SCORES, "kind", "region"]
    )


def downgrade() -> None:
    op.drop_index("ix_maturity_snapshots_scores", table_name="maturity_snapshots")
    op.drop_index("ix_ingested_batches_detections", table_name="ingested_batches")
    for kind in reversed(_KINDS):
        op.drop_index(f"ix_incidents_{kind}_open", table_name="incidents")
    op.drop_index("ix_incidents_updated_at", table_name="incidents")
    op.drop_index("ix_incidents_created_at_severity", table_name="incidents")
    op.create_index("ix_incidents_created_at", "incidents", ["created_at"])
    op.drop_index("ix_incidents_status_severity_notifiable", table_name="incidents")
    op.create_index("ix_incidents_status_severity", "incidents", ["status", "severity"])
