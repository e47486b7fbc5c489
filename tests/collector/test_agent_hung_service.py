"""A hung national service does not stop collection (issue 13, reliability 3).

The real agent runs against the real service through a TCP relay that can hang: while hung it
accepts connections and takes nothing more from the agent (the agent's request waits for an
answer, as with a SIGSTOPped service). Meanwhile log lines are appended and syslog messages
arrive over UDP into a listener whose queue holds 300 messages only (800 arrive): a collecting
loop that waited on the upload would let the queue overflow and lose messages. Once the relay passes
again, every line and message arrives exactly once.
"""

from __future__ import annotations

import json
import select
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from api.events.sqlite_store import SQLiteEventStore
from collector.config import AgentConfig
from collector.runner import AgentRunner, Source
from collector.sources.syslog_listener import SyslogListener
from collector.sources.tail import FileTail
from tests.api.conftest import Service
from tests.api.test_service import PITIE
from tests.collector.test_agent_delivery import enroll, start, wait_for, write_config

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class HangingRelay:
    """A TCP relay to `upstream`; while `hung` is set it reads nothing from its clients, so a
    request sent meanwhile waits (new connections are accepted all the same)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.hung = threading.Event()
        self.held = 0  # requests that came while hung
        self._closing = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closing.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client: socket.socket) -> None:
        with client, socket.create_connection(self.upstream) as server:
            counted = False
            while not self._closing.is_set():
                wanted = [server] if self.hung.is_set() else [client, server]
                if self.hung.is_set() and not counted:
                    ready, _, _ = select.select([client], [], [], 0)
                    if ready:  # a request is waiting, not taken
                        self.held += 1
                        counted = True
                readable, _, _ = select.select(wanted, [], [], 0.05)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (server if sock is client else client).sendall(data)
                if not self.hung.is_set():
                    counted = False


def _stored_messages(service: Service) -> list[str]:
    store = SQLiteEventStore.in_data_dir(service.settings.data_dir)
    try:
        docs = store.search_events(establishment=PITIE, limit=1_000_000)
    finally:
        store.close()
    # The text after the syslog header (a tail keeps the whole line as its message).
    return [str(d["message"]).rsplit(": ", 1)[-1] for d in docs]


def test_collection_goes_on_while_the_service_hangs(service: Service, tmp_path: Path) -> None:
    credential_path, _ = enroll(service, tmp_path)
    credential = json.loads(credential_path.read_text())
    relay = HangingRelay(service.url)
    log = tmp_path / "app.log"
    log.touch()
    config = AgentConfig.load(write_config(tmp_path, credential_path, log, batch_events=50))
    listener = SyslogListener("127.0.0.1", 0, None, max_queue=300)
    sources: list[Source] = [FileTail([str(log)]), listener]
    runner = AgentRunner(config, sources, {**credential, "server": relay.url})
    stop, thread = start(runner)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port = listener.udp_port
    assert port is not None
    expected: list[str] = []

    def burst(first: int, last: int) -> None:
        for n in range(first, last + 1):
            text = f"udp event number {n}"
            sender.sendto(
                f"<134>Nov 20 10:00:00 pc-urgences-01 app[42]: {text}".encode(),
                (
                    "127.0.0.1",
                    port,
                ),
            )
            expected.append(text)

    def lines(first: int, last: int) -> None:
        with log.open("a") as handle:
            for n in range(first, last + 1):
                handle.write(f"<134>Nov 20 10:00:00 pc-urgences-01 app[42]: file event {n}\n")
                expected.append(f"file event {n}")

    try:
        lines(1, 100)
        burst(1, 50)
        wait_for(lambda: len(_stored_messages(service)) == 150)  # delivery works

        relay.hung.set()
        lines(101, 200)  # a batch to send: its upload hangs
        wait_for(lambda: relay.held > 0, timeout=30)
        received = runner.spool.stats()["received"]
        shipped = runner.spool.stats().get("shipped", 0)
        for step in range(10):  # 10 bursts of 80: together more than the queue holds
            burst(1000 + step * 80, 1000 + step * 80 + 79)
            lines(1000 + step * 80, 1000 + step * 80 + 79)
            # The next burst once the collecting loop took this one in (a loop that waited on
            # the upload never would): read and spooled while the upload still waits.
            spooled = received + 160 * (step + 1)
            wait_for(lambda n=spooled: runner.spool.stats()["received"] >= n, timeout=30)
        assert relay.hung.is_set()
        assert listener.stats()["dropped"] == 0
        assert runner.spool.stats().get("shipped", 0) == shipped  # nothing went meanwhile

        relay.hung.clear()
        wait_for(lambda: len(_stored_messages(service)) >= len(expected), timeout=90)
    finally:
        stop.set()
        thread.join(timeout=30)
        sender.close()
        relay.close()
    stored = _stored_messages(service)
    assert sorted(stored) == sorted(expected)  # each once
    assert not thread.is_alive()


def test_a_stop_while_the_service_hangs_is_prompt_and_loses_nothing(
    service: Service, tmp_path: Path
) -> None:
    """Stopping while an upload waits does not wait for it beyond `stop_seconds`; the batch
    stays in the spool and goes (once) at the next start."""
    credential_path, _ = enroll(service, tmp_path)
    credential = json.loads(credential_path.read_text())
    relay = HangingRelay(service.url)
    log = tmp_path / "app.log"
    with log.open("w") as handle:
        for n in range(1, 301):
            handle.write(f"<134>Nov 20 10:00:00 pc-urgences-01 app[42]: file event {n}\n")
    config = AgentConfig.load(
        write_config(tmp_path, credential_path, log, batch_events=50, stop_seconds=1)
    )
    relay.hung.set()
    runner = AgentRunner(config, [FileTail([str(log)])], {**credential, "server": relay.url})
    stop, thread = start(runner)
    try:
        wait_for(lambda: relay.held > 0 and runner.spool.stats()["received"] == 300)
        stop.set()
        thread.join(timeout=15)  # a deadline: the upload's own timeout is 30 s
        assert not thread.is_alive()
    finally:
        relay.close()

    again = AgentRunner(config, [FileTail([str(log)])], credential)
    stop, thread = start(again)
    try:
        wait_for(lambda: len(_stored_messages(service)) >= 300, timeout=60)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert sorted(_stored_messages(service)) == sorted(f"file event {n}" for n in range(1, 301))
