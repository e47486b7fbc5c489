"""`vigie netmeta` on damaged captures, on both file formats, and its exit codes."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import pytest

from cli.main import main
from collector.netmeta import NetmetaStats, extract
from tests.conftest import corpus_path


def _capture(case: str) -> Path:
    folder = corpus_path("pcap", "zeek", case)
    return next(p for p in sorted(folder.iterdir()) if p.suffix in (".pcap", ".pcapng"))


def _run(path: Path) -> tuple[list[dict[str, object]], NetmetaStats]:
    stats = NetmetaStats()
    return [r.zeek() for r in extract([path], stats)], stats


def _to_pcapng(pcap: Path, out: Path) -> None:
    """The same frames in a pcapng file (one interface, microsecond timestamps)."""
    data = pcap.read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1", "little-endian microsecond pcap expected"
    linktype = struct.unpack_from("<I", data, 20)[0]
    blocks = [struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)]
    blocks.append(struct.pack("<IIHHII", 1, 20, linktype, 0, 0, 20))
    pos = 24
    while pos + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, pos)
        frame = data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        ts = sec * 1_000_000 + usec
        padded = frame + b"\0" * (-len(frame) % 4)
        length = 32 + len(padded)
        blocks.append(
            struct.pack("<IIIIIII", 6, length, 0, ts >> 32, ts & 0xFFFFFFFF, incl, orig)
            + padded
            + struct.pack("<I", length)
        )
    out.write_bytes(b"".join(blocks))


def test_pcap_and_pcapng_give_the_same_records(tmp_path: Path) -> None:
    pcap = _capture("core.tunnels.gre")
    pcapng = tmp_path / "gre.pcapng"
    _to_pcapng(pcap, pcapng)
    from_pcap, _ = _run(pcap)
    from_pcapng, stats = _run(pcapng)
    assert stats.read.bad_records == 0
    strip = [{k: v for k, v in r.items() if k != "uid"} for r in from_pcap]
    assert [{k: v for k, v in r.items() if k != "uid"} for r in from_pcapng] == strip
    assert any(r["_path"] == "dns" for r in from_pcap)


def test_multi_interface_pcapng_is_read() -> None:
    records, stats = _run(_capture("core.pcapng-pktsrc"))
    assert stats.read.bad_records == 0
    assert sum(r["_path"] == "conn" for r in records) == 3


@pytest.mark.parametrize("case", ["core.tunnels.ayiya", "core.pcapng-pktsrc"])
def test_truncated_captures_never_crash(case: str, tmp_path: Path) -> None:
    data = _capture(case).read_bytes()
    rng = random.Random(4)
    cut = tmp_path / "cut"
    for size in sorted(rng.sample(range(1, len(data)), 40)):
        cut.write_bytes(data[:size])
        records, stats = _run(cut)
        if size < 24:
            assert stats.read.files_failed == 1
        else:
            assert stats.read.packets <= 10_000
            assert isinstance(records, list)
    # Cut in the middle of the last record: counted as a bad record, the rest is read.
    cut.write_bytes(data[:-3])
    records, stats = _run(cut)
    assert stats.read.bad_records == 1
    assert records


@pytest.mark.parametrize("case", ["core.tunnels.teredo_bubble_with_payload", "core.pcapng-pktsrc"])
def test_corrupted_captures_never_crash(case: str, tmp_path: Path) -> None:
    """Each of 60 damaged copies shows its damage in the counts: a bad record (capture
    structure), a malformed or undecoded packet (headers), or a bad checksum (anything else the
    checksums cover). Checksums are verified, as Zeek does by default: without that, damage to
    a payload, or to header fields no length check reads, is invisible by design."""
    data = _capture(case).read_bytes()
    rng = random.Random(7)
    bad = tmp_path / "bad"
    unnoticed = []
    for copy in range(60):
        buf = bytearray(data)
        for _ in range(rng.randint(1, 30)):
            buf[rng.randrange(24, len(buf))] = rng.randrange(256)
        bad.write_bytes(bytes(buf))
        stats = NetmetaStats()
        list(extract([bad], stats, verify_checksums=True))
        counted = stats.read.bad_records + stats.malformed + stats.undecoded + stats.bad_checksums
        if not counted:
            changed = [i for i, (a, b) in enumerate(zip(data, buf, strict=True)) if a != b]
            unnoticed.append(f"copy {copy}: bytes changed at {changed}")
    assert not unnoticed, "damage absorbed silently:\n" + "\n".join(unnoticed)


def test_corrupt_record_length_is_skipped_and_counted(tmp_path: Path) -> None:
    data = bytearray(_capture("core.tunnels.gre").read_bytes())
    first_len = struct.unpack_from("<I", data, 24 + 8)[0]
    second = 24 + 16 + first_len
    struct.pack_into("<I", data, second + 8, 0x7FFFFFF0)  # an absurd captured length
    path = tmp_path / "bad.pcap"
    path.write_bytes(bytes(data))
    records, stats = _run(path)
    assert stats.read.bad_records >= 1
    assert stats.read.packets >= 30  # reading resumed after the bad record
    assert sum(r["_path"] == "conn" for r in records) >= 5


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = _capture("core.tunnels.gre")
    assert main(["netmeta", "--stats", str(capture)]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    datasets = {line["event.dataset"] for line in lines}
    assert datasets == {"network.conn", "network.dns", "network.tunnel"}
    assert any(line.get("dns.question.name") == "www.gleeble.org" for line in lines)
    assert "packets 40" in err

    assert main(["netmeta", "--format", "zeek", str(capture)]) == 0
    out, _ = capsys.readouterr()
    assert {json.loads(line)["_path"] for line in out.splitlines()} == {"conn", "dns", "tunnel"}

    assert main(["netmeta", str(tmp_path / "missing.pcap")]) == 2
    not_a_capture = tmp_path / "notes.txt"
    not_a_capture.write_text("hello, not a capture\n")
    assert main(["netmeta", str(not_a_capture)]) == 2
    _, err = capsys.readouterr()
    assert err.strip().splitlines()[-1] == "vigie: error: no input could be read"


def test_dns_over_tcp_answer_spanning_segments() -> None:
    folder = corpus_path("pcap", "packets")
    records, _ = _run(folder / "dns_tcp.pcapng")
    tcp_dns = [r for r in records if r["_path"] == "dns" and r["proto"] == "tcp"]
    assert len(tcp_dns) == 1
    assert tcp_dns[0]["query"] == "ripe.net"
    assert tcp_dns[0]["rcode_name"] == "NOERROR"  # the 1,419-byte answer, joined
    assert tcp_dns[0]["answers"]
    conn = next(r for r in records if r["_path"] == "conn" and r["proto"] == "tcp")
    assert (conn["conn_state"], conn["history"], conn["service"]) == ("SF", "ShADadFf", "dns")


def _pcap(path: Path, frames: list[tuple[bytes, int]]) -> Path:
    """A pcap of (captured bytes, length on the wire) records, one per second."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for n, (data, wire) in enumerate(frames):
        out.append(struct.pack("<IIII", 1_700_000_000 + n, 0, len(data), wire) + data)
    path.write_bytes(b"".join(out))
    return path


def test_ip_lengths_against_the_wire_length(tmp_path: Path) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    def frame(ip_len: int | None = None, payload: bytes = b"x" * 100) -> bytes:
        pkt = (
            Ether()
            / IP(src="10.0.0.1", dst="10.0.0.2", len=ip_len)
            / TCP(sport=40000, dport=2575, flags="PA", seq=1)
        )
        return bytes(pkt / payload)

    whole = frame()
    frames = [
        (whole, len(whole)),  # an ordinary frame: 140 IP bytes
        (frame(ip_len=4148), len(whole)),  # a header longer than the frame on the wire: damage
        (whole[:60], len(whole)),  # cut by the snapshot length: counted as its header says
        (frame(ip_len=0), len(whole)),  # offload (length unset): counted as captured
    ]
    stats = NetmetaStats()
    records = [r for r in extract([_pcap(tmp_path / "lengths.pcap", frames)], stats)]
    conns = [r.zeek() for r in records if r.zeek()["_path"] == "conn"]
    assert len(conns) == 1
    assert conns[0]["orig_pkts"] == 3
    assert conns[0]["orig_ip_bytes"] == 140 * 3
    assert stats.malformed == 1


def test_a_tcp_header_cut_in_its_options_opens_its_connection_uncounted(tmp_path: Path) -> None:
    """Zeek's TCP analyzer makes the connection from the fixed 20-byte header, then drops a
    packet whose options run past the captured bytes (truncated_header): conn.log has the
    connection, no packet, no history (Zeek's core.vntag-in-vlan). Its roles come from the
    ports alone: the packet never reached the analysis that flips a first SYN-ACK."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    def frame(sport: int, dport: int) -> bytes:
        options = [("MSS", 1460), ("NOP", None), ("WScale", 7), ("SAckOK", b""), ("NOP", None)]
        tcp = TCP(sport=sport, dport=dport, flags="SA", seq=1, ack=1, options=options)
        return bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / tcp)

    # From a likely server port to a client's: the ports flip it. Between two client ports:
    # no flip, the SYN-ACK's sender stays the originator.
    flipped, kept = frame(443, 56960), frame(50000, 56961)
    frames = [(flipped[: 14 + 20 + 22], len(flipped)), (kept[: 14 + 20 + 22], len(kept))]
    stats = NetmetaStats()
    conns = [
        r.zeek() for r in extract([_pcap(tmp_path / "cut.pcap", frames)], stats) if r.path == "conn"
    ]
    got = [
        (c["id.orig_h"], c["id.orig_p"], c["conn_state"], c["history"], c["orig_pkts"],
         c["resp_pkts"], c["orig_ip_bytes"])
        for c in conns
    ]  # fmt: skip
    assert got == [
        ("10.0.0.2", 56960, "OTH", "^", 0, 0, 0),  # Zeek's flip mark, its only history
        ("10.0.0.1", 50000, "OTH", None, 0, 0, 0),
    ]
    assert stats.malformed == 2
