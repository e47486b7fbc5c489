"""Delivery exactly once: who claimed a batch, the duplicates it brought, and the dropped
events already notified per agent.

Revision ID: 0011
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    with op.batch_alter_table("ingested_batches") as table:
        table.add_column(sa.Column("owner", sa.String(160), nullable=True))
        table.add_column(sa.Column("duplicates", sa.Integer(), nullable=False, server_default="0"))
        table.create_index("ix_ingested_batches_agent", ["agent"])
    with op.batch_alter_table("agents") as table:
        table.add_column(
            sa.Column("dropped_notified", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("agents") as table:
        table.drop_column("dropped_notified")
    with op.batch_alter_table("ingested_batches") as table:
        table.drop_index("ix_ingested_batches_agent")
        table.drop_column("duplicates")
        table.drop_column("owner")
