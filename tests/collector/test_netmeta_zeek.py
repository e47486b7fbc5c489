"""Acceptance: `vigie netmeta --format zeek` against Zeek's own conn.log, dns.log and ssl.log.

Zeek's test suite ships captures with the logs Zeek wrote for them (../shared/corpora/pcap/zeek).
Every line of every log is compared, on every field Vigie writes that the log has: conn.log on
the 4-tuple, service, history, conn_state, packets and IP bytes (exactly); dns.log on the
4-tuple, trans_id, query and answers; ssl.log on version, cipher, server_name, established.
Logs cut down by zeek-cut (no 4-tuple) are compared on the fields they kept, each line with a
conn of ours equal on them, or, if none is, with one left over.

Where Vigie differs, the line and the fields are listed below with the reason; the test fails
on any other difference, and on a listed one that no longer differs, so the lists stay true.
tunnel_parents is compared by what each parent is (the UDP flow it names, or an IP/GRE tunnel).
Every case of the corpus is compared, none left out: the cases that have only an http.log are
checked for the connection of each of its lines. The share of conn.log lines that agree on
every field must stay at or above 95% (the issue's bar; the goal is 100%).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from collector.netmeta import NetmetaStats, extract
from tests.conftest import corpus_path

pytestmark = pytest.mark.corpus

ENDS = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")
KEY = ("proto", *ENDS)
CONN_FIELDS: tuple[str, ...] = ("service", "history", "conn_state")
CONN_FIELDS += ("orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes")
DNS_FIELDS = ("answers",)
SSL_FIELDS = ("version", "cipher", "server_name", "established")
# The services Vigie names (UDP tunnels, FTP and IRC with their data, NTP, SSH, IMAP among them);
# Zeek's others (krb_tcp, smtp...) are protocols Vigie has no analyzer for, left
# out of Zeek's list before comparing.
VIGIE_SERVICES = frozenset(("dns", "ssl", "http", "smb", "hl7", "dicom", "rdp", "ftp", "ssh"))
VIGIE_SERVICES |= {"teredo", "ayiya", "vxlan", "geneve", "gtpv1", "ntp", "irc", "imap"}
VIGIE_SERVICES |= {"ftp-data", "irc-dcc-data"}

LOGS = ("conn.log", "dns.log", "ssl.log", "http.log")

# (case, line) -> the fields that differ; and the same with why, for the known differences.
Found = dict[tuple[str, str], tuple[str, ...]]
Known = dict[tuple[str, str], tuple[tuple[str, ...], str]]

# Why Vigie differs, shared by several lines.
X_LIMIT = (
    "Zeek's 'X' (analysis partial): one of its analyzers hit a limit the test script sets "
    "(weird count, header or line length); Vigie has no such analyzer"
)
BARE_TLS = (
    "in bare mode (zeek -b) 443 is not a likely server port, so Zeek keeps the capture's first "
    "sender, the server, as originator; Vigie, like Zeek by default, makes the client it"
)
DYNAMIC_FILTER = "Zeek's script installs a packet filter mid-trace; Vigie reads every packet"

# (case, connection) -> (the fields that differ, why); "missing": no conn of ours for the line.
# A connection is "proto orig_h:orig_p > resp_h:resp_p", or "row N" in a zeek-cut log.
CONN_KNOWN: Known = {
    ("core.pcap.dynamic-filter", "tcp 141.142.220.118:35634 > 208.80.152.2:80"): (
        ("history", "orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes"),
        DYNAMIC_FILTER + ": Zeek saw one of the flow's packets, Vigie three (and the reply)",
    ),
    ("core.reporter-limit-reached-weird", "row 1"): (("history",), X_LIMIT),
    ("core.tunnels.gre-aruba-amsdu", "tcp 157.240.18.16:443 > 149.159.130.184:49392"): (
        ("missing",),
        BARE_TLS,
    ),
    ("core.vntag-in-vlan", "tcp 10.10.10.1:443 > 10.10.10.2:56960"): (
        ("missing",),
        "the only packet, a SYN-ACK from 443, is cut by the snapshot length inside its TCP "
        "options: Zeek, as Vigie, opens the connection from the ports alone and counts no "
        "packet; in bare mode (zeek -b) 443 is not a likely server port, so Zeek keeps the "
        "sender as originator, Vigie, like Zeek by default, makes it the responder",
    ),
    ("scripts.base.protocols.gnutella.max-header-length", "row 1"): (("history",), X_LIMIT),
    ("scripts.base.protocols.gnutella.max-line-length", "row 1"): (("history",), X_LIMIT),
}
# case -> (how many conns of ours Zeek does not log, why)
CONN_EXTRA: dict[str, tuple[int, str]] = {
    "core.pcap.dynamic-filter": (18, DYNAMIC_FILTER),
    "core.pcap.read-trace-with-filter": (33, "Zeek read only port 50000 (-f); Vigie reads all"),
    "core.tunnels.gre-aruba-amsdu": (1, "the missing line's connection, client first: " + BARE_TLS),
    "core.vntag-in-vlan": (1, "the missing line's connection, the SYN-ACK's sender responder"),
}
# (case, "trans_id query") -> (fields, why); dns.log lines are found by 4-tuple, trans_id, query.
DNS_KNOWN: Known = {
    ("scripts.base.protocols.dns.dynamic-update", "47952 nwin2.stratolab.org"): (
        ("answers",),
        "an UPDATE: Zeek lists its prerequisite, delete and add records, Vigie no answers",
    ),
    ("scripts.base.protocols.dns.dynamic-update", "61191 nwin1.stratolab.org"): (
        ("answers",),
        "an UPDATE: Zeek lists its prerequisite, delete and add records, Vigie no answers",
    ),
    ("scripts.base.protocols.dns.loc", "33295 sunn-pt1.es.net"): (
        ("answers",),
        "a LOC record: Vigie does not decode it and writes <LOC>",
    ),
    (
        "scripts.base.protocols.dns.tkey",
        "52640 1068-ms-7.309-2c6e448.7a9463b8-b109-11ed-26a3-080027f220e5",
    ): (
        ("answers",),
        "a TKEY answer: Zeek's scripts leave it out of answers, Vigie writes <TKEY>",
    ),
    ("scripts.base.protocols.dns.wks", "63119 zeek.example.net"): (
        ("answers",),
        "WKS answers: Zeek's scripts leave them out of answers, Vigie writes <WKS>",
    ),
}
SSL_KNOWN: Known = {}


def _zeek_log(path: Path) -> tuple[set[str], list[dict[str, str]]]:
    """Rows of a Zeek TSV log: with a #fields header, or zeek-cut's plain header line."""
    fields: list[str] = []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            if not fields:
                fields = line.split("\t")
                continue
            rows.append(dict(zip(fields, line.split("\t"), strict=False)))
    return set(fields), rows


def _capture(case: Path) -> Path:
    captures = sorted(p for p in case.iterdir() if p.suffix in (".pcap", ".pcapng"))
    assert len(captures) == 1, f"{case.name}: expected one capture, found {captures}"
    return captures[0]


def _cases(log: str) -> list[Path]:
    root = corpus_path("pcap", "zeek")
    return [case for case in sorted(root.iterdir()) if (case / log).exists()]


def _ours(case: Path, path: str) -> list[dict[str, Any]]:
    stats = NetmetaStats()
    # Zeek verifies checksums unless told not to with -C.
    command = (case / "zeek-command.txt").read_text(encoding="utf-8").split()
    verify = "-C" not in command
    records = [r.zeek() for r in extract([_capture(case)], stats, verify_checksums=verify)]
    assert stats.read.files_read == 1
    return [r for r in records if r["_path"] == path]


def _label(r: dict[str, Any]) -> str:
    proto = r.get("proto", "tcp")  # ssl.log has no proto field: TLS over TCP
    return f"{proto} {r['id.orig_h']}:{r['id.orig_p']} > {r['id.resp_h']}:{r['id.resp_p']}"


def _text(field: str, value: Any) -> str:
    """A value of ours as Zeek's TSV writes it."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, list):
        return ",".join(map(str, value)) if value else "(empty)"
    return str(value)


def _zeek_service(value: str) -> str:
    names = sorted(set(value.split(",")) & VIGIE_SERVICES)
    return ",".join(names) or "-"


def _differing(z: dict[str, str], mine: dict[str, Any], fields: tuple[str, ...]) -> list[str]:
    out = []
    for field in fields:
        if field not in z:
            continue
        theirs = _zeek_service(z[field]) if field == "service" else z[field]
        if theirs != _text(field, mine.get(field)):
            out.append(field)
    return out


def _pick(z: dict[str, str], candidates: list[dict[str, Any]], fields: tuple[str, ...]) -> Any:
    """The candidate equal to the line on `fields`, else the first; removed from the list."""
    best = next((c for c in candidates if not _differing(z, c, fields)), candidates[0])
    candidates.remove(best)
    return best


def _check(what: str, found: Found, known: Known) -> None:
    expected = {k: tuple(sorted(fields)) for k, (fields, _) in known.items()}
    got = {k: tuple(sorted(v)) for k, v in found.items()}
    new = [f"  {k}: {v}" for k, v in sorted(got.items()) if expected.get(k) != v]
    gone = [f"  {k}: {v}" for k, v in sorted(expected.items()) if got.get(k) != v]
    assert not new, f"{what}: differences not listed (or with other fields):\n" + "\n".join(new)
    assert not gone, f"{what}: listed, but now agreeing (or other fields):\n" + "\n".join(gone)


def _compare(
    log: str, path: str, fields: tuple[str, ...], key: tuple[str, ...]
) -> tuple[int, Found, dict[str, int]]:
    """Lines compared, differences per (case, line), and our records no line matched."""
    lines = 0
    found: Found = {}
    extra: dict[str, int] = {}
    for case in _cases(log):
        names, rows = _zeek_log(case / log)
        ours = _ours(case, path)
        cut = not set(ENDS) <= names  # zeek-cut: no 4-tuple, compared on what is left
        by_key: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for r in ours:
            by_key[() if cut else tuple(_text(k, r.get(k)) for k in key)].append(r)
        for n, z in enumerate(rows, 1):
            lines += 1
            line = f"row {n}" if cut else _line(path, z)
            candidates = by_key.get(() if cut else tuple(z[k] for k in key), [])
            if not candidates:
                found[(case.name, line)] = ("missing",)
                continue
            differ = _differing(z, _pick(z, candidates, fields), fields)
            if differ:
                found[(case.name, line)] = tuple(differ)
        left = sum(len(v) for v in by_key.values())
        if left:
            extra[case.name] = left
    return lines, found, extra


def _line(path: str, z: dict[str, str]) -> str:
    return f"{z['trans_id']} {z['query']}" if path == "dns" else _label(z)


# The bar is 95% of conn.log lines agreeing on every field (goal 100%). FLOOR is what
# Vigie reaches today: it may only rise, until it meets BAR.
BAR = 0.95
FLOOR = 133 / 139


def test_every_case_is_compared() -> None:
    root = corpus_path("pcap", "zeek")
    cases = {case.name for case in root.iterdir() if case.is_dir()}
    compared = {case.name for log in LOGS for case in _cases(log)}
    assert cases == compared, f"cases no test compares: {sorted(cases - compared)}"


def test_conn_log_agrees_with_zeek() -> None:
    lines, found, extra = _compare("conn.log", "conn", CONN_FIELDS, KEY)
    agree = (lines - len(found)) / lines
    print(f"\nconn.log: {lines} lines in {len(_cases('conn.log'))} cases, {len(found)} differ")
    print(f"conn.log: {lines - len(found)}/{lines} agree ({agree:.1%})")
    assert agree >= min(FLOOR, BAR), f"conn.log agreement {agree:.1%} fell under {FLOOR:.1%}"
    assert len(_cases("conn.log")) == 62
    assert lines == 139
    _check("conn.log", found, CONN_KNOWN)
    assert extra == {case: n for case, (n, _) in CONN_EXTRA.items()}


def test_dns_log_agrees_with_zeek() -> None:
    key = (*KEY, "trans_id", "query")
    lines, found, extra = _compare("dns.log", "dns", DNS_FIELDS, key)
    print(f"\ndns.log: {lines} lines in {len(_cases('dns.log'))} cases, {len(found)} differ")
    assert lines == 34
    _check("dns.log", found, DNS_KNOWN)
    assert not extra, f"dns records of ours Zeek does not log: {extra}"


def test_http_log_connections_found() -> None:
    """Each http.log line's connection is one of ours (its fields are HTTP's, not compared here)."""
    lines, missing = 0, []
    for case in _cases("http.log"):
        names, rows = _zeek_log(case / "http.log")
        if not set(ENDS) <= names:
            continue  # zeek-cut kept no 4-tuple: these cases have a conn.log, compared above
        ours = {tuple(_text(k, r.get(k)) for k in ENDS) for r in _ours(case, "conn")}
        for z in rows:
            lines += 1
            if tuple(z[k] for k in ENDS) not in ours:
                missing.append(f"{case.name}: {_label(z)}")
    assert lines == 106
    assert not missing, "http.log connections we have no conn for:\n" + "\n".join(missing)


def test_ssl_log_agrees_with_zeek() -> None:
    lines, found, _extra = _compare("ssl.log", "ssl", SSL_FIELDS, ENDS)
    assert lines == 2
    _check("ssl.log", found, SSL_KNOWN)


def _parents(value: Any) -> list[str]:
    if value in (None, "-", "(empty)"):
        return []
    return value.split(",") if isinstance(value, str) else list(value)


def test_tunnel_parents_agree_with_zeek() -> None:
    """Uids differ run to run, so a parent is compared by what it is: the 4-tuple of the
    conn.log line it names (a UDP tunnel's own connection), or, for a tunnel that has no
    conn.log line (IP-in-IP, GRE), by being one of those."""
    lines, differ = 0, []
    for case in _cases("conn.log"):
        names, rows = _zeek_log(case / "conn.log")
        if "tunnel_parents" not in names or not set(ENDS) <= names:
            continue
        ours = _ours(case, "conn")
        theirs_by_uid = {z["uid"]: _label(z) for z in rows}
        ours_by_uid = {r["uid"]: _label(r) for r in ours}
        by_label = {_label(r): r for r in ours}
        for z in rows:
            wanted = _parents(z["tunnel_parents"])
            mine = by_label.get(_label(z))
            if not wanted or mine is None:
                continue
            lines += 1
            got = _parents(mine["tunnel_parents"])
            expected = sorted(theirs_by_uid.get(uid, "ip tunnel") for uid in wanted)
            if sorted(ours_by_uid.get(uid, "ip tunnel") for uid in got) != expected:
                differ.append(f"{case.name}: {_label(z)}: {got} for {expected}")
    assert lines == 31  # of 32: the other line is gre-aruba-amsdu's, flipped (BARE_TLS)
    assert not differ, "tunnel_parents differ:\n" + "\n".join(differ)
