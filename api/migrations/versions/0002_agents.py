"""Enrollment tokens and agents.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "enrollment_tokens",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "establishment_finess",
            sa.String(9),
            sa.ForeignKey("establishments.finess"),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("label", sa.String(120)),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_uses", sa.Integer()),
        sa.Column("uses", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_by", sa.String(120)),
    )
    op.create_index(
        "ix_enrollment_tokens_establishment_finess", "enrollment_tokens", ["establishment_finess"]
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "establishment_finess",
            sa.String(9),
            sa.ForeignKey("establishments.finess"),
            nullable=False,
        ),
        sa.Column("hostname", sa.String(253), nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("enrollment_token_id", sa.String(36), sa.ForeignKey("enrollment_tokens.id")),
        sa.Column("enrolled_from", sa.String(64)),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_heartbeat", sa.DateTime(timezone=True)),
        sa.Column("lag_seconds", sa.Float()),
        sa.Column("revoked", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_by", sa.String(120)),
    )
    op.create_index("ix_agents_establishment_finess", "agents", ["establishment_finess"])


def downgrade() -> None:
    op.drop_index("ix_agents_establishment_finess", table_name="agents")
    op.drop_table("agents")
    op.drop_index("ix_enrollment_tokens_establishment_finess", table_name="enrollment_tokens")
    op.drop_table("enrollment_tokens")
