"""Stored events and detections read back by their stable ids, what maturity evidence links to
(`/establishments/{finess}/events?ids=...`): over real HTTP after a real agent's ingestion,
and on the SQLite store itself."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from api.errors import Invalid
from api.events.routes import MAX_ID_LENGTH, MAX_IDS, parse_ids
from api.events.sqlite_store import SQLiteEventStore
from tests.api.conftest import Service
from tests.api.test_agents import enrolled, new_token
from tests.api.test_event_store import _detection, _event
from tests.api.test_ingest import SHADOW_RULE, case_event, post
from tests.api.test_service import BORDEAUX, CORTE, PITIE, setup_world

A, B = PITIE, BORDEAUX


def _agent(service: Service, admin: str, finess: str) -> tuple[str, str]:
    """An enrolled agent of `finess`: its key, and the prefix of the ids its items get."""
    agent = enrolled(service, new_token(service, admin, finess)["token"])
    return str(agent["agent_key"]), f"agent:{agent['id']}/"


def _get(service: Service, token: str | None, path: str) -> Any:
    with service.client(token) as client:
        return client.get(path)


def _read(service: Service, token: str | None, finess: str, kind: str, ids: list[str]) -> Any:
    """`GET /establishments/{finess}/{kind}?ids=...`, as maturity evidence links it."""
    return _get(service, token, f"/establishments/{finess}/{kind}?ids={','.join(ids)}")


def test_events_are_read_back_by_id_by_their_establishment_and_the_cert(
    service: Service,
) -> None:
    tokens = setup_world(service)
    pitie_key, pitie = _agent(service, tokens["admin"], PITIE)
    bordeaux_key, bordeaux = _agent(service, tokens["admin"], BORDEAUX)
    positive = case_event(f"{SHADOW_RULE}.positive")
    negative = case_event(f"{SHADOW_RULE}.negative")
    detection = {**_detection(0, "r-agent"), "rule_title": "agent-side hit"}
    for key, batch_id in ((pitie_key, "read-pitie"), (bordeaux_key, "read-bordeaux")):
        batch = {
            "batch_id": batch_id,
            "events": [positive, negative],
            "event_ids": ["e-1", "e-2"],  # the same item ids: the agent makes them apart
            "detections": [detection],
            "detection_ids": ["d-1"],
        }
        answer = post(service, key, batch)
        assert answer.status_code == 200, answer.text
        assert answer.json()["events_accepted"] == 2

    # The establishment: its own, in the order asked; the rest (Bordeaux's, unknown) missing.
    asked = [f"{pitie}e-2", f"{bordeaux}e-1", f"{pitie}e-1", f"{pitie}e-9", f"{pitie}e-2"]
    answer = _read(service, tokens["it_pitie"], PITIE, "events", asked)
    assert answer.status_code == 200, answer.text
    read = answer.json()
    assert read["finess"] == PITIE
    assert [e["id"] for e in read["events"]] == [f"{pitie}e-2", f"{pitie}e-1"]
    assert read["missing"] == [f"{bordeaux}e-1", f"{pitie}e-9"]
    first = read["events"][1]["document"]
    assert first["organization"]["id"] == PITIE
    assert first["agent"]["id"] == pitie.rstrip("/")
    assert first["winlog"]["event_data"] == positive["winlog"]["event_data"]
    assert answer.text.count(bordeaux.rstrip("/")) == 1  # in `missing`, as asked: no more

    # Detections apart: an event's id is not a detection's.
    asked = [f"{pitie}d-1", f"{pitie}e-1"]
    detections = _read(service, tokens["it_pitie"], PITIE, "detections", asked).json()
    assert [d["id"] for d in detections["detections"]] == [f"{pitie}d-1"]
    assert detections["detections"][0]["document"]["rule_title"] == "agent-side hit"
    assert detections["detections"][0]["document"]["establishment"] == PITIE
    assert detections["missing"] == [f"{pitie}e-1"]

    # Another establishment's door: absent, as if it did not exist.
    for kind, item in (("events", "e-1"), ("detections", "d-1")):
        theirs = _read(service, tokens["it_pitie"], BORDEAUX, kind, [bordeaux + item])
        assert theirs.status_code == 404, theirs.text
        assert theirs.json()["code"] == "not_found"
        assert bordeaux.rstrip("/") not in theirs.text

    # The CERT and auditors read any establishment's; agents read nothing back.
    for reader in ("analyst", "inspector", "admin"):
        cert = _read(service, tokens[reader], BORDEAUX, "events", [f"{bordeaux}e-1"])
        assert cert.status_code == 200, cert.text
        (event,) = cert.json()["events"]
        assert event["document"]["organization"]["id"] == BORDEAUX
    assert _read(service, None, PITIE, "events", [f"{pitie}e-1"]).status_code == 401
    as_agent = _read(service, pitie_key, PITIE, "events", [f"{pitie}e-1"])
    assert as_agent.status_code == 403
    absent = _read(service, tokens["analyst"], CORTE, "events", [f"{pitie}e-1"])
    assert absent.status_code == 404

    # The audit log: each read with the ids answered; the refused one as denied.
    entries = _get(service, tokens["admin"], "/audit?limit=100").json()
    reads = [
        (e["actor"], e["target_kind"], e["target_id"], e["detail"])
        for e in entries
        if e["action"] == "read" and e["target_kind"] in ("event", "detection")
    ]
    assert ("it_pitie", "event", PITIE, f"{pitie}e-2,{pitie}e-1") in reads
    assert ("it_pitie", "detection", PITIE, f"{pitie}d-1") in reads
    assert ("analyst", "event", BORDEAUX, f"{bordeaux}e-1") in reads
    assert not [r for r in reads if r[0] == "it_pitie" and r[2] == BORDEAUX]
    denied = [e for e in entries if e["action"] == "denied" and e["actor"] == "it_pitie"]
    assert [(e["target_kind"], e["target_id"]) for e in denied] == [
        ("establishment", BORDEAUX),
        ("establishment", BORDEAUX),
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_more_than_a_hundred_ids_or_no_ids_or_bad_ones_are_refused(service: Service) -> None:
    tokens = setup_world(service)
    ids = [f"agent:x/e-{n}" for n in range(MAX_IDS + 1)]
    path = f"/establishments/{PITIE}/events"
    for kind in ("events", "detections"):
        too_many = _read(service, tokens["analyst"], PITIE, kind, ids)
        assert too_many.status_code == 422, too_many.text
        assert "at most 100" in too_many.json()["detail"]
    hundred = _read(service, tokens["analyst"], PITIE, "events", ids[:MAX_IDS])
    assert hundred.status_code == 200, hundred.text
    assert hundred.json()["missing"] == ids[:MAX_IDS]
    # Refused before the establishment is looked up: the same for someone else's.
    assert _read(service, tokens["it_pitie"], BORDEAUX, "events", ids).status_code == 422
    for query in ("", "?ids=", "?ids=,,", "?ids=a%20b", "?ids=%C3%A9t%C3%A9", "?ids=x;y"):
        answer = _get(service, tokens["analyst"], path + query)
        assert answer.status_code == 422, (query, answer.text)


def test_ids_are_parsed_as_ingestion_makes_them() -> None:
    longest = f"agent:{'0' * 36}/{'x' * 80}/s{'f' * 16}.49999"  # a server detection's
    assert len(longest) <= MAX_ID_LENGTH
    assert parse_ids(f" {longest} ,a:b/c_1.2-3,,{longest}") == [longest, "a:b/c_1.2-3"]
    with pytest.raises(Invalid, match="is not an id"):
        parse_ids("x" * (MAX_ID_LENGTH + 1))
    with pytest.raises(Invalid, match="101 given"):
        parse_ids(",".join(["same"] * 101))  # counted as given, not once


# --- the SQLite store itself ------------------------------------------------------------------


def test_sqlite_reads_by_id_through_the_unique_index(tmp_path: Path) -> None:
    store = SQLiteEventStore.in_data_dir(tmp_path)
    try:
        # More ids than one statement binds: the read goes in chunks and keeps their order.
        ids = [f"agent:1/e-{n}" for n in range(1200)]
        store.add_events(A, "agent-1", [_event(n / 60) for n in range(1200)], ids=ids)
        store.add_events(B, "agent-2", [_event(0)], ids=["agent:2/e-0"])
        asked = [*reversed(ids[::3]), "agent:2/e-0", "nothing"]
        found = store.events_by_ids(A, asked)
        assert [f["id"] for f in found] == list(reversed(ids[::3]))
        assert found[-1]["document"]["@timestamp"] == "2026-11-20T10:00:00Z"
        assert store.events_by_ids(B, ids) == []
        store.add_detections(A, [_detection(0)], ids=["agent:1/d-0"])
        assert [d["id"] for d in store.detections_by_ids(A, ["agent:1/d-0", ids[0]])] == [
            "agent:1/d-0"
        ]
    finally:
        store.close()
    # The lookup is by the unique index on `_uid`, not a scan of the establishment's rows.
    with sqlite3.connect(tmp_path / "events.db") as conn:
        for table, index in (("events", "ux_events_uid"), ("detections", "ux_detections_uid")):
            plan = conn.execute(
                f"EXPLAIN QUERY PLAN SELECT _uid, _doc FROM {table} "  # noqa: S608 - constants
                "WHERE _uid IN (?, ?) AND _establishment = ?",
                ["a", "b", A],
            ).fetchall()
            assert any(index in row[-1] for row in plan), plan
    conn.close()
