"""Alembic environment: runs on the connection `api.db.upgrade` passes in."""

from __future__ import annotations

from alembic import context

from api.db import Base
from api.models import load_all

load_all()
connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
