"""Alerts, acknowledgements, signed bundles.

Revision ID: 0005
Revises: 0004
"""

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    pass  # the tables come with the feature


def downgrade() -> None:
    pass
