"""What callers write, bounded and storable: no NUL character in any text (PostgreSQL
refuses it: a 500), no page offset beyond what a database counts, and an incident's sample
of its first detection bounded in size."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from api.deps import MAX_OFFSET
from api.incidents.sample import MAX_SAMPLE_BYTES
from tests.api.conftest import Service
from tests.api.test_incidents import detection, form
from tests.api.test_ingest import agent_key, post
from tests.api.test_service import PITIE, setup_world

LISTS = ["/establishments", "/agents", "/incidents", "/audit", "/notifications", "/alerts"]


@pytest.mark.parametrize("offset", [2**64, 2**63, 10**30, MAX_OFFSET + 1, -1])
def test_offsets_beyond_the_bound_answer_422_on_every_list(service: Service, offset: int) -> None:
    admin = service.login("admin", service.admin_password)
    with service.client(admin) as client:
        for path in LISTS:
            answer = client.get(path, params={"offset": offset})
            assert answer.status_code == 422, (path, answer.status_code, answer.text)
            assert answer.json()["detail"][0]["loc"] == ["query", "offset"]
            last = client.get(path, params={"offset": MAX_OFFSET})
            assert last.status_code == 200, (path, last.text)


def _with_nul(value: str) -> list[str]:
    return [f"{value}\x00", f"\x00{value}", f"{value[:1]}\x00{value[1:]}"]


def test_nul_characters_are_refused_in_every_text_a_caller_writes(service: Service) -> None:
    tokens = setup_world(service)
    admin, analyst, it = tokens["admin"], tokens["analyst"], tokens["it_pitie"]
    with service.client(it) as client:
        incident = client.post("/incidents", json=form()).json()
    where = f"/incidents/{incident['id']}"
    with service.client(admin) as client:
        made = client.post(f"/establishments/{PITIE}/enrollment-tokens", json={})
        enrollment = made.json()["token"]
    key = agent_key(service, tokens)
    writes: list[tuple[str, str, str, dict[str, Any], str, str]] = [
        # (bearer, method, path, body, field, value): `field` gets a NUL in `value`.
        (admin, "POST", "/establishments", {"finess": "2B0004246", "kind": "CH"}, "name", "Corte"),
        (admin, "PATCH", f"/establishments/{PITIE}", {}, "name", "Pitié"),
        (admin, "POST", f"/establishments/{PITIE}/enrollment-tokens", {}, "label", "servers"),
        (
            "",
            "POST",
            "/agents/enroll",
            {"token": enrollment, "version": "1.0"},
            "hostname",
            "srv-01",
        ),
        (key, "POST", "/agents/heartbeat", {}, "version", "1.0.1"),
        (key, "POST", "/agents/heartbeat", {"version": "1"}, "sources", "syslog"),
        (admin, "POST", "/api-keys", {"role": "cert"}, "name", "siem-export"),
        (it, "POST", "/incidents", form(), "title", "Rançongiciel"),
        (it, "POST", "/incidents", form(), "description", "chiffré"),
        (it, "POST", "/incidents", form(), "affected_systems", "srv-labo"),
        (it, "PATCH", where, {}, "title", "Nouveau titre"),
        (it, "PATCH", where, {}, "description", "détails"),
        (it, "POST", f"{where}/comments", {}, "text", "un commentaire"),
        (it, "POST", f"{where}/status", {"status": "in_progress"}, "comment", "pris en charge"),
        (it, "POST", f"{where}/reports", {"kind": "early_warning"}, "comment", "envoyé"),
        (analyst, "PATCH", "/campaigns/any", {}, "title", "Campagne"),
    ]
    for bearer, method, path, body, field, value in writes:
        for odd in _with_nul(value):
            text: Any = [odd] if field in ("affected_systems", "sources") else odd
            with service.client(bearer or None) as client:
                answer = client.request(method, path, json={**body, field: text})
            assert answer.status_code == 422, (method, path, field, answer.text)
            assert "NUL" in answer.text or "pattern" in answer.text, answer.text
    # In paths and query strings too: ids and filters reach queries.
    for path in (
        "/incidents/abc%00def",
        f"/establishments/{PITIE}%00",
        "/alerts/%00",
        "/agents?establishment=%00",
        "/incidents?campaign=x%00",
        "/notifications?kind=%00",
    ):
        with service.client(admin) as client:
            answer = client.get(path)
        assert answer.status_code == 422, (path, answer.text)
    # Nothing half-written: every list still answers.
    with service.client(admin) as client:
        for path in LISTS:
            assert client.get(path).status_code == 200, path


def test_an_incident_keeps_a_bounded_sample(service: Service) -> None:
    tokens = setup_world(service)
    key = agent_key(service, tokens)
    event: dict[str, Any] = {
        "@timestamp": "2026-11-20T10:00:00Z",
        "host": {"name": "srv-big"},
        "message": "m" * 100_000,
        **{f"field_{n}": "v" * 1000 for n in range(100)},
    }
    deep: Any = "leaf"
    for _ in range(100):
        deep = {"d": deep, "wide": list(range(200))}
    event["deep"] = deep
    big = detection("r-big-sample", "srv-big", event=event, tags=["t" * 150] * 90)
    big["events"] = [event] * 10
    assert len(orjson.dumps(big)) < 256 * 1024 * 20
    answer = post(service, key, {"batch_id": "big-sample-1", "detections": [big]})
    assert answer.status_code == 200, answer.text
    if answer.json()["detections_accepted"] == 0:  # bigger than a detection may be: smaller
        big["events"] = []
        event.pop("deep")
        answer = post(service, key, {"batch_id": "big-sample-2", "detections": [big]})
        assert answer.json()["detections_accepted"] == 1, answer.text
    with service.client(tokens["it_pitie"]) as client:
        (row,) = client.get("/incidents").json()["items"]
        sample = client.get(f"/incidents/{row['id']}").json()["sample"]
    assert len(orjson.dumps(sample)) <= MAX_SAMPLE_BYTES
    assert sample["rule_id"] == "r-big-sample"
    assert sample["level"] == "high"
