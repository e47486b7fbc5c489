"""Incidents, their timeline, campaigns.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("rule_id", sa.String(200), nullable=False, index=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("first_seen", _TS, nullable=False),
        sa.Column("last_seen", _TS, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "establishment_finess",
            sa.String(9),
            sa.ForeignKey("establishments.finess"),
            nullable=False,
            index=True,
        ),
        sa.Column("origin", sa.String(20), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("category", sa.String(30), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("care_impact", sa.String(20), nullable=False),
        sa.Column("personal_data", sa.Boolean()),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("affected_systems", sa.JSON(), nullable=False),
        sa.Column("started_at", _TS),
        sa.Column("aware_at", _TS, nullable=False),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("rule_id", sa.String(200), index=True),
        sa.Column("host", sa.String(253)),
        sa.Column("first_seen", _TS),
        sa.Column("last_seen", _TS, index=True),
        sa.Column("detection_count", sa.Integer(), nullable=False),
        sa.Column("sample", sa.JSON()),
        sa.Column("notifiable", sa.Boolean(), nullable=False),
        sa.Column("early_warning_at", _TS),
        sa.Column("notification_at", _TS),
        sa.Column("final_report_at", _TS),
        sa.Column("overdue", sa.JSON(), nullable=False),
        sa.Column("campaign_id", sa.String(36), sa.ForeignKey("campaigns.id"), index=True),
    )
    op.create_table(
        "incident_timeline",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "incident_id", sa.String(36), sa.ForeignKey("incidents.id"), nullable=False, index=True
        ),
        sa.Column("at", _TS, nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("from_status", sa.String(20)),
        sa.Column("to_status", sa.String(20)),
    )


def downgrade() -> None:
    op.drop_table("incident_timeline")
    op.drop_table("incidents")
    op.drop_table("campaigns")
