"""Ingested batches (a retried batch id is a no-op).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "ingested_batches",
        sa.Column("batch_id", sa.String(64), primary_key=True),
        sa.Column("agent", sa.String(80), nullable=False),
        sa.Column("establishment", sa.String(9), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.Column("events_accepted", sa.Integer(), nullable=False),
        sa.Column("detections_accepted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("server_detections", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ingested_batches")
