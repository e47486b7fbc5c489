"""What maturity checks need from arriving events and detections, taken as they arrive.

`observe` reads the flat views ingestion already made for Sigma (`Event.sigma_view()`:
Windows fields under their rendering's names, network records under Zeek's names as agents
ship them or under ECS's, other documents as dotted keys) and gives
`Observation`s: a signal, a key within it, when, the item's id, and the subject it is about (a
host, a server, a public peer). `api.maturity.evidence` folds them into one small row per
establishment, signal, key and day, so that the nightly snapshot never reads raw events: it
works the same whichever event store holds them.

Signals (key: what the subject is):
- `source`          network | windows | logs: the agent that sent it (data arrives at all)
- `net.exposed`     rdp | smb | winrm | vnc | telnet: the public peer of an established
                    inbound connection to an internal host (or of a Windows RDP logon, 4624
                    type 10, from a public address)
- `net.health`      hl7 | dicom: the public peer of HL7 over MLLP or DICOM without TLS
- `net.tls`         weak:exposed | weak:internal | ok:exposed | ok:internal: the server
                    (address:port) of an established TLS handshake (weak: below TLS 1.2)
- `net.smb`         v1 | v2: the SMB server (or a Windows SMBServer/Audit 3000: SMB1 served)
- `net.cleartext`   telnet | ftp: the internal server of an established connection
- `net.dns`         public | internal: the client asking a resolver on the Internet or inside
- `net.outbound`    out: the internal host of an established connection to the Internet
- `win.logon`       ntlmv1 | other: the host a network or interactive logon happened on
- `win.builtin`     admin: the host where the built-in Administrator (RID 500) logged on
- `win.privileged`  logon: the host where a person's account got special privileges (4672)
- `win.os`          <build>: the host that booted with that Windows build (System 6009)
- `win.av`          rtp_off | update_failed | ok: the host (Defender 5001, 2001; 5000, 1150)
- `det.recovery`    <rule id>: the host of a recovery-inhibition detection (ATT&CK T1490,
                    or one of Vigie's rules on backup services stopped)
- `agent`           <agent id>: a source kind it reads, from its heartbeats (not from
                    events: `api.agents.service`)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

ADMIN_PORTS = {3389: "rdp", 445: "smb", 139: "smb", 5985: "winrm", 5986: "winrm", 5900: "vnc"}
ADMIN_PORTS[23] = "telnet"
# Zeek's names of the same services, recognised from the traffic on any port.
ADMIN_SERVICES = {"rdp": "rdp", "smb": "smb", "rfb": "vnc", "telnet": "telnet"}
CLEARTEXT_ADMIN = {23: "telnet", 21: "ftp"}
# Zeek's states of a connection that was established (a SYN answered, data may follow).
ESTABLISHED = frozenset({"SF", "S1", "S2", "S3", "RSTO", "RSTR"})
WEAK_TLS = frozenset({"SSLv2", "SSLv3", "TLSv10", "TLSv11"})
MLLP_PORTS = frozenset({2575})
# SIDs of the machine's own accounts: their special privileges are no person's logon.
_SERVICE_SIDS = frozenset({"S-1-5-18", "S-1-5-19", "S-1-5-20"})
_INTERACTIVE = frozenset({"2", "10", "11"})  # console, remote desktop, cached


@dataclass(frozen=True, slots=True)
class Observation:
    signal: str
    key: str
    at: datetime
    item: str  # the event's or detection's id, kept as a sample
    subject: str


# Never on the Internet. Documentation ranges (192.0.2/24, 198.51.100/24, 203.0.113/24) are
# not listed: they never appear in real traffic, and Vigie's Sigma rules, their cases and the
# demo's capture use them as stand-ins for Internet addresses; the two must agree.
_INTERNAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",  # shared address space (carrier NAT)
        "127.0.0.0/8",
        "169.254.0.0/16",
        "0.0.0.0/8",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
        "::1/128",
        "::/128",
    )
)


@lru_cache(maxsize=65536)
def is_public(address: Any) -> bool:
    """An Internet address: none of the private, shared, link-local, loopback, multicast or
    reserved ranges."""
    try:
        ip = ipaddress.ip_address(str(address))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not any(ip in network for network in _INTERNAL)


def observe(
    views: Sequence[Mapping[str, Any]],
    times: Sequence[datetime],
    ids: Sequence[str],
    agent: str,
) -> list[Observation]:
    """The observations of a batch's events (each one's flat view, time and stable id)."""
    # Every event of every batch passes here: the common cases are told apart with as few
    # lookups as possible, network records the agent ships first (most events; most of them
    # connections never answered, left at the third lookup). The cost with the evidence on is
    # measured by benchmarks/ingest_load.py --evidence on off.
    out: list[Observation] = []
    sources: dict[str, tuple[datetime, str]] = {}
    for view, at, item in zip(views, times, ids, strict=True):
        path = view.get("_path")
        if path is not None and "id.orig_h" in view and "EventID" not in view:
            kind = "network"
            dataset = _ZEEK_DATASETS.get(path) if isinstance(path, str) else None
            if dataset == "network.conn":
                if view.get("conn_state") in ESTABLISHED:
                    _network(view, dataset, _ZEEK, at, item, out)
            elif dataset is not None:
                _network(view, dataset, _ZEEK, at, item, out)
        elif "EventID" in view:
            kind = "windows"
            event_id = view["EventID"]
            if event_id.__class__ is not int or event_id in _WINDOWS_EVENTS:
                _windows(view, at, item, out)
        else:
            dataset = view.get("event.dataset")
            if dataset is not None and str(dataset).startswith("network."):
                kind = "network"
                _network(view, dataset, _ECS, at, item, out)
            else:
                kind = "logs"
        if kind not in sources:
            sources[kind] = (at, item)
    # One per kind and batch: enough to say data arrives, at the cost of nothing.
    out.extend(Observation("source", k, at, item, agent) for k, (at, item) in sources.items())
    return out


# Vigie's rules on backup agents and database engines stopped or disabled (rules/sigma/impact/
# backup_service_stop*.yml): recovery inhibition too, but tagged T1489 (service stop), which
# also covers many stops that have nothing to do with backups; so they are named by id.
BACKUP_STOPS = frozenset(
    {
        "82e89f2b-6769-4e84-9714-faaf08e8f6f6",  # net, sc or taskkill
        "4efbd43e-933e-4351-9c69-36c0a5a6163b",  # PowerShell Stop-Service, Set-Service
    }
)


def observe_detections(
    detections: Sequence[Mapping[str, Any]], ids: Sequence[str]
) -> list[Observation]:
    out = []
    for detection, item in zip(detections, ids, strict=True):
        tags = detection.get("tags") or ()
        rule_id = str(detection.get("rule_id"))
        if "attack.t1490" not in {str(t).lower() for t in tags} and rule_id not in BACKUP_STOPS:
            continue
        at = _when(detection.get("timestamp"))
        if at is None:
            continue
        event = detection.get("event") or {}
        host = _host(event) if isinstance(event, Mapping) else "?"
        out.append(Observation("det.recovery", rule_id, at, item, host))
    return out


def _when(value: Any) -> datetime | None:
    from detection.event import parse_timestamp

    return parse_timestamp(value)


def _host(event: Mapping[str, Any]) -> str:
    winlog = event.get("winlog")
    if isinstance(winlog, Mapping) and winlog.get("computer_name"):
        return str(winlog["computer_name"])
    for key in ("Computer", "host.name", "source.ip"):
        if event.get(key):
            return str(event[key])
    host = event.get("host")
    if isinstance(host, Mapping) and host.get("name"):
        return str(host["name"])
    return "?"


# Agents ship network metadata under Zeek's own names (`_path`, `id.orig_h`, `conn_state`:
# collector/sources/pcap.py, `record_event`), as Vigie's network rules expect them; the ECS
# names come from `vigie netmeta --format ecs` output read as a log. Each record's `zeek()`
# and `ecs()` (collector/netmeta/records.py) name the same values.
_ZEEK_DATASETS = {
    "conn": "network.conn",
    "ssl": "network.tls",
    "smb": "network.smb",
    "dns": "network.dns",
    "hl7": "network.hl7",
    "dicom": "network.dicom",
}  # http: no signal


@dataclass(frozen=True, slots=True)
class _Names:
    """Where a rendering of network records keeps the values `_network` reads."""

    orig: str
    resp: str
    port: str
    state: str  # conn
    service: str  # conn
    tls_version: str  # ssl
    established: str  # ssl: the server answered
    smb_version: str  # smb
    dicom_tls: str  # dicom


_ECS = _Names(
    "source.ip",
    "destination.ip",
    "destination.port",
    "zeek.conn.state",
    "network.protocol",
    "tls.version",
    "tls.established",
    "smb.version",
    "tls.established",
)
_ZEEK = _Names(
    "id.orig_h",
    "id.resp_h",
    "id.resp_p",
    "conn_state",
    "service",
    "version",
    "established",
    "version",
    "tls",
)


def _admin_service(port: Any, service: Any) -> str | None:
    """The administration service a connection reached: by its port, or by the service the
    sensor recognised (Zeek's "rdp", or "ssl,rdp", on any port)."""
    name = ADMIN_PORTS.get(port) if isinstance(port, int) else None
    if name is None and isinstance(service, str):
        name = next((ADMIN_SERVICES[s] for s in service.split(",") if s in ADMIN_SERVICES), None)
    return name


def _network(
    view: Mapping[str, Any],
    dataset: Any,
    names: _Names,
    at: datetime,
    item: str,
    out: list[Observation],
) -> None:
    if dataset == "network.conn" and view.get(names.state) not in ESTABLISHED:
        return  # most connections: attempts never answered
    orig, resp = view.get(names.orig), view.get(names.resp)
    port = view.get(names.port)
    orig_public, resp_public = is_public(orig), is_public(resp)
    if dataset == "network.conn":
        service = view.get(names.service)
        if orig_public and not resp_public:
            name = _admin_service(port, service)
            if name is not None:
                out.append(Observation("net.exposed", name, at, item, str(orig)))
        if not resp_public:
            name = CLEARTEXT_ADMIN.get(port) if isinstance(port, int) else None
            if name is None and service in ("telnet", "ftp"):
                name = str(service)
            if name is not None:
                out.append(Observation("net.cleartext", name, at, item, str(resp)))
        if resp_public and not orig_public:
            out.append(Observation("net.outbound", "out", at, item, str(orig)))
    elif dataset == "network.hl7":
        peer = resp if resp_public else orig if orig_public else None
        if peer is not None:
            out.append(Observation("net.health", "hl7", at, item, str(peer)))
    elif dataset == "network.dicom":
        peer = resp if resp_public else orig if orig_public else None
        if peer is not None and not view.get(names.dicom_tls):
            out.append(Observation("net.health", "dicom", at, item, str(peer)))
    elif dataset == "network.tls":
        if not view.get(names.established) or resp_public:
            return  # a server of the Internet is not the establishment's to fix
        weak = "weak" if view.get(names.tls_version) in WEAK_TLS else "ok"
        where = "exposed" if orig_public else "internal"
        out.append(Observation("net.tls", f"{weak}:{where}", at, item, f"{resp}:{port}"))
    elif dataset == "network.smb":
        version = "v1" if str(view.get(names.smb_version)) == "1" else "v2"
        out.append(Observation("net.smb", version, at, item, str(resp)))
    elif dataset == "network.dns":
        if orig_public:
            return
        where = "public" if resp_public else "internal"
        out.append(Observation("net.dns", where, at, item, str(orig)))


# The Windows events any signal reads: the others are left at the first lookup.
_WINDOWS_EVENTS = frozenset({4624, 4672, 6009, 3000, 5001, 2001, 5000, 1150})


def _windows(view: Mapping[str, Any], at: datetime, item: str, out: list[Observation]) -> None:
    event_id = _int(view.get("EventID"))
    if event_id not in _WINDOWS_EVENTS:
        return
    host = str(view.get("Computer") or "?")
    channel = str(view.get("Channel") or "")
    if channel == "Security" and event_id == 4624:
        package = str(view.get("LmPackageName") or "")
        # Anonymous null sessions (S-1-5-7) negotiate NTLM V1 without any password: all three
        # NTLM V1 logons of the EVTX corpus are such, and they say nothing of the host.
        anonymous = view.get("TargetUserSid") == "S-1-5-7"
        key = "ntlmv1" if package in ("NTLM V1", "LM") and not anonymous else "other"
        out.append(Observation("win.logon", key, at, item, host))
        if str(view.get("TargetUserSid", "")).endswith("-500"):
            out.append(Observation("win.builtin", "admin", at, item, host))
        address = view.get("IpAddress")
        if str(view.get("LogonType")) == "10" and is_public(address):
            out.append(Observation("net.exposed", "rdp", at, item, str(address)))
    elif channel == "Security" and event_id == 4672:
        sid = str(view.get("SubjectUserSid") or "")
        user = str(view.get("SubjectUserName") or "")
        if sid not in _SERVICE_SIDS and not user.endswith("$"):
            out.append(Observation("win.privileged", "logon", at, item, host))
    elif channel == "System" and event_id == 6009:
        build = _build(view)
        if build is not None:
            out.append(Observation("win.os", build, at, item, host))
    elif channel == "Microsoft-Windows-SMBServer/Audit" and event_id == 3000:
        out.append(Observation("net.smb", "v1", at, item, host))  # an SMB1 access it served
    elif channel == "Microsoft-Windows-Windows Defender/Operational":
        # 5000: real-time protection on, 1150: healthy. Not 1151, whose health report may
        # itself say protection is off.
        state = {5001: "rtp_off", 2001: "update_failed", 5000: "ok", 1150: "ok"}.get(event_id or 0)
        if state is not None:
            out.append(Observation("win.av", state, at, item, host))


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _build(view: Mapping[str, Any]) -> str | None:
    """The build number in a 6009 event: its five data items are unnamed, ["10.00.", "19044",
    "", "Multiprocessor Free", "0"]; the first is the same for Windows 10, 11 and Servers
    since 2016, the second tells them apart."""
    data = view.get("Data")
    if not isinstance(data, list) or len(data) < 2:
        return None
    text = str(data[1] or "").strip()
    return text if text.isdigit() else None
