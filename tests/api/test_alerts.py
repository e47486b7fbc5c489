"""Alerts over real HTTP: publication with validation, targets, acknowledgements, the signed
bundle agents fetch, the STIX export, indicators and rules on arriving events, retro-hunts."""

from __future__ import annotations

import base64
import os
import re
import stat
from typing import Any

import pytest
import sqlalchemy

from detection.bundle import BundleSignatureError, verify_bundle
from tests.api.conftest import Service
from tests.api.test_agents import enrolled, new_token
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
    second = publish(service, tokens["admin"], title="Second alert", tlp="clear")
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
        service, tokens["analyst"], title="Île-de-France", target={"regions": ["Île-de-France"]}
    )
    ehpad = publish(service, tokens["analyst"], title="EHPAD", target={"kinds": ["EHPAD"]})
    chu_na = publish(
        service,
        tokens["analyst"],
        title="CHU of Nouvelle-Aquitaine",
        target={"regions": ["Nouvelle-Aquitaine"], "kinds": ["CHU"]},
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
    publish(service, tokens["analyst"], title="EHPAD only", target={"kinds": ["EHPAD"]})
    publish(service, tokens["analyst"], title="Red", tlp="red")  # never in a bundle
    pitie = agent_of(service, tokens, PITIE)
    with service.client(pitie) as client:
        answer = client.get("/alerts/bundle")
        assert answer.status_code == 200, answer.text
        envelope = answer.json()
        bundle = verify_bundle(envelope, pinned)
        assert answer.headers["ETag"] == '"3"'
        unchanged = client.get("/alerts/bundle", params={"version": 3})
        assert unchanged.status_code == 304
        assert client.get("/alerts/bundle", headers={"If-None-Match": '"3"'}).status_code == 304
        assert client.get("/alerts/bundle", params={"version": 2}).status_code == 200
        assert client.get(f"/alerts/{everyone['id']}").status_code == 403  # bundle only
    assert bundle["version"] == 3
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
        after = client.get("/alerts/bundle", params={"version": 3})
    assert after.status_code == 200  # the withdrawal is a new version
    assert verify_bundle(after.json(), pinned)["alerts"] == []


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
