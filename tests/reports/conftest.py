"""The service and its databases (SQLite and PostgreSQL), as the API tests have them."""

from tests.api.conftest import database_url, service  # noqa: F401 - fixtures, re-exported
