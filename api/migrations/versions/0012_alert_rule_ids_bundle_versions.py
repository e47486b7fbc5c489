"""Sigma rule ids held by one alert each; each establishment's own bundle version; incidents
say whether their rule is one the service knows (only those make campaigns).

Existing alerts' rule ids are recorded, the oldest alert first: an id two alerts share from
before (the live engine now tells their rules apart by alert) stays the older one's. Each
existing establishment starts at the national version it may have seen, so that no agent's
high-water mark is above its new version; its first fetch after the upgrade is one more.
Existing incidents keep counting towards campaigns, as they did.

Revision ID: 0012
Revises: 0009
"""

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import yaml
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    rule_ids = op.create_table(
        "alert_rule_ids",
        sa.Column("rule_id", sa.String(200), primary_key=True),
        sa.Column("alert_id", sa.String(36), sa.ForeignKey("alerts.id"), nullable=False),
    )
    op.create_index("ix_alert_rule_ids_alert_id", "alert_rule_ids", ["alert_id"])
    versions = op.create_table(
        "alert_bundle_versions",
        sa.Column("finess", sa.String(9), sa.ForeignKey("establishments.finess"), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("basis", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("incidents") as table:
        table.add_column(
            sa.Column("known_rule", sa.Boolean(), nullable=False, server_default=sa.true())
        )

    bind = op.get_bind()
    held: dict[str, str] = {}
    alerts = bind.execute(sa.text("SELECT id, sigma_rules FROM alerts ORDER BY created_at, id"))
    for alert_id, texts in alerts:
        for rule_id in _rule_ids(texts):
            held.setdefault(rule_id, str(alert_id))
    if held:
        op.bulk_insert(rule_ids, [{"rule_id": r, "alert_id": a} for r, a in held.items()])
    national = bind.execute(sa.text("SELECT version FROM alert_bundle_state WHERE id = 1")).scalar()
    finesses = [f for (f,) in bind.execute(sa.text("SELECT finess FROM establishments"))]
    now = datetime.now(UTC)
    if finesses:
        op.bulk_insert(
            versions,
            [
                # An empty digest matches no content: the first fetch is national + 1.
                {
                    "finess": f,
                    "version": national or 0,
                    "digest": "",
                    "basis": "",
                    "updated_at": now,
                }
                for f in finesses
            ],
        )


def _rule_ids(texts: Any) -> list[str]:
    """The `id` of each rule text, read without composing aliases (an alias bomb published
    before the checks is skipped, not expanded)."""
    from detection.sigma.yaml_guard import YamlRefused, check_plain_yaml

    if isinstance(texts, str):  # a JSON column some drivers hand back as text
        import json

        texts = json.loads(texts)
    found = []
    for text in texts or []:
        with contextlib.suppress(YamlRefused, yaml.YAMLError, TypeError, ValueError):
            check_plain_yaml(text)
            document = yaml.safe_load(text)
            if isinstance(document, dict) and document.get("id"):
                found.append(str(uuid.UUID(str(document["id"]))))  # as pySigma writes it
    return found


def downgrade() -> None:
    with op.batch_alter_table("incidents") as table:
        table.drop_column("known_rule")
    op.drop_table("alert_bundle_versions")
    op.drop_index("ix_alert_rule_ids_alert_id", table_name="alert_rule_ids")
    op.drop_table("alert_rule_ids")
