"""The dashboard's counts in SQL: NIS2 due dates stored with each incident, and indexes.

Incidents get `early_warning_due`, `notification_due` and `final_report_due`, computed from
`aware_at` as `api.incidents.nis2` does (24 h, 72 h, one calendar month), for the existing
ones too, so that deadlines are sorted and counted by the database. Indexes for the counts by
status and severity, per day, by region and kind, and the detections received per day.

Revision ID: 0015
Revises: 0014
"""

from datetime import UTC, datetime
from typing import cast

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"

_TS = sa.DateTime(timezone=True)
_DUE = ("early_warning_due", "notification_due", "final_report_due")
_INDEXES = (
    ("ix_incidents_status_severity", "incidents", ["status", "severity"]),
    ("ix_incidents_created_at", "incidents", ["created_at"]),
    ("ix_incidents_early_warning_due", "incidents", ["early_warning_due"]),
    ("ix_incidents_notification_due", "incidents", ["notification_due"]),
    ("ix_incidents_final_report_due", "incidents", ["final_report_due"]),
    ("ix_establishments_region", "establishments", ["region"]),
    ("ix_establishments_kind", "establishments", ["kind"]),
    ("ix_ingested_batches_received_at", "ingested_batches", ["received_at"]),
    (
        "ix_ingested_batches_establishment_received_at",
        "ingested_batches",
        ["establishment", "received_at"],
    ),
)


def upgrade() -> None:
    from api.incidents.nis2 import due_dates

    with op.batch_alter_table("incidents") as table:
        for column in _DUE:
            table.add_column(sa.Column(column, _TS, nullable=True))
    incidents = sa.table(
        "incidents",
        sa.column("id", sa.String(36)),
        sa.column("aware_at", _TS),
        *(sa.column(c, _TS) for c in _DUE),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(incidents.c.id, incidents.c.aware_at)).all()
    for incident_id, aware_at in rows:
        due = due_dates(_utc(cast(datetime, aware_at)))
        bind.execute(
            incidents.update()
            .where(incidents.c.id == incident_id)
            .values({f"{kind}_due": moment for kind, moment in due.items()})
        )
    with op.batch_alter_table("incidents") as table:
        for column in _DUE:
            table.alter_column(column, existing_type=_TS, nullable=False)
    for name, table_name, columns in _INDEXES:
        op.create_index(name, table_name, columns)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def downgrade() -> None:
    for name, table_name, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table_name)
    with op.batch_alter_table("incidents") as table:
        for column in reversed(_DUE):
            table.drop_column(column)
