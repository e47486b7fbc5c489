"""Request bodies over real HTTP: refused by size before they are buffered or authenticated,
answered without an echo of what was sent, and refused when their JSON holds values no answer
or database can carry (NaN, Infinity, lone surrogates)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import httpx
import pytest

from api.alerts.routes import MAX_ALERT_BODY
from api.bodies import MAX_JSON_BODY
from api.ingest.routes import MAX_BODY as MAX_INGEST_BODY
from tests import rawhttp
from tests.api.conftest import Service
from tests.api.test_ingest import agent_key
from tests.api.test_service import PITIE, setup_world

SECRET = "Unique-Secret-Passphrase-4711"


def _stream(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """`total` bytes of a JSON string's inside, made as they are sent (never held whole)."""
    yield b'{"username": "'
    for _ in range(total // size):
        yield b"a" * size


def _callers(service: Service) -> list[tuple[str, str | None, int]]:
    """(path, bearer, limit): JSON routes public and authenticated, and /ingest."""
    tokens = setup_world(service)
    key = agent_key(service, tokens)
    return [
        ("/agents/enroll", None, MAX_JSON_BODY),
        ("/auth/token", None, MAX_JSON_BODY),
        ("/users", None, MAX_JSON_BODY),
        ("/users", tokens["admin"], MAX_JSON_BODY),
        ("/alerts", None, MAX_ALERT_BODY),
        ("/alerts", tokens["analyst"], MAX_ALERT_BODY),
        ("/ingest", None, MAX_INGEST_BODY),
        ("/ingest", key, MAX_INGEST_BODY),
    ]


def test_oversized_bodies_are_refused_as_they_arrive(service: Service) -> None:
    for path, bearer, limit in _callers(service):
        auth = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        where = f"{path} {'with' if bearer else 'without'} credentials"
        # A Content-Length beyond the limit: refused on the header, the body never read.
        status, answer, _ = rawhttp.send(
            service.url,
            path,
            [b"{}"],
            headers={**auth, "Content-Length": str(10**11)},
            chunked=False,
        )
        assert status == 413, (where, answer[:300])
        # An honest Content-Length one byte too many, the whole body sent.
        honest = b"x" * (limit + 1)
        status, answer, _ = rawhttp.send(
            service.url,
            path,
            [honest],
            headers={**auth, "Content-Length": str(len(honest))},
            chunked=False,
        )
        assert status == 413, (where, answer[:300])
        del honest
        # Chunked, no length: counted as it streams and cut at the limit, long before the
        # end of what the client would send.
        # (/ingest authenticates first, and a stranger is refused before a byte is read.)
        refused = {413, 401} if path == "/ingest" and not bearer else {413}
        status, answer, sent = rawhttp.send(
            service.url, path, _stream(limit + 64 * 2**20), headers=auth
        )
        assert status in refused, (where, answer[:300])
        assert sent < limit + 32 * 2**20, where
        # A slow trickle: the same, whatever the pace.
        status, answer, _ = rawhttp.send(
            service.url, path, _stream(2 * limit, limit // 16), headers=auth, pause=0.02
        )
        assert status in refused, (where, answer[:300])


def test_bodies_under_the_limit_are_still_read(service: Service) -> None:
    tokens = setup_world(service)
    padding = "a" * (MAX_JSON_BODY - 1000)
    with service.client(tokens["admin"]) as client:
        answer = client.post("/users", json={"username": "x", "password": padding, "role": "x"})
    assert answer.status_code == 422, answer.text[:300]  # read and judged, not cut
    key = agent_key(service, tokens)
    events = [{"@timestamp": "2026-11-20T10:00:00Z", "message": "m" * 1000}] * 10_000
    body = gzip.compress(httpx.Request("POST", "/", json={"events": events}).content)
    assert len(body) < MAX_INGEST_BODY
    with service.client(key) as client:
        big = client.post(
            "/ingest",
            content=body,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
    assert big.status_code == 422, big.text[:300]  # no batch_id: read, then refused
    assert "batch_id" in big.text


def test_validation_errors_never_echo_the_input(service: Service) -> None:
    tokens = setup_world(service)
    token = "vge_" + SECRET
    cases = [
        (None, "/auth/token", {"username": ["admin"], "password": [SECRET]}),
        (None, "/auth/token", {"username": {"name": SECRET}, "password": 12}),
        (None, "/agents/enroll", {"token": [token], "hostname": "h", "version": "1"}),
        (None, "/agents/enroll", {"token": token, "hostname": f"-{SECRET}", "version": "1"}),
        (tokens["admin"], "/users", {"username": "new.user", "password": "Short" + "1"}),
        (tokens["admin"], "/users", {"username": "x", "password": SECRET, "role": SECRET}),
        (tokens["admin"], "/users", {"username": SECRET * 10, "password": SECRET, "role": "x"}),
    ]
    for bearer, path, body in cases:
        with service.client(bearer) as client:
            answer = client.post(path, json=body)
        assert answer.status_code == 422, (path, answer.text)
        assert SECRET not in answer.text, (path, answer.text)
        assert "Short1" not in answer.text
        assert "input" not in answer.text, answer.text
        for error in answer.json()["detail"]:
            assert set(error) == {"type", "loc", "msg"}


def test_validation_answers_are_short_whatever_the_body(service: Service) -> None:
    tokens = setup_world(service)
    with service.client(tokens["analyst"]) as client:
        # One huge wrong value: the answer does not grow with it.
        huge = client.post("/alerts", json={"title": ["t" * 900_000]})
        assert huge.status_code == 422
        assert len(huge.content) < 4096, len(huge.content)
        # Thousands of errors: the first few, and how many more.
        many = client.post(
            "/alerts",
            json={"title": "ttt", "severity": "high", "tlp": "red", "indicators": [1] * 5000},
        )
        assert many.status_code == 422
        assert len(many.json()["detail"]) == 20
        assert many.json()["more_errors"] >= 4980
        assert len(many.content) < 8192


# Bodies Python's json module takes and no answer or database can hold. Each replaces VALUE.
ODD = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b'"\\ud800"', b'"x\\udfff"', b'"\\ud83d"']


def _odd_bodies(template: bytes) -> list[bytes]:
    return [template.replace(b"VALUE", odd) for odd in ODD]


def test_unserialisable_values_answer_4xx_on_every_kind_of_body(service: Service) -> None:
    tokens = setup_world(service)
    key = agent_key(service, tokens)
    routes: list[tuple[str | None, str, bytes]] = [
        (None, "/auth/token", b'{"username": "admin", "password": VALUE}'),
        (None, "/auth/token", b'{"username": VALUE, "password": "x"}'),
        (None, "/auth/token", b'{"username": "a", "password": "b", VALUE: 1}'),
        (None, "/agents/enroll", b'{"token": VALUE, "hostname": "h", "version": "1"}'),
        (
            key,
            "/agents/heartbeat",
            b'{"version": "1", "sources": [{"name": "s", "lag_seconds": VALUE}]}',
        ),
        (key, "/agents/heartbeat", b'{"version": VALUE}'),
        (tokens["admin"], "/users", b'{"username": VALUE, "password": "p", "role": "cert"}'),
        (tokens["analyst"], "/alerts", b'{"title": VALUE, "severity": "low"}'),
        (
            tokens["it_pitie"],
            "/incidents",
            b'{"title": VALUE, "category": "phishing", "care_impact": "none",'
            b' "personal_data": false, "aware_at": "2026-11-20T10:00:00Z"}',
        ),
        (
            tokens["admin"],
            "/establishments",
            b'{"finess": "2B0004246", "name": VALUE, "kind": "CH"}',
        ),
        (
            key,
            "/ingest",
            b'{"batch_id": "batch-odd-1", "events": [{"@timestamp": "2026-11-20T10:00:00Z",'
            b' "v": VALUE, VALUE: 1}]}',
        ),
    ]
    for bearer, path, template in routes:
        for body in _odd_bodies(template):
            with service.client(bearer) as client:
                answer = client.post(
                    path, content=body, headers={"Content-Type": "application/json"}
                )
            assert 400 <= answer.status_code < 500, (path, body, answer.status_code, answer.text)
            answer.json()  # a clear answer, in JSON
    # The same in a key, and gzip-compressed to /ingest.
    odd_key = (
        b'{"batch_id": "batch-odd-2", "events": [{"@timestamp": "2026-11-20T10:00:00Z",'
        b' "\\ud800": 1}]}'
    )
    with service.client(key) as client:
        answer = client.post(
            "/ingest",
            content=gzip.compress(odd_key),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        assert answer.status_code == 422, answer.text
    # Nothing odd was kept: every list still answers.
    with service.client(tokens["admin"]) as client:
        for path in (
            "/agents",
            "/establishments",
            "/incidents",
            "/alerts",
            f"/establishments/{PITIE}",
        ):
            assert client.get(path).status_code == 200, path


@pytest.mark.parametrize("content_type", ["application/json", "application/vnd.api+json", None])
def test_strict_json_whatever_the_json_content_type(
    service: Service, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    with httpx.Client(base_url=service.url) as client:
        answer = client.post("/auth/token", content=b'{"username": NaN}', headers=headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["type"] == "json_invalid"
