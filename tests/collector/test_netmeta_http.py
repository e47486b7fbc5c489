"""HTTP requests against Zeek's own http.log for the captures of its test suite: the share of
Zeek's requests (4-tuple, method, URI) that `vigie netmeta` finds, printed with the misses.
No bar is set by the issue for HTTP; this one holds what the segment-start reading gives
today (exotic methods, HTTP/0.9 and heads split across segments are missed)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from collector.netmeta import HttpRecord, extract
from tests.conftest import corpus_path

Key = tuple[str, str, str, str, str, str]


def _zeek_requests(log: Path) -> Counter[Key]:
    fields: list[str] | None = None
    found: Counter[Key] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif fields and not line.startswith("#"):
            row = dict(zip(fields, line.split("\t"), strict=False))
            if row.get("method", "-") != "-" and "id.orig_h" in row:
                key = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "method", "uri")
                found[tuple(row[k] for k in key)] += 1  # type: ignore[index]
    return found


def test_http_requests_found_against_zeek() -> None:
    root = corpus_path("pcap", "zeek")
    found = total = 0
    misses = []
    for case in sorted(p for p in root.iterdir() if (p / "http.log").exists()):
        wanted = _zeek_requests(case / "http.log")
        captures = [p for p in case.iterdir() if "pcap" in p.name or p.suffix == ".trace"]
        if not wanted or not captures:
            continue
        ours: Counter[Key] = Counter(
            (r.orig_h, str(r.orig_p), r.resp_h, str(r.resp_p), r.method, r.uri)
            for r in extract(captures)
            if isinstance(r, HttpRecord)
        )
        for key, count in wanted.items():
            total += count
            found += min(count, ours[key])
            if ours[key] < count:
                misses.append(f"{case.name}: {key[4]} {key[5][:80]}")
    rate = found / total
    print(f"HTTP requests of Zeek's http.log found: {found}/{total} ({rate:.1%})")
    print("\n".join(misses[:20]))
    assert total >= 50
    assert rate >= 0.70


def test_status_and_headers_are_read() -> None:
    records = list(extract([corpus_path("pcap", "packets", "http_dvwa_sqlinjection.pcapng")]))
    requests = [r for r in records if isinstance(r, HttpRecord)]
    assert requests
    first = requests[0]
    assert first.method == "GET"
    assert first.host
    assert first.status_code == 200
