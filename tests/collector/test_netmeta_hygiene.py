"""What the maturity controls on network hygiene read, from the captures of cli/hygiene_traffic.py
and from the variants another capture of the same traffic may hold: TLS 1.0 answered with or
without extensions, TLS 1.3 said in supported_versions, an old client's SSLv2-format hello; an
SMBv1 negotiate from a real client offering many dialects, answered in SMB1 or (multi-protocol)
in SMB2, SMB2 negotiation, SMB on port 139 after a NetBIOS session request; HL7 on a port of
its own and with the MLLP start byte sent alone; remote desktop's X.224 connection request on
any port, and ISO transport (MMS) that opens the same way but is no RDP. The scapy layers a
capture would be made with (TLS, SMB, SMB2) are used as well as hand-built messages."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from cli import hygiene_traffic as h
from cli.main import main
from collector.netmeta import extract

CLIENT, SERVER = "10.0.0.1", "10.0.0.2"


def _records(tmp_path: Path, port: int, exchanges: Sequence[tuple[bool, bytes]]) -> list[Any]:
    path = tmp_path / f"{port}.pcap"
    h.write_packets(path, h.tcp_session(CLIENT, 40000, SERVER, port, exchanges), time.time())
    return list(extract([path]))


def _only(records: list[Any], path: str) -> Any:
    (found,) = [r for r in records if r.path == path]
    return found


def _zeek(capture: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    assert main(["netmeta", "--format", "zeek", str(capture)]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_the_bad_hygiene_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = tmp_path / "bad.pcap"
    h.write_bad_hygiene(capture, time.time())
    records = _zeek(capture, capsys)
    smb = [r for r in records if r["_path"] == "smb"]
    assert [(r["id.resp_h"], r["version"]) for r in smb] == [(h.BAD["files"], "1")]
    ssl = {r["id.resp_h"]: r for r in records if r["_path"] == "ssl"}
    assert {k: (v["version"], v["established"]) for k, v in ssl.items()} == {
        h.BAD["intranet"]: ("TLSv10", True),
        h.BAD["dpi"]: ("TLSv12", True),
        h.BAD["webmail"]: ("TLSv10", True),
    }
    assert ssl[h.BAD["webmail"]]["id.orig_h"] == h.TLS_CLIENT
    assert ssl[h.BAD["intranet"]]["server_name"] == "intranet.clinique.test"
    rdp = [r for r in records if r["_path"] == "conn" and r["id.resp_p"] == 3389]
    assert [(r["id.orig_h"], r["conn_state"], r["service"]) for r in rdp] == [
        (h.RDP_CLIENTS[0], "SF", "rdp"),
        (h.RDP_CLIENTS[0], "SF", "rdp"),
        (h.RDP_CLIENTS[1], "SF", "rdp"),
    ]
    assert all(r["orig_bytes"] > 0 and r["resp_bytes"] > 0 for r in rdp)  # data both ways
    hl7 = [r for r in records if r["_path"] == "hl7"]
    assert [(r["message_type"], r["trigger_event"], r["is_orig"]) for r in hl7] == [
        ("ADT", "A01", True),
        ("ACK", "A01", False),
    ]
    assert {(r["id.orig_h"], r["id.resp_h"], r["id.resp_p"]) for r in hl7} == {
        (h.BAD["hl7"], h.HL7_PLATFORM, 2575)
    }
    text = capture.read_bytes()
    assert b"TESTPATIENT" in text  # in the capture, and in no record
    assert not [r for r in records if "TESTPATIENT" in json.dumps(r)]


def test_the_good_hygiene_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = tmp_path / "good.pcap"
    h.write_good_hygiene(capture, time.time())
    records = _zeek(capture, capsys)
    smb = {r["id.resp_h"]: r["version"] for r in records if r["_path"] == "smb"}
    assert smb == {h.GOOD["files"]: "3.1.1", h.GOOD["nas"]: "2.???"}
    ssl = {r["id.resp_h"]: r["version"] for r in records if r["_path"] == "ssl"}
    assert ssl == {h.GOOD["intranet"]: "TLSv12", h.GOOD["webmail"]: "TLSv13"}
    rdp = [r for r in records if r["_path"] == "conn" and r["id.resp_p"] == 3389]
    assert [(r["id.orig_h"], r["conn_state"]) for r in rdp] == [
        (h.GOOD["admin"], "SF"),
        (h.RDP_CLIENTS[0], "REJ"),
        (h.RDP_CLIENTS[1], "S0"),
    ]
    hl7 = [r for r in records if r["_path"] == "hl7"]
    assert {(r["id.orig_h"], r["id.resp_h"]) for r in hl7} == {(h.GOOD["hl7"], h.GOOD["lab"])}


@pytest.mark.parametrize("extensions", [True, False])
def test_tls10_server_hello_with_or_without_extensions(tmp_path: Path, extensions: bool) -> None:
    records = _records(
        tmp_path,
        443,
        [
            (True, h.tls_client_hello(h.TLS10, "a.test")),
            (False, h.tls_server_hello(h.TLS10, 0x0035, extensions=extensions)),
        ],
    )
    ssl = _only(records, "ssl")
    assert (ssl.version, ssl.cipher, ssl.established) == (
        "TLSv10",
        "TLS_RSA_WITH_AES_256_CBC_SHA",
        True,
    )


def test_tls_made_with_scapys_tls_layer(tmp_path: Path) -> None:
    from scapy.layers.tls.extensions import (
        TLS_Ext_RenegotiationInfo,
        TLS_Ext_SupportedVersion_CH,
        TLS_Ext_SupportedVersion_SH,
    )
    from scapy.layers.tls.handshake import (
        TLS13ClientHello,
        TLS13ServerHello,
        TLSClientHello,
        TLSServerHello,
        TLSServerHelloDone,
    )
    from scapy.layers.tls.record import TLS

    old = _records(
        tmp_path,
        8443,
        [
            (True, bytes(TLS(version=0x0301, msg=[TLSClientHello(version=0x0301)]))),
            (
                False,
                bytes(
                    TLS(
                        version=0x0301,
                        msg=[
                            TLSServerHello(
                                version=0x0301, cipher=0x002F, ext=[TLS_Ext_RenegotiationInfo()]
                            ),
                            TLSServerHelloDone(),
                        ],
                    )
                ),
            ),
        ],
    )
    assert _only(old, "ssl").version == "TLSv10"
    hello = TLS13ClientHello(ciphers=[0x1301], ext=[TLS_Ext_SupportedVersion_CH(versions=[0x0304])])
    answer = TLS13ServerHello(cipher=0x1301, ext=[TLS_Ext_SupportedVersion_SH(version=0x0304)])
    new = _records(
        tmp_path,
        443,
        [
            (True, bytes(TLS(version=0x0301, msg=[hello]))),
            (False, bytes(TLS(version=0x0303, msg=[answer]))),
        ],
    )
    ssl = _only(new, "ssl")
    assert (ssl.version, ssl.cipher) == ("TLSv13", "TLS_AES_128_GCM_SHA256")


def test_an_sslv2_format_client_hello_offering_tls10(tmp_path: Path) -> None:
    """Netmeta fix: an old client's SSLv2-format hello was no TLS at all, so the server's TLS 1.0
    answer went unseen."""
    specs = bytes.fromhex("0100800700c000003500002f")
    body = struct.pack("!BHHHH", 0x01, h.TLS10, len(specs), 0, 16) + specs + bytes(16)
    hello = struct.pack("!H", 0x8000 | len(body)) + body
    records = _records(tmp_path, 443, [(True, hello), (False, h.tls_server_hello(h.TLS10, 0x2F))])
    ssl = _only(records, "ssl")
    assert (ssl.version, ssl.established, ssl.server_name) == ("TLSv10", True, None)
    assert _only(records, "conn").service == "ssl"


def test_smb1_negotiate_from_a_real_client_answered_in_smb1_or_smb2(tmp_path: Path) -> None:
    from scapy.layers.netbios import NBTSession
    from scapy.layers.smb import SMB_Header, SMBNegotiate_Request, SMBNegotiate_Response_NoSecurity

    # Windows' own list: the old dialects, then SMB2's, as a client that may fall back sends.
    dialects = (*h.SMB1_DIALECTS, "SMB 2.002", "SMB 2.???")
    smb1 = _records(
        tmp_path,
        445,
        [
            (True, h.smb1_negotiate_request(dialects)),
            (False, h.smb1_negotiate_response(dialects.index("NT LM 0.12"))),
        ],
    )
    assert _only(smb1, "smb").version == "1"
    upgraded = _records(
        tmp_path,
        445,
        [(True, h.smb1_negotiate_request(dialects)), (False, h.smb2_negotiate_response(0x02FF))],
    )
    assert _only(upgraded, "smb").version == "2.???"  # named since this fix (was "0x02ff")
    scapy_made = _records(
        tmp_path,
        445,
        [
            (True, bytes(NBTSession() / SMB_Header() / SMBNegotiate_Request())),
            (
                False,
                bytes(
                    NBTSession()
                    / SMB_Header(Flags=0x98)
                    / SMBNegotiate_Response_NoSecurity(DialectIndex=5)
                ),
            ),
        ],
    )
    assert _only(scapy_made, "smb").version == "1"
    assert _only(scapy_made, "conn").service == "smb"


def test_smb2_negotiation(tmp_path: Path) -> None:
    from scapy.layers.netbios import NBTSession
    from scapy.layers.smb2 import (
        SMB2_Header,
        SMB2_Negotiate_Protocol_Request,
        SMB2_Negotiate_Protocol_Response,
    )

    ours = _records(
        tmp_path,
        445,
        [
            (True, h.smb2_negotiate_request(h.SMB2_DIALECTS)),
            (False, h.smb2_negotiate_response(0x0300)),
        ],
    )
    assert _only(ours, "smb").version == "3.0"
    request = SMB2_Negotiate_Protocol_Request(Dialects=[0x0202, 0x0311])
    response = SMB2_Negotiate_Protocol_Response(DialectRevision=0x0311)
    scapy_made = _records(
        tmp_path,
        445,
        [
            (True, bytes(NBTSession() / SMB2_Header() / request)),
            (False, bytes(NBTSession() / SMB2_Header(Flags=1) / response)),
        ],
    )
    assert _only(scapy_made, "smb").version == "3.1.1"


def _netbios_name(name: str) -> bytes:
    """First-level encoding of a NetBIOS name (RFC 1001 14.1)."""
    padded = name.upper().ljust(16).encode("ascii")
    return b"\x20" + bytes(65 + (c >> 4 if i % 2 == 0 else c & 0xF) for c in padded for i in (0, 1))


def test_smb_on_port_139_after_a_netbios_session_request(tmp_path: Path) -> None:
    """Netmeta fix: the session request came first, so the negotiate after it was never read
    and SMBv1 on port 139 went unseen."""
    names = _netbios_name("FILESRV") + b"\x00" + _netbios_name("PC-01") + b"\x00"
    request = b"\x81\x00" + struct.pack("!H", len(names)) + names
    positive = b"\x82\x00\x00\x00"
    records = _records(
        tmp_path,
        139,
        [
            (True, request),
            (False, positive),
            (True, h.smb1_negotiate_request(h.SMB1_DIALECTS)),
            (False, h.smb1_negotiate_response(5)),
        ],
    )
    assert _only(records, "smb").version == "1"
    assert _only(records, "conn").service == "smb"
    refused = _records(tmp_path, 139, [(True, request), (False, b"\x83\x00\x00\x01\x82")])
    assert [r.path for r in refused] == ["conn"]  # a refused session: no SMB record
    assert refused[0].service is None


def test_hl7_on_another_port_and_with_the_start_byte_alone(tmp_path: Path) -> None:
    """Netmeta fix for the second: a sender writing MLLP's start byte in a segment of its own
    hid the whole connection's messages."""
    message, ack = h.hl7_exchange("CLINIQUE-X")
    elsewhere = _records(tmp_path, 6661, [message, ack])
    assert [r.message_type for r in elsewhere if r.path == "hl7"] == ["ADT", "ACK"]
    assert _only(elsewhere, "conn").service == "hl7"
    split = _records(tmp_path, 2575, [(True, b"\x0b"), (True, message[1][1:]), ack])
    assert [r.message_type for r in split if r.path == "hl7"] == ["ADT", "ACK"]
    assert _only(split, "conn").service == "hl7"
    assert not [r for r in split if "TESTPATIENT" in json.dumps(r.zeek())]


def test_rdp_is_named_from_its_connection_request_on_any_port(tmp_path: Path) -> None:
    """Netmeta fix: Zeek names rdp from the X.224 connection request; Vigie named nothing, so
    remote desktop moved off 3389 looked like any connection."""
    for port in (3389, 13389):
        records = _records(tmp_path, port, h.rdp_exchange())
        conn = _only(records, "conn")
        assert (conn.service, conn.conn_state) == ("rdp", "SF")
    negotiation_only = h.tpkt(b"\x0e\xe0\x00\x00\x00\x00\x00" + struct.pack("<BBHI", 1, 0, 8, 0))
    assert _only(_records(tmp_path, 3390, [(True, negotiation_only)]), "conn").service == "rdp"
    # ISO transport (MMS, S7comm) opens with a connection request too, carrying COTP
    # parameters: no RDP.
    cotp = h.tpkt(b"\x11\xe0\x00\x00\x00\x01\x00\xc1\x02\x00\x00\xc2\x02\x00\x01\xc0\x01\x0a")
    assert _only(_records(tmp_path, 102, [(True, cotp)]), "conn").service is None


def _server_side(tmp_path: Path, port: int, *, handshake: bool = True) -> list[Any]:
    """A TLS session seen from the server's side only (the client's packets were not
    captured): its SYN-ACK unless `handshake` is False, its ServerHello, its FIN."""
    hello = h.tls_server_hello(h.TLS12, 0xC02F)
    session = h.tcp_session(CLIENT, 40000, SERVER, port, [(True, b"\x16" * 50), (False, hello)])
    kept = [p for p in session if p["IP"].src == SERVER and (handshake or p["TCP"].flags != "SA")]
    path = tmp_path / f"server-{port}-{handshake}.pcap"
    h.write_packets(path, kept, time.time())
    return list(extract([path]))


def test_a_server_hello_alone_is_logged_on_an_ssl_port(tmp_path: Path) -> None:
    """Zeek attaches its SSL analyzer on SSL::ssl_ports from the start: a ServerHello with no
    ClientHello before it gives an ssl.log line, though the analyzer is not confirmed (only a
    ClientHello confirms it) and the connection names no service."""
    records = _server_side(tmp_path, 443)
    ssl = _only(records, "ssl")
    assert (ssl.version, ssl.cipher, ssl.server_name, ssl.established) == (
        "TLSv12",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        None,
        False,
    )
    conn = _only(records, "conn")
    assert (conn.orig_h, conn.resp_p, conn.service) == (CLIENT, 443, None)
    assert ssl.uid == conn.uid


def test_a_server_hello_alone_elsewhere_or_mid_stream_is_not(tmp_path: Path) -> None:
    """Off Zeek's SSL ports its SSL signature needs the client's hello too; mid-stream (no
    SYN-ACK) the connection is partial, whose payload Zeek's SSL analyzer ignores."""
    assert [r for r in _server_side(tmp_path, 8443) if r.path == "ssl"] == []
    assert [r for r in _server_side(tmp_path, 443, handshake=False) if r.path == "ssl"] == []
