"""Bundles replayed to an agent, and the key it pins (issue 13, finding 8).

Every bundle here is genuinely signed by the real service's key: the signature alone cannot
tell them apart. A man in the middle (tests/collector/conftest.py `serving_proxy`) serves the
agent another establishment's bundle, or an older one of its own; both are refused and
counted, across restarts too (the version high-water is kept in the state folder). At
enrollment the key pinned is the one of the enrollment answer, never a key a man in the middle
serves at /alerts/bundle/public-key, and `--bundle-key-id` refuses a service whose key is
another. Plain http:// off this machine is refused unless allowed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.alerts.signing import BundleSigner
from collector.bundle import HIGH_WATER_FILE, BundleStore
from collector.config import AgentConfig
from collector.runner import STATUS_FILE, AgentRunner, CredentialError
from detection.bundle import key_id, raw_public_key
from tests.api.conftest import Service
from tests.api.test_agents import new_token
from tests.api.test_service import BORDEAUX, PITIE, setup_world
from tests.collector.conftest import serving_proxy
from tests.collector.test_agent_detection import VIGIE, _close, _config, _enroll, _publish

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
BUNDLE = "/alerts/bundle"


def _envelope(service: Service, credential: dict[str, Any]) -> dict[str, Any]:
    """The genuinely signed bundle the service serves to this agent."""
    with service.client(credential["agent_key"]) as client:
        answer = client.get(BUNDLE)
    assert answer.status_code == 200, answer.text
    envelope: dict[str, Any] = answer.json()
    return envelope


def _alert(service: Service, tokens: dict[str, str], n: int) -> None:
    indicator = {"type": "ip", "value": f"203.0.113.{n}"}
    _publish(
        service,
        tokens["analyst"],
        title=f"Alerte {n}",
        indicators=[indicator],
        target={"all": True},
    )


def _store(folder: Path, credential: dict[str, Any]) -> BundleStore:
    return BundleStore(folder, credential["bundle_key"], credential["establishment"])


def _fetch(url: str, store: BundleStore, credential: dict[str, Any]) -> bool:
    headers = {"Authorization": f"Bearer {credential['agent_key']}"}
    with httpx.Client(base_url=url, headers=headers) as client:
        return store.fetch(client)


class Proxy:
    """serving_proxy answering the bundle with whatever `envelope` holds at the time."""

    def __init__(self, real: str) -> None:
        self.envelope: dict[str, Any] = {}
        self.server = serving_proxy({BUNDLE: lambda: (200, self.envelope)}, real)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(service: Service) -> Iterator[Proxy]:
    made = Proxy(service.url)
    yield made
    made.close()


@pytest.fixture
def world(service: Service, tmp_path: Path) -> dict[str, Any]:
    tokens = setup_world(service)
    _alert(service, tokens, 1)
    return {
        "tokens": tokens,
        "pitie": json.loads(_enroll(service, tokens["admin"], PITIE, tmp_path / "p").read_text()),
        "bordeaux": json.loads(
            _enroll(service, tokens["admin"], BORDEAUX, tmp_path / "b").read_text()
        ),
    }


@SQLITE
def test_another_establishments_genuine_bundle_is_refused(
    service: Service, world: dict[str, Any], proxy: Proxy, tmp_path: Path
) -> None:
    pitie, bordeaux = world["pitie"], world["bordeaux"]
    assert pitie["establishment"] == PITIE  # kept in the credential at enrollment
    store = _store(tmp_path / "state", pitie)
    (tmp_path / "state").mkdir()
    assert _fetch(service.url, store, pitie) is True
    own = store.current()
    assert own is not None
    assert own["establishment"] == PITIE
    signer = BundleSigner.in_data_dir(service.settings.data_dir)

    def other_newer() -> dict[str, Any]:
        _alert(service, world["tokens"], 2)  # a newer version: still not Pitié's
        return _envelope(service, bordeaux)

    def without_establishment() -> dict[str, Any]:
        bundle = {**own, "version": own["version"] + 10}
        del bundle["establishment"]
        return signer.sign(bundle)

    def establishment_almost() -> dict[str, Any]:
        return signer.sign({**own, "version": own["version"] + 10, "establishment": PITIE + " "})

    variants = [
        lambda: _envelope(service, bordeaux),
        other_newer,
        without_establishment,
        establishment_almost,
    ]
    for n, variant in enumerate(variants, start=1):
        proxy.envelope = variant()
        assert proxy.envelope["bundle"].get("establishment") != PITIE
        assert _fetch(proxy.url, store, pitie) is False
        assert store.refused == n
        assert "establishment" in (store.last_refusal or "")
        assert store.current() == own  # the last good one stays

    # The same through the agent: the rules in force stay, the status says why.
    config = _agent_config(tmp_path, tmp_path / "p" / "agent.json")
    runner = AgentRunner(config, [], {**pitie, "server": proxy.url})
    try:
        proxy.envelope = _envelope(service, bordeaux)
        runner.update_bundle()
        assert runner.detector.bundle_version is None
        assert runner.bundles is not None
        assert runner.bundles.refused == 1
        runner.write_status()
        status = json.loads((config.state_dir / STATUS_FILE).read_text())
        assert status["bundles_refused"] == 1
        assert BORDEAUX in status["bundle_refusal"]
        shown = subprocess.run(
            [VIGIE, "agent", "status", "--config", str(tmp_path / "agent" / "agent.toml")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert f"last bundle refused: bundle for establishment '{BORDEAUX}'" in shown.stdout
    finally:
        _close(runner)


@SQLITE
def test_an_older_bundle_is_refused_across_restarts(
    service: Service, world: dict[str, Any], proxy: Proxy, tmp_path: Path
) -> None:
    pitie = world["pitie"]
    state = tmp_path / "state"
    state.mkdir()
    old = _envelope(service, pitie)
    store = _store(state, pitie)
    assert _fetch(service.url, store, pitie) is True
    _alert(service, world["tokens"], 2)
    assert _fetch(service.url, store, pitie) is True
    newest = store.current()
    assert newest is not None
    assert newest["version"] > old["bundle"]["version"]

    # A restart: a new store on the same state folder; the older genuine bundle is refused.
    proxy.envelope = old
    store = _store(state, pitie)
    assert _fetch(proxy.url, store, pitie) is False
    assert store.refused == 1
    assert "older" in (store.last_refusal or "")
    assert store.current() == newest

    # The kept bundle lost (or removed by someone who can write the state folder): the
    # high-water mark alone still refuses the older one.
    (state / "bundle.json").unlink()
    store = _store(state, pitie)
    assert _fetch(proxy.url, store, pitie) is False
    assert store.refused == 1
    assert store.current() is None

    # The kept bundle replaced on disk by the older one: not used.
    (state / "bundle.json").write_text(json.dumps(old))
    assert _store(state, pitie).current() is None

    # The same version again with the same content is fine; with another content it is not.
    store = _store(state, pitie)
    assert _fetch(service.url, store, pitie) is True
    assert store.current() == newest
    signer = BundleSigner.in_data_dir(service.settings.data_dir)
    proxy.envelope = signer.sign({**newest, "indicators": []})
    assert _fetch(proxy.url, store, pitie) is False
    assert "another content" in (store.last_refusal or "")
    assert store.current() == newest
    assert json.loads((state / HIGH_WATER_FILE).read_text())["version"] == newest["version"]

    # Through a restarted agent: the version in force stays the newest.
    config = _agent_config(tmp_path, tmp_path / "p" / "agent.json")
    config.state_dir.mkdir(parents=True)
    for name in ("bundle.json", HIGH_WATER_FILE):
        (config.state_dir / name).write_text((state / name).read_text())
    proxy.envelope = old
    runner = AgentRunner(config, [], {**pitie, "server": proxy.url})
    try:
        assert runner.detector.bundle_version == newest["version"]
        runner.update_bundle()
        assert runner.detector.bundle_version == newest["version"]
        assert runner.bundles is not None
        assert runner.bundles.refused == 1
    finally:
        _close(runner)


@SQLITE
def test_a_credential_without_establishment_asks_the_service(
    service: Service, world: dict[str, Any], proxy: Proxy, tmp_path: Path
) -> None:
    """An older credential file: the FINESS is asked of /agents/me before any bundle counts."""
    pitie = {k: v for k, v in world["pitie"].items() if k != "establishment"}
    config = _agent_config(tmp_path, tmp_path / "p" / "agent.json")
    proxy.envelope = _envelope(service, world["bordeaux"])
    runner = AgentRunner(config, [], {**pitie, "server": proxy.url})
    try:
        assert runner.bundles is not None
        assert runner.bundles.establishment is None
        runner.update_bundle()  # /agents/me relayed to the service, the bundle forged
        assert runner.bundles.establishment == PITIE
        assert runner.bundles.refused == 1
        assert runner.detector.bundle_version is None
    finally:
        _close(runner)


def _agent_config(tmp_path: Path, credential: Path) -> AgentConfig:
    (tmp_path / "agent").mkdir(exist_ok=True)
    (tmp_path / "a.log").touch()
    return _config(tmp_path / "agent", credential, tmp_path / "a.log")


def _vigie_enroll(*args: str, offline: bool = False) -> subprocess.CompletedProcess[str]:
    """`vigie agent enroll`; `offline`: in a network namespace of its own, with no network, so
    that a connection it tries fails at once and reaches no other machine."""
    isolate: list[str] = []
    if offline:
        unshare = shutil.which("unshare")
        if os.geteuid() != 0 or unshare is None:
            pytest.skip("a network namespace of its own needs root and unshare (util-linux)")
        isolate = [unshare, "--net"]
    return subprocess.run(
        [*isolate, VIGIE, "agent", "enroll", "--hostname", "srv-collect-01", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@SQLITE
def test_the_key_pinned_is_the_enrollment_answers_and_a_key_id_mismatch_refuses(
    service: Service, tmp_path: Path
) -> None:
    tokens = setup_world(service)
    token = new_token(service, tokens["admin"], PITIE, max_uses=3)["token"]
    with service.client() as client:
        real = client.get("/alerts/bundle/public-key").json()
    rogue = BundleSigner.in_data_dir(tmp_path / "rogue").public()
    assert rogue["key_id"] != real["key_id"]
    # A man in the middle serves its own key at the unauthenticated endpoint.
    mitm = serving_proxy({"/alerts/bundle/public-key": lambda: (200, rogue)}, service.url)
    url = f"http://127.0.0.1:{mitm.server_address[1]}"
    try:
        credential = tmp_path / "one.json"
        done = _vigie_enroll("--server", url, "--token", token, "--config", str(credential))
        assert done.returncode == 0, done.stderr
        assert json.loads(credential.read_text())["bundle_key"] == real["public_key"]

        # --bundle-key-id of the real key: the rogue endpoint is caught before the token is
        # spent; a wrong id (or one that is no id) refuses the enrollment.
        for given, reason in (
            (real["key_id"], f"with key {rogue['key_id']}, not {real['key_id']}"),
            ("0123456789abcdef", "not 0123456789abcdef"),
            ("not-a-key-id", "is not a key id"),
        ):
            refused = tmp_path / "refused.json"
            done = _vigie_enroll(
                "--server", url, "--token", token, "--config", str(refused),
                "--bundle-key-id", given,
            )  # fmt: skip
            assert done.returncode != 0
            assert reason in done.stderr
            assert len(done.stderr.strip().splitlines()) == 1
            assert not refused.exists()
    finally:
        mitm.shutdown()
        mitm.server_close()

    # The real service and its key id: enrolled (the token was not spent by the refusals).
    credential = tmp_path / "two.json"
    done = _vigie_enroll(
        "--server", service.url, "--token", token, "--config", str(credential),
        "--bundle-key-id", real["key_id"].upper(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pinned = json.loads(credential.read_text())["bundle_key"]
    assert pinned == real["public_key"]
    signer = BundleSigner.in_data_dir(service.settings.data_dir)
    assert key_id(raw_public_key(signer.private_key.public_key())) == real["key_id"]


@SQLITE
def test_a_service_without_the_key_in_its_answer_needs_the_key_id(
    service: Service, tmp_path: Path
) -> None:
    """An older service: the public endpoint's key is pinned only when `--bundle-key-id` says
    it is the right one."""
    tokens = setup_world(service)
    token = new_token(service, tokens["admin"], PITIE, max_uses=3)["token"]

    def older_answer() -> tuple[int, Any]:
        answer = httpx.post(
            f"{service.url}/agents/enroll",
            json={"token": token, "hostname": "srv", "version": "0.1.0", "sources": []},
        )
        body = answer.json()
        body.pop("bundle_key", None)
        body.pop("bundle_key_id", None)
        return answer.status_code, body

    older = serving_proxy({"/agents/enroll": older_answer}, service.url)
    url = f"http://127.0.0.1:{older.server_address[1]}"
    with service.client() as client:
        real = client.get("/alerts/bundle/public-key").json()
    try:
        bare = tmp_path / "bare.json"
        done = _vigie_enroll("--server", url, "--token", token, "--config", str(bare))
        assert done.returncode == 0, done.stderr
        assert "bundle_key" not in json.loads(bare.read_text())  # nothing unauthenticated
        assert "--bundle-key-id" in done.stderr
        checked = tmp_path / "checked.json"
        done = _vigie_enroll(
            "--server", url, "--token", token, "--config", str(checked),
            "--bundle-key-id", real["key_id"],
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(checked.read_text())["bundle_key"] == real["public_key"]
    finally:
        older.shutdown()
        older.server_close()


@pytest.mark.parametrize(
    "server",
    ["http://192.0.2.10:8000", "http://10.1.2.3", "http://example.org", "http://[2001:db8::1]"],
)
def test_plain_http_off_this_machine_is_refused_before_any_connection(
    server: str, tmp_path: Path
) -> None:
    credential = tmp_path / "agent.json"
    # A connection tried first would end in "cannot reach": the one line of refusal shows that
    # none was (rather than timing the command).
    done = _vigie_enroll("--server", server, "--token", "vge_x", "--config", str(credential))
    assert done.returncode != 0
    assert "refusing plain http://" in done.stderr
    assert "--allow-http" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not credential.exists()

    # Allowed explicitly: it is tried (offline: these addresses are no test's to reach).
    done = _vigie_enroll(
        "--server", server, "--token", "vge_x", "--config", str(credential),
        "--allow-http", "--timeout", "0.5", offline=True,
    )  # fmt: skip
    assert done.returncode != 0
    assert "refusing" not in done.stderr
    assert "cannot reach" in done.stderr or "enrollment refused by" in done.stderr  # tried


@SQLITE
def test_loopback_http_stays_allowed_and_run_refuses_http_off_this_machine(
    service: Service, tmp_path: Path
) -> None:
    port = service.url.rsplit(":", 1)[1]
    for server in (f"http://localhost:{port}", f"http://127.0.0.2:{port}", "http://[::1]:9"):
        done = _vigie_enroll("--server", server, "--token", "vge_x", "--config", str(tmp_path))
        assert "refusing plain" not in done.stderr

    tokens = setup_world(service)
    credential_path = _enroll(service, tokens["admin"], PITIE, tmp_path / "p")
    credential = json.loads(credential_path.read_text())
    config = _agent_config(tmp_path, credential_path)
    away = {**credential, "server": "http://192.0.2.10:8000"}
    with pytest.raises(CredentialError, match="refusing plain http:// to 192.0.2.10"):
        AgentRunner(config, [], away)
    # `vigie agent run` says so in one line, before any source starts.
    credential_path.write_text(json.dumps(away))
    done = subprocess.run(
        [VIGIE, "agent", "run", "--config", str(tmp_path / "agent" / "agent.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "refusing plain http:// to 192.0.2.10" in done.stderr
    # Allowed by the credential (enrolled with --allow-http) or by the configuration.
    allowed = [(config, {**away, "allow_http": True}), (replace(config, allow_http=True), away)]
    for allowed_config, allowed_credential in allowed:
        runner = AgentRunner(allowed_config, [], allowed_credential)
        _close(runner)
