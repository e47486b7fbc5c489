"""Maturity scores: gathered evidence, declarations (profile, answers, proofs, exceptions),
daily snapshots; the site of enrollment tokens and agents.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"

_FINESS = "establishments.finess"


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    for table_name in ("enrollment_tokens", "agents"):
        with op.batch_alter_table(table_name) as table:
            table.add_column(sa.Column("site", sa.String(120), nullable=True))
    op.create_table(
        "maturity_evidence",
        sa.Column("finess", sa.String(9), sa.ForeignKey(_FINESS), primary_key=True),
        sa.Column("signal", sa.String(20), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
        _when("first_seen"),
        _when("last_seen"),
        sa.Column("samples", sa.JSON(), nullable=False),
        sa.Column("subjects", sa.JSON(), nullable=False),
    )
    op.create_index("ix_maturity_evidence_day", "maturity_evidence", ["day"])
    op.create_table(
        "maturity_profiles",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("finess", sa.String(9), sa.ForeignKey(_FINESS), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("sites", sa.JSON(), nullable=False),
        sa.Column("expected_sources", sa.JSON(), nullable=False),
        sa.Column("server_hosts", sa.JSON(), nullable=False),
        sa.Column("admin_hosts", sa.JSON(), nullable=False),
        sa.Column("resolvers", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("declared_by", sa.String(120), nullable=False),
        _when("declared_at"),
    )
    op.create_index("ix_maturity_profiles_finess", "maturity_profiles", ["finess"])
    op.create_table(
        "maturity_proofs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("finess", sa.String(9), sa.ForeignKey(_FINESS), nullable=False),
        sa.Column("control_id", sa.String(10), nullable=False),
        sa.Column("filename", sa.String(200), nullable=False),
        sa.Column("media_type", sa.String(80), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_by", sa.String(120), nullable=False),
        _when("uploaded_at"),
    )
    op.create_index("ix_maturity_proofs_finess", "maturity_proofs", ["finess"])
    op.create_table(
        "maturity_answers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("finess", sa.String(9), sa.ForeignKey(_FINESS), nullable=False),
        sa.Column("control_id", sa.String(10), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("proof_id", sa.String(36), sa.ForeignKey("maturity_proofs.id"), nullable=True),
        sa.Column("declared_by", sa.String(120), nullable=False),
        _when("declared_at"),
        sa.Column("reviewed_by", sa.String(120), nullable=True),
        _when("reviewed_at", nullable=True),
        sa.Column("review", sa.String(20), nullable=True),
    )
    op.create_index(
        "ix_maturity_answers_finess_control", "maturity_answers", ["finess", "control_id"]
    )
    op.create_table(
        "maturity_exceptions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("finess", sa.String(9), sa.ForeignKey(_FINESS), nullable=False),
        sa.Column("control_id", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("approver", sa.String(200), nullable=False),
        sa.Column("created_by", sa.String(120), nullable=False),
        _when("created_at"),
        _when("expires_at"),
        sa.Column("revoked_by", sa.String(120), nullable=True),
        _when("revoked_at", nullable=True),
    )
    op.create_index("ix_maturity_exceptions_finess", "maturity_exceptions", ["finess"])
    op.create_table(
        "maturity_snapshots",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("finess", sa.String(9), sa.ForeignKey(_FINESS), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("region", sa.String(60), nullable=False),
        sa.Column("framework_id", sa.String(40), nullable=False),
        sa.Column("framework_version", sa.String(20), nullable=False),
        sa.Column("framework_digest", sa.String(64), nullable=False),
        _when("computed_at"),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("coverage", sa.Float(), nullable=False),
        sa.Column("proof_ratio", sa.Float(), nullable=False),
        sa.Column("inputs_digest", sa.String(64), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
    )
    op.create_index("ix_maturity_snapshots_finess_as_of", "maturity_snapshots", ["finess", "as_of"])
    op.create_index("ix_maturity_snapshots_as_of", "maturity_snapshots", ["as_of"])


def downgrade() -> None:
    for name in (
        "maturity_snapshots",
        "maturity_exceptions",
        "maturity_answers",
        "maturity_proofs",
        "maturity_profiles",
        "maturity_evidence",
    ):
        op.drop_table(name)
    for table_name in ("agents", "enrollment_tokens"):
        with op.batch_alter_table(table_name) as table:
            table.drop_column("site")
