"""MIME entities nested in an HTTP body past Zeek's depth limit (100): Zeek stops its MIME
analysis there and marks the connection's history with X (Zeek's deeply-nested-mime case,
compared in test_netmeta_zeek.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from collector.netmeta import extract
from collector.netmeta.http import RequestStream
from collector.netmeta.mime import Depth, body, content_type

MAC = "02:00:00:00:00:01"


def _nested(levels: int) -> bytes:
    """A message whose multipart body holds a text part and a message/rfc822 part, itself
    such a message, `levels` deep (as Python's email package writes them)."""
    inner = b"Content-Type: text/plain\r\n\r\nthe last part\r\n"
    for i in range(levels):
        b = f"=====b{i}==".encode()
        inner = (
            b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n'
            b"--" + b + b"\r\nContent-Type: text/plain\r\n\r\npart\r\n"
            b"--" + b + b"\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n"
            b"--" + b + b"--\r\n"
        )
    return inner


def test_content_type_and_boundary() -> None:
    assert content_type(b'Content-Type: Multipart/Mixed; boundary="a b"') == (
        b"multipart/mixed",
        b"a b",
    )
    assert content_type(b"content-type: multipart/form-data; boundary=xyz") == (
        b"multipart/form-data",
        b"xyz",
    )
    assert body("text/plain") is None


def test_the_depth_limit_is_passed_only_past_100() -> None:
    for levels, too_deep in ((30, False), (60, True)):
        depth = Depth(b"message/rfc822", None)
        data = _nested(levels)
        for i in range(0, len(data), 700):  # lines cut across segments
            depth.feed(data[i : i + 700])
        assert depth.too_deep is too_deep


def test_sibling_parts_do_not_nest() -> None:
    b = b"sep"
    data = b"".join(b"--sep\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(300))
    depth = Depth(b"multipart/mixed", b)
    depth.feed(data + b"--sep--\r\n")
    assert not depth.too_deep


def test_a_request_body_is_read_through_segments() -> None:
    data = _nested(60)
    head = (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Type: message/rfc822\r\n"
        b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n"
    )
    stream = RequestStream(0, 80)
    whole = head + data
    found = []
    for i in range(0, len(whole), 1448):
        found += list(stream.feed(i, whole[i : i + 1448]))
    assert [r.method for r in found] == ["POST"]
    assert stream.mime is not None
    assert stream.mime.too_deep


def test_a_too_deep_body_marks_the_history_x(tmp_path: Path) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    from scapy.utils import wrpcap

    def pkt(n: int, up: bool, flags: str, seq: int, ack: int, data: bytes = b"") -> Any:
        src, dst, sport, dport = ("10.0.0.1", "10.0.0.2", 40000, 80)
        if not up:
            src, dst, sport, dport = dst, src, dport, sport
        frame = Ether(src=MAC, dst=MAC) / IP(src=src, dst=dst)
        frame = frame / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack)
        frame = frame / Raw(data) if data else frame
        frame.time = 1_000_000 + n / 100
        return frame

    histories = []
    for levels in (30, 60):
        data = _nested(levels)
        request = (
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Type: message/rfc822\r\n"
            b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data
        )
        c, s = 1000, 5000
        frames = [pkt(0, True, "S", c, 0), pkt(1, False, "SA", s, c + 1)]
        frames.append(pkt(2, True, "A", c + 1, s + 1))
        for i in range(0, len(request), 1448):
            frames.append(pkt(3 + i, True, "PA", c + 1 + i, s + 1, request[i : i + 1448]))
        path = tmp_path / f"mime{levels}.pcap"
        wrpcap(str(path), frames)
        (conn,) = [r.zeek() for r in extract([path]) if r.path == "conn"]
        histories.append(conn["history"])
    assert histories == ["ShAD", "ShADX"]
