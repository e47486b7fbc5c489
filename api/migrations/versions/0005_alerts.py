"""Alerts, acknowledgements, signed bundles.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("tlp", sa.String(12), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("products", sa.JSON(), nullable=False),
        sa.Column("cves", sa.JSON(), nullable=False),
        sa.Column("indicators", sa.JSON(), nullable=False),
        sa.Column("sigma_rules", sa.JSON(), nullable=False),
        sa.Column("yara_rules", sa.JSON(), nullable=False),
        sa.Column("target_all", sa.Boolean(), nullable=False),
        sa.Column("target_regions", sa.JSON(), nullable=False),
        sa.Column("target_kinds", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bundle_version", sa.Integer(), nullable=False),
        sa.Column("retro_hunt_days", sa.Integer(), nullable=False),
        sa.Column("retro_hunt", sa.JSON()),
    )
    op.create_index("ix_alerts_status", "alerts", ["status"])
    op.create_table(
        "alert_acknowledgements",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.String(36), sa.ForeignKey("alerts.id"), nullable=False),
        sa.Column(
            "establishment_finess",
            sa.String(9),
            sa.ForeignKey("establishments.finess"),
            nullable=False,
        ),
        sa.Column("acknowledged_by", sa.String(120), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.String(1000)),
        sa.UniqueConstraint("alert_id", "establishment_finess", name="uq_alert_ack_establishment"),
    )
    op.create_index("ix_alert_acknowledgements_alert_id", "alert_acknowledgements", ["alert_id"])
    state = op.create_table(
        "alert_bundle_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # The one row every publication bumps (under its row lock on PostgreSQL).
    op.execute(state.insert().values(id=1, version=0, updated_at=sa.func.now()))


def downgrade() -> None:
    op.drop_table("alert_bundle_state")
    op.drop_index("ix_alert_acknowledgements_alert_id", table_name="alert_acknowledgements")
    op.drop_table("alert_acknowledgements")
    op.drop_index("ix_alerts_status", table_name="alerts")
    op.drop_table("alerts")
