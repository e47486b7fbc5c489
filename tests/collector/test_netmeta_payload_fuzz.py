"""Fuzz: the payload readers added for issue 12 (STARTTLS handovers, FTP, SSH, IRC, IMAP, NTP,
HTTP, TLS) on damaged and random conversations over their own ports.

Whatever the bytes, `extract` must not fail, and the connection must still be logged, counted
packet for packet: a reader that gives up names no service, it loses nothing else."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from tests.collector.test_netmeta_starttls import CASES, HELLO, MAC, C, S, _records, _session

# Each reader's port, with openings that reach deep into it, to be cut and flipped below.
PORTS = sorted({port for port, _talk, *_ in CASES.values()} | {22, 80, 443, 6667, 143, 21})
OPENINGS = [data for _port, talk, *_ in CASES.values() for _client, data in talk] + [
    data for _client, data in HELLO
]
OPENINGS += [
    b"SSH-2.0-OpenSSH_9.6\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    b"NICK a\r\nUSER a 0 * :a\r\n",
    b"a1 STARTTLS\r\n",
    b"* OK IMAP4rev1 ready\r\n",
]


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """An opening cut, with bytes flipped or added, or random bytes."""
    if draw(st.booleans()):
        return draw(st.binary(min_size=1, max_size=300))
    data = bytearray(draw(st.sampled_from(OPENINGS)))
    data = data[: draw(st.integers(1, len(data)))]
    for _ in range(draw(st.integers(0, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data) + draw(st.binary(max_size=20))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    port=st.sampled_from(PORTS),
    talk=st.lists(st.tuples(st.booleans(), damaged()), min_size=1, max_size=6),
)
def test_damaged_payloads_lose_nothing_else(port: int, talk: list[tuple[bool, bytes]]) -> None:
    frames = _session(port, talk)
    with tempfile.TemporaryDirectory() as folder:
        found = _records(Path(folder), frames)
    conns = [c for c in found["conn"] if c["proto"] == "tcp"]
    assert len(conns) == 1
    conn = conns[0]
    client = 4 + sum(1 for c, _ in talk if c)  # SYN, ACK, FIN-ACK, ACK and its segments
    server = 2 + sum(1 for c, _ in talk if not c)  # SYN-ACK, FIN-ACK and its segments
    assert (conn["orig_pkts"], conn["resp_pkts"]) == (client, server)
    assert conn["id.resp_p"] == port


# NTP, DNS and the UDP tunnels Vigie decodes (Teredo, AYIYA, VXLAN, Geneve, GTPv1).
UDP_PORTS = [123, 53, 3544, 5072, 4789, 6081, 2152]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    port=st.sampled_from(UDP_PORTS),
    talk=st.lists(st.tuples(st.booleans(), st.binary(max_size=120)), min_size=1, max_size=6),
)
def test_damaged_datagrams_lose_nothing_else(port: int, talk: list[tuple[bool, bytes]]) -> None:
    """Roles may turn (NTP, DNS answers first), inner connections may appear (a payload read as
    a tunnel's), but the flow itself is logged once with every datagram counted."""
    frames = []
    for number, (client, data) in enumerate(talk):
        ends = (C, S, 40000, port) if client else (S, C, port, 40000)
        frame = Ether(src=MAC, dst=MAC) / IP(src=ends[0], dst=ends[1])
        frame = frame / UDP(sport=ends[2], dport=ends[3]) / Raw(data)
        frame.time = 1_000_000 + number * 0.01
        frames.append(frame)
    with tempfile.TemporaryDirectory() as folder:
        found = _records(Path(folder), frames)
    outer = [
        c
        for c in found["conn"]
        if c["proto"] == "udp" and {c["id.orig_p"], c["id.resp_p"]} == {40000, port}
    ]
    assert len(outer) == 1
    assert outer[0]["orig_pkts"] + outer[0]["resp_pkts"] == len(talk)
