"""Auditor reports (api/reports/): the runs made (`report_runs`), an establishment's legal
status (statistics by public / private non-profit / private commercial) and the time an
incident was notified to the CNIL (the registry's personal-data columns).

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"


def upgrade() -> None:
    op.create_table(
        "report_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("format", sa.String(10), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finess", sa.String(9), nullable=True),
        sa.Column("region", sa.String(60), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("trigger", sa.String(130), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(200), nullable=False),
        sa.Column("path", sa.String(300), nullable=True),
    )
    op.create_index("ix_report_runs_kind_finess", "report_runs", ["kind", "finess", "as_of"])
    with op.batch_alter_table("establishments") as table:
        table.add_column(sa.Column("legal_status", sa.String(30), nullable=True))
    with op.batch_alter_table("incidents") as table:
        table.add_column(sa.Column("cnil_notified_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as table:
        table.drop_column("cnil_notified_at")
    with op.batch_alter_table("establishments") as table:
        table.drop_column("legal_status")
    op.drop_index("ix_report_runs_kind_finess", table_name="report_runs")
    op.drop_table("report_runs")
