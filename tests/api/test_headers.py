"""What every answer says besides its body (headers, no banner), which pages production
serves, and that no environment lets an admin run a job "as of" another time."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from api.events.sqlite_store import SQLiteEventStore
from api.headers import API_CSP, DOCS_CSP
from api.settings import Settings
from tests import rawhttp
from tests.api.conftest import Service, running
from tests.api.test_ingest import agent_key, post
from tests.api.test_service import PASSWORD, PITIE, setup_world


def _assert_guarded(answer: httpx.Response, csp: str = API_CSP) -> None:
    where = f"{answer.request.method} {answer.request.url.path} -> {answer.status_code}"
    assert "server" not in answer.headers, where
    assert answer.headers["x-content-type-options"] == "nosniff", where
    assert answer.headers["content-security-policy"] == csp, where
    assert answer.headers["cache-control"] == "no-store", where
    assert answer.headers["referrer-policy"] == "no-referrer", where
    assert answer.headers["x-frame-options"] == "DENY", where


def test_every_kind_of_answer_carries_the_headers(service: Service) -> None:
    tokens = setup_world(service)
    with service.client() as client:
        login = client.post("/auth/token", json={"username": "analyst", "password": PASSWORD})
        assert login.status_code == 200
        answers = [
            login,  # a token
            client.get("/health"),
            client.get("/openapi.json"),
            client.get("/nowhere"),  # 404
            client.post("/auth/token", json={}),  # 422
            client.post("/auth/token", json={"username": "analyst", "password": "bad"}),  # 401
            client.get("/establishments"),  # 401, no credentials
            client.post("/auth/token", content=b"{", headers={"Content-Type": "application/json"}),
        ]
    with service.client(tokens["it_pitie"]) as client:
        answers += [
            client.get("/auth/me"),
            client.get("/incidents"),  # health data
            client.get(f"/establishments/{PITIE}"),
            client.get("/jobs"),  # 403
        ]
    for answer in answers:
        _assert_guarded(answer)
    # The body limit's 413, made outside the application's own middleware, too.
    status, raw, _ = rawhttp.send(
        service.url, "/auth/token", [b"{}"], headers={"Content-Length": str(10**10)}, chunked=False
    )
    head = raw.partition(b"\r\n\r\n")[0].decode().lower()
    assert status == 413
    assert "server:" not in head
    assert f"content-security-policy: {API_CSP}" in head
    assert "x-content-type-options: nosniff" in head
    assert "cache-control: no-store" in head


def test_production_serves_no_documentation_pages(service: Service) -> None:
    assert service.settings.environment == "production"  # the default
    with service.client() as client:
        for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            assert client.get(page).status_code == 404, page
        assert client.get("/openapi.json").status_code == 200


def test_development_serves_them_under_their_own_policy(database_url: str, tmp_path: Path) -> None:
    settings = Settings(
        tmp_path / "data", database_url, secrets.token_urlsafe(40), environment="development"
    )
    with running(settings) as service, service.client() as client:
        for page in ("/docs", "/redoc"):
            answer = client.get(page)
            assert answer.status_code == 200, page
            _assert_guarded(answer, DOCS_CSP)
        _assert_guarded(client.get("/health"))
    assert "frame-ancestors 'none'" in DOCS_CSP


@pytest.mark.parametrize("environment", ["production", "development"])
def test_no_environment_runs_a_job_as_of_another_time(
    database_url: str, tmp_path: Path, environment: str
) -> None:
    settings = Settings(
        tmp_path / "data", database_url, secrets.token_urlsafe(40), environment=environment
    )
    with running(settings) as service:
        tokens = setup_world(service)
        key = agent_key(service, tokens)
        now = datetime.now(UTC).isoformat()
        kept = post(service, key, {"batch_id": "keep-me-1", "events": [{"@timestamp": now}]})
        assert kept.json()["events_accepted"] == 1
        with service.client(tokens["admin"]) as client:
            for when in ("2099-01-01T00:00:00Z", "2000-01-01T00:00:00+02:00", now):
                refused = client.post("/jobs/retention_purge/run", params={"now": when})
                assert refused.status_code == 422, refused.text
                assert "tests only" in refused.json()["detail"]
            assert client.post("/jobs/retention_purge/run").status_code == 200  # at present
    store = SQLiteEventStore.in_data_dir(settings.data_dir)
    try:
        assert store.count("events", establishment=PITIE) == 1
    finally:
        store.close()
