"""The reports' tests: the same real service the API tests use, over SQLite and PostgreSQL."""

from __future__ import annotations

from tests.api.conftest import database_url, service

__all__ = ["database_url", "service"]
