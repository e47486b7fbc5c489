"""Scheduled job runs and locks, notifications; API keys.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "job_locks",
        sa.Column("name", sa.String(60), primary_key=True),
        sa.Column("holder", sa.String(160), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(60), nullable=False),
        sa.Column("trigger", sa.String(130), nullable=False),
        sa.Column("holder", sa.String(160), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=False),
        sa.Column("as_of", _TS, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
    )
    op.create_index("ix_job_runs_job", "job_runs", ["job"])
    op.create_index("ix_job_runs_started_at", "job_runs", ["started_at"])
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "establishment_finess",
            sa.String(9),
            sa.ForeignKey("establishments.finess"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(80), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("resolved_at", _TS),
    )
    op.create_index(
        "ix_notifications_establishment_finess", "notifications", ["establishment_finess"]
    )
    op.create_index("ix_notifications_kind_subject", "notifications", ["kind", "subject"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(80), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("establishment_finess", sa.String(9), sa.ForeignKey("establishments.finess")),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS),
        sa.Column("revoked_at", _TS),
        sa.Column("revoked_by", sa.String(120)),
        sa.Column("last_used_at", _TS),
    )
    op.create_index("ix_api_keys_establishment_finess", "api_keys", ["establishment_finess"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_establishment_finess", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index("ix_notifications_kind_subject", table_name="notifications")
    op.drop_index("ix_notifications_establishment_finess", table_name="notifications")
    op.drop_table("notifications")
    op.drop_index("ix_job_runs_started_at", table_name="job_runs")
    op.drop_index("ix_job_runs_job", table_name="job_runs")
    op.drop_table("job_runs")
    op.drop_table("job_locks")
