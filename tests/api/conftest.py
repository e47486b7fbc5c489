"""The service for real: a fresh database (SQLite, and PostgreSQL when it is there or in CI)
and a uvicorn server on a loopback port, talked to over HTTP."""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
import uvicorn

from api.app import create_app
from api.settings import Settings
from tests import clients

POSTGRES = os.environ.get(
    "VIGIE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_schema_url() -> tuple[str, str]:
    """A URL on a schema of its own in the `test` database (dropped by the caller)."""
    schema = f"vigie_{secrets.token_hex(4)}"
    try:
        engine = sqlalchemy.create_engine(POSTGRES)
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
    except sqlalchemy.exc.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI and unreachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES}: {exc}")
    return f"{POSTGRES}?options=-csearch_path%3D{schema}", schema


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'vigie.db'}"
        return
    url, schema = _postgres_schema_url()
    yield url
    engine = sqlalchemy.create_engine(POSTGRES)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


ADMIN_PASSWORD = "Phare-de-Cordouan-1611"  # noqa: S105 - the tests' admin, set at first login


def change_first_password(url: str, first_password: str) -> str:
    """What the operator does first: log in as `admin` with the password printed at start and
    change it (until then every other route answers 403). Returns the new password."""
    with clients.client(url) as client:
        login = {"username": "admin", "password": first_password}
        token = client.post("/auth/token", json=login).raise_for_status().json()["access_token"]
        client.post(
            "/auth/password",
            json={"current_password": first_password, "new_password": ADMIN_PASSWORD},
            headers={"Authorization": f"Bearer {token}"},
        ).raise_for_status()
    return ADMIN_PASSWORD


@dataclass
class Service:
    url: str
    settings: Settings
    admin_password: str
    first_password: str = ""  # printed at the first start; changed into admin_password

    def client(self, token: str | None = None, timeout: float = 10) -> httpx.Client:
        """`timeout`: longer for a request that makes reports (a busy machine's PDFs)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return clients.client(self.url, headers=headers, timeout=timeout)

    def login(self, username: str, password: str) -> str:
        with self.client() as client:
            answer = client.post("/auth/token", json={"username": username, "password": password})
        answer.raise_for_status()
        return str(answer.json()["access_token"])


@contextmanager
def running(settings: Settings) -> Iterator[Service]:
    """`create_app(settings)` served by uvicorn on a free loopback port."""
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", server_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            pytest.fail("the service did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    first = app.state.first_admin_password
    try:
        yield Service(url, settings, change_first_password(url, first), first)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.engine.dispose()


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[Service]:
    # The time override lets the job tests run a job "as of" a later date.
    settings = Settings(
        tmp_path / "data", database_url, secrets.token_urlsafe(40), allow_time_override=True
    )
    settings.data_dir.mkdir()
    with running(settings) as service:
        yield service


def _covers(template: str, path: str) -> bool:
    pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
    return re.fullmatch(pattern, path.split("?")[0]) is not None


def tagged_operations_missing(
    service: Service, tag: str, matrix: Iterable[tuple[str, str, Any, Any]]
) -> tuple[int, list[str]]:
    """How many operations the OpenAPI document tags `tag`, and those of them that state no
    roles or that no row of a feature's access `matrix` calls."""
    with service.client() as client:
        spec = client.get("/openapi.json").json()
    rows = [(method, path) for method, path, _, _ in matrix]
    count, missing = 0, []
    for template, ops in spec["paths"].items():
        for method, op in ops.items():
            if tag not in op.get("tags", []):
                continue
            count += 1
            if not op.get("x-roles"):
                missing.append(f"{method.upper()} {template} does not say who may call it")
            elif not any(m == method.upper() and _covers(template, p) for m, p in rows):
                missing.append(f"{method.upper()} {template} is missing from the access matrix")
    return count, missing
