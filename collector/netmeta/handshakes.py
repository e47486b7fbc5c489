"""The first messages of TLS and SMB connections: enough to see the protocol version, the
server name asked for, the cipher chosen, and an SMBv1 server, from the opening payload of
each direction (one segment: a ClientHello or a negotiate request nearly always fits).
"""

from __future__ import annotations

from dataclasses import dataclass

TLS_VERSIONS = {
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
SMB2_DIALECTS = {0x0202: "2.0.2", 0x0210: "2.1", 0x0300: "3.0", 0x0302: "3.0.2", 0x0311: "3.1.1"}


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
