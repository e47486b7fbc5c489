"""Agents report their counters (received, shipped, dropped, refused) with each heartbeat.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    with op.batch_alter_table("agents") as table:
        table.add_column(sa.Column("counters", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("agents") as table:
        table.drop_column("counters")
