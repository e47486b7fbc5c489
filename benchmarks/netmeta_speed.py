"""Network metadata: `vigie netmeta` against `tshark -q -z conv,tcp -z conv,udp` on one capture.

    python benchmarks/netmeta_speed.py [--runs 3] [--copies 4] [--scapy-frames 5000] [--write]

Data: every Ethernet pcap/pcapng capture of ../shared/corpora/pcap (nDPI's, Chris Sanders',
Zeek's test traces) merged into one pcap under benchmarks/out/netmeta/, the whole set written
`--copies` times, each copy shifted one day later so flows do not merge across copies.

Measured, medians of `--runs`: wall time of `vigie netmeta --format zeek CAPTURE > /dev/null`
(the whole CLI: process start, reading, decoding, conn and dns records, JSON output) and of
`tshark -q -z conv,tcp -z conv,udp -r CAPTURE` (Wireshark's dissectors and its TCP/UDP
conversation tables, the nearest peer a Debian machine has); packets/s is the capture's packets
over that time. tshark dissects every layer, so it does more per packet: the figures say what
each costs on the same file, not that the two produce the same thing. Full dissection with
scapy (the packet library the agent uses for live capture) is measured on `--scapy-frames`
frames taken evenly over one copy of the same capture (at about 2,000 frames/s, the whole
capture would take minutes per run): `Ether(frame)` dissects every layer scapy knows, timed
alone, frames read before the clock starts. With `--write`, the
"Network metadata" section of benchmarks/RESULTS.md is replaced (or added).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.results import RESULTS, compiled_modules, write_section  # noqa: E402
from collector.netmeta import NetmetaStats, extract  # noqa: E402
from collector.netmeta.reader import ReadStats, read_capture  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpora" / "pcap"
OUT = ROOT / "benchmarks" / "out" / "netmeta"
HEADING = "## Network metadata"
DAY = 86_400


def merged_capture(copies: int) -> tuple[Path, int]:
    """One Ethernet pcap holding every Ethernet frame of the corpus, `copies` times."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"merged-x{copies}.pcap"
    sources = sorted(
        p for p in CORPUS.rglob("*") if p.suffix in (".pcap", ".pcapng") and p.is_file()
    )
    frames: list[tuple[float, bytes, int]] = []
    for src in sources:
        try:
            frames.extend(
                (ts, data, wire) for ts, lt, data, wire in read_capture(src, ReadStats()) if lt == 1
            )
        except Exception as exc:  # noqa: BLE001 - a capture the merge cannot use is left out
            print(f"skipped {src}: {exc}", file=sys.stderr)
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for copy in range(copies):
            for ts, data, wire in frames:
                shifted = ts + copy * DAY
                sec = int(shifted)
                usec = int((shifted - sec) * 1e6)
                fh.write(struct.pack("<IIII", sec, usec, len(data), max(wire, len(data))))
                fh.write(data)
    return path, len(frames) * copies


def scapy_sample(capture: Path, frames_per_copy: int, wanted: int) -> list[bytes]:
    """`wanted` frames spread evenly over the capture's first copy."""
    step = max(1, frames_per_copy // wanted)
    sample: list[bytes] = []
    for index, (_ts, _lt, data, _wire) in enumerate(read_capture(capture, ReadStats())):
        if index >= frames_per_copy or len(sample) >= wanted:
            break
        if index % step == 0:
            sample.append(data)
    return sample


def scapy_seconds(frames: list[bytes]) -> float:
    import scapy.all  # noqa: F401 - binds every default layer (IP, TCP, DNS, ...): without
    from scapy.layers.l2 import Ether  # it, nothing above Ethernet would be dissected

    start = time.perf_counter()
    for frame in frames:
        Ether(frame)
    return time.perf_counter() - start


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run of the command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def tool_version(command: list[str]) -> str:
    out = subprocess.run(command, capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0].strip() if out else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--scapy-frames", type=int, default=5000)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    tshark = shutil.which("tshark")
    if tshark is None:
        print("tshark not found (apt-get install -y tshark)", file=sys.stderr)
        return 2
    capture, packets = merged_capture(args.copies)
    size_mb = capture.stat().st_size / 2**20
    frames = scapy_sample(capture, packets // args.copies, args.scapy_frames)
    import scapy

    scapy_seconds(frames[:100])  # scapy's layers bound and imported before the clock
    vigie = [sys.executable, "-m", "cli.main", "netmeta", "--format", "zeek", str(capture)]
    peer = [tshark, "-q", "-z", "conv,tcp", "-z", "conv,udp", "-r", str(capture)]
    pure = {**os.environ, "VIGIE_PURE_PYTHON": "1"}
    env_note = f"{platform.python_version()}, {os.cpu_count()} cores"
    times: dict[str, list[float]] = {"vigie": [], "tshark": [], "library": [], "scapy": []}
    times |= {"pure": [], "vigie cpu": [], "pure cpu": [], "tshark cpu": []}
    for run in range(args.runs):
        for name, command, env in (("vigie", vigie, None), ("pure", vigie, pure)):
            wall, cpu = timed(command, env)
            times[name].append(wall)
            times[f"{name} cpu"].append(cpu)
        wall, cpu = timed(peer)
        times["tshark"].append(wall)
        times["tshark cpu"].append(cpu)
        stats = NetmetaStats()
        start = time.perf_counter()
        for _record in extract([capture], stats):
            pass
        times["library"].append(time.perf_counter() - start)
        times["scapy"].append(scapy_seconds(frames))
        print(
            f"run {run + 1}: vigie {times['vigie'][-1]:.2f} s, pure Python "
            f"{times['pure'][-1]:.2f} s, tshark {times['tshark'][-1]:.2f} s"
            f", scapy {len(frames)} frames {times['scapy'][-1]:.2f} s",
            file=sys.stderr,
        )
    med = {name: statistics.median(values) for name, values in times.items()}
    rate = {name: packets / seconds for name, seconds in med.items()}
    rate["scapy"] = len(frames) / med["scapy"]
    tshark_version = tool_version([tshark, "--version"])

    def row(label: str, name: str) -> str:
        cpu = f"{med[name + ' cpu']:.2f}" if name + " cpu" in med else "-"
        versus = rate[name] / rate["tshark"]
        return f"| {label} | {med[name]:.2f} | {cpu} | {rate[name]:,.0f} | {versus:.2f}x |"

    row_vigie = row(
        f"`vigie netmeta --format zeek` (conn, dns, ssl, smb, http, hl7, dicom, tunnel "
        f"records), compiled ({compiled_modules()} modules)",
        "vigie",
    )
    row_pure = row("the same, `VIGIE_PURE_PYTHON=1` (the pure-Python fallback)", "pure")
    row_library = row(
        "`collector.netmeta.extract` in-process, compiled (records built, not written)",
        "library",
    )
    row_tshark = row(f"`tshark -q -z conv,tcp -z conv,udp` ({tshark_version})", "tshark")
    row_scapy = (
        f"| scapy {scapy.__version__} `Ether(frame)`, full dissection, in-process "
        f"({len(frames):,} frames of the same capture) | - | - | {rate['scapy']:,.0f} "
        f"| {rate['scapy'] / rate['tshark']:.2f}x |"
    )
    command = (
        f"python benchmarks/netmeta_speed.py --runs {args.runs} --copies {args.copies} "
        f"--scapy-frames {args.scapy_frames} --write"
    )
    text = f"""{HEADING}

Written by `{command}` ({time.strftime("%Y-%m-%d")}).
Capture: every Ethernet frame of ../shared/corpora/pcap (nDPI, Chris Sanders' packets, Zeek's
test traces) merged into one pcap, {args.copies} copies a day apart: {packets:,} packets,
{size_mb:.1f} MiB. Medians of {args.runs} runs (the commands in turn in each run): wall time of
the whole command, output to /dev/null, and its CPU time (user + system); packets/s from the
wall time; the last column is packets/s over tshark's. Python {env_note}.

| command | median wall s | median CPU s | packets/s | vs tshark |
|---|---:|---:|---:|---:|
{row_vigie}
{row_pure}
{row_library}
{row_tshark}
{row_scapy}

tshark runs all of Wireshark's dissectors on every packet before it fills its conversation
tables; `vigie netmeta` reads only the headers connection accounting needs (struct over
pcap/pcapng records, Ethernet/VLAN/MPLS/PPPoE, IP, TCP/UDP/ICMP, tunnels) and parses DNS only
on DNS ports; scapy builds every layer of every frame as Python objects (its row is frames
per second of dissection alone, in process, on a sample of the same frames). `vigie` imports
only the chosen subcommand's module; what the whole command takes beyond the in-process row
is start-up and the JSON output of the records. Must (issue #4): at least tshark's packets/s;
goal (issue 12): 3x, with the per-packet modules compiled (mypyc, setup.py).
"""
    print(text)
    if args.write:
        current = RESULTS.read_text(encoding="utf-8")
        if HEADING not in current:
            RESULTS.write_text(current.rstrip("\n") + "\n\n" + text, encoding="utf-8")
        else:
            write_section(HEADING, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
