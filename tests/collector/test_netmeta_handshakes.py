"""TLS and SMB openings against nDPI's own per-flow results for its captures: the server name
(SNI) of every TLS flow nDPI names, and SMBv1 seen as SMBv1."""

from __future__ import annotations

import re

from collector.netmeta import SmbRecord, SslRecord, extract
from tests.conftest import corpus_path

# A TLS flow of nDPI's output: both endpoints, the protocol, and the SNI it read.
NDPI_TLS = re.compile(
    r"^\s+\d+\s+TCP\s+(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s+\[proto: [^\]]*TLS[^\]]*\]"
    r".*?\[Hostname/SNI: ([^\]]+)\]"
)


def _endpoints(a: str, pa: str, b: str, pb: str) -> frozenset[tuple[str, int]]:
    return frozenset({(a.strip("[]"), int(pa)), (b.strip("[]"), int(pb))})


def test_tls_server_names_agree_with_ndpi() -> None:
    root = corpus_path("pcap", "ndpi")
    agree, total, disagreements = 0, 0, []
    for result in sorted((root / "result").glob("*.out")):
        capture = root / result.name.removesuffix(".out")
        wanted = {}
        for line in result.read_text(errors="replace").splitlines():
            found = NDPI_TLS.match(line)
            if found:
                wanted[_endpoints(*found.groups()[:4])] = found.group(5)
        if not wanted or not capture.exists():
            continue
        ours = {
            frozenset({(r.orig_h, r.orig_p), (r.resp_h, r.resp_p)}): r.server_name
            for r in extract([capture])
            if isinstance(r, SslRecord)
        }
        for flow, name in wanted.items():
            total += 1
            if ours.get(flow) == name:
                agree += 1
            else:
                disagreements.append(f"{capture.name}: nDPI {name!r}, Vigie {ours.get(flow)!r}")
    rate = agree / total
    print(f"TLS SNI agreement with nDPI: {agree}/{total} ({rate:.1%})")
    print("\n".join(disagreements[:20]))
    assert total >= 100
    assert rate >= 0.98


def test_smbv1_shows() -> None:
    records = list(extract([corpus_path("pcap", "ndpi", "smbv1.pcap")]))
    smb = [r for r in records if isinstance(r, SmbRecord)]
    assert [r.version for r in smb] == ["1"]
    assert smb[0].resp_p == 445
    conns = [r for r in records if r.path == "conn"]
    assert [c.service for c in conns] == ["smb"]


def test_tls_versions_and_ciphers_are_named() -> None:
    records = list(extract([corpus_path("pcap", "ndpi", "long_tls_certificate.pcap")]))
    tls = [r for r in records if isinstance(r, SslRecord)]
    assert tls
    assert tls[0].server_name == "beacon-api.aliyuncs.com"
    assert tls[0].version == "TLSv12"
    assert tls[0].cipher == "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
    assert tls[0].established is True
