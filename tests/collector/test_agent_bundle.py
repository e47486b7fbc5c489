"""The agent and the signed bundle, over real HTTP: a published indicator reaches the agent and
is detected there; a bundle that does not verify (here served by a man in the middle) is
refused and the last good one stays in force; `vigie agent status` says so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from collector.bundle import BundleStore
from collector.config import AgentConfig
from collector.runner import AgentRunner, build_sources
from detection.event import Event, parse_timestamp
from tests.api.conftest import Service
from tests.collector.conftest import forging_proxy
from tests.collector.test_agent_delivery import enroll, write_config

VIGIE = Path(sys.executable).parent / "vigie"
C2 = "203.0.113.99"
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _publish(service: Service, token: str) -> None:
    alert = {
        "title": "Serveur de commande",
        "severity": "high",
        "tlp": "amber",
        "indicators": [{"type": "ip", "value": C2}],
        "target": {"all": True},
        "retro_hunt_days": 0,
    }
    with service.client(token) as client:
        assert client.post("/alerts", json=alert).status_code == 201


def test_bundle_detected_on_the_agent_and_a_forged_one_refused(
    service: Service, tmp_path: Path
) -> None:
    credential_path, tokens = enroll(service, tmp_path)
    credential = json.loads(credential_path.read_text())
    assert credential["bundle_key"]  # pinned at enrollment
    _publish(service, tokens["analyst"])
    log = tmp_path / "app.log"
    log.touch()
    config = AgentConfig.load(write_config(tmp_path, credential_path, log))
    runner = AgentRunner(config, build_sources(config), credential)
    runner.update_bundle()
    assert runner.detector.bundle_version is not None
    event = Event(
        parse_timestamp("2026-11-20T10:00:00Z"),  # type: ignore[arg-type]
        {"destination": {"ip": C2}, "host": {"name": "pc-1"}},
    )
    found = runner.detector.detect([event])
    assert [d["engine"] for d in found] == ["indicator"]
    assert found[0]["origin"] == "agent"

    # A man in the middle serves the bundle without its indicators: refused, the last good
    # one stays.
    forger = forging_proxy(
        service.url, f"Bearer {credential['agent_key']}", lambda b: b.update(indicators=[])
    )
    try:
        store = BundleStore(config.state_dir, credential["bundle_key"], credential["establishment"])
        with httpx.Client(base_url=f"http://127.0.0.1:{forger.server_address[1]}") as client:
            assert store.fetch(client) is False
        assert store.refused == 1
        kept = store.current()
        assert kept is not None
        assert [i["value"] for i in kept["indicators"]] == [C2]
    finally:
        forger.shutdown()
        forger.server_close()
    runner.write_status()
    runner.spool.close()
    runner.client.close()

    status = subprocess.run(
        [VIGIE, "agent", "status", "--config", str(tmp_path / "agent.toml"), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["bundle_version"] == runner.detector.bundle_version
    assert shown["agent_id"] == credential["agent_id"]
    assert "queued" in shown["spool"]
