"""What maturity evidence is taken from events: network records under ECS-style names (`vigie
netmeta --format jsonl`) and as the agents ship them (Zeek's names and `_path`, what Vigie's
network rules read; such records once gave no evidence at all), and Windows events as Vigie
reads them from real EVTX files."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from api.maturity.signals import Observation, is_public, observe
from cli import hygiene_traffic as h
from collector.netmeta import extract
from collector.sources.pcap import record_event
from detection.event import sigma_view
from detection.sources.evtx import read_evtx
from detection.sources.stats import ReadStats
from tests.conftest import corpus_path

AT = datetime(2026, 11, 30, 10, tzinfo=UTC)


def seen(*views: dict[str, Any]) -> list[tuple[str, str, str]]:
    ids = [f"e{i}" for i in range(len(views))]
    out = observe(list(views), [AT] * len(views), ids, "agent-1")
    return [(o.signal, o.key, o.subject) for o in out if o.signal != "source"]


def conn(orig: str, resp: str, port: int, state: str = "SF", **more: Any) -> dict[str, Any]:
    return {
        "event.dataset": "network.conn",
        "source.ip": orig,
        "destination.ip": resp,
        "destination.port": port,
        "zeek.conn.state": state,
        **more,
    }


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("81.2.69.160", True),
        ("203.0.113.45", True),  # documentation: a stand-in for the Internet, as in the rules
        ("2a01:cb00::1", True),
        ("10.20.0.15", False),
        ("172.31.255.1", False),
        ("192.168.1.1", False),
        ("100.64.3.2", False),  # carrier NAT
        ("169.254.10.1", False),
        ("::ffff:192.168.0.1", False),
        ("fd00::1", False),
        ("239.255.255.250", False),
        ("not an address", False),
    ],
)
def test_what_counts_as_the_internet(address: str, public: bool) -> None:
    assert is_public(address) is public


def test_network_records_give_their_signals() -> None:
    assert seen(
        conn("81.2.69.160", "10.0.0.5", 3389),
        conn("81.2.69.161", "10.0.0.5", 3389, state="REJ"),  # refused: not reached
        conn("81.2.69.162", "10.0.0.6", 445, state="S0"),  # a scan left unanswered
        conn("10.0.0.9", "10.0.0.5", 3389),  # from inside
        conn("10.0.0.9", "10.0.0.7", 23, state="S1"),
        conn("10.0.0.9", "81.2.69.170", 443),
        {"event.dataset": "network.hl7", "source.ip": "10.0.0.15", "destination.ip": "81.2.69.1"},
        {"event.dataset": "network.hl7", "source.ip": "10.0.0.15", "destination.ip": "10.0.0.16"},
        {
            "event.dataset": "network.dicom",
            "source.ip": "81.2.69.2",
            "destination.ip": "10.0.0.30",
            "tls.established": False,
        },  # fmt: skip
        {
            "event.dataset": "network.dicom",
            "source.ip": "81.2.69.3",
            "destination.ip": "10.0.0.30",
            "tls.established": True,
        },  # fmt: skip
        {
            "event.dataset": "network.tls",
            "source.ip": "81.2.69.4",
            "destination.ip": "10.0.0.40",
            "destination.port": 443,
            "tls.version": "TLSv10",
            "tls.established": True,
        },  # fmt: skip
        {
            "event.dataset": "network.tls",
            "source.ip": "10.0.0.9",
            "destination.ip": "10.0.0.41",
            "destination.port": 8443,
            "tls.version": "TLSv13",
            "tls.established": True,
        },  # fmt: skip
        {
            "event.dataset": "network.tls",
            "source.ip": "10.0.0.9",
            "destination.ip": "81.2.69.9",
            "destination.port": 443,
            "tls.version": "TLSv10",
            "tls.established": True,
        },  # fmt: skip
        {
            "event.dataset": "network.smb",
            "source.ip": "10.0.0.9",
            "destination.ip": "10.0.0.50",
            "smb.version": "1",
        },  # fmt: skip
        {"event.dataset": "network.dns", "source.ip": "10.0.0.9", "destination.ip": "8.8.8.8"},
    ) == [
        ("net.exposed", "rdp", "81.2.69.160"),
        ("net.cleartext", "telnet", "10.0.0.7"),
        ("net.outbound", "out", "10.0.0.9"),
        ("net.health", "hl7", "81.2.69.1"),
        ("net.health", "dicom", "81.2.69.2"),
        ("net.tls", "weak:exposed", "10.0.0.40:443"),
        ("net.tls", "ok:internal", "10.0.0.41:8443"),
        # TLS 1.0 on an Internet server is not the establishment's to fix: nothing.
        ("net.smb", "v1", "10.0.0.50"),
        ("net.dns", "public", "10.0.0.9"),
    ]


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


def windows(event_id: int, channel: str = "Security", **data: Any) -> dict[str, Any]:
    return {"EventID": event_id, "Channel": channel, "Computer": "PC01.hopital.local", **data}


def test_windows_events_give_their_signals() -> None:
    assert seen(
        windows(4624, LmPackageName="NTLM V1", TargetUserSid="S-1-5-21-1-2-3-1104", LogonType=3),
        # An anonymous null session negotiates NTLM V1 without any password: not counted.
        windows(4624, LmPackageName="NTLM V1", TargetUserSid="S-1-5-7", LogonType=3),
        windows(
            4624,
            LmPackageName="-",
            TargetUserSid="S-1-5-21-1-2-3-500",
            LogonType=10,
            IpAddress="81.2.69.160",
        ),  # fmt: skip
        windows(4672, SubjectUserSid="S-1-5-18", SubjectUserName="PC01$"),
        windows(4672, SubjectUserSid="S-1-5-21-1-2-3-1104", SubjectUserName="admin.dupont"),
        windows(6009, "System", Data=["6.01.", "7601", "Service Pack 1", "Multiprocessor Free"]),
        windows(3000, "Microsoft-Windows-SMBServer/Audit", Data="10.0.0.9"),
        windows(5001, "Microsoft-Windows-Windows Defender/Operational"),
        windows(1151, "Microsoft-Windows-Windows Defender/Operational"),
    ) == [
        ("win.logon", "ntlmv1", "PC01.hopital.local"),
        ("win.logon", "other", "PC01.hopital.local"),
        ("win.logon", "other", "PC01.hopital.local"),
        ("win.builtin", "admin", "PC01.hopital.local"),
        ("net.exposed", "rdp", "81.2.69.160"),
        ("win.privileged", "logon", "PC01.hopital.local"),
        ("win.os", "7601", "PC01.hopital.local"),
        ("net.smb", "v1", "PC01.hopital.local"),
        ("win.av", "rtp_off", "PC01.hopital.local"),
    ]


@pytest.mark.corpus
def test_the_evtx_corpus_gives_no_false_ntlmv1_and_finds_the_builtin_administrator() -> None:
    folder = corpus_path("evtx", "attack-samples")
    views, count = [], 0
    for path in sorted(folder.rglob("*.evtx")):
        for event in read_evtx(path, ReadStats()):
            views.append(event.sigma_view())
            count += 1
    assert count > 3000
    found = Counter(
        (o.signal, o.key)
        for o in observe(views, [AT] * len(views), [str(i) for i in range(count)], "a")
    )
    # The corpus's three NTLM V1 logons are all anonymous null sessions.
    assert found[("win.logon", "ntlmv1")] == 0
    assert found[("win.logon", "other")] > 50
    assert found[("win.builtin", "admin")] >= 8  # RID 500 logons, whatever the account's name
    assert found[("win.privileged", "logon")] > 0
