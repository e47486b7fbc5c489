"""Creation times are never empty (the models always said so; the first migrations did not).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"

_COLUMNS = (
    ("audit_log", "at"),
    ("establishments", "created_at"),
    ("ingested_batches", "received_at"),
    ("users", "created_at"),
)


def upgrade() -> None:
    for table, column in _COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                column,
                existing_type=sa.DateTime(timezone=True),
                existing_server_default=sa.func.now(),
                nullable=False,
            )


def downgrade() -> None:
    for table, column in _COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                column,
                existing_type=sa.DateTime(timezone=True),
                existing_server_default=sa.func.now(),
                nullable=True,
            )
