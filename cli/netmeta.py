"""`vigie netmeta`: conn and dns records from pcap/pcapng captures, as JSON lines."""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path
from typing import Any, TextIO

from cli.common import fail
from collector.netmeta import NetmetaStats, extract
from collector.netmeta.jsonl import write

FORMATS = ("jsonl", "zeek")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "netmeta", help="network metadata (connections, DNS) from pcap/pcapng captures"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="jsonl",
        help="jsonl: ECS-style fields (default); zeek: Zeek's log field names plus _path",
    )
    parser.add_argument(
        "--verify-checksums",
        action="store_true",
        help="drop packets with bad checksums as Zeek does by default (off: like `zeek -C`, "
        "since captures taken on a sending host carry offloaded, unfinished checksums)",
    )
    parser.add_argument("--stats", action="store_true", help="print a summary to stderr")
    parser.add_argument("inputs", type=Path, nargs="+", metavar="INPUT.pcap")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    inputs = [p for p in args.inputs if p.is_file()]
    for missing in sorted(set(args.inputs) - set(inputs)):
        print(f"vigie: warning: no such capture: {missing}", file=sys.stderr)
    if not inputs:
        return fail("none of the inputs exists")
    stats = NetmetaStats()
    records = extract(inputs, stats, verify_checksums=args.verify_checksums)
    # Connections and records are tens of thousands of objects that live until their
    # connection ends, in no reference cycle: the cyclic collector, by default at every 700
    # allocations, would only walk them again and again (a twentieth of the command's time).
    # It runs rarely here, and never over what the imports made (frozen).
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 20, 100)
    try:
        write(records, args.format, sys.stdout.buffer)
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    for error in stats.read.errors[:20]:
        print(f"vigie: warning: {error}", file=sys.stderr)
    if args.stats:
        print_stats(stats, sys.stderr)
    if not stats.read.files_read:
        return fail("no input could be read")
    return 0


def print_stats(stats: NetmetaStats, err: TextIO) -> None:
    read = stats.read
    print(
        f"vigie netmeta: files {read.files_read} read, {read.files_failed} unreadable; "
        f"packets {read.packets}, bad records {read.bad_records}, "
        f"undecoded {stats.undecoded}, malformed {stats.malformed}, "
        f"bad checksums {stats.bad_checksums}; "
        f"connections {stats.connections}, dns records {stats.dns_records}; "
        f"{stats.seconds:.2f} s, {stats.packets_per_second:,.0f} packets/s",
        file=err,
    )
