"""Maturity signals from network records as agents ship them: Zeek's names (`_path`,
`id.orig_h`, `conn_state`), not the ECS names of `vigie netmeta --format ecs`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from api.maturity.signals import Observation, observe
from collector.netmeta.records import ConnRecord, DnsRecord, Record, SmbRecord, SslRecord
from collector.sources.pcap import record_event
from detection.event import Event, parse_timestamp

TS = datetime(2026, 12, 1, 9, 30, tzinfo=UTC).timestamp()
PUBLIC = "185.220.101.4"  # an Internet address (documentation ranges are not public)


def _conn(orig: str, resp: str, port: int, state: str, service: str | None) -> ConnRecord:
    return ConnRecord(
        TS,
        "C1",
        orig,
        50123,
        resp,
        port,
        "tcp",
        service,
        1.5,
        100,
        200,
        state,
        0,
        "ShAdDaFf",
        6,
        420,
        5,
        480,
    )


RECORDS: list[Record] = [
    _conn(PUBLIC, "10.1.2.3", 3389, "SF", None),  # RDP reached from the Internet
    _conn("10.1.2.4", "10.1.2.9", 23, "SF", "telnet"),  # Telnet inside
    _conn("10.1.2.4", PUBLIC, 443, "SF", "ssl"),  # out to the Internet
    _conn(PUBLIC, "10.1.2.3", 3389, "S0", None),  # never answered: nothing exposed
    SslRecord(TS, "C2", "10.1.2.4", 50124, "10.1.1.5", 443, "tcp", "TLSv10", None, "intra", True),
    SmbRecord(TS, "C3", "10.1.2.4", 50125, "10.1.1.6", 445, "tcp", "1"),
    DnsRecord(
        TS,
        "C4",
        "10.1.2.4",
        5353,
        "8.8.8.8",
        53,
        "udp",
        7,
        0.01,
        "example.org",
        1,
        1,
        "A",
        0,
        "NOERROR",
        False,
        False,
        True,
        True,
        ("93.184.215.14",),
        (60.0,),
    ),
]


def _server_view(doc: Mapping[str, Any]) -> tuple[datetime, Mapping[str, Any]]:
    """The view the service builds of a shipped document (api/ingest/service.py `_events`)."""
    ts = parse_timestamp(doc["@timestamp"])
    assert ts is not None
    return ts, Event(ts, {k: v for k, v in doc.items() if k != "@timestamp"}).sigma_view()


def _observed(docs: list[dict[str, Any]]) -> list[Observation]:
    pairs = [_server_view(doc) for doc in docs]
    ids = [f"agent-1/{n}" for n in range(len(docs))]
    return observe([v for _, v in pairs], [t for t, _ in pairs], ids, "agent-1")


def test_records_as_the_agent_ships_them_give_network_evidence() -> None:
    shipped = [record_event(r, "pcap:/captures/span.pcap").to_ecs() for r in RECORDS]
    assert all("_path" in doc and "event.dataset" not in doc for doc in shipped)
    seen = {(o.signal, o.key, o.subject) for o in _observed(shipped)}
    assert seen == {
        ("net.exposed", "rdp", PUBLIC),
        ("net.cleartext", "telnet", "10.1.2.9"),
        ("net.outbound", "out", "10.1.2.4"),
        ("net.tls", "weak:internal", "10.1.1.5:443"),
        ("net.smb", "v1", "10.1.1.6"),
        ("net.dns", "public", "10.1.2.4"),
        ("source", "network", "agent-1"),
    }


def test_zeek_and_ecs_renderings_give_the_same_observations() -> None:
    zeek = _observed([record_event(r, "pcap:/captures/span.pcap").to_ecs() for r in RECORDS])
    ecs = _observed([r.ecs() for r in RECORDS])
    assert zeek == ecs
    assert len(zeek) == 7
