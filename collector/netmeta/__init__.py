"""Network metadata from captures: Zeek-style conn and dns records, and HL7 v2 message
headers seen over MLLP, DICOM association requests, TLS and SMB openings, TLS begun
mid-connection as Zeek's analyzers hand over to it (starttls.py) (`vigie netmeta`)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from collector.netmeta.decode import Decoder
from collector.netmeta.errors import CaptureFormatError, VigieNetmetaError
from collector.netmeta.flows import ConnTracker
from collector.netmeta.pipeline import run
from collector.netmeta.reader import ReadStats
from collector.netmeta.records import (
    ConnRecord,
    DicomRecord,
    DnsRecord,
    Hl7Record,
    HttpRecord,
    Record,
    SmbRecord,
    SslRecord,
    TunnelRecord,
)

__all__ = [
    "CaptureFormatError",
    "ConnRecord",
    "DicomRecord",
    "DnsRecord",
    "Hl7Record",
    "HttpRecord",
    "NetmetaStats",
    "Record",
    "SmbRecord",
    "SslRecord",
    "TunnelRecord",
    "VigieNetmetaError",
    "extract",
]


@dataclass
class NetmetaStats:
    """Counts of one extraction; `read.bad_records` counts damaged capture records."""

    read: ReadStats = field(default_factory=ReadStats)
    undecoded: int = 0
    malformed: int = 0
    bad_checksums: int = 0
    connections: int = 0
    dns_records: int = 0
    hl7_records: int = 0
    dicom_records: int = 0
    seconds: float = 0.0

    @property
    def packets_per_second(self) -> float:
        return self.read.packets / self.seconds if self.seconds else 0.0


def extract(
    paths: Iterable[Path], stats: NetmetaStats | None = None, *, verify_checksums: bool = False
) -> Iterator[Record]:
    """Conn and dns records of the captures, as connections end; fills `stats` as it goes.

    Captures are read in the order given as one stream (a capture split in files continues),
    and a file that is not a capture is counted in `stats.read.files_failed` and skipped.
    With `verify_checksums` (Zeek's default, off with `zeek -C`), packets with a bad checksum
    count only as a C/c in their connection's history.
    """
    stats = stats if stats is not None else NetmetaStats()
    tracker = ConnTracker()
    decoder = Decoder(tracker, verify_checksums=verify_checksums)
    started = time.perf_counter()
    yield from run(paths, stats.read, decoder, tracker)
    stats.undecoded = decoder.undecoded
    stats.malformed = decoder.malformed
    stats.bad_checksums = decoder.bad_checksums
    stats.connections = tracker.connections
    stats.dns_records = tracker.dns_records
    stats.hl7_records = tracker.hl7_records
    stats.dicom_records = tracker.dicom_records
    stats.seconds = time.perf_counter() - started
