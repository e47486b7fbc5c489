"""The dashboard's tests run the real service over HTTP (tests/api/conftest.py), logging in
with the login form as a browser would, cookies and CSRF tokens included."""

from tests.api.conftest import database_url, service

__all__ = ["database_url", "service"]
