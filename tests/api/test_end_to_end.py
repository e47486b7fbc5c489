"""End to end over real HTTP, as the people and the agent would do it: enroll an agent with
`vigie agent enroll`, ingest batches (one of them retried), see the server's detection and the
incident it opened, publish an alert, fetch and verify its signed bundle, and see the alert's
retro-hunt find the indicator in the events stored before it was published."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from detection.bundle import BundleSignatureError, verify_bundle
from tests.api.conftest import Service
from tests.api.test_agents import enrolled, new_token
from tests.api.test_ingest import SHADOW_RULE, case_event, post
from tests.api.test_service import BORDEAUX, PITIE, setup_world

VIGIE = Path(sys.executable).parent / "vigie"
C2 = "198.51.100.77"  # the indicator: a command-and-control address (TEST-NET-2)


def _connection(ip: str, when: datetime) -> dict[str, Any]:
    return {
        "@timestamp": when.isoformat().replace("+00:00", "Z"),
        "event": {"category": ["network"], "kind": "event"},
        "source": {"ip": "10.20.0.15", "port": 50432},
        "destination": {"ip": ip, "port": 443},
        "host": {"name": "pc-admissions-03"},
    }


def _wait_for_hunt(service: Service, token: str, alert_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    with service.client(token) as client:
        while True:
            outcome: dict[str, Any] = client.get(f"/alerts/{alert_id}/retro-hunt").json()
            if outcome.get("status") in ("done", "failed"):
                return outcome
            assert time.monotonic() < deadline, outcome
            time.sleep(0.2)


def test_agent_to_incident_to_alert_to_signed_bundle_and_retro_hunt(
    service: Service, tmp_path: Path
) -> None:
    tokens = setup_world(service)

    # 1. The establishment's IT makes an enrollment token; the agent enrolls with the CLI.
    token = new_token(service, tokens["it_pitie"], PITIE)["token"]
    config = tmp_path / "agent.json"
    enrolling = subprocess.run(
        [VIGIE, "agent", "enroll", "--server", service.url, "--token", token]
        + ["--hostname", "srv-collect-01", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert enrolling.returncode == 0, enrolling.stderr
    key = json.loads(config.read_text())["agent_key"]

    # 2. Batches: a process creation that Vigie's rules catch, and traffic to what will
    # later be a published indicator. The first batch is sent twice (a retry).
    earlier = datetime.now(UTC) - timedelta(hours=2)
    first = {
        "batch_id": "e2e-batch-0001",
        "events": [case_event(f"{SHADOW_RULE}.positive"), _connection(C2, earlier)],
    }
    answer = post(service, key, first)
    assert answer.status_code == 200, answer.text
    assert answer.json()["events_accepted"] == 2
    assert answer.json()["server_detections"] >= 1
    retried = post(service, key, first)
    assert retried.json()["duplicate"] is True
    assert retried.json()["events_accepted"] == 2

    # 3. The detection opened an incident the establishment sees, and the CERT too.
    with service.client(tokens["it_pitie"]) as client:
        incidents = client.get("/incidents").json()["items"]
    assert len(incidents) == 1
    shadow = incidents[0]
    assert shadow["origin"] == "detection"
    assert shadow["establishment"] == PITIE
    assert shadow["detection_count"] >= 1  # not doubled by the retry
    detections_before_retry = shadow["detection_count"]
    with service.client(tokens["analyst"]) as client:
        seen = client.get(f"/incidents/{shadow['id']}").json()
    assert seen["detection_count"] == detections_before_retry

    # 4. The CERT publishes an alert with the indicator, hunting the last 7 days.
    alert = {
        "title": "Campagne de rançongiciel visant les hôpitaux",
        "description": "Serveur de commande observé chez plusieurs établissements.",
        "severity": "critical",
        "tlp": "amber",
        "cves": ["CVE-2024-3400"],
        "products": ["PAN-OS GlobalProtect"],
        "indicators": [{"type": "ip", "value": C2}],
        "target": {"all": True},
        "retro_hunt_days": 7,
    }
    with service.client(tokens["analyst"]) as client:
        published = client.post("/alerts", json=alert)
    assert published.status_code == 201, published.text
    alert_id = published.json()["id"]

    # 5. The retro-hunt finds the connection stored two hours before publication.
    outcome = _wait_for_hunt(service, tokens["analyst"], alert_id)
    assert outcome["status"] == "done", outcome
    assert outcome["incidents_opened"] == 1
    with service.client(tokens["it_pitie"]) as client:
        incidents = client.get("/incidents").json()["items"]
        found = [i for i in incidents if i["origin"] == "retro-hunt"]
        assert len(found) == 1
        assert found[0]["host"] == "pc-admissions-03"
        # The establishment sees the alert meant for it and acknowledges it.
        assert client.post(f"/alerts/{alert_id}/acknowledge", json={}).status_code == 200
    with service.client(tokens["analyst"]) as client:
        acks = client.get(f"/alerts/{alert_id}/acknowledgements").json()
    assert [a["establishment"] for a in acks["acknowledged"]] == [PITIE]

    # 6. The agent fetches the signed bundle and verifies it against the pinned key.
    with service.client() as client:
        pinned = client.get("/alerts/bundle/public-key").json()["public_key"]
    with service.client(key) as client:
        envelope = client.get("/alerts/bundle").json()
    bundle = verify_bundle(envelope, pinned)
    assert any(i["value"] == C2 for i in bundle["indicators"])
    tampered = copy.deepcopy(envelope)
    tampered["bundle"]["indicators"] = []
    with pytest.raises(BundleSignatureError):
        verify_bundle(tampered, pinned)

    # 7. New traffic to the indicator is caught on arrival and extends that incident.
    later = {"batch_id": "e2e-batch-0002", "events": [_connection(C2, datetime.now(UTC))]}
    answer = post(service, key, later)
    assert answer.json()["server_detections"] == 1
    with service.client(tokens["it_pitie"]) as client:
        items = client.get("/incidents").json()["items"]
    by_rule = {i["rule_id"]: i for i in items}
    assert len(items) == 2  # the shadow-copy incident and the indicator's
    indicator_incident = next(i for i in items if i["id"] == found[0]["id"])
    assert indicator_incident["detection_count"] == 2
    assert shadow["rule_id"] in by_rule

    # 8. The alert exports as STIX 2.1, with the indicator as a pattern.
    with service.client(tokens["it_pitie"]) as client:
        stix = client.get(f"/alerts/{alert_id}/stix").json()
    patterns = [o["pattern"] for o in stix["objects"] if o["type"] == "indicator"]
    assert any(C2 in p for p in patterns)


def test_an_alert_acts_only_where_it_is_targeted(service: Service) -> None:
    """A TLP:RED alert for one region: its indicator, seen in both establishments, opens
    incidents in the targeted one only, before publication (retro-hunt) and after (arrival);
    the CERT sees the hits outside the target counted."""
    tokens = setup_world(service)
    keys = {}
    for finess in (PITIE, BORDEAUX):
        token = new_token(service, tokens["admin"], finess)["token"]
        keys[finess] = enrolled(service, token)["agent_key"]
        before = {"batch_id": f"scope-{finess}-1", "events": [_connection(C2, _hours_ago(3))]}
        assert post(service, keys[finess], before).status_code == 200
    alert = {
        "title": "Diffusion restreinte: serveur de commande en Nouvelle-Aquitaine",
        "severity": "high",
        "tlp": "red",
        "indicators": [{"type": "ip", "value": C2}],
        "target": {"regions": ["Nouvelle-Aquitaine"]},
        "retro_hunt_days": 7,
    }
    with service.client(tokens["analyst"]) as client:
        alert_id = client.post("/alerts", json=alert).json()["id"]
    outcome = _wait_for_hunt(service, tokens["analyst"], alert_id)
    assert outcome["hits_by_establishment"] == {PITIE: 1, BORDEAUX: 1}
    assert set(outcome["incidents"]) == {BORDEAUX}
    assert outcome["outside_target"] == [PITIE]
    for finess, expected in ((PITIE, 0), (BORDEAUX, 1)):
        after = {"batch_id": f"scope-{finess}-2", "events": [_connection(C2, _hours_ago(0))]}
        assert post(service, keys[finess], after).json()["server_detections"] == expected
    with service.client(tokens["it_pitie"]) as client:
        mine = client.get("/incidents").json()["items"]
        assert all(i["rule_id"] != f"indicator:{alert_id}" for i in mine)
        assert alert["title"] not in json.dumps(mine)
        assert client.get(f"/alerts/{alert_id}").status_code == 404
    with service.client(tokens["analyst"]) as client:
        theirs = client.get("/incidents", params={"establishment": BORDEAUX}).json()["items"]
    assert [i["detection_count"] for i in theirs if i["rule_id"] == f"indicator:{alert_id}"] == [2]


def _hours_ago(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)
