"""Dropped events reach someone: when an agent's heartbeat says its disk budget dropped
events (`dropped` grew), the `agent_dropped` job raises a notification for the establishment
and the CERT, once per growth, never per heartbeat."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Service
from tests.api.test_agents import enrolled, new_token
from tests.api.test_jobs import notifications, run_job
from tests.api.test_service import BORDEAUX, PASSWORD, PITIE, setup_world


def beat(service: Service, key: str, **counters: int) -> None:
    with service.client(key) as client:
        answer = client.post("/agents/heartbeat", json={"version": "1.0", "counters": counters})
    assert answer.status_code == 200, answer.text


def dropped_notes(service: Service, bearer: str, **params: str) -> list[dict[str, Any]]:
    return list(notifications(service, bearer, kind="agent_dropped", **params)["items"])


def test_dropped_events_are_notified_once_per_growth(service: Service) -> None:
    tokens = setup_world(service)
    admin = tokens["admin"]
    with service.client(admin) as client:
        user = {"username": "it_bordeaux", "password": PASSWORD, "role": "establishment"}
        assert client.post("/users", json={**user, "establishment": BORDEAUX}).status_code == 201
    tokens["it_bordeaux"] = service.login("it_bordeaux", PASSWORD)
    agent = enrolled(service, new_token(service, admin, PITIE)["token"], "pitie-collect")
    calm = enrolled(service, new_token(service, admin, PITIE)["token"], "pitie-calm")
    key = agent["agent_key"]

    beat(service, key, received=100, shipped=100, dropped=0)
    beat(service, calm["agent_key"], received=10, shipped=10)  # no `dropped` at all
    assert run_job(service, admin, "agent_dropped")["counts"]["raised"] == 0

    beat(service, key, received=500, shipped=100, dropped=37)
    first = run_job(service, admin, "agent_dropped")
    assert first["counts"] == {"agents": 2, "raised": 1}
    for reader in ("it_pitie", "analyst", "inspector", "admin"):
        (note,) = dropped_notes(service, tokens[reader])
        assert note["subject"] == agent["id"]
        assert note["establishment"] == PITIE
        assert "pitie-collect" in note["message"]
        assert "dropped 37 event(s)" in note["message"]
        assert note["resolved_at"] is None
    assert dropped_notes(service, tokens["it_bordeaux"]) == []

    # The same count again, heartbeat after heartbeat: nothing new.
    for _ in range(3):
        beat(service, key, received=500, shipped=120, dropped=37)
        assert run_job(service, admin, "agent_dropped")["counts"]["raised"] == 0
    assert len(dropped_notes(service, tokens["analyst"])) == 1

    # It grows: one new notification, saying how many more; the earlier one is resolved.
    beat(service, key, received=900, shipped=200, dropped=52)
    assert run_job(service, admin, "agent_dropped")["counts"]["raised"] == 1
    (latest,) = dropped_notes(service, tokens["it_pitie"], open="true")
    assert "dropped 15 event(s)" in latest["message"]
    assert "52 in all" in latest["message"]
    assert len(dropped_notes(service, tokens["it_pitie"])) == 2

    # A new spool: its count started again from 0, and what it dropped is news.
    beat(service, key, received=10, shipped=10, dropped=4)
    assert run_job(service, admin, "agent_dropped")["counts"]["raised"] == 1
    assert (
        "dropped 4 event(s)"
        in dropped_notes(service, tokens["it_pitie"], open="true")[0]["message"]
    )
    beat(service, key, received=20, shipped=10, dropped=9)
    assert run_job(service, admin, "agent_dropped")["counts"]["raised"] == 1
    assert (
        "dropped 5 event(s)"
        in dropped_notes(service, tokens["it_pitie"], open="true")[0]["message"]
    )
