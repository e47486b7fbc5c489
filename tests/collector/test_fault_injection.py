"""Fault injection, end to end: a real `vigie serve` and a real `vigie agent run`, each in a
process of its own, while a writer appends numbered lines at a steady rate to a followed log
that is rotated twice (a rename, then a copy-truncate whose copy the glob `app.log*` matches
too). Meanwhile: the agent is SIGKILLed three times, the service twice (once aimed at a batch
in flight: killed as soon as a batch is claimed and not done), and frozen (SIGSTOP) for ten
seconds. At the end every line is stored exactly once, all of them within a bound after the
writer stops (no 10-minute stall), and the counters of the agent and of the service agree.

On SQLite (one service process) and on PostgreSQL with `--workers 2` (the aimed kill then
kills the worker that holds the batch: the master restarts it, the other worker takes the
batch over). Bounded: about a minute and a half per database.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy

from api.app import prepare
from api.events.sqlite_store import SQLiteEventStore
from api.settings import Settings
from tests import clients
from tests.api.conftest import Service, change_first_password
from tests.api.test_service import PITIE
from tests.collector.test_agent_delivery import VIGIE, closed_port, enroll, write_config

pytestmark = pytest.mark.slow

RATE = 200  # lines per second
WRITING = 40.0  # seconds
CATCH_UP = 60.0  # seconds after the writer's end by which every line is stored
COPY_SECONDS = 2.0  # between the copy and the truncation (the writer waits, then catches up)
LINE = "<134>Nov 20 10:00:00 pc-urgences-01 app[42]: event number {}\n"


@dataclass
class Writer:
    """Appends numbered lines at RATE per second; rotates when asked, between two lines (a
    copy-truncate done by the writer itself, so that no line falls between the copy and the
    truncation: what is tested is the agent, not logrotate's own race)."""

    log: Path
    written: int = 0
    rotations: list[str] = field(default_factory=list)
    copied: range = range(0)  # the numbers the copy-truncate's copy holds
    _renamed_at: int = 0
    _asked: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def rotate(self, how: str) -> None:
        with self._lock:
            self._asked.append(how)

    def run(self) -> None:
        handle = self.log.open("a", buffering=1)
        start = time.monotonic()
        total = int(RATE * WRITING)
        try:
            while self.written < total:
                due = int((time.monotonic() - start) * RATE)
                for _ in range(min(due, total) - self.written):
                    self.written += 1
                    handle.write(LINE.format(self.written))
                with self._lock:
                    asked, self._asked = self._asked, []
                for how in asked:
                    handle = self._rotated(handle, how)
                time.sleep(0.01)
        finally:
            handle.close()

    def _rotated(self, handle: Any, how: str) -> Any:
        handle.flush()
        if how == "rename":
            handle.close()
            self.log.rename(self.log.with_name("app.log.1"))
            self._renamed_at = self.written
            handle = self.log.open("a", buffering=1)
        else:  # copy-truncate: the copy keeps the name the glob matches
            shutil.copyfile(self.log, self.log.with_name("app.log.2"))
            self.copied = range(self._renamed_at + 1, self.written + 1)
            time.sleep(COPY_SECONDS)  # a long copy: the agent polls both files meanwhile
            os.truncate(self.log, 0)  # the handle appends (O_APPEND): from 0 again
        self.rotations.append(how)
        return handle


class ServiceProcess:
    """`vigie serve` in a session of its own (its workers with it), restarted at will."""

    def __init__(self, root: Path, database_url: str, port: int, workers: int) -> None:
        self.root = root
        self.port = port
        self.workers = workers
        self.env = {
            **os.environ,
            "VIGIE_DATABASE_URL": database_url,
            "VIGIE_SECRET_KEY": secrets.token_urlsafe(40),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        log = (self.root / f"service-{self.starts}.log").open("wb")
        args = ["serve", "--data-dir", str(self.root / "data"), "--port", str(self.port)]
        self.process = subprocess.Popen(
            [VIGIE, *args, "--workers", str(self.workers)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, f"vigie serve exited: see {log.name}"
            assert time.monotonic() < deadline, "vigie serve did not start"
            try:
                if clients.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)

    def signal_all(self, sig: signal.Signals) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole service (master and workers), and reap it."""
        assert self.process is not None
        self.signal_all(signal.SIGKILL)
        self.process.wait(timeout=30)

    def reap(self) -> None:
        assert self.process is not None
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal_all(signal.SIGCONT)
            self.signal_all(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        return "".join(
            p.read_text(errors="replace") for p in sorted(self.root.glob("service-*.log"))
        )


class AgentProcess:
    def __init__(self, config: Path, status: Path) -> None:
        self.config = config
        self.status = status
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [VIGIE, "agent", "run", "--config", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        pid = self.process.pid
        deadline = time.monotonic() + 60
        while f'"pid": {pid}' not in _read(self.status):
            assert time.monotonic() < deadline, "the agent did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def stored_numbers(data_dir: Path) -> list[int]:
    store = SQLiteEventStore.in_data_dir(data_dir)
    try:
        docs = store.search_events(establishment=PITIE, limit=10_000_000)
    finally:
        store.close()
    return sorted(int(str(d["message"]).rsplit(" ", 1)[1]) for d in docs)


def batch_in_flight(database: sqlalchemy.Engine, timeout: float) -> tuple[str, int] | None:
    """The first batch seen claimed and not done (its id, its owner's pid), polling the
    service's database as fast as it answers."""
    query = sqlalchemy.text(
        "SELECT batch_id, owner FROM ingested_batches WHERE state = 'processing'"
    )
    deadline = time.monotonic() + timeout
    with database.connect() as connection:
        while time.monotonic() < deadline:
            for batch_id, owner in connection.execute(query):
                if owner:
                    return str(batch_id), int(str(owner).rsplit("/", 2)[1])
            connection.rollback()  # a fresh snapshot next time
            time.sleep(0.002)
    return None


@pytest.fixture
def workers(database_url: str) -> int:
    return 1 if database_url.startswith("sqlite") else 2


@pytest.fixture
def running(
    database_url: str, workers: int, tmp_path: Path
) -> Iterator[tuple[ServiceProcess, Service]]:
    data = tmp_path / "data"
    data.mkdir()
    password = prepare(Settings(data, database_url, "x" * 40))
    assert password is not None
    # The service is killed and started again on the same port, which the agent knows: the
    # one test that picks a port and lets it go (the kernel hands out ports in turn, so another
    # test taking it between a kill and the restart is unlikely, and would fail loudly).
    service = ServiceProcess(tmp_path, database_url, closed_port(), workers)
    service.start()
    try:
        admin = change_first_password(service.url, password)
        yield service, Service(service.url, Settings(data, database_url, "x" * 40), admin)
    finally:
        service.stop()


def test_every_line_is_stored_exactly_once_through_kills_freezes_and_rotations(
    running: tuple[ServiceProcess, Service], workers: int, tmp_path: Path
) -> None:
    service, handle = running
    credential, tokens = enroll(handle, tmp_path)
    log = tmp_path / "logs" / "app.log"
    log.parent.mkdir()
    log.touch()
    config = write_config(
        tmp_path, credential, log.with_name("app.log*"), batch_events=500, max_backoff_seconds=2
    )
    agent = AgentProcess(config, tmp_path / "state" / "status.json")
    agent.start()
    writer = Writer(log)
    writing = threading.Thread(target=writer.run, daemon=True)
    database = sqlalchemy.create_engine(handle.settings.database_url)
    aimed: tuple[str, int] | None = None
    left_processing = False
    try:
        writing.start()
        time.sleep(4)
        agent.kill()  # agent kill 1
        agent.start()
        time.sleep(2)
        # Service kill 1, aimed at a batch in flight: its owner process dies mid-batch.
        aimed = batch_in_flight(database, timeout=15)
        assert aimed is not None, "no batch was seen in flight"
        os.kill(aimed[1], signal.SIGKILL)
        with database.connect() as connection:
            state = connection.execute(
                sqlalchemy.text("SELECT state FROM ingested_batches WHERE batch_id = :id"),
                {"id": aimed[0]},
            ).scalar()
        left_processing = state == "processing"
        if workers == 1:  # the service itself: started again (a worker: its master does it)
            service.reap()
            service.start()
        time.sleep(3)
        writer.rotate("rename")
        time.sleep(3)
        service.signal_all(signal.SIGSTOP)  # a hung service, ten seconds
        time.sleep(10)
        service.signal_all(signal.SIGCONT)
        time.sleep(2)
        agent.kill()  # agent kill 2
        agent.start()
        writer.rotate("copy-truncate")
        time.sleep(3)
        service.kill()  # service kill 2: all of it
        service.start()
        time.sleep(2)
        agent.kill()  # agent kill 3
        agent.start()
        writing.join(timeout=WRITING + 30)
        assert not writing.is_alive()
        ended = time.monotonic()
        total = writer.written
        while len(stored_numbers(handle.settings.data_dir)) < total:
            waited = time.monotonic() - ended
            assert waited < CATCH_UP, (
                f"{len(stored_numbers(handle.settings.data_dir))} of {total} lines stored "
                f"{CATCH_UP:.0f} s after the writer's end"
            )
            time.sleep(0.5)
        # The agent's spool emptied, every batch acknowledged: nothing is left to send twice.
        deadline = time.monotonic() + 60
        while json.loads(_read(agent.status))["spool"]["queued"]:
            assert time.monotonic() < deadline, _read(agent.status)
            time.sleep(0.5)
        numbers = stored_numbers(handle.settings.data_dir)
        assert writer.rotations == ["rename", "copy-truncate"]
        missing = sorted(set(range(1, total + 1)) - set(numbers))
        twice = [n for n, m in zip(numbers, numbers[1:], strict=False) if n == m]
        in_copy = sum(n in writer.copied for n in twice)
        assert (missing, twice) == ([], []), (
            f"{len(missing)} missing, {len(twice)} stored twice, {in_copy} of them lines of "
            f"the copy-truncate's copy ({writer.copied.start}-{writer.copied.stop - 1})"
        )
        assert numbers == list(range(1, total + 1))

        if left_processing:  # the retry of the batch found its owner gone and took it over
            assert f"batch {aimed[0]}: claim of" in service.logs()
        assert_counters_agree(handle, tokens["admin"], total)
    finally:
        agent.stop()
        database.dispose()


def assert_counters_agree(handle: Service, admin: str, total: int) -> None:
    """The agent's counters (its heartbeat), the service's per-agent ingest counters and the
    event store say the same: every line received, shipped, accepted and stored once."""
    with handle.client(admin) as client:
        (agent,) = client.get("/agents", params={"establishment": PITIE}).json()["items"]
        deadline = time.monotonic() + 30
        while agent["counters"].get("shipped", 0) < total:
            assert time.monotonic() < deadline, agent["counters"]
            time.sleep(0.5)
            agent = client.get(f"/agents/{agent['id']}").json()
        ingest = client.get(f"/agents/{agent['id']}/ingest").json()
    counters = agent["counters"]
    assert counters.get("received") == total, counters
    assert counters.get("shipped") == total, counters
    assert counters.get("dropped", 0) == 0
    assert counters.get("refused", 0) == 0
    assert ingest["processing"] == 0
    assert ingest["events_accepted"] == total
    assert ingest["rejected"] == 0
    # What a killed attempt had stored came again with the takeover: counted there as
    # duplicates, not stored twice (the store holds `total`, checked by the caller).
    assert 0 <= ingest["duplicates"] <= total
