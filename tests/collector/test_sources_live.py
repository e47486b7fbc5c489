"""The live capture source on loopback, with real traffic: a TCP request and response, a DNS
query and answer over UDP, an HL7 v2 exchange over MLLP, between real sockets of this test.
Capturing needs a packet socket (root or CAP_NET_RAW); the tests that capture skip without."""

from __future__ import annotations

import ctypes.util
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from api.events.sqlite_store import SQLiteEventStore
from collector.netmeta import flows
from collector.runner import load_credentials
from collector.sources.live import CaptureError, LiveCapture
from detection.event import Event, flatten
from tests.api.conftest import Service
from tests.api.test_service import PITIE
from tests.collector.test_agent_delivery import enroll, run_in_thread, wait_for

ROOT = Path(__file__).resolve().parents[2]
needs_capture = pytest.mark.skipif(
    os.geteuid() != 0, reason="capturing on loopback needs root or CAP_NET_RAW (packet socket)"
)
needs_libpcap = pytest.mark.skipif(
    ctypes.util.find_library("pcap") is None, reason="libpcap compiles BPF filters (libpcap0.8)"
)

REQUEST = b"GET /status HTTP/1.1\r\nHost: dpi.chu-demo.test\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
PATIENT = "DUPONTEL^JEANNETTE"
HL7_MESSAGE = (
    b"\x0bMSH|^~\\&|LABO|CHU-DEMO|DPI|CHU-DEMO|20261120100000||ORU^R01|CTRL0001|P|2.5\r"
    b"PID|1||8801017512345^^^CHU-DEMO^PI||" + PATIENT.encode() + b"||19800101|F\r"
    b"OBX|1|NM|GLU^Glucose||5.4|mmol/L\x1c\x0d"
)
HL7_ACK = (
    b"\x0bMSH|^~\\&|DPI|CHU-DEMO|LABO|CHU-DEMO|20261120100001||ACK^R01|ACK0001|P|2.5\r"
    b"MSA|AA|CTRL0001\x1c\x0d"
)


# -- real traffic ----------------------------------------------------------------------------


class TcpServer:
    """Answers one connection: reads `expect` bytes, sends `answer`, closes cleanly."""

    def __init__(self, expect: int, answer: bytes) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.expect, self.answer = expect, answer
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            got = b""
            while len(got) < self.expect:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                got += chunk
            conn.sendall(self.answer)
        self.sock.close()


def exchange(server: TcpServer, request: bytes) -> int:
    """Send the request, read the answer to the end, close; the client's port."""
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        port: int = client.getsockname()[1]
        client.sendall(request)
        while client.recv(65536):
            pass
    server.thread.join(5)
    return port


def dns_message(txid: int, name: str, answer: str | None = None) -> bytes:
    """A DNS query for `name` (type A), or its answer when `answer` is an IPv4 address."""
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    question += struct.pack("!HH", 1, 1)
    if answer is None:
        return struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 0) + question
    record = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(answer)
    return struct.pack("!HHHHHH", txid, 0x8180, 1, 1, 0, 0) + question + record


@pytest.fixture
def dns_server() -> Iterator[socket.socket]:
    """A UDP socket on port 53 (how DNS is told apart) of a loopback address of its own."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((f"127.53.{random.randint(1, 254)}.{random.randint(1, 254)}", 53))  # noqa: S311
    except OSError as exc:
        sock.close()
        pytest.skip(f"no loopback address free on port 53: {exc}")
    sock.settimeout(5)
    yield sock
    sock.close()


def poll_until(
    source: LiveCapture, done: Callable[[list[Event]], bool], timeout: float = 30.0
) -> list[Event]:
    """Poll as the agent does until `done(events so far)`; every event seen."""
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events += source.poll()
        if done(events):
            return events
        time.sleep(0.05)
    raise AssertionError(f"not seen within {timeout}s: {[e.fields for e in events]}")


def of(events: list[Event], path: str, **match: Any) -> list[Mapping[str, Any]]:
    return [
        e.fields
        for e in events
        if e.fields["_path"] == path and all(e.fields.get(k) == v for k, v in match.items())
    ]


def wait_packets(source: LiveCapture, count: int, timeout: float = 30.0) -> None:
    """Wait until the capture thread has read `count` packets (a deadline, not a pause)."""
    deadline = time.monotonic() + timeout
    while source.stats()["packets"] < count:
        assert time.monotonic() < deadline, f"{count} packets not captured: {source.stats()}"
        time.sleep(0.02)


# -- capture -----------------------------------------------------------------------------------


@needs_capture
@needs_libpcap
def test_connections_dns_and_hl7_captured_on_loopback(dns_server: socket.socket) -> None:
    http = TcpServer(len(REQUEST), RESPONSE)
    mllp = TcpServer(len(HL7_MESSAGE), HL7_ACK)
    dns_ip = dns_server.getsockname()[0]
    bpf = f"tcp port {http.port} or tcp port {mllp.port} or (udp and host {dns_ip})"
    source = LiveCapture("lo", bpf, close_delay=0.3)
    try:
        http_client = exchange(http, REQUEST)
        mllp_client = exchange(mllp, HL7_MESSAGE)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as resolver:
            resolver.bind(("127.0.0.1", 0))
            resolver.sendto(dns_message(0x4242, "pacs.chu-demo.test"), (dns_ip, 53))
            query, peer = dns_server.recvfrom(512)
            dns_server.sendto(dns_message(0x4242, "pacs.chu-demo.test", "10.1.2.3"), peer)
            resolver.settimeout(5)
            resolver.recv(512)
            dns_client = resolver.getsockname()[1]
        # No packet passes after the exchanges: the closed TCP connections still end, by the
        # clock (close_delay), and the DNS answer is a record at once.
        events = poll_until(
            source,
            lambda ev: (
                len(of(ev, "conn", proto="tcp")) == 2 and bool(of(ev, "dns") and of(ev, "hl7"))
            ),
        )
        assert not of(events, "conn", proto="udp")  # UDP ends idle, after Zeek's minute
    finally:
        source.close()
    events += source.poll()

    (web,) = of(events, "conn", **{"id.orig_p": http_client})
    assert (web["id.orig_h"], web["id.resp_h"], web["id.resp_p"]) == (
        "127.0.0.1",
        "127.0.0.1",
        http.port,
    )
    assert (web["proto"], web["service"], web["conn_state"]) == ("tcp", "http", "SF")
    assert (web["orig_bytes"], web["resp_bytes"]) == (len(REQUEST), len(RESPONSE))
    assert web["history"].startswith("ShAD")
    assert {"F", "f"} <= set(web["history"])
    # SYN, ACK, request, FIN (+ ACKs) one way; SYN-ACK, response, FIN (+ ACKs) the other: the
    # leaving copy of each loopback packet is skipped (with it, each count would double).
    assert 4 <= web["orig_pkts"] <= 6
    assert 3 <= web["resp_pkts"] <= 5
    (request,) = of(events, "http", **{"id.orig_p": http_client})
    assert (request["method"], request["uri"], request["status_code"]) == ("GET", "/status", 200)

    (hl7_conn,) = of(events, "conn", **{"id.orig_p": mllp_client})
    assert (hl7_conn["service"], hl7_conn["conn_state"]) == ("hl7", "SF")
    assert (hl7_conn["orig_bytes"], hl7_conn["resp_bytes"]) == (len(HL7_MESSAGE), len(HL7_ACK))
    sent, answered = of(events, "hl7", **{"id.orig_p": mllp_client})
    assert (sent["message_type"], sent["trigger_event"], sent["control_id"]) == (
        "ORU",
        "R01",
        "CTRL0001",
    )
    assert (answered["message_type"], answered["ack_code"]) == ("ACK", "AA")
    assert PATIENT.split("^")[0] not in repr([e.fields for e in events])

    (dns,) = of(events, "dns")
    assert (dns["id.orig_p"], dns["id.resp_h"], dns["id.resp_p"]) == (dns_client, dns_ip, 53)
    assert (dns["query"], dns["qtype_name"], dns["rcode_name"]) == (
        "pacs.chu-demo.test",
        "A",
        "NOERROR",
    )
    assert dns["answers"] == ["10.1.2.3"]
    (udp,) = of(events, "conn", proto="udp")  # ended by close()
    assert (udp["id.orig_p"], udp["service"], udp["orig_pkts"], udp["resp_pkts"]) == (
        dns_client,
        "dns",
        1,
        1,
    )
    stats = source.stats()
    assert stats["read"] == len(events)
    assert stats["dropped"] == stats["skipped"] == 0
    assert stats["packets"] == sum(
        c["orig_pkts"] + c["resp_pkts"] for c in of(events, "conn")
    )  # only what the filter selects reaches the source
    assert all(e.source == "live:lo" for e in events)


@needs_capture
@needs_libpcap
def test_the_filter_keeps_other_traffic_out() -> None:
    kept, other = (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
    )
    with kept, other, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        kept.bind(("127.0.0.1", 0))
        other.bind(("127.0.0.1", 0))
        port = kept.getsockname()[1]
        source = LiveCapture("lo", f"udp port {port}")
        try:
            for n in range(3):
                sender.sendto(b"kept %d" % n, kept.getsockname())
                sender.sendto(b"other %d" % n, other.getsockname())
            exchange(TcpServer(len(REQUEST), RESPONSE), REQUEST)
            # A last kept datagram, sent after all the rest: once it is read, anything else
            # that (wrongly) passed the filter was read before it.
            sender.sendto(b"last", kept.getsockname())
            wait_packets(source, 4)
        finally:
            source.close()
        events = source.poll()
    assert source.stats()["packets"] == 4  # once each, not also as loopback's leaving copy
    (conn,) = [e.fields for e in events]
    assert (conn["_path"], conn["id.resp_p"], conn["orig_pkts"], conn["resp_pkts"]) == (
        "conn",
        port,
        4,
        0,
    )
    assert conn["orig_bytes"] == sum(len(b"kept %d" % n) for n in range(3)) + len(b"last")


@needs_capture
@needs_libpcap
def test_a_full_queue_drops_and_counts_and_the_capture_goes_on() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        sink.bind(("127.0.0.1", 0))
        source = LiveCapture("lo", f"udp port {sink.getsockname()[1]}", max_queue=5)
        try:
            for n in range(50):  # nobody polls meanwhile
                sender.sendto(b"burst %d" % n, sink.getsockname())
            wait_packets(source, 50)
            stats = source.stats()
            assert (stats["packets"], stats["queued"], stats["dropped"]) == (50, 5, 45)
            assert stats["lag_seconds"] >= 0
            assert source.poll() == []  # 5 decoded; the UDP flow is still open
            for n in range(10):
                sender.sendto(b"later %d" % n, sink.getsockname())
            wait_packets(source, 60)  # the capture went on reading
            stats = source.stats()
            assert (stats["packets"], stats["queued"], stats["dropped"]) == (60, 5, 50)
        finally:
            source.close()
        (conn,) = [e.fields for e in source.poll()]
    assert conn["orig_pkts"] == 10  # what was queued, not what was dropped


@needs_capture
@needs_libpcap
def test_close_ends_the_open_connections() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    with (
        server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        sink.bind(("127.0.0.1", 0))
        udp_port, tcp_port = sink.getsockname()[1], server.getsockname()[1]
        source = LiveCapture("lo", f"udp port {udp_port} or tcp port {tcp_port}")
        try:
            client = socket.create_connection(("127.0.0.1", tcp_port))
            accepted, _ = server.accept()
            client.sendall(b"still open")
            sender.sendto(b"ping", sink.getsockname())
            wait_packets(source, 6)  # handshake (3), data, its ACK, the datagram
            assert source.poll() == []  # an open TCP connection; a UDP flow idle for < 1 min
        finally:
            source.close()
            client.close()
            accepted.close()
        events = source.poll()
    by_proto = {e.fields["proto"]: e.fields for e in events}
    assert set(by_proto) == {"tcp", "udp"}
    assert (by_proto["tcp"]["id.resp_p"], by_proto["tcp"]["conn_state"]) == (tcp_port, "S1")
    assert by_proto["tcp"]["orig_bytes"] == len(b"still open")
    assert (by_proto["udp"]["id.resp_p"], by_proto["udp"]["orig_pkts"]) == (udp_port, 1)
    source.close()  # twice: nothing more
    assert source.poll() == []


@needs_capture
@needs_libpcap
def test_a_quiet_link_still_ends_idle_flows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(flows.TIMEOUTS, flows.UDP, 0.5)  # Zeek's minute, shortened
    monkeypatch.setattr(flows, "SWEEP_EVERY", 0.2)
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        sink.bind(("127.0.0.1", 0))
        source = LiveCapture("lo", f"udp port {sink.getsockname()[1]}")
        try:
            sender.sendto(b"once", sink.getsockname())
            wait_packets(source, 1)
            # No packet after it: the flow ends by the wall clock, not by a later packet.
            (event,) = poll_until(source, lambda ev: len(ev) == 1)
        finally:
            source.close()
        assert source.poll() == []
    assert (event.fields["_path"], event.fields["orig_pkts"]) == ("conn", 1)


# -- what cannot start ---------------------------------------------------------------------


def test_without_cap_net_raw_the_error_names_interface_and_need() -> None:
    code = (
        "from collector.sources.live import CaptureError, LiveCapture\n"
        "try:\n    LiveCapture('lo')\n"
        "except CaptureError as exc:\n    print(exc)\n"
    )
    if os.geteuid() != 0:
        with pytest.raises(CaptureError, match="live capture on lo needs root or CAP_NET_RAW"):
            LiveCapture("lo")
        return
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to run without CAP_NET_RAW as root")
    result = subprocess.run(  # root here: the same, CAP_NET_RAW dropped
        [setpriv, "--bounding-set=-net_raw", sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.strip() == "live capture on lo needs root or CAP_NET_RAW", result.stderr


@needs_libpcap
def test_an_unknown_interface_or_a_bad_filter_is_a_clear_error() -> None:
    with pytest.raises(CaptureError, match="live capture on nosuch0: no such interface"):
        LiveCapture("nosuch0")
    with pytest.raises(CaptureError, match="not an interface name"):
        LiveCapture("../lo")
    with pytest.raises(CaptureError, match="filter 'tcp port http-ish' not usable"):
        LiveCapture("lo", "tcp port http-ish")
    assert isinstance(CaptureError("x"), OSError)  # `vigie agent run` reports OSErrors


@needs_capture
@needs_libpcap
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_agent_with_a_live_source_ships_the_connections_open_at_shutdown(
    service: Service, tmp_path: Path
) -> None:
    """`kind = "live"` in the agent's TOML, through the real service: a connection still open
    when the agent stops becomes a record at close and reaches the service."""
    credential, _ = enroll(service, tmp_path)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    config = tmp_path / "agent.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\ncredentials = "{credential}"\n'
        "[delivery]\npoll_seconds = 0.2\n"
        f'[[sources]]\nkind = "live"\ninterface = "lo"\nfilter = "tcp port {port}"\n'
    )
    stop, (thread, runner) = run_in_thread(config, load_credentials(credential))
    with server, socket.create_connection(("127.0.0.1", port)) as client:
        accepted, _ = server.accept()
        with accepted:
            client.sendall(b"open at shutdown")
            wait_for(lambda: runner.sources[0].stats()["packets"] >= 3, timeout=10)
            stop.set()
            thread.join(timeout=30)
    assert not thread.is_alive()
    # The final turn spooled the record; a new agent on the same state ships it.
    stop, (thread, runner) = run_in_thread(config, load_credentials(credential))
    try:
        wait_for(lambda: _conns_to(service, port), timeout=30)
    finally:
        stop.set()
        thread.join(timeout=30)
    (conn,) = _conns_to(service, port)
    assert conn["conn_state"] == "S1"
    assert conn["orig_bytes"] == len(b"open at shutdown")


def _conns_to(service: Service, port: int) -> list[dict[str, Any]]:
    store = SQLiteEventStore.in_data_dir(service.settings.data_dir)
    try:
        docs = store.search_events(establishment=PITIE, limit=10_000)
    finally:
        store.close()
    flat = [flatten(d) for d in docs]
    return [d for d in flat if d.get("id.resp_p") == port or d.get("destination.port") == port]
