"""Ingested batches are claimed before they are processed (`state`).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    with op.batch_alter_table("ingested_batches") as table:
        table.add_column(sa.Column("state", sa.String(12), nullable=False, server_default="done"))


def downgrade() -> None:
    with op.batch_alter_table("ingested_batches") as table:
        table.drop_column("state")
