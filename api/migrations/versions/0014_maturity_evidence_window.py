"""Maturity evidence read by window: an index on (finess, signal, day).

The primary key (finess, signal, key, day) cannot seek to the last 30 days of a signal across
its keys, so a snapshot scanned a year of rows to keep a month of them.

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"


def upgrade() -> None:
    op.create_index("ix_maturity_evidence_window", "maturity_evidence", ["finess", "signal", "day"])


def downgrade() -> None:
    op.drop_index("ix_maturity_evidence_window", table_name="maturity_evidence")
