"""SSH, read as far as Zeek's SSH analyzer reads it to confirm it: each side's identification
line ("SSH-2.0-..."), then its SSH2 binary packets in the clear, until a NEWKEYS message
(type 21) from either side, which confirms the analyzer (the service "ssh"), on port 22, or
elsewhere once both sides' lines were read (Zeek's signatures need both). Each side's bytes
are read in sequence order; a gap, an identification that is no "SSH-" line, SSH1, or a
packet length no SSH2 packet has ends the reading. Nothing of the key exchange is kept.
"""

from __future__ import annotations

MASK = 0xFFFFFFFF
SSH_PORT = 22  # Zeek's SSH analyzer's port; elsewhere its signatures need both sides' lines
MAX_LINE = 255  # RFC 4253: the identification line, CR LF included
MAX_PACKET = 35000  # RFC 4253: the largest packet an implementation must accept
NEWKEYS = 21


def may_start(segment: bytes) -> bool:
    """A side's first payload that opens an SSH identification."""
    return segment.startswith(b"SSH-")


class SshStream:
    """Both sides of one connection, until NEWKEYS (`feed` answers True), or until the
    reading ends (False); None: read on."""

    __slots__ = ("expected", "buffers", "lines", "port")

    def __init__(self, resp_port: int) -> None:
        self.port = resp_port
        self.expected: dict[bool, int] = {}
        self.buffers: dict[bool, bytearray] = {True: bytearray(), False: bytearray()}
        # Per side: the identification line read.
        self.lines: dict[bool, bool] = {True: False, False: False}

    def feed(self, is_orig: bool, seq: int, segment: bytes) -> bool | None:
        expected = self.expected.get(is_orig)
        if expected is not None and seq != expected:
            if (seq - expected) & MASK < 0x80000000:
                return False  # a gap: the packets after it cannot be found
            overlap = (expected - seq) & MASK
            if overlap >= len(segment):
                return None  # a retransmission
            segment, seq = segment[overlap:], expected
        self.expected[is_orig] = (seq + len(segment)) & MASK
        buf = self.buffers[is_orig]
        buf += segment
        if not self.lines[is_orig]:
            end = buf.find(b"\n")
            if end < 0:
                return (
                    False
                    if len(buf) > MAX_LINE or not buf.startswith(b"SSH-"[: len(buf)])
                    else None
                )
            if not buf.startswith((b"SSH-2.", b"SSH-1.99")):
                return False  # no identification, or SSH1
            del buf[: end + 1]
            self.lines[is_orig] = True
        while len(buf) >= 6:
            if buf[5] == NEWKEYS:
                # Off port 22, Zeek's analyzer came from signatures matching both lines.
                return self.port == SSH_PORT or (self.lines[True] and self.lines[False])
            length = int.from_bytes(buf[:4], "big")
            if length < 5 or length > MAX_PACKET:
                return False
            if len(buf) < 4 + length:
                return None
            del buf[: 4 + length]
        return None
