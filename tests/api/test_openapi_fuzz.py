"""A property-based run of the service's own OpenAPI document (schemathesis): every operation,
called with generated parameters and bodies by an admin and by an establishment user over real
HTTP, never answers 5xx."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from api.app import create_app
from api.settings import Settings
from tests.api.conftest import Service, change_first_password
from tests.api.test_service import setup_world

# Logout takes no input to generate, and would revoke the run's tokens: tested in
# test_accounts.py.
TAKES_NOTHING = {"POST /auth/logout"}
EXAMPLES = 15  # per operation and role: about a minute for the whole API on 2 cores


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, dict[str, str]]]:
    """One service for the whole run (a fresh one per example would dominate the time)."""
    folder: Path = tmp_path_factory.mktemp("fuzz")
    settings_ = Settings(folder / "data", f"sqlite:///{folder / 'vigie.db'}", "f" * 40)
    settings_.data_dir.mkdir()
    app = create_app(settings_)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", server_header=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    first = app.state.first_admin_password
    service = Service(url, settings_, change_first_password(url, first), first)
    yield service, setup_world(service)
    server.should_exit = True
    thread.join(timeout=10)
    app.state.engine.dispose()


@pytest.fixture(scope="module")
def api_schema(fuzzed: tuple[Service, dict[str, str]]) -> Any:
    service, _ = fuzzed
    document = httpx.get(f"{service.url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=service.url)
    return schema


@pytest.mark.slow
def test_no_operation_answers_5xx(fuzzed: tuple[Service, dict[str, str]]) -> None:
    service, tokens = fuzzed
    document = httpx.get(f"{service.url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if result.ok().label not in TAKES_NOTHING
    ]
    assert len(operations) + len(TAKES_NOTHING) == sum(
        len(ops) for ops in document["paths"].values()
    )
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,  # the same examples every run: a failure can be replayed
            database=None,
        )
        def calls(case: schemathesis.Case) -> None:
            for role in ("admin", "it_pitie"):
                answer = case.call_and_validate(
                    base_url=service.url,
                    headers={"Authorization": f"Bearer {tokens[role]}"},
                    checks=[not_a_server_error],
                )
                statuses[answer.status_code] += 1

        try:
            calls()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - report every operation
            failures.append(f"{operation.label}: {_reproduce(exc)}")
    assert not failures, "\n\n".join(failures)
    # The run really went past the gate: some calls were accepted, some refused as invalid.
    print(dict(statuses))
    assert statuses[200] + statuses[201] > len(operations)
    assert statuses[422] > 0


def _reproduce(exc: BaseException) -> str:
    """The failure's first lines, with schemathesis's reproduction (a curl command)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return "\n".join(lines[:12])
