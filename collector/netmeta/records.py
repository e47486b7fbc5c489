"""Typed records sharing Zeek's envelope, and their two renderings (Zeek names, ECS-style).

Not frozen: a frozen dataclass sets each field through object.__setattr__, five times the
cost of building one, and a capture gives tens of thousands of records; none is changed after
it is made."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}


@functools.lru_cache(maxsize=4096)
def addr(raw: bytes) -> str:
    """An address's text. The same few addresses come back record after record: the last
    4,096 are remembered (under a megabyte, for the agent too; ipaddress takes microseconds
    for an IPv6 one)."""
    # IPv4's dotted text written out (the same as socket.inet_ntoa's, without importing socket
    # at start-up, a twentieth of what `vigie netmeta` imports); ipaddress keeps IPv6's form.
    if len(raw) == 4:
        return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"
    return str(ipaddress.ip_address(raw))


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Envelope:
    """What every Zeek log line starts with: when, which connection, which endpoints."""

    ts: float
    uid: str
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    proto: str

    def zeek_envelope(self) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "uid": self.uid,
            "id.orig_h": self.orig_h,
            "id.orig_p": self.orig_p,
            "id.resp_h": self.resp_h,
            "id.resp_p": self.resp_p,
            "proto": self.proto,
        }

    def ecs_envelope(self, dataset: str) -> dict[str, Any]:
        return {
            "@timestamp": iso(self.ts),
            "event.dataset": dataset,
            "event.id": self.uid,
            "source.ip": self.orig_h,
            "source.port": self.orig_p,
            "destination.ip": self.resp_h,
            "destination.port": self.resp_p,
            "network.transport": self.proto,
        }


@dataclass(slots=True)
class ConnRecord(Envelope):
    """One line of Zeek's conn.log."""

    service: str | None
    duration: float | None
    orig_bytes: int | None
    resp_bytes: int | None
    conn_state: str
    missed_bytes: int
    history: str | None
    orig_pkts: int
    orig_ip_bytes: int
    resp_pkts: int
    resp_ip_bytes: int
    # The uids of the tunnels that carried the connection (Zeek's set, in the order seen).
    tunnel_parents: tuple[str, ...] = ()

    # The __init__ the dataclass would make, written out (as for DnsRecord): compiled, a
    # dataclass's generated __init__ stays Python code, called with a dict of the keywords
    # (mypyc 1.20), and most records are these; the dataclass keeps one written here. `path`
    # is a property, not a class attribute: compiled, mypyc makes a class attribute a field
    # of the instance, which that __init__ would have to set (and pure Python cannot, slots).
    @property
    def path(self) -> str:
        return "conn"

    def __init__(
        self, ts: float, uid: str, orig_h: str, orig_p: int, resp_h: str, resp_p: int,
        proto: str, service: str | None, duration: float | None, orig_bytes: int | None,
        resp_bytes: int | None, conn_state: str, missed_bytes: int, history: str | None,
        orig_pkts: int, orig_ip_bytes: int, resp_pkts: int, resp_ip_bytes: int,
        tunnel_parents: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        self.ts = ts
        self.uid = uid
        self.orig_h = orig_h
        self.orig_p = orig_p
        self.resp_h = resp_h
        self.resp_p = resp_p
        self.proto = proto
        self.service = service
        self.duration = duration
        self.orig_bytes = orig_bytes
        self.resp_bytes = resp_bytes
        self.conn_state = conn_state
        self.missed_bytes = missed_bytes
        self.history = history
        self.orig_pkts = orig_pkts
        self.orig_ip_bytes = orig_ip_bytes
        self.resp_pkts = resp_pkts
        self.resp_ip_bytes = resp_ip_bytes
        self.tunnel_parents = tunnel_parents

    def zeek(self) -> dict[str, Any]:
        # One literal: most records are these, and `vigie netmeta` writes every one.
        return {
            "_path": "conn",
            "ts": self.ts,
            "uid": self.uid,
            "id.orig_h": self.orig_h,
            "id.orig_p": self.orig_p,
            "id.resp_h": self.resp_h,
            "id.resp_p": self.resp_p,
            "proto": self.proto,
            "service": self.service,
            "duration": self.duration,
            "orig_bytes": self.orig_bytes,
            "resp_bytes": self.resp_bytes,
            "conn_state": self.conn_state,
            "missed_bytes": self.missed_bytes,
            "history": self.history,
            "orig_pkts": self.orig_pkts,
            "orig_ip_bytes": self.orig_ip_bytes,
            "resp_pkts": self.resp_pkts,
            "resp_ip_bytes": self.resp_ip_bytes,
            "tunnel_parents": list(self.tunnel_parents) if self.tunnel_parents else None,
        }

    def zeek_set(self) -> dict[str, Any]:
        """zeek() without its unset (None) fields, as a JSON line leaves them out: the six a
        connection may leave unset removed by name, not every field tested."""
        out = self.zeek()
        if self.service is None:
            del out["service"]
        if self.duration is None:
            del out["duration"]
        if self.orig_bytes is None:
            del out["orig_bytes"]
        if self.resp_bytes is None:
            del out["resp_bytes"]
        if self.history is None:
            del out["history"]
        if not self.tunnel_parents:
            del out["tunnel_parents"]
        return out

    def ecs(self) -> dict[str, Any]:
        out = self.ecs_envelope("network.conn")
        out.update(
            {
                "network.protocol": self.service,
                "event.duration": None if self.duration is None else int(self.duration * 1e9),
                "source.bytes": self.orig_ip_bytes,
                "source.packets": self.orig_pkts,
                "destination.bytes": self.resp_ip_bytes,
                "destination.packets": self.resp_pkts,
                "network.bytes": self.orig_ip_bytes + self.resp_ip_bytes,
                "network.packets": self.orig_pkts + self.resp_pkts,
                "zeek.conn.orig_bytes": self.orig_bytes,
                "zeek.conn.resp_bytes": self.resp_bytes,
                "zeek.conn.state": self.conn_state,
                "zeek.conn.history": self.history,
                "zeek.conn.tunnel_parents": list(self.tunnel_parents) or None,
            }
        )
        return out


@dataclass(slots=True)
class TunnelRecord(Envelope):
    """One line of Zeek's tunnel.log: a tunnel first carrying a connection (DISCOVER), the
    UDP flow of one ending (CLOSE), or one no new connection came through for an hour
    (EXPIRE). IP tunnels (IP-in-IP, GRE) have ports 0."""

    tunnel_type: str  # Zeek's Tunnel::Type name: IP, GRE, VXLAN, GENEVE, TEREDO, AYIYA, GTPv1
    action: str  # DISCOVER, CLOSE or EXPIRE

    path = "tunnel"

    def zeek(self) -> dict[str, Any]:
        out = {"_path": "tunnel", **self.zeek_envelope()}
        del out["proto"]  # tunnel.log has no proto field
        out["tunnel_type"] = f"Tunnel::{self.tunnel_type}"
        out["action"] = f"Tunnel::{self.action}"
        return out

    def ecs(self) -> dict[str, Any]:
        out = self.ecs_envelope("network.tunnel")
        out.update({"network.type": self.tunnel_type.lower(), "event.action": self.action.lower()})
        return out


@dataclass(slots=True)
class DnsRecord(Envelope):
    """One line of Zeek's dns.log: a query and its answer, or either alone."""

    trans_id: int
    rtt: float | None
    query: str | None
    qclass: int | None
    qtype: int | None
    qtype_name: str | None
    rcode: int | None
    rcode_name: str | None
    aa: bool
    tc: bool
    rd: bool
    ra: bool
    answers: tuple[str, ...] | None
    ttls: tuple[float, ...] | None

    @property
    def path(self) -> str:  # a property, as ConnRecord's says why
        return "dns"

    def __init__(
        self, ts: float, uid: str, orig_h: str, orig_p: int, resp_h: str, resp_p: int,
        proto: str, trans_id: int, rtt: float | None, query: str | None, qclass: int | None,
        qtype: int | None, qtype_name: str | None, rcode: int | None, rcode_name: str | None,
        aa: bool, tc: bool, rd: bool, ra: bool, answers: tuple[str, ...] | None,
        ttls: tuple[float, ...] | None,
    ) -> None:  # fmt: skip
        self.ts = ts
        self.uid = uid
        self.orig_h = orig_h
        self.orig_p = orig_p
        self.resp_h = resp_h
        self.resp_p = resp_p
        self.proto = proto
        self.trans_id = trans_id
        self.rtt = rtt
        self.query = query
        self.qclass = qclass
        self.qtype = qtype
        self.qtype_name = qtype_name
        self.rcode = rcode
        self.rcode_name = rcode_name
        self.aa = aa
        self.tc = tc
        self.rd = rd
        self.ra = ra
        self.answers = answers
        self.ttls = ttls

    def zeek(self) -> dict[str, Any]:
        # One literal, as ConnRecord's (the second most common record).
        return {
            "_path": "dns",
            "ts": self.ts,
            "uid": self.uid,
            "id.orig_h": self.orig_h,
            "id.orig_p": self.orig_p,
            "id.resp_h": self.resp_h,
            "id.resp_p": self.resp_p,
            "proto": self.proto,
            "trans_id": self.trans_id,
            "rtt": self.rtt,
            "query": self.query,
            "qclass": self.qclass,
            "qtype": self.qtype,
            "qtype_name": self.qtype_name,
            "rcode": self.rcode,
            "rcode_name": self.rcode_name,
            "AA": self.aa,
            "TC": self.tc,
            "RD": self.rd,
            "RA": self.ra,
            "answers": None if self.answers is None else list(self.answers),
            "TTLs": None if self.ttls is None else list(self.ttls),
        }

    def zeek_set(self) -> dict[str, Any]:
        """zeek() without its unset (None) fields, as ConnRecord.zeek_set."""
        out = self.zeek()
        if self.rtt is None:
            del out["rtt"]
        if self.query is None:
            del out["query"]
        if self.qclass is None:
            del out["qclass"]
        if self.qtype is None:
            del out["qtype"]
        if self.qtype_name is None:
            del out["qtype_name"]
        if self.rcode is None:
            del out["rcode"]
        if self.rcode_name is None:
            del out["rcode_name"]
        if self.answers is None:
            del out["answers"]
        if self.ttls is None:
            del out["TTLs"]
        return out

    def ecs(self) -> dict[str, Any]:
        out = self.ecs_envelope("network.dns")
        out.update(
            {
                "network.protocol": "dns",
                "dns.id": self.trans_id,
                "dns.question.name": self.query,
                "dns.question.type": self.qtype_name,
                "dns.response_code": self.rcode_name,
                "dns.answers.data": None if self.answers is None else list(self.answers),
                "dns.answers.ttl": None if self.ttls is None else list(self.ttls),
            }
        )
        return out


@dataclass(slots=True)
class Hl7Record(Envelope):
    """One HL7 v2 message seen over MLLP: its header only (collector/netmeta/hl7.py)."""

    is_orig: bool  # sent by the connection's originator
    message_type: str | None
    trigger_event: str | None
    sending_application: str | None
    sending_facility: str | None
    receiving_application: str | None
    receiving_facility: str | None
    control_id: str | None
    version: str | None
    ack_code: str | None

    path = "hl7"

    def zeek(self) -> dict[str, Any]:
        out = {"_path": "hl7", **self.zeek_envelope()}
        out.update(
            is_orig=self.is_orig,
            message_type=self.message_type,
            trigger_event=self.trigger_event,
            sending_application=self.sending_application,
            sending_facility=self.sending_facility,
            receiving_application=self.receiving_application,
            receiving_facility=self.receiving_facility,
            control_id=self.control_id,
            version=self.version,
            ack_code=self.ack_code,
        )
        return out

    def ecs(self) -> dict[str, Any]:
        out = self.ecs_envelope("network.hl7")
        out.update(
            {
                "network.protocol": "hl7",
                "network.direction": "outbound" if self.is_orig else "inbound",
                "hl7.message_type": self.message_type,
                "hl7.trigger_event": self.trigger_event,
                "hl7.sending_application": self.sending_application,
                "hl7.sending_facility": self.sending_facility,
                "hl7.receiving_application": self.receiving_application,
                "hl7.receiving_facility": self.receiving_facility,
                "hl7.control_id": self.control_id,
                "hl7.version": self.version,
                "hl7.ack_code": self.ack_code,
            }
        )
        return out


@dataclass(slots=True)
class DicomRecord(Envelope):
    """One DICOM association request and its answer (collector/netmeta/dicom.py)."""

    calling_ae: str | None
    called_ae: str | None
    abstract_syntaxes: tuple[str, ...]
    result: str | None  # accepted | rejected | None (no answer seen)
    tls: bool  # the channel is TLS: AE titles and syntaxes cannot be seen

    path = "dicom"

    def zeek(self) -> dict[str, Any]:
        out = {"_path": "dicom", **self.zeek_envelope()}
        out.update(
            calling_ae=self.calling_ae,
            called_ae=self.called_ae,
            abstract_syntaxes=list(self.abstract_syntaxes),
            result=self.result,
            tls=self.tls,
        )
        return out

    def ecs(self) -> dict[str, Any]:
        out = self.ecs_envelope("network.dicom")
        out.update(
            {
                "network.protocol": "dicom",
                "tls.established": self.tls,
                "dicom.calling_ae_title": self.calling_ae,
                "dicom.called_ae_title": self.called_ae,
                "dicom.abstract_syntaxes": list(self.abstract_syntaxes),
                "dicom.association_result": self.result,
            }
        )
        return out


@dataclass(slots=True)
class SslRecord(Envelope):
    """A TLS handshake's opening: the version and cipher the server chose, the name asked."""

    version: str | None
    cipher: str | None
    server_name: str | None
    established: bool  # the server answered with a ServerHello

    path = "ssl"

    def zeek(self) -> dict[str, Any]:
        out = {"_path": "ssl", **self.zeek_envelope()}
        out.update(
            version=self.version,
            cipher=self.cipher,
            server_name=self.server_name,
            established=self.established,
        )
        return out

    def ecs(self) -> dict[str, Any]:
        out = self.ecs_envelope("network.tls")
        out.update(
            {
                "network.protocol": "tls",
                "tls.version": self.version,
                "tls.cipher": self.cipher,
                "tls.client.server_name": self.server_name,
                "tls.established": self.established,
            }
        )
        return out


@dataclass(slots=True)
class SmbRecord(Envelope):
    """The SMB version a connection speaks: "1" (SMBv1), a negotiated dialect, or "2"."""

    version: str

    path = "smb"

    def zeek(self) -> dict[str, Any]:
        return {"_path": "smb", **self.zeek_envelope(), "version": self.version}

    def ecs(self) -> dict[str, Any]:
        out = self.ecs_envelope("network.smb")
        out.update({"network.protocol": "smb", "smb.version": self.version})
        return out


@dataclass(slots=True)
class HttpRecord(Envelope):
    """One HTTP/1.x request and the status of its response (collector/netmeta/http.py)."""

    method: str
    host: str | None
    uri: str
    version: str | None
    user_agent: str | None
    status_code: int | None

    path = "http"

    def zeek(self) -> dict[str, Any]:
        out = {"_path": "http", **self.zeek_envelope()}
        out.update(
            method=self.method,
            host=self.host,
            uri=self.uri,
            version=self.version,
            user_agent=self.user_agent,
            status_code=self.status_code,
        )
        return out

    def ecs(self) -> dict[str, Any]:
        out = self.ecs_envelope("network.http")
        out.update(
            {
                "network.protocol": "http",
                "http.request.method": self.method,
                "url.domain": self.host,
                "url.original": self.uri,
                "http.version": self.version,
                "user_agent.original": self.user_agent,
                "http.response.status_code": self.status_code,
            }
        )
        return out


Record = (
    ConnRecord
    | DnsRecord
    | Hl7Record
    | DicomRecord
    | SslRecord
    | SmbRecord
    | HttpRecord
    | TunnelRecord
)
