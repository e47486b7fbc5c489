"""Detection on the agent against the real national service over loopback HTTP.

- A CERT analyst publishes an alert carrying a YARA rule for one region: the agent of an
  establishment there fetches the signed bundle, scans its watched folder with the rule (the
  files already there again, and the new ones), and the detections reach the service, where the
  establishment reads them as an incident. An agent of another region does not get the rule; a
  forged bundle is refused and the rules in force stay.
- A bundle's YARA rule that does not compile is skipped and counted (status file and heartbeat);
  the others are used.
- A CERT analyst publishes an alert carrying a Sigma rule: the agent fetches the signed bundle,
  detects the log lines it tails from then on with the rule, and the detection reaches the
  service as the agent's, under the alert.
- Vigie's own Sigma correlation rule (RDP brute force: 15 failed logons from one address within
  5 minutes) fires on the agent from log lines it tails, the window's events arriving in several
  turns with a bundle reload in between, and reaches the service.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.events.sqlite_store import SQLiteEventStore
from collector.config import AgentConfig
from collector.runner import STATUS_FILE, AgentRunner, build_sources
from detection.bundle import raw_public_key, sign_bundle
from tests.api.conftest import Service
from tests.api.test_agents import new_token
from tests.api.test_service import BORDEAUX, PITIE, setup_world
from tests.collector.conftest import forging_proxy
from tests.collector.test_agent_delivery import start, wait_for

VIGIE = Path(sys.executable).parent / "vigie"
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

IMPLANT_RULE = "Vigie_Alert_HX_Implant_Config"
IMPLANT_YARA = f"""
rule {IMPLANT_RULE}
{{
    meta:
        description = "Configuration file of the campaign's implant (test alert)"
        severity = "high"
    strings:
        $campaign = "hx-campagne-2026" ascii
        $beacon = "beacon_interval" ascii
    condition:
        all of them
}}
"""
# Nothing that Vigie's own rules know: only the alert's rule finds it.
IMPLANT = b"[hx]\ncampaign = hx-campagne-2026\nbeacon_interval = 300\nnode = portail-maj\n"
WEBSHELL_SIGMA_ID = "0b8e6f61-5a7c-4c2e-9d1f-3e2a7b6c5d40"
WEBSHELL_SIGMA = f"""title: Web shell of the HX campaign uploaded
id: {WEBSHELL_SIGMA_ID}
status: experimental
logsource: {{category: application}}
level: high
detection:
  selection: {{message|contains: 'hx-shell-2026.aspx'}}
  condition: selection
"""
RDP_BRUTEFORCE = "d2fd30b4-90b1-46e6-9237-99fc2cf66f69"  # rules/sigma/credential_access/


def _enroll(service: Service, admin: str, finess: str, folder: Path) -> Path:
    """`vigie agent enroll` of an agent of `finess`; its credential file."""
    folder.mkdir(parents=True, exist_ok=True)
    token = new_token(service, admin, finess)["token"]
    credential = folder / "agent.json"
    done = subprocess.run(
        [VIGIE, "agent", "enroll", "--server", service.url, "--token", token]
        + ["--hostname", f"srv-collect-{finess}", "--config", str(credential)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return credential


def _config(folder: Path, credential: Path, log: Path, share: Path | None = None) -> AgentConfig:
    lines = [
        f'state_dir = "{folder / "state"}"',
        f'credentials = "{credential}"',
        "[delivery]",
        "heartbeat_seconds = 1",
        "poll_seconds = 0.05",
        "max_backoff_seconds = 1",
        "bundle_seconds = 0.2",
        "[[sources]]",
        'kind = "tail"',
        f'paths = ["{log}"]',
    ]
    if share is not None:
        lines += ["[files]", f'folders = ["{share}"]', "cpu_share = 1.0"]
    path = folder / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    return AgentConfig.load(path)


def _runner(config: AgentConfig, credential: dict[str, Any]) -> AgentRunner:
    return AgentRunner(config, build_sources(config), credential)


def _close(runner: AgentRunner) -> None:
    """What `run` closes when it ends, for a runner whose turns the test drives."""
    for source in runner.sources:
        source.close()
    runner.spool.close()
    runner.client.close()


def _publish(service: Service, token: str, **alert: Any) -> dict[str, Any]:
    body = {"severity": "high", "tlp": "amber", "retro_hunt_days": 0, **alert}
    with service.client(token) as client:
        answer = client.post("/alerts", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _bundle_version(service: Service, credential: dict[str, Any]) -> int:
    """The version of the bundle of the agent's establishment (each has its own)."""
    with service.client(credential["agent_key"]) as client:
        answer = client.get("/alerts/bundle")
    assert answer.status_code == 200, answer.text
    return int(answer.json()["bundle"]["version"])


def _incidents(service: Service, token: str, rule_id: str) -> list[dict[str, Any]]:
    with service.client(token) as client:
        answer = client.get("/incidents", params={"limit": 500})
    assert answer.status_code == 200, answer.text
    return [i for i in answer.json()["items"] if i["rule_id"] == rule_id]


def _incident_detail(service: Service, token: str, incident_id: str) -> dict[str, Any]:
    with service.client(token) as client:
        answer = client.get(f"/incidents/{incident_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _stored_detections(service: Service, finess: str, rule_id: str) -> list[dict[str, Any]]:
    """The detections the service stored for `finess` (all of what the agent sent)."""
    store = SQLiteEventStore.in_data_dir(service.settings.data_dir)
    try:
        found = store.search_detections(establishment=finess, limit=100_000)
    finally:
        store.close()
    return [d for d in found if d["rule_id"] == rule_id]


def _scan_until_idle(runner: AgentRunner) -> None:
    """Turns of the agent until its folder scanner has nothing queued."""
    assert runner.files is not None
    for _ in range(500):
        runner.collect()
        stats = runner.files.stats()
        if stats["known"] and not stats["queued"]:
            return
    pytest.fail("the folder scan did not finish")


def _spooled_detections(runner: AgentRunner) -> list[dict[str, Any]]:
    batch = runner.spool.next_batch(100_000)
    return batch.detections if batch is not None else []


def test_a_published_yara_rule_is_scanned_with_on_the_agents_it_targets(
    service: Service, tmp_path: Path
) -> None:
    tokens = setup_world(service)
    pitie, bordeaux = tmp_path / "pitie", tmp_path / "bordeaux"
    pitie_credential = _enroll(service, tokens["admin"], PITIE, pitie)
    bordeaux_credential = _enroll(service, tokens["admin"], BORDEAUX, bordeaux)
    shares = {name: tmp_path / name / "wwwroot" for name in ("pitie", "bordeaux")}
    for share in shares.values():
        share.mkdir()
        (share / "svc.cfg").write_bytes(IMPLANT)  # there before the alert
        (share / "index.html").write_text("<html>Accueil</html>")
    logs = {name: tmp_path / name / "app.log" for name in ("pitie", "bordeaux")}
    for log in logs.values():
        log.touch()

    # The Pitié's agent scans its web root with Vigie's own rules, blind to the implant. (Turns
    # all run in its loop's thread, as in `vigie agent run`: a yara-x scanner stays in the
    # thread that made it.)
    credential = json.loads(pitie_credential.read_text())
    runner = _runner(_config(pitie, pitie_credential, logs["pitie"], shares["pitie"]), credential)
    assert runner.files is not None
    runner.files.rewalk_seconds = 0.5  # creations seen within a second, not a minute
    stop, thread = start(runner)
    try:
        wait_for(lambda: runner.files is not None and runner.files.stats()["scanned"] == 2)
        assert runner.detector.yara is not None
        own_rules = runner.detector.yara.rule_count

        # The CERT publishes an alert with a YARA rule, for Île-de-France only.
        _publish(
            service,
            tokens["analyst"],
            title="Implant HX sur des serveurs web",
            yara_rules=[IMPLANT_YARA],
            target={"regions": ["Île-de-France"]},
        )
        wait_for(lambda: runner.detector.bundle_version == _bundle_version(service, credential))
        assert runner.detector.skipped == {"sigma": 0, "yara": 0}
        assert runner.detector.yara.rule_count == own_rules + 1
        # A file written from now on is scanned with the new rule too.
        (shares["pitie"] / "upload").mkdir()
        (shares["pitie"] / "upload" / "maj.cfg").write_bytes(IMPLANT)

        def seen() -> bool:
            found = _incidents(service, tokens["it_pitie"], IMPLANT_RULE)
            return bool(found) and found[0]["detection_count"] >= 2

        wait_for(seen)
    finally:
        stop.set()
        thread.join(timeout=30)
    (incident,) = _incidents(service, tokens["it_pitie"], IMPLANT_RULE)
    assert incident["establishment"] == PITIE
    assert incident["severity"] == "high"
    assert incident["detection_count"] == 2  # the file already there, and the new one
    sample = _incident_detail(service, tokens["it_pitie"], incident["id"])["sample"]
    assert sample["engine"] == "yara"
    assert sample["source"].startswith(str(shares["pitie"]))
    stored = _stored_detections(service, PITIE, IMPLANT_RULE)
    assert sorted(Path(d["file"]).suffix for d in stored) == [".cfg", ".cfg"]
    assert {d["origin"] for d in stored} == {"agent"}
    assert runner.files is not None
    assert runner.files.stats()["passes"] == 1  # the new rule started a full pass
    assert runner.files.stats()["scanned"] == 5  # 2 with the own rules, 3 with the new ones

    # Restarted, the agent runs the kept bundle's rules and starts no pass: nothing new.
    runner = _runner(_config(pitie, pitie_credential, logs["pitie"], shares["pitie"]), credential)
    assert runner.detector.yara is not None
    assert runner.detector.yara.rule_count == own_rules + 1
    _scan_until_idle(runner)
    assert runner.files is not None
    assert runner.files.stats()["passes"] == 0
    assert runner.files.stats()["scanned"] == 0

    # A man in the middle adds a rule to the bundle: refused, the rules in force stay.
    forger = forging_proxy(
        service.url,
        f"Bearer {credential['agent_key']}",
        lambda b: b["yara"].append(
            {"alert_id": "forged", "rule": "rule Forged { condition: true }"}
        ),
    )
    in_force = runner.detector.yara
    try:
        runner.client.close()
        runner.client = httpx.Client(
            base_url=f"http://127.0.0.1:{forger.server_address[1]}",
            headers={"Authorization": f"Bearer {credential['agent_key']}"},
        )
        runner.update_bundle()
    finally:
        forger.shutdown()
        forger.server_close()
    assert runner.bundles is not None
    assert runner.bundles.refused == 1
    assert runner.detector.yara is in_force
    assert runner.files.rules is in_force
    runner.write_status()
    status = json.loads((pitie / "state" / STATUS_FILE).read_text())
    assert status["bundles_refused"] == 1
    assert status["bundle_version"] == _bundle_version(service, credential)
    _close(runner)

    # Bordeaux (Nouvelle-Aquitaine) is not targeted: its bundle has no YARA rule, its agent
    # finds nothing in the same file, and the alert's rule never reaches it.
    other = json.loads(bordeaux_credential.read_text())
    config = _config(bordeaux, bordeaux_credential, logs["bordeaux"], shares["bordeaux"])
    runner = _runner(config, other)
    try:
        runner.update_bundle()
        assert runner.detector.bundle_version == _bundle_version(service, other)
        assert runner.detector.yara is not None
        assert runner.detector.yara.rule_count == own_rules
        bundle = json.loads((bordeaux / "state" / "bundle.json").read_text())["bundle"]
        assert bundle["yara"] == []
        assert bundle["alerts"] == []
        _scan_until_idle(runner)
        assert runner.files is not None
        assert runner.files.stats()["scanned"] == 2
        assert not [d for d in _spooled_detections(runner) if d["engine"] == "yara"]
    finally:
        _close(runner)


def test_a_bad_yara_rule_in_a_bundle_is_skipped_and_counted(
    service: Service, tmp_path: Path
) -> None:
    tokens = setup_world(service)
    credential_path = _enroll(service, tokens["admin"], PITIE, tmp_path)
    share = tmp_path / "partage"
    share.mkdir()
    (share / "svc.cfg").write_bytes(IMPLANT)
    log = tmp_path / "app.log"
    log.touch()
    # A bundle as the service signs it, with the key this agent pins: one rule of the two
    # does not compile (a service and an agent whose YARA versions differ, say).
    key = Ed25519PrivateKey.generate()
    bundle = {
        "format": "vigie-bundle/1",
        "version": 7,
        "establishment": PITIE,
        "alerts": [{"id": "a-good", "title": "Web shell", "severity": "high", "tlp": "amber"}],
        "sigma": [],
        "yara": [
            {"alert_id": "a-broken", "rule": "rule Broken { strings: $a = condition: $a }"},
            {"alert_id": "a-good", "rule": IMPLANT_YARA},
        ],
        "indicators": [],
    }
    state = tmp_path / "state"
    state.mkdir()
    (state / "bundle.json").write_text(json.dumps(sign_bundle(bundle, key)))
    credential = json.loads(credential_path.read_text())
    credential["bundle_key"] = base64.b64encode(raw_public_key(key.public_key())).decode()

    runner = _runner(_config(tmp_path, credential_path, log, share), credential)
    try:
        assert runner.detector.bundle_version == 7
        assert runner.detector.skipped == {"sigma": 0, "yara": 1}
        (error,) = runner.detector.errors
        assert "a-broken" in error  # the rule's file names its alert
        _scan_until_idle(runner)
        found = [d["rule_id"] for d in _spooled_detections(runner) if d["engine"] == "yara"]
        assert found == [IMPLANT_RULE]  # the good rule of the same bundle is used
        runner.write_status()
        status = json.loads((state / STATUS_FILE).read_text())
        assert status["rules_skipped"] == {"sigma": 0, "yara": 1}
        assert "a-broken" in status["rule_errors"][0]
        runner.heartbeat()
        with service.client(tokens["it_pitie"]) as client:
            agent = client.get(f"/agents/{credential['agent_id']}").json()
        assert agent["counters"]["yara_rules_skipped"] == 1
        assert agent["counters"]["sigma_rules_skipped"] == 0
        assert agent["counters"]["files_scanned"] == 1
    finally:
        _close(runner)


def _pitie_agent(
    service: Service, tmp_path: Path, log_name: str
) -> tuple[dict[str, str], Path, AgentRunner]:
    """The world's tokens, and an agent of PITIE enrolled on `service` following a new, empty
    log file `log_name`."""
    tokens = setup_world(service)
    credential_path = _enroll(service, tokens["admin"], PITIE, tmp_path)
    credential = json.loads(credential_path.read_text())
    log = tmp_path / log_name
    log.touch()
    return tokens, log, _runner(_config(tmp_path, credential_path, log), credential)


def test_a_published_sigma_rule_runs_on_the_agent_and_its_detection_reaches_the_service(
    service: Service, tmp_path: Path
) -> None:
    tokens, log, runner = _pitie_agent(service, tmp_path, "iis.log")

    def line(n: int) -> str:
        return f"<134>Nov 20 10:00:{n:02d} srv-web-01 w3svc[7]: POST /upload/hx-shell-2026.aspx\n"

    stop, thread = start(runner)
    try:
        wait_for(lambda: runner.detector.bundle_version is not None)
        with log.open("a") as handle:
            handle.write(line(1))  # before the alert: no rule finds it
        wait_for(lambda: runner.spool.stats().get("shipped", 0) >= 1)
        alert = _publish(
            service,
            tokens["analyst"],
            title="Web shell HX sur les serveurs IIS",
            sigma_rules=[WEBSHELL_SIGMA],
            target={"all": True},
        )
        wait_for(
            lambda: runner.detector.bundle_version == _bundle_version(service, runner.credential)
        )
        assert runner.detector.skipped == {"sigma": 0, "yara": 0}
        with log.open("a") as handle:
            handle.write(line(2))
        wait_for(lambda: bool(_stored_detections(service, PITIE, WEBSHELL_SIGMA_ID)))
    finally:
        stop.set()
        thread.join(timeout=30)
    _close(runner)
    stored = _stored_detections(service, PITIE, WEBSHELL_SIGMA_ID)
    agent = [d for d in stored if d["origin"] == "agent"]
    assert len(agent) == 1, stored  # the line written after the rule came, only
    assert agent[0]["engine"] == "sigma"
    assert agent[0]["source"] == str(log)  # found by the agent in the file it tails
    assert agent[0]["timestamp"] == "2026-11-20T10:00:02Z"
    (incident,) = _incidents(service, tokens["it_pitie"], WEBSHELL_SIGMA_ID)
    assert incident["severity"] == "high"
    assert incident["title"] == "Web shell of the HX campaign uploaded"
    with service.client(tokens["analyst"]) as client:
        published = client.get(f"/alerts/{alert['id']}").json()
    assert published["sigma_rules"] == [WEBSHELL_SIGMA]


def _failed_logon(at: datetime, address: str, record: int) -> str:
    event = {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
                "EventID": 4625,
                "TimeCreated": {"#attributes": {"SystemTime": at.strftime("%Y-%m-%dT%H:%M:%SZ")}},
                "EventRecordID": record,
                "Channel": "Security",
                "Computer": "SRV-RDS-01.chu-exemple.local",
            },
            "EventData": {
                "TargetUserName": "administrateur",
                "LogonType": 10,
                "IpAddress": address,
                "IpPort": "0",
                "Status": "0xc000006d",
            },
        }
    }
    return json.dumps(event) + "\n"


def test_a_correlation_rule_fires_on_the_agent_across_turns_and_reaches_the_service(
    service: Service, tmp_path: Path
) -> None:
    tokens, log, runner = _pitie_agent(service, tmp_path, "security.jsonl")
    assert runner.detector.correlator is not None
    start_at = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    attacker, clumsy = "203.0.113.45", "198.51.100.7"

    def write(first: int, last: int, address: str) -> None:
        with log.open("a") as handle:
            for n in range(first, last + 1):
                handle.write(_failed_logon(start_at + timedelta(seconds=10 * n), address, n))

    def received(count: int) -> None:
        wait_for(lambda: runner.spool.stats().get("received", 0) >= count)

    stop, thread = start(runner)
    try:
        wait_for(lambda: runner.detector.bundle_version is not None)
        first_version = runner.detector.bundle_version
        write(1, 8, attacker)  # 8 failures: the window is open, nothing yet
        write(1, 14, clumsy)  # 14 from another address: never enough
        received(22)
        # A publication in between: the agent reloads its rules, the open windows stay.
        _publish(
            service,
            tokens["analyst"],
            title="Serveur de commande",
            indicators=[{"type": "ip", "value": "192.0.2.200"}],
            target={"all": True},
        )
        wait_for(lambda: runner.detector.bundle_version != first_version)
        write(9, 15, attacker)  # 7 more within 5 minutes of the first: 15
        received(29)
        wait_for(lambda: bool(_incidents(service, tokens["it_pitie"], RDP_BRUTEFORCE)))
    finally:
        stop.set()
        thread.join(timeout=30)
    _close(runner)
    (incident,) = _incidents(service, tokens["it_pitie"], RDP_BRUTEFORCE)
    assert incident["detection_count"] == 1
    assert incident["severity"] == "high"
    sample = _incident_detail(service, tokens["it_pitie"], incident["id"])["sample"]
    assert sample["engine"] == "sigma"
    (stored,) = _stored_detections(service, PITIE, RDP_BRUTEFORCE)
    assert stored["origin"] == "agent"
    assert stored["meta"]["correlation"] == "event_count"
    assert stored["meta"]["count"] == 15
    assert stored["meta"]["group"] == {"IpAddress": attacker}
    assert len(stored["events"]) == 15
