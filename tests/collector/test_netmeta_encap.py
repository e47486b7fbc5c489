"""Every link layer and encapsulation of issue 12, on captures made here with scapy.

One TCP connection (handshake, a request, an answer, both FINs) is wrapped in each
encapsulation in turn. Zeek logs the inner connection whatever carries it, with the inner IP
packets' lengths (conn.log's *_ip_bytes count IP bytes, the innermost IP header on), so each
wrapped capture must give the very record of the plain Ethernet one. UDP tunnels (VXLAN,
Geneve, Teredo, AYIYA, GTP) are a connection of their own in Zeek's conn.log too; GRE, ERSPAN
and IP-in-IP are not (Zeek's erspanII baseline: only the inner ICMP flow is logged).
Damaged copies of these captures never crash the decoder, and their damage is counted.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scapy.contrib.chdlc import CHDLC
from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III
from scapy.contrib.geneve import GENEVE
from scapy.contrib.gtp import GTP_U_Header
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet, Raw

from collector.netmeta import NetmetaStats, extract

C4, S4 = "10.1.1.1", "10.2.2.2"
C6, S6 = "2001:db8::1", "2001:db8::2"
# The tunnel's own endpoints (the mirror, the switch, the relay).
A4, B4 = "192.0.2.1", "192.0.2.2"
A6, B6 = "2001:db8:ffff::1", "2001:db8:ffff::2"
REQUEST = b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n"
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def _eth(**fields: Any) -> Packet:
    # Addresses set: left unset, scapy would look the destination up on the network.
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **fields)


def _flow(v6: bool) -> list[tuple[bool, Packet]]:
    """(from the client?, inner IP packet) for one whole HTTP connection."""
    client, server = (C6, S6) if v6 else (C4, S4)
    ip: Callable[..., Packet] = IPv6 if v6 else IP

    def pkt(up: bool, flags: str, seq: int, ack: int, data: bytes = b"") -> tuple[bool, Packet]:
        src, dst, sport, dport = (client, server, 40000, 80) if up else (server, client, 80, 40000)
        packet = ip(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack)
        return up, packet / Raw(data) if data else packet

    c, s, n, m = 1000, 5000, len(REQUEST), len(ANSWER)
    return [
        pkt(True, "S", c, 0),
        pkt(False, "SA", s, c + 1),
        pkt(True, "A", c + 1, s + 1),
        pkt(True, "PA", c + 1, s + 1, REQUEST),
        pkt(False, "PA", s + 1, c + 1 + n, ANSWER),
        pkt(True, "FA", c + 1 + n, s + 1 + m),
        pkt(False, "FA", s + 1 + m, c + 2 + n),
        pkt(True, "A", c + 2 + n, s + 2 + m),
    ]


def _outer4(up: bool, proto: int) -> Packet:
    return _eth() / IP(src=A4 if up else B4, dst=B4 if up else A4, proto=proto)


def _udp4(up: bool, port: int) -> Packet:
    # The tunnel's client side sends from a high port to the tunnel's port, as a relay would.
    sport, dport = (50000, port) if up else (port, 50000)
    return _eth() / IP(src=A4 if up else B4, dst=B4 if up else A4) / UDP(sport=sport, dport=dport)


def _nflog(inner: bytes) -> bytes:
    header = bytes((2, 0, 0, 0))  # AF_INET, version 0, resource id 0
    prefix = b"vigie\0\0\0"
    tlvs = struct.pack("<HH", 4 + len(prefix), 10) + prefix  # NFULA_PREFIX, padded to 4
    payload = struct.pack("<HH", 4 + len(inner), 9) + inner  # NFULA_PAYLOAD
    return header + tlvs + payload + b"\0" * (-len(payload) % 4)


def _ayiya(next_header: int) -> bytes:
    # Identity length 2**4 = 16 bytes (an IPv6 address), a 20-byte SHA-1 signature, opcode 1
    # (forward), the next header, the epoch time; then identity and signature.
    return bytes((0x41, 0x52, 0x11, next_header)) + b"\0\0\0\1" + b"\0" * 36


# name -> (inner IPv6?, link type, how one inner packet is wrapped: (up, inner) -> frame bytes)
Wrap = Callable[[bool, Packet], bytes]
ENCAPSULATIONS: dict[str, tuple[bool, int, Wrap]] = {
    "ethernet": (False, 1, lambda up, p: bytes(_eth() / p)),
    "802.1q": (False, 1, lambda up, p: bytes(_eth() / Dot1Q(vlan=10) / p)),
    "qinq": (False, 1, lambda up, p: bytes(_eth() / Dot1AD(vlan=100) / Dot1Q(vlan=10) / p)),
    "mpls": (False, 1, lambda up, p: bytes(_eth(type=0x8847) / MPLS(label=16, s=1) / p)),
    "mpls-in-vlan": (
        False,
        1,
        lambda up, p: bytes(
            _eth() / Dot1Q(vlan=7, type=0x8847) / MPLS(label=16, s=0) / MPLS(label=17, s=1) / p
        ),
    ),
    "pppoe": (
        False,
        1,
        lambda up, p: bytes(_eth() / PPPoE(sessionid=1) / PPP(proto=0x21) / p),
    ),
    "pppoe-ipv6": (
        True,
        1,
        lambda up, p: bytes(_eth() / PPPoE(sessionid=1) / PPP(proto=0x57) / p),
    ),
    "linux-sll": (False, 113, lambda up, p: bytes(CookedLinux(pkttype=0 if up else 4) / p)),
    "linux-sll2": (False, 276, lambda up, p: bytes(CookedLinuxV2(proto=0x0800) / p)),
    "nflog": (False, 239, lambda up, p: _nflog(bytes(p))),
    "ppi": (False, 192, lambda up, p: struct.pack("<BBHI", 0, 0, 8, 1) + bytes(_eth() / p)),
    "cisco-hdlc": (False, 104, lambda up, p: bytes(CHDLC(address=0x0F, proto=0x0800) / p)),
    "fabricpath": (
        False,
        1,
        # Outer switch addresses, the FabricPath type and tag, then the host's frame.
        lambda up, p: b"\x02" * 12 + b"\x89\x03\x00\x20" + bytes(_eth() / p),
    ),
    "pbb": (
        False,
        1,
        lambda up, p: bytes(_eth(type=0x88E7)) + b"\0\0\0\1" + bytes(_eth() / p),
    ),
    "gre": (False, 1, lambda up, p: bytes(_outer4(up, 47) / GRE(proto=0x0800) / p)),
    "gre-ipv6-in-ipv4": (True, 1, lambda up, p: bytes(_outer4(up, 47) / GRE(proto=0x86DD) / p)),
    "gre-ethernet": (
        False,
        1,
        lambda up, p: bytes(_outer4(up, 47) / GRE(proto=0x6558, key_present=1, key=9) / _eth() / p),
    ),
    "erspan-i": (False, 1, lambda up, p: bytes(_outer4(up, 47) / GRE(proto=0x88BE) / _eth() / p)),
    "erspan-ii": (
        False,
        1,
        lambda up, p: bytes(
            _outer4(up, 47)
            / GRE(proto=0x88BE, seqnum_present=1, sequence_number=1)
            / ERSPAN_II(session_id=3)
            / _eth()
            / p
        ),
    ),
    "erspan-iii": (
        False,
        1,
        lambda up, p: bytes(
            _outer4(up, 47) / GRE(proto=0x22EB) / ERSPAN_III(session_id=3) / _eth() / p
        ),
    ),
    "erspan-iii-platform": (
        False,
        1,
        # The O flag: an 8-byte platform-specific subheader follows the 12-byte header.
        lambda up, p: (
            bytes(_outer4(up, 47) / GRE(proto=0x22EB) / ERSPAN_III(o=1))
            + b"\0" * 8
            + bytes(_eth() / p)
        ),
    ),
    "vxlan": (False, 1, lambda up, p: bytes(_udp4(up, 4789) / VXLAN(vni=42) / _eth() / p)),
    "geneve": (
        False,
        1,
        lambda up, p: bytes(_udp4(up, 6081) / GENEVE(vni=42, proto=0x6558) / _eth() / p),
    ),
    "geneve-ip": (False, 1, lambda up, p: bytes(_udp4(up, 6081) / GENEVE(proto=0x0800) / p)),
    "teredo": (True, 1, lambda up, p: bytes(_udp4(up, 3544) / p)),
    "ayiya": (False, 1, lambda up, p: bytes(_udp4(up, 5072) / Raw(_ayiya(4)) / p)),
    "ayiya-ipv6": (True, 1, lambda up, p: bytes(_udp4(up, 5072) / Raw(_ayiya(41)) / p)),
    "gtp-u": (
        False,
        1,
        lambda up, p: bytes(_udp4(up, 2152) / GTP_U_Header(gtp_type=255, teid=7) / p),
    ),
    "ip-in-ip": (False, 1, lambda up, p: bytes(_outer4(up, 4) / p)),
    "6in4": (True, 1, lambda up, p: bytes(_outer4(up, 41) / p)),
    "4in6": (
        False,
        1,
        lambda up, p: bytes(_eth() / IPv6(src=A6 if up else B6, dst=B6 if up else A6, nh=4) / p),
    ),
    "6in6": (
        True,
        1,
        lambda up, p: bytes(_eth() / IPv6(src=A6 if up else B6, dst=B6 if up else A6, nh=41) / p),
    ),
}
TUNNEL_TYPES = {
    **{name: "Tunnel::GRE" for name in ENCAPSULATIONS if name.startswith(("gre", "erspan"))},
    "vxlan": "Tunnel::VXLAN", "geneve": "Tunnel::GENEVE", "geneve-ip": "Tunnel::GENEVE",
    "teredo": "Tunnel::TEREDO", "ayiya": "Tunnel::AYIYA", "ayiya-ipv6": "Tunnel::AYIYA",
    "gtp-u": "Tunnel::GTPv1", "ip-in-ip": "Tunnel::IP", "6in4": "Tunnel::IP",
    "4in6": "Tunnel::IP", "6in6": "Tunnel::IP",
}  # fmt: skip
UDP_TUNNELS = {"vxlan", "geneve", "geneve-ip", "teredo", "ayiya", "ayiya-ipv6", "gtp-u"}
# The service Zeek's conn.log gives a UDP tunnel's own flow: its tunnel analyzer's name.
TUNNEL_SERVICES = {"vxlan": "vxlan", "geneve": "geneve", "geneve-ip": "geneve"}
TUNNEL_SERVICES |= {"teredo": "teredo", "ayiya": "ayiya", "ayiya-ipv6": "ayiya", "gtp-u": "gtpv1"}


def _frames(name: str) -> tuple[int, list[bytes]]:
    v6, linktype, wrap = ENCAPSULATIONS[name]
    return linktype, [wrap(up, packet) for up, packet in _flow(v6)]


def _pcap(path: Path, linktype: int, frames: list[bytes]) -> Path:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for i, frame in enumerate(frames):
        out.append(struct.pack("<IIII", 1_700_000_000, i * 1000, len(frame), len(frame)))
        out.append(frame)
    path.write_bytes(b"".join(out))
    return path


def _conns(path: Path, stats: NetmetaStats | None = None) -> list[dict[str, Any]]:
    records = [r.zeek() for r in extract([path], stats, verify_checksums=True)]
    return [r for r in records if r["_path"] == "conn"]


FIELDS = ("proto", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "service", "conn_state")
FIELDS += ("history", "orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes")


def _inner(conns: list[dict[str, Any]], v6: bool) -> list[dict[str, Any]]:
    client = C6 if v6 else C4
    return [{k: c[k] for k in FIELDS} for c in conns if c["id.orig_h"] == client]


def _expected(v6: bool, tmp_path: Path) -> dict[str, Any]:
    linktype, frames = _frames("pppoe-ipv6" if v6 else "ethernet")
    (conn,) = _inner(_conns(_pcap(tmp_path / "plain.pcap", linktype, frames)), v6)
    return conn


def test_the_plain_connection_is_as_zeek_logs_it(tmp_path: Path) -> None:
    conn = _expected(False, tmp_path)
    ip_bytes = 5 * 40 + len(REQUEST), 3 * 40 + len(ANSWER)
    assert conn == {
        "proto": "tcp", "id.orig_h": C4, "id.orig_p": 40000, "id.resp_h": S4, "id.resp_p": 80,
        "service": "http", "conn_state": "SF", "history": "ShADdFf", "orig_pkts": 5,
        "resp_pkts": 3, "orig_ip_bytes": ip_bytes[0], "resp_ip_bytes": ip_bytes[1],
    }  # fmt: skip


@pytest.mark.parametrize("name", sorted(ENCAPSULATIONS))
def test_inner_connection_is_found_and_counted_as_zeek_counts_it(name: str, tmp_path: Path) -> None:
    v6 = ENCAPSULATIONS[name][0]
    linktype, frames = _frames(name)
    stats = NetmetaStats()
    conns = _conns(_pcap(tmp_path / f"{name}.pcap", linktype, frames), stats)
    assert stats.malformed == stats.undecoded == stats.bad_checksums == 0
    assert _inner(conns, v6) == [_expected(v6, tmp_path)]
    outer = [c for c in conns if c["id.orig_h"] in (A4, A6)]
    if name in UDP_TUNNELS:
        # The tunnel's UDP flow is a connection of its own, every frame counted once.
        (tunnel,) = outer
        assert tunnel["proto"] == "udp"
        assert (tunnel["orig_pkts"], tunnel["resp_pkts"]) == (5, 3)
        assert tunnel["conn_state"] == "SF"
        assert tunnel["service"] == TUNNEL_SERVICES[name]
    else:
        assert outer == []  # Zeek logs no conn for GRE, ERSPAN or IP-in-IP carriers
    assert len(conns) == 1 + len(outer)
    # The tunnel is the inner connection's parent, and logged in tunnel.log as Zeek does:
    # DISCOVER when it first carries something, CLOSE when its UDP flow ends.
    (inner,) = (c for c in conns if c not in outer)
    tunnels = [r.zeek() for r in extract([tmp_path / f"{name}.pcap"]) if r.path == "tunnel"]
    kind = TUNNEL_TYPES.get(name)
    if kind is None:
        assert inner["tunnel_parents"] is None
        assert tunnels == []
    elif name in UDP_TUNNELS:
        assert inner["tunnel_parents"] == [outer[0]["uid"]]
        assert [(t["uid"], t["tunnel_type"], t["action"]) for t in tunnels] == [
            (outer[0]["uid"], kind, "Tunnel::DISCOVER"),
            (outer[0]["uid"], kind, "Tunnel::CLOSE"),
        ]
        assert tunnels[0]["id.resp_p"] == outer[0]["id.resp_p"]
    else:
        (discover,) = tunnels
        assert inner["tunnel_parents"] == [discover["uid"]]
        assert (discover["tunnel_type"], discover["action"]) == (kind, "Tunnel::DISCOVER")
        assert (discover["id.orig_p"], discover["id.resp_p"]) == (0, 0)
        assert {discover["id.orig_h"], discover["id.resp_h"]} in ({A4, B4}, {A6, B6})


def test_mirrored_copies_are_each_counted(tmp_path: Path) -> None:
    """A SPAN or ERSPAN session often sends each packet twice (ingress and egress): Zeek counts
    every copy in the inner connection, and so must Vigie."""
    linktype, frames = _frames("erspan-ii")
    doubled = [frame for frame in frames for _ in range(2)]
    (conn,) = _inner(_conns(_pcap(tmp_path / "twice.pcap", linktype, doubled)), False)
    assert (conn["orig_pkts"], conn["resp_pkts"]) == (10, 6)
    once = _expected(False, tmp_path)
    assert conn["orig_ip_bytes"] == 2 * once["orig_ip_bytes"]
    # Each payload's copy is a retransmission to Zeek (T/t); copies of SYN and FIN repeat no
    # letter, their sequence numbers being the same.
    assert conn["history"] == "ShADTdtFf"


IPV6_OUTER = frozenset(("4in6", "6in6"))
OUTER_IPV6_NEXT = 14 + 6  # Ethernet, then the IPv6 header's next-header byte


def _inner_ipv6_next(frame: bytes) -> int:
    """Where the inner IPv6 header's next-header byte is in a frame (-1: no inner IPv6): the
    header is found by its two addresses, the client's and the server's, one after the other."""
    client, server = socket.inet_pton(socket.AF_INET6, C6), socket.inet_pton(socket.AF_INET6, S6)
    for first, second in ((client, server), (server, client)):
        at = frame.find(first + second)
        if at >= 8:
            return at - 2
    return -1


def _key(conns: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(tuple(str(c[k]) for k in FIELDS) for c in conns)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(sorted(ENCAPSULATIONS)),
    damage=st.lists(
        st.tuples(st.integers(0, 7), st.integers(0, 200), st.integers(0, 255)),
        min_size=1,
        max_size=6,
    ),
    cut=st.one_of(st.none(), st.tuples(st.integers(0, 7), st.integers(0, 120))),
)
def test_damaged_encapsulations_never_crash_and_are_counted(
    name: str, damage: list[tuple[int, int, int]], cut: tuple[int, int] | None, tmp_path: Path
) -> None:
    """Bytes changed anywhere in the frames, or a frame cut short: no exception, and either
    the records are those of the intact capture (the damage hit a field nothing reads, such as
    an address or a tunnel's identifier) or the damage is counted (malformed, undecoded, a bad
    checksum). Checksums are verified, as Zeek does by default."""
    linktype, frames = _frames(name)
    # IPv6 has no header checksum: a changed next header in an outer IPv6 header makes another
    # valid packet (an unknown protocol), which no decoder can tell from damage.
    assume(
        name not in IPV6_OUTER
        or all(pos % len(frames[i]) != OUTER_IPV6_NEXT for i, pos, _ in damage)
    )
    # The same for the inner IPv6 header's next header: another protocol, no damage to see.
    assume(all(pos % len(frames[i]) != _inner_ipv6_next(frames[i]) for i, pos, _ in damage))
    intact = _key(_conns(_pcap(tmp_path / "intact.pcap", linktype, frames)))
    broken = [bytearray(frame) for frame in frames]
    for index, pos, value in damage:
        frame = broken[index]
        frame[pos % len(frame)] = value
    if cut is not None:
        index, keep = cut
        del broken[index][keep:]
    stats = NetmetaStats()
    # A cut frame is written as that short on the wire too: its IP length then overruns it.
    path = _pcap(tmp_path / "broken.pcap", linktype, [bytes(f) for f in broken])
    got = _key(_conns(path, stats))
    counted = stats.malformed + stats.undecoded + stats.bad_checksums + stats.read.bad_records
    assert got == intact or counted, f"{name}: records changed, no damage counted"


@pytest.mark.parametrize(("changes", "history"), [(5, "ShADdFf"), (6, "ShADdFXf")])
def test_a_connection_changing_tunnels_too_often_is_marked_x(
    tmp_path: Path, changes: int, history: str
) -> None:
    """Zeek counts the changes of the tunnel a connection's packets come through (direct, or a
    GRE tunnel, here), up to Tunnel::max_changes_per_connection (5); a change past that marks
    the connection's analysis partial: X in the history, before that packet's own letter (the
    sixth change comes with the server's FIN)."""
    frames = []
    for n, (_up, inner) in enumerate(_flow(False)):
        # Packets 1..changes alternate tunnelled and direct; the rest stay as the last one.
        tunnelled = min(n, changes) % 2 == 1
        outer = _outer4(True, 47) / GRE(proto=0x0800) / inner if tunnelled else _eth() / inner
        frames.append(bytes(outer))
    (conn,) = _inner(_conns(_pcap(tmp_path / "x.pcap", 1, frames)), False)
    assert conn["history"] == history


# A tunnel's UDP flow, one packet each way unless said: (name, frames, the service Zeek names).
# Zeek confirms VXLAN, Geneve, AYIYA and GTPv1 on one valid packet; Teredo once both sides sent
# one (Tunnel::delay_teredo_confirmation), a bubble counting even with bytes after it.
_INNER4 = IP(src=C4, dst=S4) / UDP(sport=1234, dport=53) / Raw(b"x" * 12)
_INNER6 = IPv6(src=C6, dst=S6) / UDP(sport=1234, dport=53) / Raw(b"x" * 12)
_BUBBLE = IPv6(src=C6, dst=S6, nh=59, plen=0)
SERVICE_CASES: list[tuple[str, list[bytes], str | None]] = [
    ("vxlan-one-way", [bytes(_udp4(True, 4789) / VXLAN(vni=1) / _eth() / _INNER4)], "vxlan"),
    ("vxlan-header-only", [bytes(_udp4(True, 4789) / VXLAN(vni=1))], "vxlan"),
    ("vxlan-no-vni-flag", [bytes(_udp4(True, 4789) / VXLAN(flags=0) / _eth() / _INNER4)], None),
    ("geneve-one-way", [bytes(_udp4(True, 6081) / GENEVE(proto=0x0800) / _INNER4)], "geneve"),
    (
        "geneve-version-1",
        [bytes(_udp4(True, 6081) / GENEVE(version=1, proto=0x0800) / _INNER4)],
        None,
    ),
    ("gtp-one-way", [bytes(_udp4(False, 2152) / GTP_U_Header(gtp_type=255) / _INNER4)], "gtpv1"),
    (
        "gtp-inner-length-wrong",
        [bytes(_udp4(True, 2152) / GTP_U_Header(gtp_type=255) / Raw(bytes(_INNER4) + b"pad"))],
        None,
    ),
    ("gtp-echo", [bytes(_udp4(True, 2152) / GTP_U_Header(gtp_type=1) / _INNER4)], None),
    ("ayiya-answer-only", [bytes(_udp4(False, 5072) / Raw(_ayiya(4)) / _INNER4)], "ayiya"),
    (
        "ayiya-not-forward",
        [bytes(_udp4(True, 5072) / Raw(bytes((0x41, 0x52, 0x12, 4)) + b"\0" * 40) / _INNER4)],
        None,
    ),
    ("teredo-one-way", [bytes(_udp4(True, 3544) / _INNER6)] * 2, None),
    (
        "teredo-both-ways",
        [bytes(_udp4(True, 3544) / _INNER6), bytes(_udp4(False, 3544) / _BUBBLE)],
        "teredo",
    ),
    (
        "teredo-bubble-with-payload",
        [
            bytes(_udp4(True, 3544) / Raw(bytes(_BUBBLE) + b"junk")),
            bytes(_udp4(False, 3544) / _INNER6),
        ],
        "teredo",
    ),
    (
        "teredo-length-wrong",
        [
            bytes(_udp4(True, 3544) / Raw(bytes(_INNER6) + b"pad")),
            bytes(_udp4(False, 3544) / _INNER6),
        ],
        None,
    ),
]


@pytest.mark.parametrize(
    ("name", "frames", "service"), SERVICE_CASES, ids=[c[0] for c in SERVICE_CASES]
)
def test_a_tunnel_flow_is_named_as_zeek_confirms_it(
    name: str, frames: list[bytes], service: str | None, tmp_path: Path
) -> None:
    conns = _conns(_pcap(tmp_path / f"{name}.pcap", 1, frames))
    (outer,) = (c for c in conns if c["id.orig_h"] in (A4, B4))
    assert outer["proto"] == "udp"
    assert outer["service"] == service


def _timed_pcap(path: Path, frames: list[tuple[float, bytes]]) -> Path:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for ts, frame in frames:
        out.append(struct.pack("<IIII", 1_700_000_000 + int(ts), 0, len(frame), len(frame)))
        out.append(frame)
    path.write_bytes(b"".join(out))
    return path


def _tunnel_log(path: Path) -> list[tuple[int, str, str, str]]:
    """(seconds into the capture, tunnel type, action, uid) of each tunnel.log line."""
    lines = [r.zeek() for r in extract([path]) if r.path == "tunnel"]
    return [
        (round(t["ts"] - 1_700_000_000), t["tunnel_type"], t["action"], t["uid"]) for t in lines
    ]


def _query(sport: int) -> Packet:
    return IP(src=C4, dst=S4) / UDP(sport=sport, dport=53) / Raw(b"x" * 12)


def test_every_tunnel_of_a_chain_is_discovered(tmp_path: Path) -> None:
    """Zeek registers the whole chain of a new connection's tunnels: GRE inside VXLAN, or GRE
    inside GRE, logs the outer tunnel too, though only the inner one is the conn's parent."""
    vxlan_gre = (
        _udp4(True, 4789)
        / VXLAN(vni=1)
        / _eth()
        / IP(src="198.51.100.1", dst="198.51.100.2", proto=47)
    )
    frames = [(0.0, bytes(vxlan_gre / GRE(proto=0x0800) / _query(1000)))]
    log = _tunnel_log(_timed_pcap(tmp_path / "vxlan-gre.pcap", frames))
    assert [(kind, action) for _, kind, action, _ in log] == [
        ("Tunnel::VXLAN", "Tunnel::DISCOVER"),
        ("Tunnel::GRE", "Tunnel::DISCOVER"),
        ("Tunnel::VXLAN", "Tunnel::CLOSE"),
    ]
    gre_in_gre = (
        _outer4(True, 47) / GRE(proto=0x0800) / IP(src="198.51.100.1", dst="198.51.100.2", proto=47)
    )
    frames = [(0.0, bytes(gre_in_gre / GRE(proto=0x0800) / _query(1000)))]
    log = _tunnel_log(_timed_pcap(tmp_path / "gre-gre.pcap", frames))
    assert [(kind, action) for _, kind, action, _ in log] == [
        ("Tunnel::GRE", "Tunnel::DISCOVER"),
        ("Tunnel::GRE", "Tunnel::DISCOVER"),
    ]
    assert log[0][3] != log[1][3]


def test_a_tunnel_no_new_connection_came_through_for_an_hour_expires(tmp_path: Path) -> None:
    """Tunnel::expiration_interval (1 h) counts from the last new connection, not the last
    packet: a VXLAN flow carrying one long conversation expires after an hour (and logs no
    CLOSE then); a new connection after that discovers it again."""
    frames = [
        (ts, bytes(_udp4(True, 4789) / VXLAN(vni=1) / _eth() / _query(1000)))
        for ts in range(0, 3700, 50)
    ]
    # Zeek looks at its table on a packet past the hour (here 3650 s), then a new connection.
    frames.append((3690.0, bytes(_udp4(True, 4789) / VXLAN(vni=1) / _eth() / _query(2000))))
    log = _tunnel_log(_timed_pcap(tmp_path / "expire.pcap", frames))
    (uid,) = {line[3] for line in log}
    assert [(ts, action) for ts, _, action, _ in log] == [
        (0, "Tunnel::DISCOVER"),
        (3650, "Tunnel::EXPIRE"),
        (3690, "Tunnel::DISCOVER"),
        (3690, "Tunnel::CLOSE"),
    ]
    # New connections within the hour keep it: one DISCOVER, one CLOSE.
    frames = [
        (ts, bytes(_udp4(True, 4789) / VXLAN(vni=1) / _eth() / _query(1000 + ts)))
        for ts in range(0, 7200, 50)
    ]
    log = _tunnel_log(_timed_pcap(tmp_path / "kept.pcap", frames))
    assert [action for _, _, action, _ in log] == ["Tunnel::DISCOVER", "Tunnel::CLOSE"]
