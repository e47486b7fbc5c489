"""The extraction loop: captures read frame by frame, decoded, accounted for, records out.

Apart from `extract` (the package's `__init__`) so that it is compiled with the modules it
drives (setup.py): each frame then goes from the reader to the decoder as a C call.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from collector.netmeta.decode import Decoder
from collector.netmeta.errors import CaptureFormatError
from collector.netmeta.flows import ConnTracker
from collector.netmeta.reader import Frame, PcapRecords, ReadStats, is_pcap, read_pcapng
from collector.netmeta.records import Record
from detection.compiled import is_compiled


def run(
    paths: Iterable[Path], read: ReadStats, decoder: Decoder, tracker: ConnTracker
) -> Iterator[Record]:
    """The records of the captures, as their connections end, then of those left at the end.

    Captures are read in the order given as one stream, and a file that is not a capture is
    counted in `read.files_failed` and skipped."""
    done = tracker.done  # records of the connections ended, in order
    compiled = is_compiled(sys.modules[__name__])
    for path in paths:
        try:
            with path.open("rb") as fh:
                if is_pcap(path, fh):
                    # A window of records at a time, decoded without leaving C once compiled;
                    # the records of the connections they ended follow, in the same order.
                    pcap = PcapRecords(path, fh, read)
                    bytewise = compiled and pcap.little
                    while True:
                        pcap_window(pcap, decoder, bytewise)
                        while done:
                            yield done.popleft()
                        if not pcap.next_window():
                            break
                else:
                    # Through iter(): mypyc (1.20) fails to compile a loop straight over a
                    # generator of another compiled module.
                    frames: Iterator[Frame] = iter(read_pcapng(path, fh, read))
                    for ts, linktype, data, wire in frames:
                        decoder.frame(ts, linktype, data, wire)
                        while done:
                            yield done.popleft()
        except (CaptureFormatError, OSError) as exc:
            read.files_failed += 1
            read.errors.append(str(exc))
            continue
        read.files_read += 1
    tracker.flush()
    while done:
        yield done.popleft()


def pcap_window(pcap: PcapRecords, decoder: Decoder, bytewise: bool) -> None:
    """The whole records of a pcap window to the decoder (reader._read_pcap's loop, with a
    call where it yields): a plain function, its variables C locals once compiled, where a
    generator's live in an object. `bytewise` (little-endian records, compiled): the record
    header read byte by byte, sixteen C array reads, where struct would make a tuple and four
    ints per record; interpreted, struct is the faster."""
    buf, unit, linktype, limit = pcap.buf, pcap.unit, pcap.linktype, pcap.limit
    unpack = pcap.rec.unpack_from
    data, pos = buf.data, buf.pos
    end = len(data)
    packets = nbytes = 0
    # Typed: compiled, the fields are then C integers, not objects (struct returns Any).
    sec: int
    frac: int
    incl: int
    orig: int
    try:
        while pos + 16 <= end:
            if bytewise:
                sec, frac = _le32(data, pos), _le32(data, pos + 4)
                incl, orig = _le32(data, pos + 8), _le32(data, pos + 12)
            else:
                sec, frac, incl, orig = unpack(data, pos)
            start = pos + 16
            nxt = start + incl
            if nxt > end or incl > limit:
                break
            packets += 1
            nbytes += incl
            pos = nxt
            decoder.frame(sec + frac / unit, linktype, data[start:nxt], orig)
    finally:
        buf.pos = pos
        pcap.stats.packets += packets
        pcap.stats.bytes += nbytes


def _le32(data: bytes, at: int) -> int:
    return data[at] | data[at + 1] << 8 | data[at + 2] << 16 | data[at + 3] << 24
