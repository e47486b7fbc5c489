"""SyslogListener over real loopback sockets: UDP, TCP with both framings, RFC 3164 and
RFC 5424, malformed frames counted while the connection goes on, the queue bound."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.sources.base import Source
from collector.sources.syslog_listener import SyslogListener
from detection.event import Event

RFC5424 = (
    "<165>1 2024-05-01T10:00:00.003Z pacs-01 dicomd 1234 ID47"
    ' [origin@32473 ip="10.0.0.5"] association refused'
)
RFC3164 = "<34>Oct 11 22:14:15 ris-02 su: 'su root' failed for lonvick on /dev/pts/8"


@pytest.fixture
def listener() -> Iterator[SyslogListener]:
    source = SyslogListener("127.0.0.1", 0, 0)
    yield source
    source.close()


def collect(source: SyslogListener, count: int, *, skipped: int = 0) -> list[Event]:
    """Poll until `count` events (and `skipped` bad records) came, or 30 s went by."""
    events: list[Event] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events += source.poll()
        if len(events) >= count and source.stats()["skipped"] >= skipped:
            break
        time.sleep(0.005)
    return events


def tcp_send(port: int, *chunks: bytes) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port))
    for chunk in chunks:
        conn.sendall(chunk)
    return conn


def test_is_a_source_with_ephemeral_ports(listener: SyslogListener) -> None:
    assert isinstance(listener, Source)
    assert listener.udp_port
    assert listener.tcp_port
    assert listener.checkpoint() == {}
    assert listener.poll() == []
    assert listener.stats()["lag_seconds"] == 0.0


def test_udp_rfc5424_and_rfc3164(listener: SyslogListener) -> None:
    assert listener.udp_port is not None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(RFC5424.encode(), ("127.0.0.1", listener.udp_port))
        sender.sendto(RFC3164.encode() + b"\n", ("127.0.0.1", listener.udp_port))
        port = sender.getsockname()[1]
    events = sorted(collect(listener, 2), key=lambda e: e.fields["message"])
    assert len(events) == 2
    modern, legacy = events  # "<165>" sorts before "<34>"
    assert modern.fields["log"]["syslog"]["appname"] == "dicomd"
    assert modern.fields["log"]["syslog"]["structured_data"] == {"origin@32473": {"ip": "10.0.0.5"}}
    assert modern.fields["host"] == {"hostname": "pacs-01"}
    assert modern.timestamp.isoformat() == "2024-05-01T10:00:00.003000+00:00"
    assert modern.fields["log"]["source"] == {"address": f"127.0.0.1:{port}"}
    assert modern.source == f"syslog+udp://127.0.0.1:{port}"
    assert legacy.fields["message"] == RFC3164  # the newline is the sender's, not the message's
    assert legacy.fields["process"] == {"name": "su"}
    assert legacy.fields["log"]["syslog"]["severity"]["name"] == "critical"
    assert legacy.timestamp.month == 10
    assert listener.stats()["read"] == 2


def test_tcp_newline_framing(listener: SyslogListener) -> None:
    assert listener.tcp_port is not None
    # Messages cut across writes, CRLF ends, a blank line.
    conn = tcp_send(
        listener.tcp_port,
        (RFC3164 + "\r\n" + RFC5424[:30]).encode(),
        (RFC5424[30:] + "\n\n").encode(),
        b"<13>2024-05-01T10:00:01Z host app: third",  # ends with the connection
    )
    port = conn.getsockname()[1]
    conn.close()
    events = collect(listener, 3)
    assert [e.fields["message"] for e in events] == [
        RFC3164,
        RFC5424,
        "<13>2024-05-01T10:00:01Z host app: third",
    ]
    assert {e.source for e in events} == {f"syslog+tcp://127.0.0.1:{port}"}
    assert events[2].fields["process"] == {"name": "app"}


def test_tcp_octet_counting_framing(listener: SyslogListener) -> None:
    assert listener.tcp_port is not None
    multiline = "<11>1 2024-05-01T10:00:02Z lis app - - - trace:\n  at line 1\n  at line 2"
    frames = b"".join(
        f"{len(m.encode())} ".encode() + m.encode() for m in (RFC5424, RFC3164, multiline)
    )
    with tcp_send(listener.tcp_port, frames[:7], frames[7:50], frames[50:]):
        events = collect(listener, 3)
    assert [e.fields["message"] for e in events] == [RFC5424, RFC3164, multiline]
    assert events[2].fields["log"]["syslog"]["message"] == "trace:\n  at line 1\n  at line 2"
    assert listener.stats()["skipped"] == 0


def test_malformed_frames_counted_and_the_connection_survives(
    listener: SyslogListener,
) -> None:
    assert listener.tcp_port is not None
    good = RFC5424.encode()
    with tcp_send(listener.tcp_port, f"{len(good)} ".encode() + good) as conn:
        assert len(collect(listener, 1)) == 1
        conn.sendall(b"garbage without a length\n")  # no length where one is due
        conn.sendall(b"99999999 too long\n")  # a length over max_message
        conn.sendall(f"{len(good)} ".encode() + good)
        events = collect(listener, 1, skipped=2)
    assert [e.fields["message"] for e in events] == [RFC5424]
    stats = listener.stats()
    assert stats["skipped"] == 2
    assert any("without its length" in error for error in stats["errors"])
    # Binary data in a newline-framed connection: counted, the next line still read.
    with tcp_send(listener.tcp_port, b"\x00\x01\x02\x03\x04\x05binary\n", RFC3164.encode() + b"\n"):
        events = collect(listener, 1, skipped=3)
    assert [e.fields["message"] for e in events] == [RFC3164]
    assert listener.stats()["skipped"] == 3


def test_python_sysloghandler_over_udp_and_tcp(listener: SyslogListener) -> None:
    assert listener.udp_port is not None
    assert listener.tcp_port is not None
    logger = logging.getLogger("vigie.test.syslog")
    logger.propagate = False
    handlers = [
        logging.handlers.SysLogHandler(("127.0.0.1", listener.udp_port)),
        logging.handlers.SysLogHandler(
            ("127.0.0.1", listener.tcp_port), socktype=socket.SOCK_STREAM
        ),
    ]
    for handler in handlers:
        logger.addHandler(handler)
    try:
        logger.warning("first")
        logger.warning("second")
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
    events = collect(listener, 4)
    # NUL-terminated frames, as the handler sends them over TCP.
    assert sorted(e.fields["message"] for e in events) == ["<12>first"] * 2 + ["<12>second"] * 2
    # No header, but the priority still says facility and severity.
    syslog = events[0].fields["log"]["syslog"]
    assert syslog["facility"]["name"] == "user"
    assert syslog["severity"]["name"] == "warning"
    assert syslog["message"] in ("first", "second")


def test_queue_bound_drops_and_counts() -> None:
    source = SyslogListener("127.0.0.1", 0, None, max_queue=5)
    try:
        assert source.tcp_port is None
        assert source.udp_port is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for n in range(12):
                sender.sendto(f"<13>message {n}".encode(), ("127.0.0.1", source.udp_port))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            stats = source.stats()
            if stats["queued"] + stats["dropped"] >= 12:
                break
            time.sleep(0.005)
        assert source.stats()["dropped"] == 7
        events = source.poll()
        assert [e.fields["message"] for e in events] == [f"<13>message {n}" for n in range(5)]
    finally:
        source.close()


def test_close_is_idempotent_and_frees_the_ports() -> None:
    source = SyslogListener("127.0.0.1", 0, 0)
    assert source.udp_port is not None
    assert source.tcp_port is not None
    ports = {"udp": source.udp_port, "tcp": source.tcp_port}
    assert _held(ports) == {"udp": 1, "tcp": 1}  # the listening sockets, as the kernel lists them
    source.close()
    source.close()
    # Checked in the kernel's tables rather than by binding the ports again: under xdist another
    # process may take a freed port at once.
    assert _held(ports) == {"udp": 0, "tcp": 0}


def _held(ports: dict[str, int]) -> dict[str, int]:
    """For each protocol, how many of this process's sockets are bound to its port."""
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed since listed
            mine.add(os.readlink(f"/proc/self/fd/{fd}"))
    held = {}
    for proto, port in ports.items():
        rows = [line.split() for line in Path(f"/proc/net/{proto}").read_text().splitlines()[1:]]
        held[proto] = sum(
            int(row[1].rsplit(":", 1)[1], 16) == port and f"socket:[{row[9]}]" in mine
            for row in rows
        )
    return held
