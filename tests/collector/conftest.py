"""The national service for the agent's tests: the same real service the API tests use."""

from tests.api.conftest import database_url, service  # noqa: F401 - fixtures, re-exported
