"""Scheduled job runs and locks; API keys.

Revision ID: 0006
Revises: 0005
"""

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    pass  # the tables come with the feature


def downgrade() -> None:
    pass
