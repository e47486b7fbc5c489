"""Captures of an establishment's network with bad cyber hygiene, and of the same services done
right, made with scapy: what Vigie's maturity controls on network metadata judge by.

Bad hygiene (`write_bad_hygiene`):
- a file server that answers an SMB1 negotiate (a client offering the old dialects up to
  "NT LM 0.12") with the NT LM 0.12 dialect: SMBv1;
- TLS 1.0 (a ServerHello 0x0301) on an internal server reached from inside, and on an internal
  web server reached from an Internet address; a second internal server answers TLS 1.2, so
  half of the internal TLS servers are weak;
- remote desktop (3389) reached from Internet addresses: three established sessions (X.224
  connection request and confirm, then data both ways) from two public addresses;
- HL7 v2 over MLLP sent by the interface engine to an Internet address (an ADT^A01 whose PID
  names an invented patient, TESTPATIENT^CAMILLE), acknowledged.

Done right (`write_good_hygiene`): SMB2/3 only (an SMB2 negotiate answered 3.1.1, and a
client's SMB1 multi-protocol negotiate answered in SMB2), TLS 1.2 inside and TLS 1.3 (said in
the supported_versions extension) on the server the Internet reaches, remote desktop between
internal hosts only (from the Internet: refused, or unanswered), HL7 between internal hosts.

The Internet addresses are ones Python's `ipaddress` calls global (not the documentation
ranges, which Vigie does not count as Internet peers); the inside is RFC 1918. The payload
builders are public so that tests can make variants of each exchange.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # scapy is imported only when a capture is made
    from scapy.packet import Packet

# The Internet: a remote-desktop client at two addresses, a TLS client, an HL7 platform.
RDP_CLIENTS = ("185.53.12.7", "185.53.12.8")
TLS_CLIENT = "81.2.69.160"
HL7_PLATFORM = "81.2.69.142"
# The bad establishment's inside.
BAD = {
    "client": "10.10.1.50",
    "files": "10.10.0.20",
    "intranet": "10.10.0.30",  # TLS 1.0, reached from inside
    "dpi": "10.10.0.31",  # TLS 1.2, reached from inside
    "webmail": "10.10.0.40",  # TLS 1.0, reached from the Internet
    "rdp": "10.10.0.60",
    "hl7": "10.10.0.15",
}
# The good establishment's inside.
GOOD = {
    "client": "192.168.20.50",
    "files": "192.168.20.20",
    "nas": "192.168.20.21",  # answers a multi-protocol SMB1 negotiate in SMB2
    "intranet": "192.168.20.30",  # TLS 1.2
    "webmail": "192.168.20.40",  # TLS 1.3, reached from the Internet
    "rdp": "192.168.20.60",
    "admin": "192.168.20.5",
    "hl7": "192.168.20.15",
    "lab": "192.168.20.16",
}
PATIENT = "TESTPATIENT^CAMILLE"

SMB1_DIALECTS = (
    "PC NETWORK PROGRAM 1.0",
    "LANMAN1.0",
    "Windows for Workgroups 3.1a",
    "LM1.2X002",
    "LANMAN2.1",
    "NT LM 0.12",
)
SMB2_DIALECTS = (0x0202, 0x0210, 0x0300, 0x0302, 0x0311)
TLS10, TLS12, TLS13 = 0x0301, 0x0303, 0x0304


def write_bad_hygiene(path: Path, start: float) -> int:
    """Write the bad-hygiene capture to `path` (pcap), its first packet at `start`; the
    packet count."""
    b = BAD
    packets = [
        *tcp_session(
            b["client"], 49301, b["files"], 445,
            [(True, smb1_negotiate_request(SMB1_DIALECTS)),
             (False, smb1_negotiate_response(SMB1_DIALECTS.index("NT LM 0.12")))],
        ),
        *tcp_session(
            b["client"], 49302, b["intranet"], 443,
            [(True, tls_client_hello(TLS10, "intranet.clinique.test")),
             (False, tls_server_hello(TLS10, 0x002F))],
        ),
        *tcp_session(
            b["client"], 49303, b["dpi"], 443,
            [(True, tls_client_hello(TLS12, "dpi.clinique.test")),
             (False, tls_server_hello(TLS12, 0xC02F))],
        ),
        *tcp_session(
            TLS_CLIENT, 51000, b["webmail"], 443,
            [(True, tls_client_hello(TLS10, "webmail.clinique.test")),
             (False, tls_server_hello(TLS10, 0x0035, extensions=False))],
        ),
        *(
            packet
            for n, client in enumerate((RDP_CLIENTS[0], RDP_CLIENTS[0], RDP_CLIENTS[1]))
            for packet in tcp_session(client, 52000 + n, b["rdp"], 3389, rdp_exchange())
        ),
        *tcp_session(b["hl7"], 40001, HL7_PLATFORM, 2575, hl7_exchange("CLINIQUE-A")),
    ]  # fmt: skip
    return write_packets(path, packets, start)


def write_good_hygiene(path: Path, start: float) -> int:
    """Write the capture of the same services done right to `path` (pcap), its first packet
    at `start`; the packet count."""
    g = GOOD
    packets = [
        *tcp_session(
            g["client"], 49301, g["files"], 445,
            [(True, smb2_negotiate_request(SMB2_DIALECTS)),
             (False, smb2_negotiate_response(0x0311))],
        ),
        *tcp_session(
            g["client"], 49302, g["nas"], 445,
            [(True, smb1_negotiate_request((*SMB1_DIALECTS, "SMB 2.002", "SMB 2.???"))),
             (False, smb2_negotiate_response(0x02FF))],
        ),
        *tcp_session(
            g["client"], 49303, g["intranet"], 443,
            [(True, tls_client_hello(TLS12, "intranet.clinique.test")),
             (False, tls_server_hello(TLS12, 0xC030))],
        ),
        *tcp_session(
            TLS_CLIENT, 51000, g["webmail"], 443,
            [(True, tls_client_hello(TLS12, "webmail.clinique.test", offer=(TLS13, TLS12))),
             (False, tls_server_hello(TLS12, 0x1301, selected=TLS13))],
        ),
        *tcp_session(g["admin"], 52000, g["rdp"], 3389, rdp_exchange()),
        *refused(RDP_CLIENTS[0], 52001, g["rdp"], 3389),
        *unanswered(RDP_CLIENTS[1], 52002, g["rdp"], 3389),
        *tcp_session(g["hl7"], 40001, g["lab"], 2575, hl7_exchange("CLINIQUE-B")),
    ]  # fmt: skip
    return write_packets(path, packets, start)


def write_packets(path: Path, packets: Sequence[Packet], start: float) -> int:
    """Write `packets` to `path` (pcap), 50 ms apart from `start`; their count."""
    from scapy.utils import wrpcap

    for n, packet in enumerate(packets):
        packet.time = start + n * 0.05
    wrpcap(str(path), packets)
    return len(packets)


# --- TCP ------------------------------------------------------------------------------------


def _segment(
    src: str, dst: str, sport: int, dport: int, flags: str, seq: int, ack: int, data: bytes = b""
) -> Packet:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    tcp = TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack)
    return Ether() / IP(src=src, dst=dst) / tcp / data


def tcp_session(
    client: str, cport: int, server: str, sport: int, exchanges: Sequence[tuple[bool, bytes]]
) -> list[Packet]:
    """A whole TCP connection: handshake, each (from client?, payload) acknowledged, FINs
    (Zeek's conn_state SF)."""

    def segment(from_client: bool, flags: str, seq: int, ack: int, data: bytes = b"") -> Packet:
        if from_client:
            return _segment(client, server, cport, sport, flags, seq, ack, data)
        return _segment(server, client, sport, cport, flags, seq, ack, data)

    c, s = 1000, 5000  # initial sequence numbers
    out = [
        segment(True, "S", c, 0),
        segment(False, "SA", s, c + 1),
        segment(True, "A", c + 1, s + 1),
    ]
    c, s = c + 1, s + 1
    for from_client, data in exchanges:
        if from_client:
            out += [segment(True, "PA", c, s, data), segment(False, "A", s, c + len(data))]
            c += len(data)
        else:
            out += [segment(False, "PA", s, c, data), segment(True, "A", c, s + len(data))]
            s += len(data)
    out += [
        segment(True, "FA", c, s),
        segment(False, "FA", s, c + 1),
        segment(True, "A", c + 1, s + 1),
    ]
    return out


def refused(client: str, cport: int, server: str, sport: int) -> list[Packet]:
    """A SYN answered by a reset (Zeek's REJ): the port is closed to that client."""
    return [
        _segment(client, server, cport, sport, "S", 1000, 0),
        _segment(server, client, sport, cport, "RA", 0, 1001),
    ]


def unanswered(client: str, cport: int, server: str, sport: int) -> list[Packet]:
    """A SYN and its retransmission, never answered (Zeek's S0): a firewall drops them."""
    return [_segment(client, server, cport, sport, "S", 1000, 0) for _ in range(2)]


# --- payloads -------------------------------------------------------------------------------


def netbios(message: bytes) -> bytes:
    """A NetBIOS session message (RFC 1002), as SMB is framed on port 445 and 139."""
    return b"\x00" + len(message).to_bytes(3, "big") + message


def _smb1_header(command: int, reply: bool) -> bytes:
    flags = 0x98 if reply else 0x18  # reply, canonical paths, case-insensitive
    return struct.pack(
        "<4sBIBHH8sHHHHH", b"\xffSMB", command, 0, flags, 0xC853, 0, b"", 0, 0xFEFF, 0, 0, 1
    )


def smb1_negotiate_request(dialects: Sequence[str]) -> bytes:
    """An SMB_COM_NEGOTIATE request (MS-CIFS 2.2.4.52.1) offering `dialects`."""
    names = b"".join(b"\x02" + d.encode("ascii") + b"\x00" for d in dialects)
    return netbios(_smb1_header(0x72, False) + b"\x00" + struct.pack("<H", len(names)) + names)


def smb1_negotiate_response(index: int) -> bytes:
    """The NT LM 0.12 answer (MS-CIFS 2.2.4.52.2) choosing the dialect at `index`."""
    challenge, domain = b"\x11\x22\x33\x44\x55\x66\x77\x88", "CLINIQUE\0".encode("utf-16-le")
    words = struct.pack(
        "<BHBHHIIIIQhB", 17, index, 0x03, 50, 1, 16644, 65536, 0, 0x0000E3FD, 0, 0, 8
    )
    data = challenge + domain
    return netbios(_smb1_header(0x72, True) + words + struct.pack("<H", len(data)) + data)


def _smb2_header(reply: bool) -> bytes:
    return struct.pack(
        "<4sHHIHHIIQIIQ16s", b"\xfeSMB", 64, 0, 0, 0, 1, 1 if reply else 0, 0, 0, 0xFEFF, 0, 0, b""
    )


def smb2_negotiate_request(dialects: Sequence[int]) -> bytes:
    """An SMB2 NEGOTIATE request (MS-SMB2 2.2.3) offering `dialects` (0x0202...0x0311)."""
    body = struct.pack("<HHHHI16sIHH", 36, len(dialects), 1, 0, 0x7F, bytes(range(16)), 0, 0, 0)
    return netbios(_smb2_header(False) + body + b"".join(struct.pack("<H", d) for d in dialects))


def smb2_negotiate_response(dialect: int) -> bytes:
    """An SMB2 NEGOTIATE response (MS-SMB2 2.2.4) choosing `dialect` (0x02FF: the wildcard
    that answers a multi-protocol SMB1 negotiate)."""
    body = struct.pack(
        "<HHHH16sIIIIQQHHI", 65, 1, dialect, 0, bytes(range(16, 32)), 0x2F, 8388608, 8388608,
        8388608, 0, 0, 128, 0, 0,
    )  # fmt: skip
    return netbios(_smb2_header(True) + body)


def _tls_extension(kind: int, body: bytes) -> bytes:
    return struct.pack("!HH", kind, len(body)) + body


def _tls_record(kind: int, handshake: bytes, version: int = TLS10) -> bytes:
    message = bytes([kind]) + len(handshake).to_bytes(3, "big") + handshake
    return struct.pack("!BHH", 0x16, version, len(message)) + message


def tls_client_hello(version: int, server_name: str | None, *, offer: Sequence[int] = ()) -> bytes:
    """A ClientHello record: `version` as its client_version, the name (SNI), and the
    versions of `offer` in supported_versions (TLS 1.3 clients say 1.2 and list 1.3 there)."""
    ciphers = (0x1301, 0x1302, 0xC02F, 0xC030, 0xC013, 0x002F, 0x0035)
    extensions = b""
    if server_name is not None:
        name = server_name.encode("ascii")
        entry = b"\x00" + struct.pack("!H", len(name)) + name
        extensions += _tls_extension(0x0000, struct.pack("!H", len(entry)) + entry)
    if offer:
        listed = b"".join(struct.pack("!H", v) for v in offer)
        extensions += _tls_extension(0x002B, bytes([len(listed)]) + listed)
    body = (
        struct.pack("!H", version)
        + bytes(range(32))  # random
        + b"\x00"  # no session id
        + struct.pack("!H", 2 * len(ciphers))
        + b"".join(struct.pack("!H", c) for c in ciphers)
        + b"\x01\x00"  # null compression
        + struct.pack("!H", len(extensions))
        + extensions
    )
    return _tls_record(0x01, body)


def tls_server_hello(
    version: int, cipher: int, *, selected: int | None = None, extensions: bool = True
) -> bytes:
    """A ServerHello record (and ServerHelloDone below TLS 1.3) with `version` as its
    server_version; `selected`: the version said in supported_versions (TLS 1.3);
    `extensions` False: none at all, as many TLS 1.0 servers answer."""
    chosen = b""
    if extensions:
        chosen += _tls_extension(0xFF01, b"\x00")  # renegotiation_info
        if selected is not None:
            chosen += _tls_extension(0x002B, struct.pack("!H", selected))
            chosen += _tls_extension(0x0033, struct.pack("!HH", 0x001D, 32) + bytes(32))
    body = (
        struct.pack("!H", version)
        + bytes(range(32, 64))  # random
        + b"\x20"
        + bytes(range(64, 96))  # a session id
        + struct.pack("!HB", cipher, 0)
        + (struct.pack("!H", len(chosen)) + chosen if extensions else b"")
    )
    record = _tls_record(0x02, body, TLS12 if selected else version)
    if selected is None:
        record += _tls_record(0x0E, b"", version)  # ServerHelloDone (after the certificate)
    return record


def tpkt(payload: bytes) -> bytes:
    """A TPKT packet (RFC 1006), as RDP frames its first messages."""
    return struct.pack("!BBH", 3, 0, 4 + len(payload)) + payload


def rdp_connection_request(cookie: str = "mstshash=admin") -> bytes:
    """An X.224 Connection Request (MS-RDPBCGR 2.2.1.1) asking for TLS or CredSSP."""
    variable = f"Cookie: {cookie}\r\n".encode("ascii") + struct.pack("<BBHI", 1, 0, 8, 3)
    return tpkt(bytes([6 + len(variable), 0xE0]) + b"\x00\x00\x00\x00\x00" + variable)


def rdp_connection_confirm() -> bytes:
    """The X.224 Connection Confirm choosing TLS (MS-RDPBCGR 2.2.1.2)."""
    return tpkt(b"\x0e\xd0\x00\x00\x12\x34\x00" + struct.pack("<BBHI", 2, 0, 8, 1))


def rdp_exchange() -> list[tuple[bool, bytes]]:
    """An RDP session's opening: the X.224 request and confirm, then data both ways."""
    return [
        (True, rdp_connection_request()),
        (False, rdp_connection_confirm()),
        (True, tpkt(b"\x02\xf0\x80" + bytes(120))),  # an X.224 data TPDU (MCS connect)
        (False, tpkt(b"\x02\xf0\x80" + bytes(80))),
    ]


def mllp(message: str) -> bytes:
    """An HL7 v2 message framed by MLLP: 0x0B, the segments, 0x1C 0x0D."""
    return b"\x0b" + message.encode("latin-1") + b"\x1c\x0d"


def hl7_exchange(facility: str, patient: str = PATIENT) -> list[tuple[bool, bytes]]:
    """An admission (ADT^A01) naming `patient`, and its acknowledgement."""
    admission = (
        f"MSH|^~\\&|ADT|{facility}|LABO|PLATEFORME|20261206101500||ADT^A01|MSG0001|P|2.5\r"
        f"PID|1||TP-0001^^^{facility}^PI||{patient}||19800101|F\r"
        "PV1|1|I|MED^204^2\r"
    )
    ack = (
        f"MSH|^~\\&|LABO|PLATEFORME|ADT|{facility}|20261206101501||ACK^A01|ACK0001|P|2.5\r"
        "MSA|AA|MSG0001\r"
    )
    return [(True, mllp(admission)), (False, mllp(ack))]
