"""NTP named as Zeek's NTP analyzer names it: attached by the responder's port (123), confirmed
by any message its parser reads, removed (with its name) by one it cannot read; a server's
message from the originator, or a client's from the responder, turns the roles."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from collector.netmeta import extract

A, B = "192.0.2.1", "192.0.2.2"


def _ntp(mode: int, size: int = 48) -> bytes:
    return bytes([(4 << 3) | mode]) + bytes(size - 1)


def _control(data: bytes) -> bytes:
    # Mode 6: opcode, sequence, status, association, offset, count, then the data.
    return bytes([(2 << 3) | 6, 2]) + struct.pack("!HHHHH", 1, 0, 0, 0, len(data)) + data


def _conn(tmp_path: Path, packets: list[tuple[str, int, str, int, bytes]]) -> dict[str, Any]:
    frames = []
    for n, (src, sport, dst, dport, payload) in enumerate(packets):
        frame = Ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload)
        frame.time = 1_000_000 + n
        frames.append(frame)
    path = tmp_path / "ntp.pcap"
    wrpcap(str(path), frames)
    (conn,) = [r.zeek() for r in extract([path]) if r.path == "conn"]
    return conn


@pytest.mark.parametrize(
    ("packets", "service"),
    [
        ([(A, 40000, B, 123, _ntp(3)), (B, 123, A, 40000, _ntp(4))], "ntp"),
        ([(A, 40000, B, 123, _control(b"abcd"))], "ntp"),
        ([(A, 40000, B, 123, _ntp(0, 4))], "ntp"),  # mode 0: anything parses
        # Too short for its mode: the analyzer is removed, and a later message does not count.
        ([(A, 40000, B, 123, _ntp(3, 40)), (B, 123, A, 40000, _ntp(4))], None),
        ([(A, 40000, B, 123, _control(b"abcd")[:-1])], None),
        # Named first, then a message it cannot read: the name goes.
        ([(A, 40000, B, 123, _ntp(3)), (B, 123, A, 40000, _ntp(4, 20))], None),
        # Another responder port: no NTP analyzer.
        ([(A, 40000, B, 5000, _ntp(3))], None),
    ],
)
def test_ntp_is_named_as_zeek_confirms_it(
    tmp_path: Path, packets: list[tuple[str, int, str, int, bytes]], service: str | None
) -> None:
    assert _conn(tmp_path, packets)["service"] == service


def test_a_server_message_from_the_originator_turns_the_roles(tmp_path: Path) -> None:
    """Both ports 123: the first sender is the originator, until its message says it is the
    server (mode 4)."""
    conn = _conn(tmp_path, [(A, 123, B, 123, _ntp(4)), (B, 123, A, 123, _ntp(3))])
    assert (conn["id.orig_h"], conn["id.resp_h"], conn["service"]) == (B, A, "ntp")
    assert (conn["history"], conn["orig_pkts"], conn["resp_pkts"]) == ("^dD", 1, 1)
    client_first = _conn(tmp_path, [(A, 123, B, 123, _ntp(3)), (B, 123, A, 123, _ntp(4))])
    assert (client_first["id.orig_h"], client_first["history"]) == (A, "Dd")
