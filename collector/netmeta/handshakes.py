"""The first messages of TLS, SMB and RDP connections: enough to see the protocol version, the
server name asked for, the cipher chosen, an SMBv1 server, and remote desktop on any port, from
the opening payload of each direction (one segment: a ClientHello or a negotiate request nearly
always fits).

Old clients may open TLS with an SSLv2-format ClientHello (a two-byte header, no record
layer) even to offer TLS 1.0; on port 139, SMB follows a NetBIOS session request and its
answer.
"""

from __future__ import annotations

from dataclasses import dataclass

TLS_VERSIONS = {
    0x0002: "SSLv2",
    0x0300: "SSLv3",
    0x0301: "TLSv10",
    0x0302: "TLSv11",
    0x0303: "TLSv12",
    0x0304: "TLSv13",
}
# The suites most seen; others are shown by number, as Zeek does for unknown ones.
CIPHERS = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    0xC028: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256",
    0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA",
    0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
    0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    0x0005: "TLS_RSA_WITH_RC4_128_SHA",
    0x0004: "TLS_RSA_WITH_RC4_128_MD5",
}
SMB2_DIALECTS = {
    0x0202: "2.0.2",
    0x0210: "2.1",
    0x0300: "3.0",
    0x0302: "3.0.2",
    0x0311: "3.1.1",
    # The answer to a client's SMB1 multi-protocol negotiate offering "SMB 2.???": the server
    # speaks SMB2 and a second, SMB2 negotiate follows (MS-SMB2 3.3.5.3.1).
    0x02FF: "2.???",
}
NETBIOS_SESSION = frozenset({0x81, 0x82, 0x83, 0x84, 0x85})  # request, answers, keep-alive


@dataclass(frozen=True, slots=True)
class ClientHello:
    version: str | None
    server_name: str | None


@dataclass(frozen=True, slots=True)
class ServerHello:
    version: str | None
    cipher: str | None


def _u16(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 2], "big")


def _handshake(payload: bytes, kind: int) -> bytes | None:
    """The body of the first handshake message of a TLS record, if it is of `kind`."""
    if len(payload) < 9 or payload[0] != 0x16 or payload[1] != 0x03 or payload[5] != kind:
        return None
    length = int.from_bytes(payload[6:9], "big")
    return payload[9 : 9 + length]


def _extensions(body: bytes, pos: int) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    if pos + 2 > len(body):
        return found
    end = min(len(body), pos + 2 + _u16(body, pos))
    pos += 2
    while pos + 4 <= end:
        kind, length = _u16(body, pos), _u16(body, pos + 2)
        found[kind] = body[pos + 4 : pos + 4 + length]
        pos += 4 + length
    return found


def client_hello(payload: bytes) -> ClientHello | None:
    if len(payload) >= 5 and payload[0] & 0x80 and payload[2] == 0x01:
        # SSLv2 format: length (high bit set), CLIENT-HELLO, the highest version offered.
        version = TLS_VERSIONS.get(_u16(payload, 3))
        return ClientHello(version, None) if version is not None else None
    body = _handshake(payload, 0x01)
    if body is None or len(body) < 38:
        return None
    version = TLS_VERSIONS.get(_u16(body, 0))
    pos = 34
    pos += 1 + body[pos]  # session id
    if pos + 2 > len(body):
        return ClientHello(version, None)
    pos += 2 + _u16(body, pos)  # cipher suites
    if pos + 1 > len(body):
        return ClientHello(version, None)
    pos += 1 + body[pos]  # compression methods
    extensions = _extensions(body, pos)
    name = None
    sni = extensions.get(0x0000, b"")
    if len(sni) >= 5 and sni[2] == 0:  # a list holding a host_name entry first
        name = sni[5 : 5 + _u16(sni, 3)].decode("ascii", "replace")
    return ClientHello(version, name)


def server_hello(payload: bytes) -> ServerHello | None:
    body = _handshake(payload, 0x02)
    if body is None or len(body) < 38:
        return None
    version = TLS_VERSIONS.get(_u16(body, 0))
    pos = 34
    pos += 1 + body[pos]
    if pos + 3 > len(body):
        return ServerHello(version, None)
    number = _u16(body, pos)
    selected = _extensions(body, pos + 3).get(0x002B)  # TLS 1.3 says its version here
    if selected and len(selected) == 2:
        version = TLS_VERSIONS.get(_u16(selected, 0), version)
    return ServerHello(version, CIPHERS.get(number, f"0x{number:04x}"))


def smb_version(payload: bytes) -> str | None:
    """From a NetBIOS-framed SMB message: "1" for SMBv1, the dialect from an SMB2 negotiate
    response, "2" for another SMB2/3 message."""
    if len(payload) < 8:
        return None
    magic = payload[4:8]
    if magic == b"\xffSMB":
        return "1"
    if magic != b"\xfeSMB":
        return None
    header = payload[4:]
    command, flags = int.from_bytes(header[12:14], "little"), header[16] if len(header) > 16 else 0
    if command == 0 and flags & 0x01 and len(header) >= 64 + 6:  # a negotiate response
        dialect = int.from_bytes(header[68:70], "little")
        return SMB2_DIALECTS.get(dialect, f"0x{dialect:04x}")
    return "2"


def netbios_session(payload: bytes) -> bool:
    """A NetBIOS session service message other than a session message (RFC 1002 4.3): the
    session request that opens SMB on port 139, its answers, a keep-alive."""
    return len(payload) >= 4 and payload[0] in NETBIOS_SESSION


def netbios_session_request(payload: bytes) -> bool:
    """The message a client opens a NetBIOS session with (called and calling names)."""
    return len(payload) >= 4 and payload[0] == 0x81


def rdp_request(payload: bytes) -> bool:
    """An X.224 Connection Request in a TPKT carrying RDP's own data (MS-RDPBCGR 2.2.1.1): a
    cookie or routing token ("Cookie: "), or an RDP negotiation request (type 1, length 8).
    The rest of ISO transport (MMS, S7comm on port 102) opens the same way, with COTP
    parameters (0xC0-0xC2) where RDP's data goes."""
    if len(payload) < 19 or payload[:2] != b"\x03\x00" or payload[5] != 0xE0:
        return False
    if payload[6:8] != b"\x00\x00" or payload[10] != 0:  # no destination yet, class 0
        return False
    data = payload[11 : 5 + payload[4]]
    return data.startswith(b"Cookie: ") or (data[:1] == b"\x01" and data[2:4] == b"\x08\x00")
