"""Reading pcap and pcapng files record by record, without dissecting anything.

A capture is a stream of (timestamp, linktype, frame bytes). Damage is counted, not raised:
a record whose header makes no sense is counted in `ReadStats.bad_records` and the reader
resynchronises or stops (a truncated last record is the common case of a capture cut short).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from collector.netmeta.errors import CaptureFormatError

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
PCAPNG_SHB = 0x0A0D0D0A
# A frame larger than this is a corrupt length field, not a frame (jumbo frames stay well below).
MAX_FRAME = 256 * 1024
CHUNK = 1 << 20


@dataclass
class ReadStats:
    """What reading cost and what it had to skip."""

    files_read: int = 0
    files_failed: int = 0
    packets: int = 0
    bytes: int = 0
    bad_records: int = 0
    errors: list[str] = field(default_factory=list)

    def bad(self, path: Path, offset: int, why: str) -> None:
        self.bad_records += 1
        if len(self.errors) < 100:
            self.errors.append(f"{path}: offset {offset}: {why}")


# (timestamp, link type, captured bytes, length on the wire)
Frame = tuple[float, int, bytes, int]


def read_capture(path: Path, stats: ReadStats) -> Iterator[Frame]:
    """Frames of one pcap or pcapng file; raises CaptureFormatError if it is neither."""
    with path.open("rb") as fh:
        if is_pcap(path, fh):
            yield from _read_pcap(path, fh, stats)
        else:
            yield from read_pcapng(path, fh, stats)


def is_pcap(path: Path, fh: BinaryIO) -> bool:
    """True for a pcap file, False for a pcapng one (either way, `fh` is left at its start);
    raises CaptureFormatError if it is neither."""
    head = fh.read(4)
    if len(head) < 4:
        raise CaptureFormatError(f"{path}: empty or too short to be a capture")
    fh.seek(0)
    if head in PCAP_MAGICS:
        return True
    if struct.unpack("<I", head)[0] == PCAPNG_SHB:
        return False
    raise CaptureFormatError(f"{path}: not a pcap or pcapng file (magic {head.hex()})")


class _Buffer:
    """A sliding window over a file: records are sliced out of large reads, not read one by one."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.data = b""
        self.pos = 0
        self.base = 0  # file offset of data[0]

    def need(self, n: int) -> bool:
        """Make n bytes available at pos; False at end of file."""
        if self.pos + n <= len(self.data):
            return True
        self.base += self.pos
        self.data = self.data[self.pos :] + self.fh.read(max(CHUNK, n))
        self.pos = 0
        return n <= len(self.data)

    @property
    def offset(self) -> int:
        return self.base + self.pos


class PcapRecords:
    """An open pcap file, as windows of whole records: from `buf.pos`, `buf.data` holds records
    one after the other, which the caller reads (`read_pcap_window` is the shape of that loop)
    until one crosses the window's end or has a length past `limit`, leaves `buf.pos` there,
    and calls `next_window`. Its loop is the caller's own so that each frame can go straight
    to a decoder (pipeline.py), not through a generator and a tuple per frame."""

    def __init__(self, path: Path, fh: BinaryIO, stats: ReadStats) -> None:
        buf = _Buffer(fh)
        if not buf.need(24):
            raise CaptureFormatError(f"{path}: truncated pcap file header")
        endian, self.unit = PCAP_MAGICS[buf.data[:4]]
        # Typed (struct gives Any): compiled, the loops over records then read C integers.
        snaplen: int
        linktype: int
        snaplen, linktype = struct.unpack_from(endian + "II", buf.data, 16)
        self.linktype = linktype & 0x0FFFFFFF  # the upper bits may carry FCS information
        self.limit = max(snaplen, MAX_FRAME) if snaplen < 1 << 24 else MAX_FRAME
        buf.pos = 24
        self.buf = buf
        self.rec = struct.Struct(endian + "IIII")
        self.little = endian == "<"
        self.path = path
        self.stats = stats

    def next_window(self) -> bool:
        """After the caller stopped at `buf.pos`: make the next record whole in the window
        (refilled, or resynchronised past damage, which is counted); False at the end."""
        buf = self.buf
        if not buf.need(16):
            return False
        incl = self.rec.unpack_from(buf.data, buf.pos)[2]
        if incl > self.limit:
            self.stats.bad(
                self.path, buf.offset, f"record length {incl} exceeds the snapshot length"
            )
            return _resync_pcap(buf, self.rec, self.limit)
        if not buf.need(16 + incl):
            self.stats.bad(self.path, buf.offset, "truncated last record")
            return False
        return True


def _read_pcap(path: Path, fh: BinaryIO, stats: ReadStats) -> Iterator[Frame]:
    pcap = PcapRecords(path, fh, stats)
    buf, unit, linktype, limit = pcap.buf, pcap.unit, pcap.linktype, pcap.limit
    unpack = pcap.rec.unpack_from
    packets = nbytes = 0
    sec: int
    frac: int
    incl: int
    orig: int
    try:
        while True:
            # Records are sliced straight out of the window until one crosses its end; the
            # window is only refilled (and damage looked for) then.
            data, pos = buf.data, buf.pos
            end = len(data)
            while pos + 16 <= end:
                sec, frac, incl, orig = unpack(data, pos)
                start = pos + 16
                nxt = start + incl
                if nxt > end or incl > limit:
                    break
                packets += 1
                nbytes += incl
                pos = nxt
                yield sec + frac / unit, linktype, data[start:nxt], orig
            buf.pos = pos
            if not pcap.next_window():
                return
    finally:
        stats.packets += packets
        stats.bytes += nbytes


def _resync_pcap(buf: _Buffer, rec: struct.Struct, limit: int) -> bool:
    """After a corrupt record header, look for the next plausible one (two in a row must parse)."""
    buf.pos += 1
    # need(33): one byte more than a window, so a window ending at the buffer's end reloads.
    while buf.need(33):
        data, pos = buf.data, buf.pos
        end = min(len(data) - 32, pos + CHUNK)
        while pos < end:
            sec, frac, incl, orig = rec.unpack_from(data, pos)
            if incl <= limit and incl <= orig and frac < 1_000_000_000:
                nxt = pos + 16 + incl
                if nxt + 16 <= len(data):
                    s2, f2, i2, o2 = rec.unpack_from(data, nxt)
                    if i2 <= limit and i2 <= o2 and f2 < 1_000_000_000 and abs(s2 - sec) < 86400:
                        buf.pos = pos
                        return True
                elif nxt <= len(data):
                    buf.pos = pos
                    return True
            pos += 1
        buf.pos = pos
    return False


def read_pcapng(path: Path, fh: BinaryIO, stats: ReadStats) -> Iterator[Frame]:
    buf = _Buffer(fh)
    endian = "<"
    # Per interface: linktype and timestamp ticks per second, in the order the IDBs appeared.
    interfaces: list[tuple[int, int]] = []
    while buf.need(12):
        data, pos = buf.data, buf.pos
        btype = struct.unpack_from(endian + "I", data, pos)[0]
        if btype == PCAPNG_SHB or struct.unpack_from("<I", data, pos)[0] == PCAPNG_SHB:
            bom = data[pos + 8 : pos + 12]
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            if bom not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                stats.bad(path, buf.offset, "bad section header byte-order magic")
                return
            interfaces = []
            btype = PCAPNG_SHB
        blen = struct.unpack_from(endian + "I", data, pos + 4)[0]
        if blen < 12 or blen % 4 or blen > MAX_FRAME + 1024:
            stats.bad(path, buf.offset, f"bad block length {blen}")
            return
        if not buf.need(blen):
            stats.bad(path, buf.offset, "truncated last block")
            return
        data, pos = buf.data, buf.pos
        body = pos + 8
        buf.pos = pos + blen
        if btype == 1:  # interface description
            linktype = struct.unpack_from(endian + "H", data, body)[0]
            interfaces.append((linktype, _if_tsresol(data, body + 8, pos + blen - 4, endian)))
        elif btype in (6, 2):  # enhanced packet, obsolete packet
            if btype == 6:
                ifid, hi, lo, cap, orig = struct.unpack_from(endian + "IIIII", data, body)
            else:
                ifid, hi, lo, cap, orig = struct.unpack_from(endian + "HxxIIII", data, body)
            start = body + 20
            if ifid >= len(interfaces) or start + cap > pos + blen - 4:
                stats.bad(path, pos + buf.base, "packet block with bad interface or length")
                continue
            linktype, per_second = interfaces[ifid]
            # Seconds and fraction apart, so a timestamp equals the one pcap would give.
            sec, ticks = divmod((hi << 32) | lo, per_second)
            stats.packets += 1
            stats.bytes += cap
            yield sec + ticks / per_second, linktype, data[start : start + cap], orig
        elif btype == 3:  # simple packet: no timestamp, first interface
            if not interfaces:
                stats.bad(path, pos + buf.base, "simple packet block before any interface")
                continue
            orig = struct.unpack_from(endian + "I", data, body)[0]
            cap = min(orig, blen - 16)
            stats.packets += 1
            stats.bytes += cap
            yield 0.0, interfaces[0][0], data[body + 4 : body + 4 + cap], orig


def _if_tsresol(data: bytes, pos: int, end: int, endian: str) -> int:
    """Ticks per second from the if_tsresol option of an interface block (default 10^6)."""
    while pos + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", data, pos)
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = data[pos + 4]
            return 2 ** (v & 0x7F) if v & 0x80 else 10**v
        pos += 4 + ((length + 3) & ~3)
    return 1_000_000
