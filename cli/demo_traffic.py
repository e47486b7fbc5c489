"""The capture `vigie demo` replays: a few minutes of a clinic's network, made here with scapy.

An address of the Internet (203.0.113.45, a documentation range) reaches the clinic's HL7
interface engine over MLLP and its PACS over DICOM: the exposures Vigie's network rules look
for. Around them, ordinary traffic: DNS lookups and a web request from a workstation. The HL7
message carries an invented patient, so the demo also shows that none of it leaves the agent.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING

from cli.hygiene_traffic import tcp_session

if TYPE_CHECKING:  # scapy is imported only when the capture is made
    from scapy.packet import Packet

OUTSIDE = "203.0.113.45"
HL7_ENGINE, PACS, WORKSTATION, RESOLVER = "10.20.0.15", "10.20.0.30", "10.20.1.101", "10.20.0.2"
HL7_MESSAGE = (
    b"\x0bMSH|^~\\&|ADT|CLINIQUE-DEMO|LABO|CLINIQUE-DEMO|20261126101500||ADT^A01|DEMO0001|P|2.5\r"
    b"PID|1||DEMO-778812^^^CLINIQUE-DEMO^PI||INVENTE^PATIENTE||19510704|F\r"
    b"PV1|1|I|MED^204^2\x1c\x0d"
)
HL7_ACK = (
    b"\x0bMSH|^~\\&|LABO|CLINIQUE-DEMO|ADT|CLINIQUE-DEMO|20261126101501||ACK^A01|ACK0001|P|2.5\r"
    b"MSA|AA|DEMO0001\x1c\x0d"
)
VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def write_capture(path: Path, start: float) -> int:
    """Write the capture to `path` (pcap), its first packet at `start`; the packet count."""
    from scapy.utils import wrpcap

    packets = [
        *tcp_session(OUTSIDE, 51514, HL7_ENGINE, 2575, [(True, HL7_MESSAGE), (False, HL7_ACK)]),
        *tcp_session(
            OUTSIDE,
            51620,
            PACS,
            104,
            [(True, _associate_request()), (False, _associate_accept())],
        ),
        *_dns(WORKSTATION, 53001, "dpi.clinique-demo.test", "10.20.0.40", txid=0x1A2B),
        *_dns(WORKSTATION, 53002, "www.sante.gouv.fr", "185.60.216.35", txid=0x1A2C),
        *tcp_session(
            WORKSTATION,
            50500,
            "10.20.0.40",
            80,
            [
                (True, b"GET /dossiers/agenda HTTP/1.1\r\nHost: dpi.clinique-demo.test\r\n\r\n"),
                (False, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            ],
        ),
    ]
    for n, packet in enumerate(packets):
        packet.time = start + n * 0.05
    wrpcap(str(path), packets)
    return len(packets)


def _dns(client: str, port: int, name: str, answer: str, txid: int) -> list[Packet]:
    from scapy.layers.dns import DNS, DNSQR, DNSRR
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    query = DNS(id=txid, rd=1, qd=DNSQR(qname=name))
    reply = DNS(
        id=txid, qr=1, rd=1, ra=1, qd=DNSQR(qname=name), an=DNSRR(rrname=name, rdata=answer)
    )
    return [
        Ether() / IP(src=client, dst=RESOLVER) / UDP(sport=port, dport=53) / query,
        Ether() / IP(src=RESOLVER, dst=client) / UDP(sport=53, dport=port) / reply,
    ]


def _item(kind: int, body: bytes) -> bytes:
    return struct.pack("!BxH", kind, len(body)) + body


def _associate_request() -> bytes:
    """A DICOM A-ASSOCIATE-RQ (PS3.8 9.3.2): verification and CT image storage proposed."""
    contexts = b"".join(
        _item(
            0x20,
            bytes([pc_id, 0, 0, 0]) + _item(0x30, uid.encode()) + _item(0x40, b"1.2.840.10008.1.2"),
        )
        for pc_id, uid in ((1, VERIFICATION), (3, CT_IMAGE_STORAGE))
    )
    body = (
        struct.pack("!H2x16s16s32x", 1, b"PACS_CLINIQUE".ljust(16), b"SCANNER_X".ljust(16))
        + _item(0x10, b"1.2.840.10008.3.1.1.1")
        + contexts
        + _item(0x50, _item(0x51, struct.pack("!I", 16384)))
    )
    return struct.pack("!BxI", 0x01, len(body)) + body


def _associate_accept() -> bytes:
    body = struct.pack("!H2x16s16s32x", 1, b"PACS_CLINIQUE".ljust(16), b"SCANNER_X".ljust(16))
    return struct.pack("!BxI", 0x02, len(body)) + body
