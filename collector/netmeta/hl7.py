"""HL7 v2 over MLLP: who sends which kind of message to whom, and nothing about the patient.

MLLP frames a message as 0x0B, the message, 0x1C 0x0D. Only the MSH segment (sending and
receiving application and facility, message type and trigger event, control id, version) and,
for acknowledgements, MSA-1 (the acknowledgement code) are read; every other segment (PID,
NK1, PV1, OBX...) is skipped unread, so no patient data ever enters a record.
"""

from __future__ import annotations

from dataclasses import dataclass

START = 0x0B
END = b"\x1c\x0d"
MAX_BUFFER = 256 * 1024  # per direction: a frame longer than this is not followed


@dataclass(frozen=True, slots=True)
class Hl7Header:
    message_type: str | None
    trigger_event: str | None
    sending_application: str | None
    sending_facility: str | None
    receiving_application: str | None
    receiving_facility: str | None
    control_id: str | None
    version: str | None
    ack_code: str | None


def starts_mllp(payload: bytes) -> bool:
    """The first bytes of a direction's stream look like an MLLP frame carrying HL7 v2."""
    return len(payload) >= 4 and payload[0] == START and payload[1:4] == b"MSH"


def may_start(payload: bytes) -> bool:
    """The first bytes of a direction's stream may open such a frame: some senders write
    the start byte in a segment of its own, the message in the next."""
    return len(payload) >= 1 and payload[0] == START and b"MSH".startswith(payload[1:4])


class MllpStream:
    """One direction of a TCP connection: in-order segments joined, frames cut out. Data seen
    before is skipped; a gap (a lost segment) drops the frame in progress and waits for the
    next start."""

    __slots__ = ("expected", "buffer")

    def __init__(self, seq: int) -> None:
        self.expected = seq
        self.buffer = bytearray()

    def feed(self, seq: int, segment: bytes) -> list[bytes]:
        behind = (self.expected - seq) & 0xFFFFFFFF
        if 0 < behind < 2**31:  # a retransmission (or a capture that saw the packet twice)
            if behind >= len(segment):
                return []
            segment, seq = segment[behind:], self.expected
        if seq != self.expected:
            self.buffer.clear()
        self.expected = (seq + len(segment)) & 0xFFFFFFFF
        self.buffer += segment
        messages = []
        while True:
            start = self.buffer.find(START)
            if start < 0:
                self.buffer.clear()
                break
            end = self.buffer.find(END, start + 1)
            if end < 0:
                del self.buffer[:start]
                if len(self.buffer) > MAX_BUFFER:
                    self.buffer.clear()
                break
            messages.append(bytes(self.buffer[start + 1 : end]))
            del self.buffer[: end + len(END)]
        return messages


def header(message: bytes) -> Hl7Header | None:
    """The MSH (and MSA) fields of one message, or None if it is not HL7 v2."""
    if not message.startswith(b"MSH") or len(message) < 8:
        return None
    text = message.decode("latin-1")
    field_sep = text[3]
    segments = text.replace("\n", "\r").split("\r")
    msh = segments[0].split(field_sep)
    component_sep = msh[1][0] if len(msh) > 1 and msh[1] else "^"

    def get(index: int) -> str | None:
        value = msh[index] if len(msh) > index else ""
        return value.split(component_sep)[0] or None

    kind = msh[8].split(component_sep) if len(msh) > 8 else []
    ack = None
    for segment in segments[1:]:
        if segment.startswith("MSA" + field_sep):
            parts = segment.split(field_sep)
            ack = parts[1] if len(parts) > 1 and parts[1] else None
            break
    return Hl7Header(
        message_type=kind[0] if kind and kind[0] else None,
        trigger_event=kind[1] if len(kind) > 1 and kind[1] else None,
        sending_application=get(2),
        sending_facility=get(3),
        receiving_application=get(4),
        receiving_facility=get(5),
        control_id=get(9),
        version=get(11),
        ack_code=ack,
    )
