"""TLS begun mid-connection, as Zeek's analyzers hand over to its SSL analyzer: FTP's AUTH TLS
(234), SMTP's STARTTLS (220), POP3's STLS (+OK), IMAP's tagged STARTTLS (tagged OK), XMPP's
<starttls/> (<proceed/>), and an HTTP CONNECT tunnel (200). Zeek then names ssl among the
connection's services and writes an ssl.log line; a refusal leaves the connection clear text.

Each capture is made with scapy and written to tmp_path. The corpus cases (Zeek's ftp-auth-tls,
imap starttls, http-connect-with-header) are compared in test_netmeta_zeek.py.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

from collector.netmeta import extract

C, S = "10.0.0.1", "10.0.0.2"
MAC = "02:00:00:00:00:01"


def _tls(kind: int, body: bytes) -> bytes:
    handshake = bytes([kind]) + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def _client_hello(name: str) -> bytes:
    host = name.encode()
    sni = struct.pack("!HBH", len(host) + 3, 0, len(host)) + host
    extensions = struct.pack("!HH", 0, len(sni)) + sni
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    return _tls(1, body + struct.pack("!H", len(extensions)) + extensions)


SERVER_HELLO = _tls(2, b"\x03\x03" + bytes(32) + b"\x00" + b"\x13\x01" + b"\x00" + b"\x00\x00")


def _session(port: int, talk: list[tuple[bool, bytes]], *, handshake: bool = True) -> list[Packet]:
    """A TCP connection on `port`: its handshake (unless left out), then each (from the
    client?, bytes) in turn, acknowledged, then both FINs."""
    frames: list[Packet] = []
    seq = {True: 1000, False: 5000}
    t = [0.0]

    def send(client: bool, flags: str, data: bytes = b"") -> None:
        src, dst, sport, dport = (C, S, 40000, port) if client else (S, C, port, 40000)
        frame = (
            Ether(src=MAC, dst=MAC)
            / IP(src=src, dst=dst)
            / TCP(sport=sport, dport=dport, flags=flags, seq=seq[client], ack=seq[not client])
        )
        if data:
            frame = frame / Raw(data)
        t[0] += 0.01
        frame.time = 1_000_000 + t[0]
        frames.append(frame)
        seq[client] = (seq[client] + len(data) + (1 if "S" in flags or "F" in flags else 0)) & (
            0xFFFFFFFF
        )

    if handshake:
        send(True, "S")
        frame = frames[-1]
        frame[TCP].ack = 0
        send(False, "SA")
        send(True, "A")
    for client, data in talk:
        send(client, "PA", data)
    send(True, "FA")
    send(False, "FA")
    send(True, "A")
    return frames


def _records(tmp_path: Path, frames: list[Packet]) -> dict[str, list[dict[str, Any]]]:
    path = tmp_path / "capture.pcap"
    wrpcap(str(path), frames)
    found: dict[str, list[dict[str, Any]]] = {}
    for record in extract([path]):
        z = record.zeek()
        found.setdefault(z["_path"], []).append(z)
    return found


HELLO = [(True, _client_hello("mail.example.org")), (False, SERVER_HELLO)]

CASES = {
    "ftp": (
        21,
        [
            (False, b"220 FTP ready\r\n"),
            (True, b"FEAT\r\n"),
            (False, b"211-Features:\r\n AUTH TLS\r\n211 End\r\n"),
            (True, b"AUTH TLS\r\n"),
            (False, b"234 Proceed with negotiation.\r\n"),
        ],
    ),
    "smtp": (
        25,
        [
            (False, b"220 mx.example.org ESMTP\r\n"),
            (True, b"EHLO client.example.org\r\n"),
            (False, b"250-mx.example.org\r\n250-PIPELINING\r\n250 STARTTLS\r\n"),
            (True, b"STARTTLS\r\n"),
            (False, b"220 2.0.0 Ready to start TLS\r\n"),
        ],
    ),
    "pop3": (
        110,
        [
            (False, b"+OK POP3 ready\r\n"),
            (True, b"CAPA\r\n"),
            (False, b"+OK\r\nSTLS\r\nUSER\r\n.\r\n"),
            (True, b"STLS\r\n"),
            (False, b"+OK Begin TLS negotiation\r\n"),
        ],
    ),
    "imap": (
        143,
        [
            (False, b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"),
            (True, b"a1 CAPABILITY\r\n"),
            (False, b"* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\n"),
            (True, b"a2 starttls\r\n"),
            (False, b"a2 OK Begin TLS negotiation now\r\n"),
        ],
    ),
    "xmpp": (
        5222,
        [
            (True, b"<?xml version='1.0'?><stream:stream to='example.org' version='1.0'>"),
            (False, b"<stream:stream from='example.org'><stream:features><starttls/>"),
            (True, b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
            (False, b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
        ],
    ),
}


@pytest.mark.parametrize("protocol", sorted(CASES))
def test_tls_started_mid_connection_is_ssl(tmp_path: Path, protocol: str) -> None:
    port, talk = CASES[protocol]
    found = _records(tmp_path, _session(port, [*talk, *HELLO]))
    # Zeek's FTP and IMAP analyzers confirm on the commands (IMAP's greeting): named too.
    named = {"ftp": "ftp,ssl", "imap": "imap,ssl"}.get(protocol, "ssl")
    assert [c["service"] for c in found["conn"]] == [named]
    (ssl,) = found["ssl"]
    assert (ssl["server_name"], ssl["version"], ssl["cipher"]) == (
        "mail.example.org",
        "TLSv12",
        "TLS_AES_128_GCM_SHA256",
    )


def test_a_command_split_across_segments_is_read_whole(tmp_path: Path) -> None:
    talk = [
        (False, b"220 mx ESMTP\r\n"),
        (True, b"EHLO c\r\n"),
        (False, b"250 STARTTLS\r\n"),
        (True, b"START"),
        (True, b"TLS\r\n"),
        (False, b"220 go ahead\r\n"),
    ]
    found = _records(tmp_path, _session(25, [*talk, *HELLO]))
    assert [c["service"] for c in found["conn"]] == ["ssl"]


@pytest.mark.parametrize(
    ("port", "talk"),
    [
        # The server refuses: the client carries on in clear text (bytes that happen to start
        # like a TLS record are no ClientHello read as one).
        (25, [(True, b"STARTTLS\r\n"), (False, b"454 TLS not available\r\n")]),
        (143, [(True, b"a1 STARTTLS\r\n"), (False, b"a1 NO not now\r\n")]),
        (110, [(True, b"STLS\r\n"), (False, b"-ERR no\r\n")]),
        # FTP's AUTH SSL is not the AUTH TLS that Zeek's FTP analyzer hands over on.
        (21, [(True, b"AUTH SSL\r\n"), (False, b"234 ok\r\n")]),
        # FTP off Zeek's FTP ports (its signature needs a USER command first), XMPP off its.
        (2121, [(True, b"AUTH TLS\r\n"), (False, b"234 ok\r\n")]),
        (
            5000,
            [
                (True, b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
                (False, b"<proceed/>"),
            ],
        ),
        # An answer with another tag is not the answer to STARTTLS.
        (143, [(True, b"a1 STARTTLS\r\n"), (False, b"a0 OK other\r\n")]),
    ],
)
def test_refused_or_other_requests_stay_clear_text(
    tmp_path: Path, port: int, talk: list[tuple[bool, bytes]]
) -> None:
    found = _records(tmp_path, _session(port, [*talk, *HELLO]))
    # Zeek's FTP analyzer is confirmed by any command, its IMAP analyzer by STARTTLS.
    assert [c["service"] for c in found["conn"]] == [{21: "ftp", 143: "imap"}.get(port)]
    assert "ssl" not in found


@pytest.mark.parametrize(
    ("port", "talk", "service"),
    [
        # A command on Zeek's FTP ports confirms its FTP analyzer, whatever the server says.
        (21, [(True, b"USER anonymous\r\n"), (True, b"PASS a@b\r\n")], "ftp"),
        (2811, [(False, b"220 ready\r\n"), (True, b"  SYST\r\n"), (False, b"215 UNIX\r\n")], "ftp"),
        # Off its ports, or no command (a first word under 3 characters, an empty line).
        (2121, [(True, b"USER anonymous\r\n"), (False, b"331 ok\r\n")], None),
        (21, [(True, b"\r\n"), (True, b"ab cd\r\n")], None),
        # A reply line it rejects (a code under 100, no space or dash after the code) removes
        # the analyzer, and its name, though a command had confirmed it.
        (
            21,
            [
                (True, b"USER z\r\n"),
                (False, b"230 ok\r\n"),
                (True, b"PASV\r\n"),
                (False, b"99 PASV invalid\r\n"),
                (True, b"QUIT\r\n"),
            ],
            None,
        ),
        (21, [(True, b"USER z\r\n"), (False, b"230ok\r\n")], None),
        # Inside a multi-line reply, any line goes until the code and a space end it.
        (21, [(True, b"FEAT\r\n"), (False, b"211-Features:\r\n oops\r\n211 End\r\n")], "ftp"),
    ],
)
def test_ftp_is_named_as_zeek_confirms_it(
    tmp_path: Path, port: int, talk: list[tuple[bool, bytes]], service: str | None
) -> None:
    found = _records(tmp_path, _session(port, talk))
    assert [c["service"] for c in found["conn"]] == [service]


def test_tls_through_an_http_connect_tunnel(tmp_path: Path) -> None:
    talk = [
        (True, b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n"),
        (False, b"HTTP/1.1 200 Connection established\r\nProxy-Agent: p\r\n\r\n"),
        *HELLO,
    ]
    found = _records(tmp_path, _session(3128, talk))
    assert [c["service"] for c in found["conn"]] == ["http,ssl"]
    assert [(h["method"], h["status_code"]) for h in found["http"]] == [("CONNECT", 200)]
    assert [s["server_name"] for s in found["ssl"]] == ["mail.example.org"]


def test_a_refused_connect_opens_no_tunnel(tmp_path: Path) -> None:
    talk = [
        (True, b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n"),
        (False, b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"),
        *HELLO,
    ]
    found = _records(tmp_path, _session(3128, talk))
    assert [c["service"] for c in found["conn"]] == ["http"]
    assert "ssl" not in found


def test_a_handover_seen_mid_stream_is_not_followed(tmp_path: Path) -> None:
    # No handshake seen: a partial connection, whose payload Zeek's analyzers ignore.
    port, talk = CASES["smtp"]
    found = _records(tmp_path, _session(port, [*talk, *HELLO], handshake=False))
    assert [c["service"] for c in found["conn"]] == [None]
    assert "ssl" not in found


def test_retransmitted_and_overlapping_bytes_are_read_once() -> None:
    from collector.netmeta.starttls import Handover

    state = Handover()
    assert state.feed(True, 100, b"EHLO c\r\n") is None
    assert state.feed(True, 100, b"EHLO c\r\n") is None  # a retransmission: not a command
    assert state.commands == 1
    # Overlapping the bytes read: only the new ones count.
    assert state.feed(True, 104, b" c\r\nSTARTTLS\r\n") is None
    assert (state.commands, state.asked) == (2, "smtp")
    assert state.feed(False, 900, b"454 not now\r\n") is None  # refused
    assert state.asked is None
    assert state.feed(True, 118, b"STARTTLS\r\n") is None  # asked again
    assert state.feed(False, 913, b"220-go\r\n220 ahead\r\n") is True


def test_xmpp_streams_are_not_lines(tmp_path: Path) -> None:
    # An XML stream has no line ends: a long opening is no reason to stop following it.
    port, talk = CASES["xmpp"]
    opening = (True, b"<?xml version='1.0'?><stream:stream to='example.org'>" + b" " * 3000)
    found = _records(tmp_path, _session(port, [opening, *talk[1:], *HELLO]))
    assert [c["service"] for c in found["conn"]] == ["ssl"]


def _mysql_ssl_request() -> bytes:
    flags = 0x0200 | 0x0800 | 0x8000  # protocol 4.1, SSL, secure connection
    payload = struct.pack("<IIB", flags, 16 * 1024 * 1024, 33) + bytes(23)
    return len(payload).to_bytes(3, "little") + b"\x01" + payload


@pytest.mark.parametrize(
    ("port", "talk", "service"),
    [
        # PostgreSQL's SSLRequest, answered S: TLS follows (Zeek: postgresql,ssl).
        (5432, [(True, struct.pack("!II", 8, 80877103)), (False, b"S")], "ssl"),
        # Answered N: the client goes on in clear text.
        (5432, [(True, struct.pack("!II", 8, 80877103)), (False, b"N")], None),
        # MySQL: the server's greeting, then the client's SSL request, unanswered.
        (
            3306,
            [(False, b"\x4a\x00\x00\x00\x0a8.0.36\x00" + bytes(66)), (True, _mysql_ssl_request())],
            "ssl",
        ),
        # XMPP with a namespace prefix on its elements.
        (
            5222,
            [
                (True, b"<stream:stream to='example.org' version='1.0'>"),
                (True, b"<tls:starttls xmlns:tls='urn:ietf:params:xml:ns:xmpp-tls'/>"),
                (False, b"<tls:proceed xmlns:tls='urn:ietf:params:xml:ns:xmpp-tls'/>"),
            ],
            "ssl",
        ),
    ],
)
def test_binary_and_namespaced_requests_for_tls(
    tmp_path: Path, port: int, talk: list[tuple[bool, bytes]], service: str | None
) -> None:
    found = _records(tmp_path, _session(port, [*talk, *HELLO]))
    assert [c["service"] for c in found["conn"]] == [service]
    assert ("ssl" in found) == (service == "ssl")


def _ldap(message_id: int, op: bytes) -> bytes:
    body = bytes([2, 1, message_id]) + op
    return bytes([0x30, len(body)]) + body


OID = b"1.3.6.1.4.1.1466.20037"
LDAP_STARTTLS = _ldap(1, bytes([0x77, len(OID) + 2, 0x80, len(OID)]) + OID)
BIND = _ldap(1, bytes([0x60, 7, 2, 1, 3, 4, 0, 0x80, 0]))  # an anonymous simple bind


def _ldap_answer(message_id: int, code: int) -> bytes:
    return _ldap(message_id, bytes([0x78, 7, 0x0A, 1, code, 4, 0, 4, 0]))


@pytest.mark.parametrize(
    ("talk", "service"),
    [
        ([(True, LDAP_STARTTLS), (False, _ldap_answer(1, 0))], "ssl"),
        # After other messages (a bind and its answer): still read.
        (
            [
                (True, BIND),
                (False, _ldap(1, bytes([0x61, 7, 0x0A, 1, 0, 4, 0, 4, 0]))),
                (True, LDAP_STARTTLS.replace(b"\x02\x01\x01", b"\x02\x01\x02", 1)),
                (False, _ldap_answer(2, 0)),
            ],
            "ssl",
        ),
        # Refused (unwillingToPerform, 53): clear text goes on.
        ([(True, LDAP_STARTTLS), (False, _ldap_answer(1, 53))], None),
    ],
)
def test_ldap_starttls(tmp_path: Path, talk: list[tuple[bool, bytes]], service: str | None) -> None:
    found = _records(tmp_path, _session(389, [*talk, *HELLO]))
    assert [c["service"] for c in found["conn"]] == [service]


def test_rdp_with_tls_security_is_rdp_and_ssl(tmp_path: Path) -> None:
    # An X.224 connection request with an RDP negotiation request (TLS and CredSSP offered),
    # the server's confirm selecting TLS, then the TLS handshake: Zeek names rdp and ssl.
    neg = bytes([1, 0, 8, 0, 3, 0, 0, 0])
    cr = bytes([0x0E, 0xE0, 0, 0, 0, 0, 0]) + b"Cookie: mstshash=a\r\n" + neg
    cr = bytes([len(cr) - 1]) + cr[1:]
    request = b"\x03\x00" + struct.pack("!H", 4 + len(cr)) + cr
    confirm = b"\x03\x00\x00\x13\x0e\xd0\x00\x00\x12\x34\x00" + bytes([2, 0, 8, 0, 1, 0, 0, 0])
    found = _records(tmp_path, _session(3389, [(True, request), (False, confirm), *HELLO]))
    assert [c["service"] for c in found["conn"]] == ["rdp,ssl"]


def _ssh_packet(kind: int, body: bytes = b"") -> bytes:
    """An SSH2 binary packet in the clear: length, padding length, type, body, padding."""
    padding = 8 - (5 + 1 + len(body)) % 8
    padding += 8 if padding < 4 else 0
    length = 1 + 1 + len(body) + padding
    return struct.pack("!IBB", length, padding, kind) + body + bytes(padding)


KEXINIT = _ssh_packet(20, bytes(16) + b"\x00\x00\x00\x0bcurve25519" * 40)
NEWKEYS = _ssh_packet(21)


@pytest.mark.parametrize(
    ("port", "talk", "service"),
    [
        # Identification lines, key exchange messages, then NEWKEYS: Zeek confirms ssh.
        (
            22,
            [
                (False, b"SSH-2.0-OpenSSH_9.0\r\n"),
                (True, b"SSH-2.0-client\r\n"),
                (True, KEXINIT),
                (False, KEXINIT[:100]),  # a packet split across segments
                (False, KEXINIT[100:] + _ssh_packet(31, bytes(40)) + NEWKEYS),
            ],
            "ssh",
        ),
        # Any port, the two lines seen (Zeek's signatures): the client speaking first.
        (2222, [(True, b"SSH-2.0-c\r\n"), (False, b"SSH-2.0-s\r\n"), (True, NEWKEYS)], "ssh"),
        # Off port 22 with one side's line only, no NEWKEYS, or SSH1: none.
        (2222, [(True, b"SSH-2.0-c\r\n"), (True, NEWKEYS)], None),
        (22, [(False, b"SSH-2.0-s\n"), (True, b"\r\n"), (False, b"Protocol mismatch.\n")], None),
        (22, [(False, b"SSH-1.5-old\n"), (True, b"SSH-1.5-old\n"), (True, NEWKEYS)], None),
    ],
)
def test_ssh_is_named_at_its_newkeys(
    tmp_path: Path, port: int, talk: list[tuple[bool, bytes]], service: str | None
) -> None:
    found = _records(tmp_path, _session(port, talk))
    assert [c["service"] for c in found["conn"]] == [service]


@pytest.mark.parametrize(
    ("port", "talk", "service"),
    [
        # A client line on Zeek's IRC ports confirms its IRC analyzer.
        (
            6667,
            [(True, b"NICK tim\r\nUSER tim 0 * :Tim\r\n"), (False, b":srv 001 tim :hi\r\n")],
            "irc",
        ),
        # A server line split across segments is read whole (a piece alone would look like a
        # bad reply number).
        (
            6667,
            [
                (True, b"NICK tim\r\n"),
                (False, b":srv 372 tim :motd\r\n:srv 3"),
                (False, b"76 tim :end\r\n"),
            ],
            "irc",
        ),
        # Violations: a reply number that is not 3 digits and a space; a prefix and no more.
        (6667, [(True, b"NICK tim\r\n"), (False, b":srv 01 tim :hi\r\n")], None),
        (6668, [(True, b"NICK tim\r\n"), (False, b":srv x\r\n")], None),
        # Off Zeek's IRC ports: none (its signatures are not followed).
        (7000, [(True, b"NICK tim\r\n"), (False, b":srv 001 tim :hi\r\n")], None),
    ],
)
def test_irc_is_named_as_zeek_confirms_it(
    tmp_path: Path, port: int, talk: list[tuple[bool, bytes]], service: str | None
) -> None:
    found = _records(tmp_path, _session(port, talk))
    assert [c["service"] for c in found["conn"]] == [service]


def test_an_ftp_reply_split_across_segments_is_read_whole(tmp_path: Path) -> None:
    # Read as pieces, "00 OK" would be a reply line Zeek rejects (and ftp would go).
    talk = [(True, b"FEAT\r\n"), (False, b"211-Features:\r\n MDTM\r\n211 End\r\n2")]
    talk += [(True, b"NOOP\r\n"), (False, b"00 OK\r\n")]
    found = _records(tmp_path, _session(21, talk))
    assert [c["service"] for c in found["conn"]] == ["ftp"]


@pytest.mark.parametrize(
    ("talk", "handshake", "service"),
    [
        ([(False, b"* OK IMAP4rev1 ready\r\n")], True, "imap"),  # the greeting alone
        ([(True, b"a1 login u p\r\n")], True, "imap"),
        ([(True, b"a1 capability\r\n")], True, "imap"),
        # Compared as written: upper-case CAPABILITY or LOGIN confirm nothing.
        ([(True, b"a1 CAPABILITY\r\n"), (True, b"a2 LOGIN u p\r\n")], True, None),
        ([(False, b"* BYE go away\r\n")], True, None),
        # A partial connection (no handshake seen): Zeek's IMAP analyzer reads none of it.
        ([(False, b"* OK ready\r\n"), (True, b"a1 login u p\r\n")], False, None),
    ],
)
def test_imap_is_named_as_zeek_confirms_it(
    tmp_path: Path, talk: list[tuple[bool, bytes]], handshake: bool, service: str | None
) -> None:
    found = _records(tmp_path, _session(143, talk, handshake=handshake))
    assert [c["service"] for c in found["conn"]] == [service]


def _data_connection(src: str, sport: int, dst: str, dport: int, at: float) -> list[Packet]:
    """A short TCP connection from src to dst, `at` seconds into the capture."""
    frames = []
    for n, (a, b, pa, pb, flags) in enumerate(
        [
            (src, dst, sport, dport, "S"),
            (dst, src, dport, sport, "SA"),
            (src, dst, sport, dport, "A"),
        ]
    ):
        frame = Ether(src=MAC, dst=MAC) / IP(src=a, dst=b) / TCP(sport=pa, dport=pb, flags=flags)
        frame.time = 1_000_000 + at + n * 0.001
        frames.append(frame)
    return frames


@pytest.mark.parametrize(
    ("talk", "data", "at", "service"),
    [
        # Passive: the server's 227 (or 229) names where the client connects.
        (
            [(True, b"PASV\r\n"), (False, b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n")],
            (C, 50001, S, 50000),
            1.0,
            "ftp-data",
        ),
        (
            [(True, b"EPSV\r\n"), (False, b"229 Entering Extended Passive Mode (|||50000|)\r\n")],
            (C, 50001, S, 50000),
            1.0,
            "ftp-data",
        ),
        # Active: the client's PORT (or EPRT) names where the server connects.
        (
            [(True, b"PORT 10,0,0,1,195,80\r\n"), (False, b"200 PORT ok\r\n")],
            (S, 20, C, 50000),
            1.0,
            "ftp-data",
        ),
        (
            [(True, b"EPRT |1|10.0.0.1|50000|\r\n"), (False, b"200 ok\r\n")],
            (S, 20, C, 50000),
            1.0,
            "ftp-data",
        ),
        # Another port, the wrong way, or after Zeek stopped expecting it (5 minutes).
        (
            [(True, b"PASV\r\n"), (False, b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n")],
            (C, 50001, S, 50002),
            1.0,
            None,
        ),
        (
            [(True, b"PORT 10,0,0,1,195,80\r\n"), (False, b"200 PORT ok\r\n")],
            (C, 50000, S, 50000),
            1.0,
            None,
        ),
        (
            [(True, b"PASV\r\n"), (False, b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n")],
            (C, 50001, S, 50000),
            400.0,
            None,
        ),
    ],
)
def test_an_announced_ftp_data_connection_is_ftp_data(
    tmp_path: Path,
    talk: list[tuple[bool, bytes]],
    data: tuple[str, int, str, int],
    at: float,
    service: str | None,
) -> None:
    frames = _session(21, [(True, b"USER anonymous\r\n"), *talk])
    frames += _data_connection(*data, at)
    found = _records(tmp_path, frames)
    (control,) = [c for c in found["conn"] if c["id.resp_p"] == 21]
    (other,) = [c for c in found["conn"] if c["id.resp_p"] != 21]
    assert control["service"] == "ftp"
    assert (other["id.orig_h"], other["id.resp_p"], other["service"]) == (data[0], data[3], service)


@pytest.mark.parametrize(
    ("line", "data", "service"),
    [
        # 167772161 is 10.0.0.1: anyone connecting to it on the port offered.
        (
            b"PRIVMSG bob :\x01DCC SEND f.txt 167772161 50000 1234\x01\r\n",
            (S, 60000, C, 50000),
            "irc-dcc-data",
        ),
        (
            b"PRIVMSG bob :\x01DCC SEND f.txt 167772161 50000\x01\r\n",
            ("10.0.0.9", 1, C, 50000),
            "irc-dcc-data",
        ),
        # A CHAT offer, another port, or no DCC at all announce no transfer.
        (b"PRIVMSG bob :\x01DCC CHAT chat 167772161 50000\x01\r\n", (S, 60000, C, 50000), None),
        (b"PRIVMSG bob :\x01DCC SEND f.txt 167772161 50000 1\x01\r\n", (S, 60000, C, 50001), None),
        (b"PRIVMSG bob :hello 167772161 50000\r\n", (S, 60000, C, 50000), None),
    ],
)
def test_an_irc_dcc_send_announces_a_connection(
    tmp_path: Path, line: bytes, data: tuple[str, int, str, int], service: str | None
) -> None:
    frames = _session(6667, [(True, b"NICK tim\r\n"), (True, line)])
    frames += _data_connection(*data, 1.0)
    found = _records(tmp_path, frames)
    (other,) = [c for c in found["conn"] if c["id.resp_p"] != 6667]
    assert other["service"] == service
