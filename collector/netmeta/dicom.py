"""DICOM upper layer: association requests and their answers, never the data.

An association starts with an A-ASSOCIATE-RQ PDU (type 0x01): protocol version, called and
calling AE titles (16 bytes each), then items: the application context, one presentation
context per abstract syntax (what the caller wants to do: verification, CT image storage...),
and user information. The answer is an A-ASSOCIATE-AC (0x02) or -RJ (0x03). P-DATA PDUs,
where patient attributes travel, are never parsed.
"""

from __future__ import annotations

from dataclasses import dataclass

REQUEST, ACCEPT, REJECT = 0x01, 0x02, 0x03
MAX_PDU = 64 * 1024  # an association request larger than this is not followed

# The abstract syntaxes most seen in a hospital, by UID (DICOM PS3.6 Annex A).
SYNTAX_NAMES = {
    "1.2.840.10008.1.1": "Verification",
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.4": "MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.1": "Computed Radiography Image Storage",
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound Image Storage",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR Storage",
    "1.2.840.10008.5.1.4.1.2.1.1": "Patient Root Query/Retrieve - FIND",
    "1.2.840.10008.5.1.4.1.2.1.2": "Patient Root Query/Retrieve - MOVE",
    "1.2.840.10008.5.1.4.1.2.2.1": "Study Root Query/Retrieve - FIND",
    "1.2.840.10008.5.1.4.1.2.2.2": "Study Root Query/Retrieve - MOVE",
    "1.2.840.10008.5.1.4.1.2.2.3": "Study Root Query/Retrieve - GET",
    "1.2.840.10008.5.1.4.31": "Modality Worklist - FIND",
}


@dataclass(frozen=True, slots=True)
class AssociationRequest:
    called_ae: str
    calling_ae: str
    abstract_syntaxes: tuple[str, ...]


def looks_like_request(payload: bytes) -> bool:
    """The first bytes of a stream are an A-ASSOCIATE-RQ: type 1, protocol version 1."""
    return len(payload) >= 10 and payload[0] == REQUEST and payload[6:8] == b"\x00\x01"


def pdu_length(buffer: bytes | bytearray) -> int | None:
    """The whole PDU's length once its 6-byte header is there."""
    if len(buffer) < 6:
        return None
    return 6 + int.from_bytes(buffer[2:6], "big")


def parse_request(pdu: bytes) -> AssociationRequest | None:
    if len(pdu) < 74 or pdu[0] != REQUEST:
        return None
    called = pdu[10:26].decode("ascii", "replace").strip()
    calling = pdu[26:42].decode("ascii", "replace").strip()
    syntaxes: list[str] = []
    pos = 74
    while pos + 4 <= len(pdu):
        kind, length = pdu[pos], int.from_bytes(pdu[pos + 2 : pos + 4], "big")
        body = pdu[pos + 4 : pos + 4 + length]
        if kind == 0x20:  # presentation context: id, reserved x3, then sub-items
            sub = 4
            while sub + 4 <= len(body):
                sub_kind = body[sub]
                sub_length = int.from_bytes(body[sub + 2 : sub + 4], "big")
                if sub_kind == 0x30:
                    uid = body[sub + 4 : sub + 4 + sub_length].rstrip(b"\x00 ")
                    syntaxes.append(uid.decode("ascii", "replace"))
                sub += 4 + sub_length
        pos += 4 + length
    return AssociationRequest(called, calling, tuple(syntaxes))


def syntax_name(uid: str) -> str:
    return SYNTAX_NAMES.get(uid, uid)
