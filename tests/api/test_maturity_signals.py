"""What maturity evidence is taken from events: network records as the agent ships them, and
Windows events as Vigie reads them from real EVTX files."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from api.maturity.signals import is_public, observe
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
