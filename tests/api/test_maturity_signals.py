"""Maturity observations from network metadata as it arrives: the agents send Zeek's field names
and `_path` (what Vigie's network rules read); `vigie netmeta --format jsonl` writes ECS-style
names. Both give the same observations (the agents' records once gave none: every control on
network hygiene stayed without evidence)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.maturity.signals import Observation, observe
from cli import hygiene_traffic as h
from collector.netmeta import extract
from collector.sources.pcap import record_event
from detection.event import sigma_view


def _observed(views: list[dict[str, Any]], times: list[datetime]) -> set[tuple[str, str, str]]:
    ids = [str(n) for n in range(len(views))]
    return {(o.signal, o.key, o.subject) for o in observe(views, times, ids, "agent-1")}


def _both(capture: Path) -> tuple[set[tuple[str, str, str]], set[tuple[str, str, str]]]:
    records = list(extract([capture]))
    events = [record_event(r, f"pcap:{capture}") for r in records]
    times = [e.timestamp for e in events]
    as_sent = [sigma_view(e.to_ecs()) for e in events]  # what ingestion's views hold
    as_ecs = [sigma_view(r.ecs()) for r in records]
    return _observed(as_sent, times), _observed(as_ecs, times)


def test_zeek_and_ecs_names_give_the_same_observations(tmp_path: Path) -> None:
    capture = tmp_path / "bad.pcap"
    h.write_bad_hygiene(capture, time.time())
    zeek, ecs = _both(capture)
    assert zeek == ecs
    assert zeek == {
        ("source", "network", "agent-1"),
        ("net.smb", "v1", h.BAD["files"]),
        ("net.tls", "weak:internal", f"{h.BAD['intranet']}:443"),
        ("net.tls", "ok:internal", f"{h.BAD['dpi']}:443"),
        ("net.tls", "weak:exposed", f"{h.BAD['webmail']}:443"),
        ("net.exposed", "rdp", h.RDP_CLIENTS[0]),
        ("net.exposed", "rdp", h.RDP_CLIENTS[1]),
        ("net.health", "hl7", h.HL7_PLATFORM),
        ("net.outbound", "out", h.BAD["hl7"]),
    }

    good = tmp_path / "good.pcap"
    h.write_good_hygiene(good, time.time())
    zeek, ecs = _both(good)
    assert zeek == ecs
    assert zeek == {
        ("source", "network", "agent-1"),
        ("net.smb", "v2", h.GOOD["files"]),
        ("net.smb", "v2", h.GOOD["nas"]),
        ("net.tls", "ok:internal", f"{h.GOOD['intranet']}:443"),
        ("net.tls", "ok:exposed", f"{h.GOOD['webmail']}:443"),
    }


def test_rdp_recognised_on_another_port_is_an_exposure(tmp_path: Path) -> None:
    capture = tmp_path / "rdp.pcap"
    h.write_packets(
        capture,
        h.tcp_session(h.RDP_CLIENTS[0], 50000, "10.0.0.9", 13389, h.rdp_exchange()),
        time.time(),
    )
    zeek, _ = _both(capture)
    assert ("net.exposed", "rdp", h.RDP_CLIENTS[0]) in zeek
    # A plain Zeek sensor's service list ("ssl,rdp") counts too; a Zeek record of another
    # log, or without its endpoints, is no network event.
    at = datetime.now(UTC)
    conn = {
        "_path": "conn",
        "id.orig_h": "81.2.69.160",
        "id.orig_p": 50001,
        "id.resp_h": "192.168.1.5",
        "id.resp_p": 4000,
        "service": "ssl,rdp",
        "conn_state": "S1",
    }
    other = {"_path": "weird", "id.orig_h": "81.2.69.160", "name": "bad_TCP_checksum"}
    seen = observe([conn, other, {"_path": "conn"}], [at] * 3, ["a", "b", "c"], "agent-1")
    assert Observation("net.exposed", "rdp", at, "a", "81.2.69.160") in seen
    assert [(o.signal, o.key) for o in seen if o.signal == "source"] == [
        ("source", "network"),
        ("source", "logs"),
    ]
