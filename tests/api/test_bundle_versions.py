"""Each establishment's bundle has its own version (issue 13, a Low finding): it goes up when
that establishment's bundle changes, and only then, so that an establishment no longer learns
from it when alerts it cannot see are published; and it never goes down."""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy

from api.db import make_engine, upgrade
from detection.bundle import verify_bundle
from tests.api.conftest import Service
from tests.api.test_alerts import agent_of, fresh_rule, publish, world
from tests.api.test_service import CORTE, PITIE


class Agent:
    def __init__(self, service: Service, key: str) -> None:
        self.service = service
        self.key = key
        with service.client() as client:
            self.pinned = client.get("/alerts/bundle/public-key").json()["public_key"]

    def fetch(self, **params: Any) -> tuple[int, dict[str, Any] | None]:
        with self.service.client(self.key) as client:
            answer = client.get("/alerts/bundle", params=params)
        if answer.status_code == 304:
            return 304, None
        assert answer.status_code == 200, answer.text
        bundle = verify_bundle(answer.json(), self.pinned)
        assert answer.headers["ETag"] == f'"{bundle["version"]}"'
        return 200, bundle

    def version(self) -> int:
        status, bundle = self.fetch()
        assert bundle is not None
        return int(bundle["version"])


def test_each_establishment_has_its_own_bundle_version(service: Service) -> None:
    tokens = world(service)
    pitie = Agent(service, agent_of(service, tokens, PITIE))
    corte = Agent(service, agent_of(service, tokens, CORTE))
    assert (pitie.version(), corte.version()) == (1, 1)

    # Alerts Pitié does not see (not for it; TLP:RED, never in bundles) leave its version.
    ehpad = publish(
        service, tokens["analyst"], title="EHPAD", target={"kinds": ["EHPAD"]}, sigma_rules=[]
    )
    publish(service, tokens["analyst"], title="Red", tlp="red", sigma_rules=[fresh_rule()])
    assert pitie.fetch(version=1) == (304, None)
    assert pitie.version() == 1
    assert corte.version() == 2
    assert corte.fetch(version=2) == (304, None)

    everyone = publish(service, tokens["analyst"], title="Everyone", sigma_rules=[fresh_rule()])
    assert (pitie.version(), corte.version()) == (2, 3)
    with service.client(tokens["analyst"]) as client:
        edited = client.patch(f"/alerts/{ehpad['id']}", json={"severity": "critical"})
        assert edited.status_code == 200, edited.text
    assert (pitie.version(), corte.version()) == (2, 4)
    with service.client(tokens["analyst"]) as client:
        assert client.post(f"/alerts/{everyone['id']}/withdraw").status_code == 200
    # Pitié's content is what it was at version 1 again: the version still only grows.
    status, bundle = pitie.fetch(version=2)
    assert status == 200
    assert bundle is not None
    assert (bundle["version"], bundle["alerts"], bundle["establishment"]) == (3, [], PITIE)
    assert corte.version() == 5

    # Another agent of the same establishment sees the same version; ETags match it.
    other = Agent(service, agent_of(service, tokens, PITIE))
    assert other.version() == 3
    with service.client(other.key) as client:
        assert client.get("/alerts/bundle", headers={"If-None-Match": '"3"'}).status_code == 304
        assert client.get("/alerts/bundle", headers={"If-None-Match": '"2"'}).status_code == 200

    # An establishment reading alerts does not see the national counter either.
    with service.client(tokens["it_pitie"]) as client:
        mine = client.get("/alerts").json()["items"]
        one = client.get(f"/alerts/{everyone['id']}").json()
    assert mine
    assert {a["bundle_version"] for a in mine} == {None}
    assert one["bundle_version"] is None
    with service.client(tokens["analyst"]) as client:
        national = client.get(f"/alerts/{everyone['id']}").json()
    assert national["bundle_version"] == 5  # the national counter, for the CERT


def test_a_change_seen_by_many_requests_at_once_is_one_version(service: Service) -> None:
    tokens = world(service)
    agents = [Agent(service, agent_of(service, tokens, PITIE)) for _ in range(3)]
    assert agents[0].version() == 1
    publish(service, tokens["analyst"], title="Everyone", sigma_rules=[fresh_rule()])
    seen: list[int] = []

    def fetch(agent: Agent) -> None:
        seen.append(agent.version())

    threads = [threading.Thread(target=fetch, args=(agents[n % 3],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [2] * 8
    assert agents[1].fetch(version=2) == (304, None)


def test_existing_establishments_start_at_the_national_version(database_url: str) -> None:
    """After the upgrade, no agent holds a version above its establishment's: each starts at
    the national counter it may have seen, and its next bundle is one more."""
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0009")
        with engine.begin() as connection:
            connection.execute(
                sqlalchemy.text(
                    "INSERT INTO establishments (finess, name, kind, region, created_at) "
                    "VALUES ('750100125', 'Pitié-Salpêtrière', 'CHU', 'Île-de-France', "
                    "CURRENT_TIMESTAMP)"
                )
            )
            connection.execute(sqlalchemy.text("UPDATE alert_bundle_state SET version = 7"))
        upgrade(engine)
        with engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.text("SELECT finess, version, digest FROM alert_bundle_versions")
            ).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [("750100125", 7, "")]
