"""Accounts: token revocation (`token_version`), forced password change, login failures
counted for throttling, and a `detail` column in the audit log (what a list returned).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    with op.batch_alter_table("users") as table:
        table.add_column(
            sa.Column("token_version", sa.Integer(), nullable=False, server_default="0")
        )
        table.add_column(
            sa.Column(
                "must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        table.add_column(
            sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("audit_log") as table:
        table.add_column(sa.Column("detail", sa.Text(), nullable=True))
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_login_failures_last_failure_at", "login_failures", ["last_failure_at"])


def downgrade() -> None:
    op.drop_index("ix_login_failures_last_failure_at", "login_failures")
    op.drop_table("login_failures")
    with op.batch_alter_table("audit_log") as table:
        table.drop_column("detail")
    with op.batch_alter_table("users") as table:
        table.drop_column("password_changed_at")
        table.drop_column("must_change_password")
        table.drop_column("token_version")
