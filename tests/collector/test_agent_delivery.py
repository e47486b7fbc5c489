"""The agent against the real national service over loopback HTTP: an outage loses nothing,
the disk budget drops the oldest and says so in the heartbeat, and an agent killed with
SIGKILL at any moment and restarted delivers every event exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from api.events.sqlite_store import SQLiteEventStore
from collector.config import AgentConfig
from collector.runner import AgentRunner, build_sources
from tests.api.conftest import Service
from tests.api.test_agents import new_token
from tests.api.test_service import PITIE, setup_world

VIGIE = Path(sys.executable).parent / "vigie"
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


# Sockets bound and never listening: a connection to their port is refused, and no other
# test's server can take the port while they are held (to the end of the worker process).
_HELD: list[socket.socket] = []


def refusing_port() -> int:
    """A port where connections are refused, for as long as the test process runs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _HELD.append(sock)
    return int(sock.getsockname()[1])


def closed_port() -> int:
    """A port free now, for a server that must come back on the same port after a kill;
    another process could take it meanwhile (the only test that needs it says so)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def enroll(service: Service, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    tokens = setup_world(service)
    token = new_token(service, tokens["admin"], PITIE)["token"]
    credential = tmp_path / "agent.json"
    done = subprocess.run(
        [VIGIE, "agent", "enroll", "--server", service.url, "--token", token]
        + ["--hostname", "srv-collect-01", "--config", str(credential)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return credential, tokens


def write_config(tmp_path: Path, credential: Path, log: Path, **delivery: Any) -> Path:
    settings = {"heartbeat_seconds": 1, "poll_seconds": 0.05, "max_backoff_seconds": 1}
    settings.update(delivery)
    lines = [
        f'state_dir = "{tmp_path / "state"}"',
        f'credentials = "{credential}"',
        "[delivery]",
        *(f"{k} = {v}" for k, v in settings.items()),
        "[[sources]]",
        'kind = "tail"',
        f'paths = ["{log}"]',
    ]
    path = tmp_path / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def append(log: Path, first: int, last: int) -> None:
    with log.open("a") as handle:
        for n in range(first, last + 1):
            handle.write(f"<134>Nov 20 10:00:00 pc-urgences-01 app[42]: event number {n}\n")


def stored_numbers(service: Service) -> list[int]:
    store = SQLiteEventStore.in_data_dir(service.settings.data_dir)
    try:
        docs = store.search_events(establishment=PITIE, limit=1_000_000)
    finally:
        store.close()
    return sorted(int(str(d["message"]).rsplit(" ", 1)[1]) for d in docs)


def wait_for(check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def start(runner: AgentRunner) -> tuple[threading.Event, threading.Thread]:
    """The agent's loop in a thread of the test: `stop.set()` ends it."""
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def run_in_thread(config: Path, credential: dict[str, Any]) -> tuple[threading.Event, Any]:
    loaded = AgentConfig.load(config)
    runner = AgentRunner(loaded, build_sources(loaded), credential)
    stop, thread = start(runner)
    return stop, (thread, runner)


def test_an_outage_loses_nothing_and_delivery_resumes_after_a_restart(
    service: Service, tmp_path: Path
) -> None:
    credential_path, _ = enroll(service, tmp_path)
    credential = json.loads(credential_path.read_text())
    log = tmp_path / "app.log"
    append(log, 1, 300)
    config = write_config(tmp_path, credential_path, log, batch_events=50)

    # The service is unreachable: everything is spooled, nothing lost.
    down = {**credential, "server": f"http://127.0.0.1:{refusing_port()}"}
    stop, (thread, runner) = run_in_thread(config, down)
    wait_for(lambda: runner.spool.stats().get("received", 0) >= 300)
    append(log, 301, 400)
    wait_for(lambda: runner.spool.stats().get("received", 0) >= 400)
    assert runner.shipper.last_error is not None
    assert "cannot reach" in runner.shipper.last_error
    stop.set()
    thread.join(timeout=30)
    assert stored_numbers(service) == []

    # Restarted with the service back: every event arrives, once.
    stop, (thread, runner) = run_in_thread(config, credential)
    wait_for(lambda: len(stored_numbers(service)) >= 400)
    stop.set()
    thread.join(timeout=30)
    assert stored_numbers(service) == list(range(1, 401))


def test_the_disk_budget_drops_the_oldest_and_the_heartbeat_says_so(
    service: Service, tmp_path: Path
) -> None:
    credential_path, tokens = enroll(service, tmp_path)
    credential = json.loads(credential_path.read_text())
    log = tmp_path / "app.log"
    append(log, 1, 2000)
    config = write_config(tmp_path, credential_path, log, disk_budget_mb=0.05)
    down = {**credential, "server": f"http://127.0.0.1:{refusing_port()}"}
    stop, (thread, runner) = run_in_thread(config, down)
    wait_for(lambda: runner.spool.stats().get("received", 0) >= 2000)
    stop.set()
    thread.join(timeout=30)
    stop, (thread, runner) = run_in_thread(config, credential)
    wait_for(lambda: runner.spool.stats()["queued"] == 0)
    stats = runner.spool.stats()
    assert stats["dropped"] > 0
    assert stats["shipped"] + stats["dropped"] == 2000
    numbers = stored_numbers(service)
    assert numbers == list(range(2001 - len(numbers), 2001))  # the newest kept, in order
    with service.client(tokens["it_pitie"]) as client:
        wait_for(
            lambda: (
                client.get(f"/agents/{credential['agent_id']}").json()["counters"].get("dropped")
                == stats["dropped"]
            )
        )
    stop.set()
    thread.join(timeout=30)


@pytest.mark.slow
def test_sigkill_at_any_moment_delivers_every_event_exactly_once(
    service: Service, tmp_path: Path
) -> None:
    credential_path, _ = enroll(service, tmp_path)
    log = tmp_path / "app.log"
    log.touch()
    config = write_config(tmp_path, credential_path, log, batch_events=37)
    rng = random.Random(20261125)
    written = 0
    mid_stream = 0  # kills that fell while events were still on their way
    status = tmp_path / "state" / "status.json"
    for _ in range(5):
        agent = subprocess.Popen(
            [VIGIE, "agent", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Killed once it runs (its loop writes its status), not while it is still starting.
        wait_for(lambda p=agent.pid: status.exists() and json.loads(status.read_text())["pid"] == p)
        for _ in range(rng.randint(2, 6)):
            append(log, written + 1, written + 150)
            written += 150
            time.sleep(rng.uniform(0.0, 0.15))
        os.kill(agent.pid, signal.SIGKILL)  # mid-read, mid-spool or mid-send: anywhere
        agent.wait(timeout=30)
        mid_stream += len(stored_numbers(service)) < written
    final = subprocess.Popen(
        [VIGIE, "agent", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: len(stored_numbers(service)) >= written, timeout=120)
        # Its spool emptied (every batch acknowledged): nothing is left to send twice.
        wait_for(
            lambda: (
                json.loads(status.read_text())["pid"] == final.pid
                and json.loads(status.read_text())["spool"]["queued"] == 0
            ),
            timeout=60,
        )
    finally:
        final.send_signal(signal.SIGTERM)
        final.wait(timeout=30)
    assert stored_numbers(service) == list(range(1, written + 1))
    assert mid_stream >= 3  # the kills did interrupt delivery
