"""The reports are tested on the real service (tests/api/conftest.py)."""

from tests.api.conftest import database_url, service

__all__ = ["database_url", "service"]
