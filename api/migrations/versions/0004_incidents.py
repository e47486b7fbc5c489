"""Incidents, their timeline, campaigns.

Revision ID: 0004
Revises: 0003
"""

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    pass  # the tables come with the feature


def downgrade() -> None:
    pass
