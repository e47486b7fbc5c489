"""Connection lifetime as Zeek's: reused 4-tuples, its TCP timers, one-sided captures.

Each capture is made with scapy and written to tmp_path; what is expected is what Zeek's TCP
session adapter does (src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc: IsReuse, the
state machine, ConnectionClosed and its timers) and its default timeouts (tcp 5 min, udp and
icmp 1 min, attempt and close delays 5 s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

from collector.netmeta import extract

C, S = "10.0.0.1", "10.0.0.2"
CP, SP = 40000, 8080  # 8080 is a likely server port for Zeek; the client's is not
MAC = "02:00:00:00:00:01"  # set: left unset, scapy would look it up on the network


def _tcp(
    t: float, client: bool, flags: str, seq: int, ack: int = 0, data: bytes = b"", win: int = 8192
) -> Packet:
    src, dst, sport, dport = (C, S, CP, SP) if client else (S, C, SP, CP)
    tcp = TCP(sport=sport, dport=dport, flags=flags, seq=seq, window=win)
    frame = Ether(src=MAC, dst=MAC) / IP(src=src, dst=dst) / tcp
    frame[TCP].ack = ack
    if data:
        frame = frame / Raw(data)
    frame.time = 1_000_000 + t
    return frame


def _conns(tmp_path: Path, frames: list[Packet]) -> list[dict[str, Any]]:
    path = tmp_path / "capture.pcap"
    wrpcap(str(path), frames)
    records = [r.zeek() for r in extract([path])]
    conns = sorted((r for r in records if r["_path"] == "conn"), key=lambda r: r["ts"])
    return conns


def _summary(conns: list[dict[str, Any]]) -> list[tuple[str, str | None, int, int]]:
    return [(c["conn_state"], c["history"], c["orig_pkts"], c["resp_pkts"]) for c in conns]


def test_syn_after_reset_starts_a_new_connection(tmp_path: Path) -> None:
    # A refused SYN, tried again with the same ISN: Zeek's IsReuse is true once a side closed.
    frames = [
        _tcp(0, True, "S", 100),
        _tcp(0.1, False, "RA", 0, 101),
        _tcp(1, True, "S", 100),
        _tcp(1.1, False, "RA", 0, 101),
    ]
    assert _summary(_conns(tmp_path, frames)) == [("REJ", "Sr", 1, 1), ("REJ", "Sr", 1, 1)]


def test_syn_after_a_close_starts_a_new_connection(tmp_path: Path) -> None:
    frames = [
        _tcp(0, True, "S", 100),
        _tcp(0.1, False, "SA", 500, 101),
        _tcp(0.2, True, "A", 101, 501),
        _tcp(0.3, True, "PA", 101, 501, b"hello"),
        _tcp(0.4, False, "FA", 501, 106),
        _tcp(0.5, True, "FA", 106, 502),
        _tcp(0.6, False, "A", 502, 107),
        _tcp(2, True, "S", 9000),  # the same ports, 1.4 s later: within the close delay
    ]
    assert _summary(_conns(tmp_path, frames)) == [
        ("SF", "ShADfFa", 4, 3),
        ("S0", "S", 1, 0),
    ]


def test_retried_handshake_with_a_new_isn_is_a_new_connection(tmp_path: Path) -> None:
    # Not closed, but the SYN's sequence number is not the originator's first: Zeek's reuse.
    frames = [_tcp(0, True, "S", 100), _tcp(1, True, "S", 7000), _tcp(1.1, False, "SA", 1, 7001)]
    assert _summary(_conns(tmp_path, frames)) == [("S0", "S", 1, 0), ("S1", "Sh", 1, 1)]


def test_syn_retransmissions_end_with_the_attempt_delay(tmp_path: Path) -> None:
    # The same SYN at 0, 1, 3 s is one attempt; Zeek drops an unanswered attempt after 5 s,
    # so the retransmission at 7 s opens a new connection.
    frames = [_tcp(t, True, "S", 100) for t in (0, 1, 3, 7)]
    assert _summary(_conns(tmp_path, frames)) == [("S0", "S", 3, 0), ("S0", "S", 1, 0)]


def test_packet_after_the_close_delay_is_a_new_connection(tmp_path: Path) -> None:
    frames = [
        _tcp(0, True, "S", 100),
        _tcp(0.1, False, "SA", 500, 101),
        _tcp(0.2, True, "A", 101, 501),
        _tcp(0.3, True, "FA", 101, 501),
        _tcp(0.4, False, "FA", 501, 102),
        _tcp(3, True, "A", 102, 502),  # inside the 5 s close delay: the same connection
        _tcp(10, True, "A", 102, 502),  # after it: a new, partial connection
    ]
    conns = _conns(tmp_path, frames)
    assert _summary(conns) == [("SF", "ShAFf", 4, 2), ("OTH", "A", 1, 0)]


def test_one_sided_capture_originator_only(tmp_path: Path) -> None:
    frames = [
        _tcp(0, True, "S", 100),
        _tcp(0.2, True, "A", 101, 501),
        _tcp(0.3, True, "PA", 101, 501, b"GET"),
        _tcp(0.4, True, "FA", 104, 501),
    ]
    assert _summary(_conns(tmp_path, frames)) == [("SH", "SADF", 4, 0)]


def test_one_sided_capture_responder_only(tmp_path: Path) -> None:
    # Seen from its SYN-ACK, the connection is flipped (^), the server made its responder.
    frames = [
        _tcp(0.1, False, "SA", 500, 101),
        _tcp(0.3, False, "PA", 501, 104, b"200"),
        _tcp(0.4, False, "FA", 504, 104),
    ]
    assert _summary(_conns(tmp_path, frames)) == [("SHR", "^hdf", 0, 3)]


def test_syn_ack_answered_without_the_final_ack_is_established(tmp_path: Path) -> None:
    # Zeek makes both sides established at the SYN-ACK: S1, not OTH.
    frames = [_tcp(0, True, "S", 100), _tcp(0.1, False, "SA", 500, 101)]
    assert _summary(_conns(tmp_path, frames)) == [("S1", "Sh", 1, 1)]


def test_retransmitted_payload_is_t_in_the_history(tmp_path: Path) -> None:
    frames = [
        _tcp(0, True, "S", 100),
        _tcp(0.1, False, "SA", 500, 101),
        _tcp(0.2, True, "A", 101, 501),
        _tcp(0.3, True, "PA", 101, 501, b"data"),
        _tcp(0.5, True, "PA", 101, 501, b"data"),  # the same bytes again
        *(_tcp(0.6 + i / 100, False, "PA", 501, 105, b"x") for i in range(10)),  # 9 resent
    ]
    (conn,) = _conns(tmp_path, frames)
    # t once at the first retransmission, and again at the 10th would be: only 9 here.
    assert conn["history"] == "ShADTdt"


def test_idle_timeouts_per_protocol(tmp_path: Path) -> None:
    frames = []
    for t in (0, 59, 121):  # a minute idle ends UDP and ICMP flows, not TCP ones
        udp = Ether(src=MAC, dst=MAC) / IP(src=C, dst=S) / UDP(sport=5000, dport=6000) / Raw(b"x")
        icmp = Ether(src=MAC, dst=MAC) / IP(src=C, dst=S) / ICMP(type=8, id=1, seq=int(t))
        for frame in (udp, icmp):
            frame.time = 1_000_000 + t
            frames.append(frame)
    frames += [_tcp(t, True, "A", 100, 1) for t in (0, 299, 600)]  # TCP: 5 minutes
    conns = _conns(tmp_path, frames)
    counts: dict[str, list[int]] = {}
    for c in conns:
        counts.setdefault(c["proto"], []).append(c["orig_pkts"])
    assert counts == {"udp": [2, 1], "icmp": [2, 1], "tcp": [2, 1]}


def _established(extra: list[Packet]) -> list[Packet]:
    return [
        _tcp(0, True, "S", 100),
        _tcp(0.1, False, "SA", 500, 101),
        _tcp(0.2, True, "A", 101, 501),
        *extra,
    ]


def test_acknowledged_bytes_never_seen_are_a_content_gap(tmp_path: Path) -> None:
    # The server's bytes 501-600 were lost to the capture, not to the client, which acks them.
    frames = _established(
        [
            _tcp(0.3, False, "PA", 601, 101, b"x" * 100),
            _tcp(0.4, True, "A", 101, 701),
        ]
    )
    (conn,) = _conns(tmp_path, frames)
    assert conn["history"] == "ShAdg"


def test_reordered_bytes_fill_their_hole_no_gap(tmp_path: Path) -> None:
    # Out of order, not lost: Zeek counts the late segment a retransmission, and no gap.
    frames = _established(
        [
            _tcp(0.3, False, "PA", 601, 101, b"x" * 100),
            _tcp(0.35, False, "PA", 501, 101, b"y" * 100),
            _tcp(0.4, True, "A", 101, 701),
        ]
    )
    (conn,) = _conns(tmp_path, frames)
    assert conn["history"] == "ShAdt"


def test_an_ack_of_the_fin_is_no_gap(tmp_path: Path) -> None:
    frames = _established(
        [
            _tcp(0.3, False, "PA", 501, 101, b"x" * 10),
            _tcp(0.4, False, "FA", 511, 101),
            _tcp(0.5, True, "A", 101, 512),
        ]
    )
    (conn,) = _conns(tmp_path, frames)
    assert conn["history"] == "ShAdf"


def test_zero_window_is_w_scaled(tmp_path: Path) -> None:
    # The client's buffer is full 12 times: W at the 1st and at the 10th, as Zeek scales it.
    frames = _established([_tcp(0.3 + i / 100, True, "A", 101, 501, win=0) for i in range(12)])
    (conn,) = _conns(tmp_path, frames)
    assert conn["history"] == "ShAWW"


def _services(tmp_path: Path, frames: list[Packet]) -> tuple[list[str | None], list[str]]:
    path = tmp_path / "capture.pcap"
    wrpcap(str(path), frames)
    records = [r.zeek() for r in extract([path])]
    return [r["service"] for r in records if r["_path"] == "conn"], [
        r["_path"] for r in records if r["_path"] not in ("conn",)
    ]


REQUEST = b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n"
REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
HELLO = (
    b"\x16\x03\x01\x00\x2d\x01\x00\x00\x29\x03\x03" + bytes(32) + b"\x00\x00\x02\x13\x01\x01\x00"
)


def test_a_connection_seen_mid_stream_names_no_service(tmp_path: Path) -> None:
    # No SYN: Zeek's connection is partial (TCPSessionAdapter::IsPartial), and its HTTP and
    # SSL analyzers ignore the payload: no service, no http.log or ssl.log line.
    for payload, answer in ((REQUEST, REPLY), (HELLO, b"")):
        frames = [_tcp(0, True, "PA", 101, 501, payload)]
        if answer:
            frames.append(_tcp(0.1, False, "PA", 501, 101 + len(payload), answer))
        assert _services(tmp_path, frames) == ([None], [])


def test_the_same_connection_from_its_syn_is_named(tmp_path: Path) -> None:
    frames = [
        _tcp(0, True, "S", 100),
        _tcp(0.05, False, "SA", 500, 101),
        _tcp(0.1, True, "PA", 101, 501, REQUEST),
        _tcp(0.2, False, "PA", 501, 101 + len(REQUEST), REPLY),
    ]
    assert _services(tmp_path, frames) == (["http"], ["http"])


def test_a_missed_syn_completed_by_the_ack_is_no_partial_connection(tmp_path: Path) -> None:
    # The SYN-ACK and then the client's ACK: Zeek takes the handshake as complete (the SYN was
    # missed) and the connection as whole, so its payload is read.
    frames = [
        _tcp(0.05, False, "SA", 500, 101),
        _tcp(0.1, True, "A", 101, 501),
        _tcp(0.15, True, "PA", 101, 501, REQUEST),
        _tcp(0.2, False, "PA", 501, 101 + len(REQUEST), REPLY),
    ]
    assert _services(tmp_path, frames) == (["http"], ["http"])


def test_a_dns_answer_seen_first_flips_unless_multicast(tmp_path: Path) -> None:
    # Zeek's DNS analyzer makes the sender of a first message that is a response the
    # responder, unless the connection's responder address is multicast (an mDNS announcement).
    from scapy.layers.dns import DNS, DNSQR, DNSRR

    def answer(dst: str, port: int) -> Packet:
        dns = DNS(id=7, qr=1, qd=DNSQR(qname="host.local"), an=DNSRR(rrname="host.local"))
        frame = Ether(src=MAC, dst=MAC) / IP(src=S, dst=dst) / UDP(sport=port, dport=port) / dns
        frame.time = 1_000_000
        return frame

    for dst, port, orig in (("10.0.0.1", 5355, "10.0.0.1"), ("224.0.0.251", 5353, S)):
        path = tmp_path / "dns.pcap"
        wrpcap(str(path), [answer(dst, port)])
        (conn,) = [r.zeek() for r in extract([path]) if r.path == "conn"]
        assert conn["id.orig_h"] == orig
