"""The audit log as a hash chain (api/audit/chain.py): `prev_hash` and `row_hash` on every row,
the rows already there chained in id order.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"

_BATCH = 1000


def upgrade() -> None:
    # The chain's definition is the service's: a copy here could drift from it.
    from api.audit.chain import GENESIS, at_text, row_hash

    with op.batch_alter_table("audit_log") as table:
        table.add_column(sa.Column("prev_hash", sa.String(64), nullable=False, server_default=""))
        table.add_column(sa.Column("row_hash", sa.String(64), nullable=False, server_default=""))
    log = sa.table(
        "audit_log",
        *(sa.column(name) for name in ("id", "actor", "role", "action", "target_kind")),
        *(sa.column(name) for name in ("target_id", "client", "detail", "prev_hash", "row_hash")),
        sa.column("at", sa.DateTime(timezone=True)),
    )
    bind = op.get_bind()
    previous, last_id = GENESIS, 0
    while True:  # in batches of ids: the log may be long
        rows = bind.execute(
            sa.select(log).where(log.c.id > last_id).order_by(log.c.id).limit(_BATCH)
        ).all()
        if not rows:
            break
        for row in rows:
            fields = [
                str(row.id),
                at_text(row.at),
                row.actor,
                row.role,
                row.action,
                row.target_kind,
                row.target_id,
                row.client or "",
                row.detail or "",
            ]
            own = row_hash(fields, previous)
            bind.execute(
                log.update().where(log.c.id == row.id).values(prev_hash=previous, row_hash=own)
            )
            previous, last_id = own, row.id


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as table:
        table.drop_column("row_hash")
        table.drop_column("prev_hash")
