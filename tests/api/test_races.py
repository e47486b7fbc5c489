"""Check-then-insert races, with real concurrent requests: the documented answer, never a 500.
Two acknowledgements at once both answer the first; two API keys of one name, or two
registrations of one establishment: one 201, the others 409."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.api.conftest import Service
from tests.api.test_alerts import fresh_rule, publish, world
from tests.api.test_service import PITIE

THREADS = 8
ROUNDS = 4


def at_once(count: int, call: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    """`call(n)` from `count` threads released together."""
    start = threading.Barrier(count)

    def one(n: int) -> httpx.Response:
        start.wait()
        return call(n)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def test_concurrent_acknowledgements_answer_the_first(service: Service) -> None:
    tokens = world(service)
    clients = [service.client(tokens["it_pitie"]) for _ in range(THREADS)]
    try:
        for _ in range(ROUNDS):
            alert = publish(
                service, tokens["analyst"], target={"all": True}, sigma_rules=[fresh_rule()]
            )
            path = f"/alerts/{alert['id']}/acknowledge"
            answers = at_once(
                THREADS, lambda n, path=path: clients[n].post(path, json={"comment": f"c{n}"})
            )
            assert [a.status_code for a in answers] == [200] * THREADS, [a.text for a in answers]
            assert len({a.text for a in answers}) == 1, [a.text for a in answers]
            with service.client(tokens["analyst"]) as client:
                report = client.get(f"/alerts/{alert['id']}/acknowledgements").json()
            assert [a["establishment"] for a in report["acknowledged"]] == [PITIE]
            assert report["acknowledged"][0]["comment"] == answers[0].json()["comment"]
    finally:
        for client in clients:
            client.close()


def test_concurrent_api_keys_of_one_name_answer_409(service: Service) -> None:
    admin = service.login("admin", service.admin_password)
    clients = [service.client(admin) for _ in range(THREADS)]
    try:
        for round_ in range(ROUNDS):
            body = {"name": f"siem-export-{round_}", "role": "cert"}
            answers = at_once(THREADS, lambda n, body=body: clients[n].post("/api-keys", json=body))
            statuses = sorted(a.status_code for a in answers)
            assert statuses == [201] + [409] * (THREADS - 1), [a.text for a in answers]
            refused = [a.json() for a in answers if a.status_code == 409]
            assert all(r["code"] == "conflict" for r in refused), refused
        listing = clients[0].get("/api-keys").json()
        names = [k["name"] for k in (listing if isinstance(listing, list) else listing["items"])]
        assert sorted(names) == [f"siem-export-{r}" for r in range(ROUNDS)]
    finally:
        for client in clients:
            client.close()


def test_concurrent_registrations_of_one_establishment_answer_409(service: Service) -> None:
    admin = service.login("admin", service.admin_password)
    clients = [service.client(admin) for _ in range(THREADS)]
    try:
        for finess in ("2B0004246", "330781196", "750100125"):
            body = {"finess": finess, "name": "Établissement", "kind": "CH"}
            answers = at_once(
                THREADS, lambda n, body=body: clients[n].post("/establishments", json=body)
            )
            statuses = sorted(a.status_code for a in answers)
            assert statuses == [201] + [409] * (THREADS - 1), [a.text for a in answers]
    finally:
        for client in clients:
            client.close()
