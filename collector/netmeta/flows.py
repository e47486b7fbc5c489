"""Connection accounting with the semantics of Zeek's conn.log.

Who is the originator, the TCP endpoint states that make `conn_state`, the `history` letters,
payload sizes from sequence numbers: each follows what Zeek documents for conn.log, so the
records compare field by field with Zeek's on the same capture. The TCP side is a port of
Zeek's TCPSessionAdapter (src/packet_analysis/protocol/tcp/): its endpoint state machine, its
rule for a 4-tuple reused by a new connection (IsReuse), its timers (attempt, close, partial
close) and idle timeouts, retransmissions (T), zero windows (W) and, from its reassembler,
content gaps (G). Tunnelled packets name their tunnel (tunnel_parents, tunnel records).
"""

from __future__ import annotations

import dataclasses
import random
from collections import deque
from collections.abc import Iterator
from typing import Any, Final

from collector.netmeta import dicom, dns, handshakes, hl7, http, ssh, starttls
from collector.netmeta.records import (
    PROTO_NAMES,
    ConnRecord,
    DicomRecord,
    DnsRecord,
    Hl7Record,
    HttpRecord,
    Record,
    SmbRecord,
    SslRecord,
    TunnelRecord,
    addr,
)

# Final: compiled (setup.py), these are constants in the C code, not look-ups of globals.
TCP: Final = 6
UDP: Final = 17
FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
ACK: Final = 0x10
# Zeek's default inactivity timeouts.
TIMEOUTS = {TCP: 300.0, UDP: 60.0}
OTHER_TIMEOUT = 60.0
SWEEP_EVERY = 10.0

# The tunnel a packet is decoded from (set by decode.Decoder): (kind, carrier protocol, source,
# port, destination, port); an IP tunnel (IP-in-IP, GRE) has ports 0, as in Zeek's tunnel.log.
Parent = tuple[str, int, bytes, int, bytes, int]
MASK: Final = 0xFFFFFFFF
NEVER: Final = float("inf")
# Zeek's TCP timers (init-bare.zeek): an unanswered SYN's connection is dropped after the
# attempt delay, a closed one after the close delay, one whose side closed as its first
# packet after the partial close delay; a packet after that starts a new connection.
TCP_ATTEMPT_DELAY: Final = 5.0
TCP_CLOSE_DELAY: Final = 5.0
TCP_PARTIAL_CLOSE_DELAY: Final = 3.0
# A SYN or RST this far from the side's last sequence number does not move it (Zeek's).
TOO_LARGE_SEQ_DELTA: Final = 1_048_576
# Retransmission and checksum letters are added at the 1st, 10th, 100th... occurrence.
SCALED: Final = frozenset(10**i for i in range(10))
MAX_HOLES: Final = 64
# Zeek's Tunnel::max_changes_per_connection: past this many changes of the tunnel a
# connection's packets come through, Zeek marks its analysis partial (X in the history).
MAX_TUNNEL_CHANGES: Final = 5
# Zeek's Tunnel::expiration_interval: a tunnel that carried no new connection for this long
# is logged EXPIRE and forgotten (a later one logs DISCOVER again).
TUNNEL_EXPIRATION: Final = 3600.0

# TCP endpoint states, as Zeek names them.
INACTIVE: Final = 0
SYN_SENT: Final = 1
SYN_ACK_SENT: Final = 2
PARTIAL: Final = 3
ESTABLISHED: Final = 4
CLOSED: Final = 5
RESET: Final = 6

# Ports of the analyzers Zeek loads by default: a packet *from* one of these is likely the
# responder's, which is how Zeek picks the originator when it missed the first packet.
LIKELY_SERVER_PORTS: Final = frozenset(
    (21, 22, 23, 25, 53, 67, 69, 80, 88, 110, 111, 123, 135, 137, 139, 143, 161, 162, 389,
     443, 445, 465, 502, 514, 563, 585, 587, 614, 636, 989, 990, 992, 993, 994, 995, 1080,
     1194, 1812, 1813, 2123, 2152, 2811, 3128, 3306, 3389, 3544, 4754, 4789, 5060, 5072, 5222,
     5269, 5353, 5355, 5432, 6081, 6666, 6667, 6668, 6669, 8000, 8080, 8081, 8443, 8888)
)  # fmt: skip

# Zeek's SSL::ssl_ports: its SSL analyzer is attached on these whatever the first bytes, so
# it reads a server's hello even when the client's was never seen (its signatures need both).
SSL_PORTS: Final = frozenset((443, 465, 563, 585, 614, 636, 989, 990, 992, 993, 995, 5223))

# How long Zeek expects an FTP data or IRC DCC connection once announced (its scheduled
# analyzer).
EXPECTED_FOR: Final = 300.0
# Zeek's NTP analyzer's port (NTP::ports), and its states on a flow (Conn.ntp).
NTP_PORT: Final = 123
NTP_NONE: Final = 0
NTP_READ: Final = 1
NTP_FLIPPED: Final = 2
NTP_REMOVED: Final = 3

DICOM_TLS_PORT: Final = 2762


class DicomState:
    """An association request being read (collector/netmeta/dicom.py)."""

    __slots__ = ("expected", "ts", "buffer", "request", "done")

    def __init__(self, seq: int, ts: float) -> None:
        self.expected = seq
        self.ts = ts
        self.buffer = bytearray()
        self.request: dicom.AssociationRequest | None = None
        self.done = False


class AppState:
    """A TLS or SMB opening, until the server's answer (collector/netmeta/handshakes.py)."""

    __slots__ = ("kind", "ts", "client", "server", "smb", "done")

    def __init__(
        self, kind: str, ts: float, *, client: handshakes.ClientHello | None = None,
        smb: str | None = None,
    ) -> None:  # fmt: skip
        self.kind = kind
        self.ts = ts
        self.client = client
        self.server: handshakes.ServerHello | None = None
        self.smb = smb
        self.done = False


class ActiveTunnel:
    """A tunnel in tunnel.log: its ends as logged, and when a connection last came new
    through it (Zeek's Tunnel::active table, read on each new connection)."""

    __slots__ = ("orig_h", "orig_p", "resp_h", "resp_p", "kind", "last", "live")

    def __init__(self, orig_h: bytes, orig_p: int, resp_h: bytes, resp_p: int, kind: str) -> None:
        self.orig_h, self.orig_p, self.resp_h, self.resp_p = orig_h, orig_p, resp_h, resp_p
        self.kind = kind
        self.last = 0.0
        # True from its DISCOVER to its EXPIRE (a new connection then DISCOVERs it again).
        self.live = False


class Conn:
    """A connection in progress (mutable; frozen into a ConnRecord when it ends)."""

    __slots__ = (
        "uid", "key", "proto", "orig_h", "orig_p", "resp_h", "resp_p", "start", "last",
        "timeout", "o_pkts", "r_pkts", "o_ipb", "r_ipb", "o_bytes", "r_bytes", "hist", "seen",
        "o_state", "r_state", "o_base", "r_base", "o_end", "r_end", "o_top", "r_top", "last_sfr",
        "o_start", "r_start", "o_prev", "r_prev", "o_closed", "r_closed", "o_fin", "r_fin",
        "o_rx", "r_rx", "o_bad", "r_bad", "o_win0", "r_win0", "until", "attempt_at", "close_at",
        "pclose_at",
        "parents", "tunnel", "fast", "o_holes", "r_holes", "o_trim", "r_trim", "o_gaps", "r_gaps",
        "service", "dns_pending", "dns_tcp", "hl7", "dicom", "probed", "app", "http", "inspect",
        "partial", "upgrade", "encap", "encap_changes", "tunnel_sides", "ntp", "ssh",
    )  # fmt: skip

    def __init__(
        self, uid: str, key: tuple[object, ...], proto: int, orig: tuple[bytes, int],
        resp: tuple[bytes, int], ts: float,
    ) -> None:  # fmt: skip
        self.uid = uid
        self.key = key
        self.proto = proto
        self.orig_h, self.orig_p = orig
        self.resp_h, self.resp_p = resp
        self.start = self.last = ts
        self.timeout = TIMEOUTS.get(proto, OTHER_TIMEOUT)
        self.o_pkts = self.r_pkts = self.o_ipb = self.r_ipb = self.o_bytes = self.r_bytes = 0
        self.hist: list[str] = []
        self.seen: set[str] = set()
        self.o_state = self.r_state = INACTIVE
        self.o_base: int | None = None
        self.r_base: int | None = None
        self.o_end = self.r_end = 0
        # The same end as an absolute sequence number ((base + end) mod 2**32): the bulk of
        # packets compare with it in one subtraction.
        self.o_top = self.r_top = 0
        # Zeek's per-side start sequence numbers, previous states and "did close" flags, for
        # its reuse rule and timers; FIN seen; retransmissions and bad checksums counted.
        self.o_start: int | None = None
        self.r_start: int | None = None
        self.o_prev = self.r_prev = INACTIVE
        self.o_closed = self.r_closed = self.o_fin = self.r_fin = False
        self.o_rx = self.r_rx = self.o_bad = self.r_bad = self.o_win0 = self.r_win0 = 0
        # The TCP timers pending, and the earliest of them.
        self.attempt_at = self.close_at = self.pclose_at = NEVER
        # When to look again whether Zeek would have dropped it: the earliest TCP timer, or
        # the idle timeout as of some packet (an early look only finds it alive and moves on).
        self.until = ts + self.timeout
        # Content gaps as Zeek's reassembler finds them: ranges of a side's stream not seen
        # (relative to its base), how far the peer acknowledged it, and gaps counted.
        # Both sides established (or partial): a packet without SYN, FIN or RST changes no
        # state, and takes ConnTracker.packet's short way.
        self.fast = False
        self.o_holes: list[list[int]] | None = None
        self.r_holes: list[list[int]] | None = None
        self.o_trim = self.r_trim = self.o_gaps = self.r_gaps = 0
        # The uids of the tunnels that carried it; for a UDP flow that carries a tunnel, the
        # tunnel's kind (its tunnel.log line closes with it).
        self.parents: list[str] | None = None
        self.tunnel: str | None = None
        # A Teredo flow: the sides that sent a valid Teredo packet (1: originator, 2: responder).
        self.tunnel_sides = 0
        # Zeek's NTP analyzer on a UDP flow to port 123: NTP_NONE, NTP_READ (a message read),
        # NTP_FLIPPED (and the roles turned by it), NTP_REMOVED (a message it could not read).
        self.ntp = NTP_NONE
        # SSH: both sides read until NEWKEYS, once a side's first payload was an identification.
        self.ssh: ssh.SshStream | None = None
        self.last_sfr: dict[str, int] = {}
        self.service: str | None = None
        self.dns_pending: dict[int, tuple[float, dns.DnsMessage]] = {}
        # DNS over TCP, per direction: the next expected sequence number and the bytes so far.
        self.dns_tcp: dict[bool, tuple[int, bytearray]] = {}
        # HL7 over MLLP, per direction, once a direction's stream started with an MLLP frame.
        self.hl7: dict[bool, hl7.MllpStream] | None = None
        # DICOM: the association request being read, once the originator's first bytes were
        # one; `probed`: those first bytes were looked at.
        self.dicom: DicomState | None = None
        self.probed = False
        # False once nothing in the payload can matter any more (see ConnTracker.packet).
        self.inspect = True
        # TLS or SMB: what the client's opening said, waiting for the server's answer.
        self.app: AppState | None = None
        # HTTP: the originator's stream, read for requests, once its first byte could be one.
        self.http: http.RequestStream | None = None
        # Zeek's "partial" connection (TCPSessionAdapter::IsPartial): a side's first packet
        # was no SYN (or the originator's a SYN-ACK). Zeek's HTTP, SSL, RDP and IMAP analyzers
        # ignore the payload of such a connection.
        self.partial = False
        # A clear-text protocol that may hand over to TLS (collector/netmeta/starttls.py), or
        # an HTTP CONNECT tunnel, once open: what the client's next payload starts.
        self.upgrade: starttls.Handover | None = None
        # The tunnel its last packet came through (None: none), and how often that changed
        # (Zeek's tunnel_changed, limited to Tunnel::max_changes_per_connection).
        self.encap: tuple[object, ...] | None = None
        self.encap_changes = 0

    def letter(self, code: str, seq: int | None = None) -> None:
        """Add a history letter once; SYN/FIN/RST again when their sequence number moved."""
        if code not in self.seen:
            self.seen.add(code)
            self.hist.append(code)
            if seq is not None:
                self.last_sfr[code] = seq
        elif seq is not None and self.last_sfr.get(code) != seq:
            self.hist.append(code)
            self.last_sfr[code] = seq


class ConnTracker:
    """Feeds on decoded packets (from decode.Decoder) and yields records as connections end."""

    def __init__(self) -> None:
        self.table: dict[tuple[object, ...], Conn] = {}
        # The same connections under both directions' keys: a packet's own 5-tuple finds its
        # connection without ordering the endpoints first.
        self.index: dict[tuple[object, ...], Conn] = {}
        # The last packet's connection and 5-tuple: most packets follow one of the same
        # connection the same way, found again without a key built and hashed. Forgotten
        # whenever a connection enters or leaves the index.
        self.hit: Conn | None = None
        self.hit_proto = 0
        self.hit_src = b""
        self.hit_dst = b""
        self.hit_sport = 0
        self.hit_dport = 0
        self.done: deque[Record] = deque()
        self.next_sweep = 0.0
        # Seeded: the same capture gives the same uids, run after run (Zeek's are random).
        self.uids = random.Random(0)  # noqa: S311 - identifiers, not secrets
        self.connections = 0
        self.dns_records = 0
        self.dns_errors = 0
        self.hl7_records = 0
        self.dicom_records = 0
        # Set by the decoder while it decodes a tunnel's inner packets (Parent).
        self.parent: Parent | None = None
        # IP tunnels (IP-in-IP, GRE) by kind and address pair, either way: their uid.
        self.ip_tunnels: dict[tuple[str, bytes, bytes], str] = {}
        # The tunnels around `parent`, outermost first (set by the decoder as `parent`).
        self.outers: list[Parent] = []
        # The tunnels logged in tunnel.log, by uid (a UDP tunnel's: its flow's uid).
        self.active: dict[str, ActiveTunnel] = {}
        # Connections announced (FTP's PORT, EPRT, PASV, EPSV; IRC's DCC SEND): (originator,
        # b"" for any, responder, its port) -> until when Zeek expects it (its scheduled
        # analyzer), and the service it then names.
        self.expected: dict[tuple[bytes, bytes, int], tuple[float, str]] = {}

    # ---- packets ----

    def packet(
        self, ts: float, proto: int, src: bytes, dst: bytes, sport: int, dport: int,
        ip_len: int, plen: int, flags: int, seq: int, ack: int, data: bytes, poff: int,
    ) -> None:  # fmt: skip
        if ts >= self.next_sweep:
            self.sweep(ts)
        conn = self.hit
        if not (
            conn is not None
            and sport == self.hit_sport
            and dport == self.hit_dport
            and src == self.hit_src
            and dst == self.hit_dst
            and proto == self.hit_proto
        ):
            conn = self.index.get((proto, src, sport, dst, dport))
        if conn is None or ts >= conn.until or (flags & SYN and proto == TCP):
            # New, maybe idle too long or with a TCP timer due, or a SYN that may reuse the
            # ports: the full look-up decides.
            conn = self._conn(ts, proto, src, dst, sport, dport, flags, seq)
        self.hit = conn
        self.hit_proto, self.hit_src, self.hit_dst = proto, src, dst
        self.hit_sport, self.hit_dport = sport, dport
        parent = self.parent
        if parent is not None or conn.encap is not None:
            self._encapsulation(conn, parent)
        is_orig = (src == conn.orig_h and sport == conn.orig_p) or (src == dst and sport == dport)
        conn.last = ts
        if is_orig:
            conn.o_pkts += 1
            conn.o_ipb += ip_len
        else:
            conn.r_pkts += 1
            conn.r_ipb += ip_len
        if proto == TCP:
            if flags & (SYN | FIN | RST) or not conn.fast:
                self._tcp(conn, ts, is_orig, flags, seq, ack, plen)
            else:
                # The bulk of a connection, both ends established (or partial, which Zeek's
                # state machine treats alike without SYN, FIN, RST): the highest byte reached,
                # retransmissions and the D/A letters, without the state machine (_tcp does
                # the same for these).
                if plen:
                    # An established end has its base: its own SYN or SYN-ACK went through _tcp.
                    # In order, the common case, the bytes simply extend the side's stream.
                    if is_orig:
                        if seq == conn.o_top:
                            conn.o_end += plen
                            conn.o_top = (seq + plen) & MASK
                        else:
                            self._out_of_order(conn, True, seq, plen)
                        if "D" not in conn.seen:
                            conn.letter("D")
                    else:
                        if seq == conn.r_top:
                            conn.r_end += plen
                            conn.r_top = (seq + plen) & MASK
                        else:
                            self._out_of_order(conn, False, seq, plen)
                        if "d" not in conn.seen:
                            conn.letter("d")
                else:
                    if flags & ACK:
                        code = "A" if is_orig else "a"
                        if code not in conn.seen:
                            conn.letter(code)
                    # Zeek's last sequence number moves on an empty segment too.
                    if seq != (conn.o_top if is_orig else conn.r_top):
                        self._out_of_order(conn, is_orig, seq, 0)
                if flags < 0x100:  # a zero window (the window rides above the flag bits)
                    self._zero_window(conn, is_orig)
                # An acknowledgment beyond what the peer was seen sending, or over a hole in
                # it: Zeek's content gap (G/g). Most acks are neither: one comparison.
                if is_orig:
                    if conn.r_holes or (ack - conn.r_top - 1) & MASK < 0x7FFFFFFF:
                        self._acked(conn, False, ack)
                elif conn.o_holes or (ack - conn.o_top - 1) & MASK < 0x7FFFFFFF:
                    self._acked(conn, True, ack)
            if plen and conn.inspect:
                # Most payload packets belong to a connection already told apart (or found to
                # be none of these): a few attribute checks, no copy of the payload.
                if sport == 53 or dport == 53:
                    self._dns_over_tcp(conn, ts, is_orig, seq, data[poff : poff + plen])
                elif conn.hl7 is not None:
                    self._hl7(conn, ts, is_orig, seq, data[poff : poff + plen])
                elif conn.http is not None:
                    if is_orig:
                        self._http_request(conn, ts, seq, data[poff : poff + plen])
                    elif data.startswith(http.RESPONSE, poff):
                        self._http_response(conn, data[poff : poff + plen])
                    elif not conn.http.replied:
                        conn.http.replied = True  # the server's first bytes: no status line
                elif conn.app is not None:
                    self._answer(conn, ts, is_orig, data[poff : poff + plen])
                elif conn.dicom is not None:
                    self._dicom(conn, ts, is_orig, seq, data[poff : poff + plen])
                elif conn.ssh is not None:
                    self._ssh(conn, is_orig, seq, data[poff : poff + plen])
                elif conn.upgrade is not None:
                    self._handover(conn, ts, is_orig, seq, data[poff : poff + plen])
                elif is_orig and not conn.probed:
                    self._first(conn, ts, seq, data[poff : poff + plen])
                elif not conn.probed and (
                    conn.resp_p in SSL_PORTS
                    or data.startswith(b"SSH-", poff)
                    or conn.resp_p == starttls.IMAP_PORT
                ):
                    self._server_first(conn, ts, seq, data[poff : poff + plen])
                elif conn.probed:
                    conn.inspect = False  # probed, and none of these: its payload is no concern
        else:
            if is_orig:
                conn.o_bytes += plen
            else:
                conn.r_bytes += plen
            if proto == UDP:
                # Zeek's UDP history: D/d for a packet with payload from either side.
                if plen:
                    code = "D" if is_orig else "d"
                    if code not in conn.seen:
                        conn.letter(code)
                if sport in dns.DNS_PORTS or dport in dns.DNS_PORTS:
                    self._dns(conn, ts, is_orig, data[poff : poff + plen])
                elif plen and (conn.resp_p == NTP_PORT or NTP_NONE < conn.ntp < NTP_REMOVED):
                    self._ntp(conn, is_orig, data, poff, plen)

    @staticmethod
    def _ntp(conn: Conn, is_orig: bool, data: bytes, off: int, length: int) -> None:
        """Zeek's NTP analyzer: a message it reads confirms it (the service "ntp"), and turns
        the roles if a server's message came from the originator, or a client's from the
        responder (once); one it cannot read removes it, and its name."""
        if conn.ntp == NTP_REMOVED:
            return
        mode = data[off] & 7
        if not _ntp_readable(data, off, length, mode):
            conn.ntp = NTP_REMOVED
            _unname(conn, "ntp")
            return
        _name(conn, "ntp")
        if conn.ntp != NTP_FLIPPED and ((mode == 4 and is_orig) or (mode == 3 and not is_orig)):
            _flip(conn)
            conn.ntp = NTP_FLIPPED
        elif conn.ntp == NTP_NONE:
            conn.ntp = NTP_READ

    def inner_packet(
        self, ts: float, proto: int, src: bytes, dst: bytes, sport: int, dport: int,
        ip_len: int, plen: int, flags: int, seq: int, ack: int, data: bytes, poff: int,
    ) -> None:  # fmt: skip
        """A packet decoded from inside a tunnel (decode.Decoder.transport at depth > 0)."""
        self.packet(ts, proto, src, dst, sport, dport, ip_len, plen, flags, seq, ack, data, poff)
        conn = self.index.get((proto, src, sport, dst, dport))
        if conn is not None and self.parent is not None:
            self._tunnelled(conn, ts, self.parent)

    @staticmethod
    def _encapsulation(conn: Conn, parent: Parent | None) -> None:
        """The tunnel this packet came through (Zeek's Connection::CheckEncapsulation): a
        tunnel is the same either way (a UDP tunnel's flow, an IP tunnel's address pair)."""
        encap = _tunnel_key(parent)
        if encap == conn.encap:
            return
        conn.encap = encap
        if conn.encap_changes < MAX_TUNNEL_CHANGES:
            conn.encap_changes += 1
        elif "X" not in conn.seen:
            conn.letter("X")

    def _tunnelled(self, conn: Conn, ts: float, parent: Parent) -> None:
        """A packet decoded from a tunnel: the tunnel is the connection's parent (Zeek's
        tunnel_parents). A connection new to it (Zeek's new_connection, or tunnel_changed)
        registers every tunnel of the chain: DISCOVER in tunnel.log if not active."""
        uid = self._tunnel_uid(parent)
        if uid is None:
            return
        if conn.parents is None:
            conn.parents = [uid]
        elif uid not in conn.parents:
            conn.parents.append(uid)
        else:
            return
        for tunnel in self.outers:
            self._register(ts, tunnel)
        self._register(ts, parent)

    def _tunnel_uid(self, parent: Parent) -> str | None:
        """A UDP tunnel's flow's uid, or an IP tunnel's own (one per address pair)."""
        kind, carrier, src, sport, dst, dport = parent
        if carrier == UDP:
            outer = self.index.get((UDP, src, sport, dst, dport))
            return None if outer is None else outer.uid
        key = (kind, src, dst) if src <= dst else (kind, dst, src)
        found = self.ip_tunnels.get(key)
        if found is None:
            found = self.ip_tunnels[key] = self._uid()
            # Its ends as first seen, logged from now on whichever way a packet goes.
            self.active[found] = ActiveTunnel(src, 0, dst, 0, kind)
        return found

    def _register(self, ts: float, parent: Parent) -> None:
        """Zeek's Tunnel::register: DISCOVER a tunnel not active, else mark it read now."""
        uid = self._tunnel_uid(parent)
        if uid is None:
            return
        tunnel = self.active.get(uid)
        if tunnel is None:  # a UDP tunnel's flow, first seen carrying a connection
            kind, _, src, sport, dst, dport = parent
            outer = self.index[(UDP, src, sport, dst, dport)]
            outer.tunnel = kind
            tunnel = ActiveTunnel(outer.orig_h, outer.orig_p, outer.resp_h, outer.resp_p, kind)
            self.active[uid] = tunnel
        elif tunnel.live:
            tunnel.last = ts
            return
        tunnel.live, tunnel.last = True, ts
        self._tunnel_record(ts, uid, tunnel, "DISCOVER")

    def expire_tunnels(self, now: float) -> None:
        """Log EXPIRE for the tunnels no new connection came through for
        Tunnel::expiration_interval (Zeek checks its table every 10 s, as `sweep` runs)."""
        for uid, tunnel in self.active.items():
            if tunnel.live and now - tunnel.last > TUNNEL_EXPIRATION:
                tunnel.live = False
                self._tunnel_record(now, uid, tunnel, "EXPIRE")

    def tunnel_valid(
        self, src: bytes, sport: int, dst: bytes, dport: int, kind: str, both: bool
    ) -> None:
        """A UDP packet the decoder found a valid tunnel header in: Zeek's tunnel analyzer
        confirms, and the flow's service is the tunnel's ("gtpv1", "vxlan"...). `both`:
        Teredo's, confirmed once each side sent one (Tunnel::delay_teredo_confirmation)."""
        conn = self.index.get((UDP, src, sport, dst, dport))
        if conn is None:
            return
        if both:
            sides = conn.tunnel_sides | (1 if src == conn.orig_h and sport == conn.orig_p else 2)
            conn.tunnel_sides = sides
            if sides != 3:
                return
        _name(conn, kind.lower())

    def _tunnel_record(self, ts: float, uid: str, tunnel: ActiveTunnel, action: str) -> None:
        self.done.append(
            TunnelRecord(
                ts=ts, uid=uid, orig_h=addr(tunnel.orig_h), orig_p=tunnel.orig_p,
                resp_h=addr(tunnel.resp_h), resp_p=tunnel.resp_p,
                proto="udp" if tunnel.orig_p else "unknown_transport", tunnel_type=tunnel.kind,
                action=action,
            )
        )  # fmt: skip

    def bad_checksum(
        self, ts: float, proto: int, src: bytes, dst: bytes, sport: int, dport: int, flags: int
    ) -> None:
        """A packet Zeek would discard for its checksum: it opens the connection, marks C/c in
        the history, and counts nothing else."""
        conn = self._conn(ts, proto, src, dst, sport, dport, flags, 0)
        conn.last = ts
        is_orig = (src == conn.orig_h and sport == conn.orig_p) or (src == dst and sport == dport)
        if is_orig:
            conn.o_bad += 1
            count = conn.o_bad
        else:
            conn.r_bad += 1
            count = conn.r_bad
        if count in SCALED:  # at the 1st, 10th, 100th... as Zeek's letters for repeated events
            conn.hist.append("C" if is_orig else "c")

    def header_cut(
        self, ts: float, src: bytes, dst: bytes, sport: int, dport: int, flags: int
    ) -> None:
        """A TCP packet whose header is cut short (its options past the captured bytes): Zeek
        opens (or finds) its connection from the fixed header, the roles guessed from the
        ports alone, then drops the packet uncounted."""
        self._conn(ts, TCP, src, dst, sport, dport, flags, 0, whole=False)

    def _conn(
        self, ts: float, proto: int, src: bytes, dst: bytes, sport: int, dport: int, flags: int,
        seq: int, *, whole: bool = True,
    ) -> Conn:  # fmt: skip
        if ts >= self.next_sweep:
            self.sweep(ts)
        key = (proto, src, sport, dst, dport) if (src, sport) <= (dst, dport) else (
            proto, dst, dport, src, sport)  # fmt: skip
        conn = self.table.get(key)
        if conn is not None and (
            (ts >= conn.until and self._expired(conn, ts))
            or (proto == TCP and flags & SYN and self._is_reuse(conn, flags, seq))
        ):
            self.finish(conn)
            conn = None
        if conn is None:
            conn = self._new(key, ts, proto, src, dst, sport, dport, flags, whole=whole)
        return conn

    def _new(
        self, key: tuple[object, ...], ts: float, proto: int, src: bytes, dst: bytes,
        sport: int, dport: int, flags: int, *, whole: bool = True,
    ) -> Conn:  # fmt: skip
        """A new connection; `whole`: its first packet reaches Zeek's TCP analysis, which
        flips a connection first seen at its SYN-ACK (else only the ports guess the roles)."""
        flip = False
        if proto == TCP:
            if flags & SYN and flags & ACK and whole:
                flip = True  # Zeek flips a connection first seen at its SYN-ACK
            elif (not flags & SYN or flags & ACK) and sport in LIKELY_SERVER_PORTS:
                flip = dport not in LIKELY_SERVER_PORTS or (not flags & SYN and sport < dport)
        elif proto == UDP:
            flip = sport in LIKELY_SERVER_PORTS and dport not in LIKELY_SERVER_PORTS
        uid = self._uid()
        if flip:
            conn = Conn(uid, key, proto, (dst, dport), (src, sport), ts)
            conn.hist.append("^")
        else:
            conn = Conn(uid, key, proto, (src, sport), (dst, dport), ts)
        conn.encap = _tunnel_key(self.parent)
        if self.expected and proto == TCP:
            self._announced(conn, ts)
        self.table[key] = conn
        index = self.index
        index[(proto, src, sport, dst, dport)] = index[(proto, dst, dport, src, sport)] = conn
        self.hit = None
        return conn

    def _announced(self, conn: Conn, ts: float) -> None:
        """A new connection another announced: Zeek's scheduled analyzer is applied as it
        opens, and names its service (ftp-data, irc-dcc-data)."""
        expected = self.expected
        found = expected.get((conn.orig_h, conn.resp_h, conn.resp_p))
        if found is None or ts > found[0]:
            found = expected.get((b"", conn.resp_h, conn.resp_p))
        if found is not None and ts <= found[0]:
            conn.service = found[1]

    def _uid(self) -> str:
        # Random.randbytes(17), without its Python-level frame (it is this, in Python 3.11).
        raw = self.uids.getrandbits(136).to_bytes(17, "little")
        return "C" + raw.translate(_B62_BYTES).decode()

    @staticmethod
    def _is_reuse(conn: Conn, flags: int, seq: int) -> bool:
        """Zeek's TCPSessionAdapter::IsReuse: does this SYN start a new connection?

        Once either side closed (FIN or RST), any SYN does. Before, a SYN whose sequence number
        is not the originator's first one does too (a handshake retried with a new ISN); a
        SYN-ACK only when the originator was never seen (a half connection).
        """
        start = conn.o_start
        if flags & ACK:
            if conn.o_state != INACTIVE:
                return False
            start = conn.r_start
        if conn.o_closed or conn.r_closed:
            return True
        if seq == start:
            return False
        # A SYN arriving after its SYN-ACK (two interfaces read out of order): not a reuse.
        return not (
            not flags & ACK
            and conn.o_state == SYN_ACK_SENT
            and conn.r_state == INACTIVE
            and seq == conn.r_start
        )

    def _expired(self, conn: Conn, ts: float) -> bool:
        """Would Zeek have removed this connection by `ts`? Its idle timeout, or a TCP timer:
        the close delay after a close, the attempt delay after an unanswered SYN, the partial
        close delay after a FIN that was a side's first packet. Timers that find nothing to do
        are dropped, as Zeek's are."""
        if ts - conn.last > conn.timeout:
            return True
        if ts < conn.until:
            return False
        if ts >= conn.close_at:
            return True
        if ts >= conn.attempt_at:
            conn.attempt_at = NEVER
            if conn.o_state in (SYN_SENT, SYN_ACK_SENT) and conn.r_state == INACTIVE:
                return True
        if ts >= conn.pclose_at:
            conn.pclose_at = NEVER
            if (
                conn.o_state != INACTIVE
                and conn.r_state != INACTIVE
                and not (conn.o_closed and conn.r_closed)
                and RESET not in (conn.o_state, conn.r_state)
            ):
                return True
        conn.until = min(conn.close_at, conn.attempt_at, conn.pclose_at, conn.last + conn.timeout)
        return False

    def _tcp(
        self, conn: Conn, ts: float, is_orig: bool, flags: int, seq: int, ack: int, plen: int
    ) -> None:
        """One TCP packet through Zeek's endpoint state machine (TCPSessionAdapter::Process):
        sequence bases, history letters, retransmissions, states, and the close timers."""
        syn, fin, rst = flags & SYN, flags & FIN, flags & RST
        if (conn.o_pkts if is_orig else conn.r_pkts) == 1:
            # A side's first packet: Zeek's SetPartialStatus.
            if is_orig:
                conn.partial = not syn or bool(flags & ACK)
            elif not conn.partial:
                conn.partial = not syn
        state = conn.o_state if is_orig else conn.r_state
        peer = conn.r_state if is_orig else conn.o_state
        seg = plen + (1 if syn else 0) + (1 if fin else 0) - (plen if rst else 0)
        # Zeek's start sequence (init_endpoint); Vigie's base is the first payload byte, one
        # past it, and `end` Zeek's last sequence number relative to that base.
        base = conn.o_base if is_orig else conn.r_base
        if (
            base is None
            or state == INACTIVE
            or (syn and state in (SYN_SENT, SYN_ACK_SENT) and seq != (base - 1) & MASK)
            or (syn and state in (ESTABLISHED, PARTIAL))
            or (syn and state == RESET and (conn.o_prev if is_orig else conn.r_prev) == INACTIVE)
        ):
            start = seq if syn else (seq - 1) & MASK
            base = (start + 1) & MASK
            # A SYN starts "last" one past itself; a partial side at its first byte, so its
            # first packet is not taken for a retransmission.
            end = (seq + seg - base) & MASK if syn else 0
            if is_orig:
                conn.o_base, conn.o_end, conn.o_start = base, end, start
                conn.o_top = (base + end) & MASK
            else:
                conn.r_base, conn.r_end, conn.r_start = base, end, start
                conn.r_top = (base + end) & MASK
        rel = (seq - base) & MASK  # for the history letters' repeats only
        if flags & ACK and peer == INACTIVE:
            # Zeek starts the silent side's numbering from what this packet acknowledges.
            if is_orig:
                conn.r_start = (ack - 1) & MASK
            else:
                conn.o_start = (ack - 1) & MASK

        # History (update_history).
        codes = _ORIG_CODES if is_orig else _RESP_CODES
        if (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0) > 1:
            conn.letter(codes["i"] if fin and rst else codes["q"])
        elif syn:
            conn.letter(codes["h"] if flags & ACK else codes["s"], rel)
        elif fin:
            conn.letter(codes["f"], rel + plen)
        elif rst:
            conn.letter(codes["r"], rel)
        elif plen:
            conn.letter(codes["d"])
        elif flags & ACK:
            conn.letter(codes["a"])

        # A zero window (update_window): not with or after a RST, nor once the peer closed.
        if flags < 0x100 and not rst and peer != CLOSED and state != RESET:
            self._zero_window(conn, is_orig)

        # Last sequence number and retransmissions (update_last_seq).
        end = conn.o_end if is_orig else conn.r_end
        past = (rel + seg) & MASK
        delta = (past - end) & MASK
        if delta >= 0x80000000:
            delta -= 0x100000000
        if (syn or rst) and not -TOO_LARGE_SEQ_DELTA <= delta <= TOO_LARGE_SEQ_DELTA:
            pass  # a SYN or RST this far off moves nothing (Zeek's)
        elif (fin and end == 0) or (state != RESET and delta > 0):
            if delta > seg and not (syn or rst):
                self._hole(conn, is_orig, end, end + delta - seg)
            if is_orig:
                conn.o_end = end + delta
                conn.o_top = (base + end + delta) & MASK
            else:
                conn.r_end = end + delta
                conn.r_top = (base + end + delta) & MASK
        elif state != RESET and plen:
            self._rxmit(conn, is_orig)
            if conn.o_holes if is_orig else conn.r_holes:
                self._fill(conn, is_orig, end + delta - seg, plen)
        if fin:
            if is_orig:
                conn.o_fin = True
            else:
                conn.r_fin = True

        # The state machine (UpdateStateMachine).
        close = False
        prev = state
        if state == INACTIVE:
            if syn:
                if is_orig:
                    state = SYN_ACK_SENT if flags & ACK else SYN_SENT
                    if conn.attempt_at == NEVER:
                        conn.attempt_at = ts + TCP_ATTEMPT_DELAY
                        conn.until = min(conn.until, conn.attempt_at)
                else:
                    if peer == SYN_SENT:
                        peer = ESTABLISHED
                    state = ESTABLISHED
            if fin:
                state, close = CLOSED, True
            if rst:
                state, close = RESET, True
            if state == INACTIVE:
                if not is_orig and not plen and peer == SYN_SENT:
                    pass  # an ACK of the SYN before the SYN-ACK: not yet a partial side
                elif flags & ACK and peer == ESTABLISHED:
                    state = ESTABLISHED  # the SYN was missed, the handshake completes
                    conn.partial = False
                else:
                    state = PARTIAL
        elif state in (SYN_SENT, SYN_ACK_SENT):
            if fin:
                state, close = CLOSED, True
            if rst:
                state, close = RESET, True
        elif state in (ESTABLISHED, PARTIAL):
            if syn and state == PARTIAL and peer == INACTIVE and not flags & ACK:
                state = SYN_SENT
            if fin and not rst:
                state, close = CLOSED, True
                if peer == RESET and (conn.r_prev if is_orig else conn.o_prev) == CLOSED:
                    peer = CLOSED  # a FIN then RST from the peer was a normal close
            if rst:
                state, close = RESET, True
        elif state == CLOSED and rst and peer != CLOSED:
            state = RESET
            close = not (conn.o_closed if is_orig else conn.r_closed)
        if is_orig:
            if state != conn.o_state:
                conn.o_prev = conn.o_state
            if peer != conn.r_state:
                conn.r_prev = conn.r_state
            conn.o_state, conn.r_state = state, peer
        else:
            if state != conn.r_state:
                conn.r_prev = conn.r_state
            if peer != conn.o_state:
                conn.o_prev = conn.o_state
            conn.r_state, conn.o_state = state, peer
        conn.fast = state in (ESTABLISHED, PARTIAL) and peer in (ESTABLISHED, PARTIAL)
        if close:
            self._closed(conn, ts, is_orig, prev)
        if flags & ACK:
            # As on the short way: only an ack past the peer's last byte, or over a hole.
            if is_orig:
                if conn.r_base is not None and (
                    conn.r_holes or 0 < (ack - conn.r_top) & MASK < 0x80000000
                ):
                    self._acked(conn, False, ack)
            elif conn.o_base is not None and (
                conn.o_holes or 0 < (ack - conn.o_top) & MASK < 0x80000000
            ):
                self._acked(conn, True, ack)

    def _closed(self, conn: Conn, ts: float, is_orig: bool, prev: int) -> None:
        """Zeek's ConnectionClosed: a side's first FIN or RST, and the timer that follows."""
        if is_orig:
            if conn.o_closed:
                return
            conn.o_closed = True
            state, peer, peer_closed = conn.o_state, conn.r_state, conn.r_closed
        else:
            if conn.r_closed:
                return
            conn.r_closed = True
            state, peer, peer_closed = conn.r_state, conn.o_state, conn.o_closed
        if state == RESET or peer_closed or peer == INACTIVE:
            # Closed for good: removed after the close delay, any other timer cancelled.
            conn.attempt_at = conn.pclose_at = NEVER
            conn.close_at = ts + TCP_CLOSE_DELAY
        elif prev == INACTIVE:
            conn.pclose_at = ts + TCP_PARTIAL_CLOSE_DELAY
        conn.until = min(conn.close_at, conn.attempt_at, conn.pclose_at, conn.last + conn.timeout)

    def _out_of_order(self, conn: Conn, is_orig: bool, seq: int, plen: int) -> None:
        """A segment that does not start where the side's stream ends (ConnTracker.packet's
        short way): past it, the bytes skipped are a hole; before it, a retransmission (T/t)
        whose bytes may fill a hole. Zeek compares modulo 2**32, so a transfer past 4 GB keeps
        counting (o_end/r_end are not wrapped)."""
        end, top = (conn.o_end, conn.o_top) if is_orig else (conn.r_end, conn.r_top)
        step = (seq + plen - top) & MASK
        if 0 < step < 0x80000000:
            if step > plen:  # bytes skipped: a hole, until they come
                self._hole(conn, is_orig, end, end + step - plen)
            if is_orig:
                conn.o_end, conn.o_top = end + step, (seq + plen) & MASK
            else:
                conn.r_end, conn.r_top = end + step, (seq + plen) & MASK
        elif plen:
            self._rxmit(conn, is_orig)
            if conn.o_holes if is_orig else conn.r_holes:  # late bytes: where they start
                start = end - plen + (step - 0x100000000 if step else 0)
                self._fill(conn, is_orig, start, plen)

    @staticmethod
    def _hole(conn: Conn, is_orig: bool, start: int, end: int) -> None:
        holes = conn.o_holes if is_orig else conn.r_holes
        if holes is None:
            holes = []
            if is_orig:
                conn.o_holes = holes
            else:
                conn.r_holes = holes
        if len(holes) < MAX_HOLES:  # past that, a stream too broken to follow byte by byte
            holes.append([start, end])

    @staticmethod
    def _fill(conn: Conn, is_orig: bool, start: int, length: int) -> None:
        """Late bytes (reordered, or retransmitted) fill what they cover of the holes."""
        holes = conn.o_holes if is_orig else conn.r_holes
        if not holes:
            return
        end = start + length
        kept = []
        for low, high in holes:
            if end <= low or start >= high:
                kept.append([low, high])
                continue
            if low < start:
                kept.append([low, start])
            if end < high:
                kept.append([end, high])
        holes[:] = kept

    def _acked(self, conn: Conn, side: bool, ack: int) -> None:
        """The peer acknowledged `side`'s stream up to `ack` (Zeek's TCP_Reassembler
        AckReceived): bytes acknowledged but never seen are a content gap, a G/g letter when
        both sides are established or cleanly closing."""
        if side:
            base, end, fin, trim = conn.o_base, conn.o_end, conn.o_fin, conn.o_trim
        else:
            base, end, fin, trim = conn.r_base, conn.r_end, conn.r_fin, conn.r_trim
        if base is None:
            return
        delta = (ack - base - end) & MASK
        upto = end + (delta - 0x100000000 if delta >= 0x80000000 else delta)
        data_end = end - 1 if fin else end
        if fin and upto > data_end:
            upto = data_end  # the FIN's own sequence number is no data
        if upto <= trim:
            return
        if upto <= 1 and not {"S", "h"} <= conn.seen:
            return  # a partial connection's first ack: Zeek made up its start, no gap
        missing = 0
        holes = conn.o_holes if side else conn.r_holes
        if holes:
            kept = []
            for low, high in holes:
                if low < upto and high > trim:
                    missing += 1
                if high > upto:
                    kept.append([max(low, upto), high])
            holes[:] = kept
        if upto > max(data_end, trim):
            missing += 1
        if side:
            conn.o_trim = upto
        else:
            conn.r_trim = upto
        if not missing or not (
            _clean(conn.o_state, conn.o_prev) and _clean(conn.r_state, conn.r_prev)
        ):
            return
        for _ in range(missing):
            if side:
                conn.o_gaps += 1
                count, code = conn.o_gaps, "G"
            else:
                conn.r_gaps += 1
                count, code = conn.r_gaps, "g"
            _scaled(conn, count, code)

    @staticmethod
    def _zero_window(conn: Conn, is_orig: bool) -> None:
        """A zero window advertised: W/w at the 1st, 10th, 100th... (Zeek's scaled letters)."""
        if is_orig:
            conn.o_win0 += 1
            count, code = conn.o_win0, "W"
        else:
            conn.r_win0 += 1
            count, code = conn.r_win0, "w"
        _scaled(conn, count, code)

    @staticmethod
    def _rxmit(conn: Conn, is_orig: bool) -> None:
        """A retransmitted payload: T/t at the 1st, 10th, 100th... (Zeek's scaled letters)."""
        if is_orig:
            conn.o_rx += 1
            count, code = conn.o_rx, "T"
        else:
            conn.r_rx += 1
            count, code = conn.r_rx, "t"
        _scaled(conn, count, code)

    def _dns_over_tcp(self, conn: Conn, ts: float, is_orig: bool, seq: int, segment: bytes) -> None:
        """Length-prefixed messages, joined across in-order segments (a gap or a reordered
        segment drops what was pending: a retransmission of it would be rare on port 53)."""
        expected, buf = conn.dns_tcp.get(is_orig, (seq, bytearray()))
        if seq != expected:
            buf = bytearray()
        buf += segment
        pos = 0
        while pos + 2 <= len(buf):
            length = int.from_bytes(buf[pos : pos + 2], "big")
            if pos + 2 + length > len(buf):
                break
            if length >= 12:
                self._dns(conn, ts, is_orig, bytes(buf[pos + 2 : pos + 2 + length]))
            pos += 2 + length
        del buf[:pos]
        conn.dns_tcp[is_orig] = ((seq + len(segment)) & 0xFFFFFFFF, buf)

    def _hl7(self, conn: Conn, ts: float, is_orig: bool, seq: int, segment: bytes) -> None:
        """HL7 v2 on any port: a direction whose stream starts with an MLLP frame is followed,
        and each message's header becomes a record (collector/netmeta/hl7.py)."""
        if conn.hl7 is None:
            if not hl7.may_start(segment):
                return
            conn.hl7 = {}
        if hl7.starts_mllp(segment):
            conn.service = "hl7"
        stream = conn.hl7.get(is_orig)
        if stream is None:
            if not hl7.may_start(segment):
                return
            stream = conn.hl7[is_orig] = hl7.MllpStream(seq)
        for message in stream.feed(seq, segment):
            found = hl7.header(message)
            if found is None:
                continue
            conn.service = "hl7"
            self.hl7_records += 1
            self.done.append(
                Hl7Record(
                    ts=ts, uid=conn.uid, orig_h=addr(conn.orig_h), orig_p=conn.orig_p,
                    resp_h=addr(conn.resp_h), resp_p=conn.resp_p, proto=PROTO_NAMES[conn.proto],
                    is_orig=is_orig, message_type=found.message_type,
                    trigger_event=found.trigger_event,
                    sending_application=found.sending_application,
                    sending_facility=found.sending_facility,
                    receiving_application=found.receiving_application,
                    receiving_facility=found.receiving_facility,
                    control_id=found.control_id, version=found.version, ack_code=found.ack_code,
                )
            )  # fmt: skip

    def _dicom(self, conn: Conn, ts: float, is_orig: bool, seq: int, segment: bytes) -> None:
        state = conn.dicom
        if state is None:
            conn.probed = True
            if dicom.looks_like_request(segment):
                state = conn.dicom = DicomState(seq, ts)
                conn.service = "dicom"
            elif conn.resp_p == DICOM_TLS_PORT and segment[:2] == b"\x16\x03":
                conn.service = "dicom"  # the registered DICOM-over-TLS port, and a TLS record
                self._dicom_record(conn, ts, None, None, tls=True)
                return
            else:
                self._opening(conn, ts, seq, segment)
                return
        if state.done:
            return
        if is_orig and state.request is None:
            if seq != state.expected:
                return  # a retransmission or a gap: the request is read in order only
            state.expected = (seq + len(segment)) & 0xFFFFFFFF
            state.buffer += segment
            length = dicom.pdu_length(state.buffer)
            if length is not None and length > dicom.MAX_PDU:
                state.done = True
            elif length is not None and len(state.buffer) >= length:
                state.request = dicom.parse_request(bytes(state.buffer[:length]))
                state.buffer = bytearray()
        elif not is_orig and state.request is not None:
            answer = {dicom.ACCEPT: "accepted", dicom.REJECT: "rejected"}.get(segment[0])
            self._dicom_record(conn, state.ts, state.request, answer, tls=False)
            state.done = True

    def _first(self, conn: Conn, ts: float, seq: int, segment: bytes) -> None:
        """The originator's first payload says what the connection speaks, if anything."""
        if ssh.may_start(segment):
            self._ssh_start(conn, True, seq, segment)
        elif hl7.may_start(segment):
            self._hl7(conn, ts, True, seq, segment)
        elif http.could_start(segment) and not conn.partial:
            conn.probed = True
            stream = conn.http = http.RequestStream(seq, conn.resp_p)
            self._http_request(conn, ts, seq, segment)
            # Asked of the stream, not of conn.http: compiled, the attribute keeps the type it
            # was just given (mypyc), though _http_request may have set it to None.
            if stream.http is False:  # no request: perhaps commands that may start TLS later
                self._commands(conn, seq, segment)
        else:
            self._dicom(conn, ts, True, seq, segment)  # DICOM, then TLS and SMB openings

    def _http_request(self, conn: Conn, ts: float, seq: int, segment: bytes) -> None:
        stream = conn.http
        if stream is None:
            return
        for found in stream.feed(seq, segment):
            stream.pending.append((ts, found))
        if stream.http and stream.confirmed:  # a request line read (its head may still come)
            _name(conn, "http")
            body = stream.mime
            if body is not None and body.too_deep and "X" not in conn.seen:
                conn.letter("X")  # Zeek's MIME analysis stopped at its depth limit
        if stream.http is False:
            conn.http = None  # its first line was no request: not HTTP

    def _http_response(self, conn: Conn, segment: bytes) -> None:
        code = http.status(segment)
        stream = conn.http
        if stream is None:
            return
        if not stream.replied:
            stream.replied = True
            if not stream.confirmed:  # Zeek's signature matched: its analyzer reads the requests
                stream.confirmed = True
                if stream.http:
                    _name(conn, "http")
        if code is None or not stream.pending or not stream.confirmed:
            return
        if code == 100:
            return  # an interim answer: the real one follows
        ts, found = stream.pending.popleft()
        self._http_record(conn, ts, found, code)
        if found.method == "CONNECT" and code == 200:
            # A proxy's tunnel opened: Zeek's HTTP analyzer hands the rest of the stream to
            # protocol detection, as a new connection's (TLS, most often).
            conn.http = None
            conn.upgrade = starttls.Handover()
            conn.upgrade.handed = True

    def _http_record(self, conn: Conn, ts: float, found: http.Request, code: int | None) -> None:
        self.done.append(
            HttpRecord(
                ts=ts, uid=conn.uid, orig_h=addr(conn.orig_h), orig_p=conn.orig_p,
                resp_h=addr(conn.resp_h), resp_p=conn.resp_p, proto=PROTO_NAMES[conn.proto],
                method=found.method, host=found.host, uri=found.uri, version=found.version,
                user_agent=found.user_agent, status_code=code,
            )
        )  # fmt: skip

    def _opening(self, conn: Conn, ts: float, seq: int, segment: bytes) -> None:
        """The originator's first payload: a TLS ClientHello, an SMB message (or the NetBIOS
        session request before one), an RDP connection request, a command of a clear-text
        protocol that may start TLS later? Zeek's SSL and RDP analyzers ignore a partial
        connection; its SMB analyzer does not."""
        hello = None if conn.partial else handshakes.client_hello(segment)
        if hello is not None:
            _name(conn, "ssl")
            conn.app = AppState("ssl", ts, client=hello)
            return
        version = handshakes.smb_version(segment)
        if version is not None:
            conn.service = "smb"
            conn.app = AppState("smb", ts, smb=version)
        elif handshakes.netbios_session_request(segment):
            conn.app = AppState("smb", ts)  # port 139: the SMB negotiate comes next
        elif conn.partial:
            return
        elif handshakes.rdp_request(segment):
            _name(conn, "rdp")  # as Zeek names it, on any port
            # When the server's answer selects TLS (or CredSSP over it), the client's next
            # bytes are a ClientHello, which Zeek's RDP analyzer hands to protocol detection.
            conn.upgrade = state = starttls.Handover()
            state.handed = True
        else:
            self._commands(conn, seq, segment)

    def _server_first(self, conn: Conn, ts: float, seq: int, segment: bytes) -> None:
        """The server spoke first: its SSH identification; or, on an SSL port, a TLS
        ServerHello with no ClientHello seen (a capture of the server's side only). Zeek's SSL
        analyzer, attached by the port, logs it to ssl.log (version, cipher), but only a
        ClientHello confirms the analyzer: the connection gets no service."""
        if ssh.may_start(segment):
            self._ssh_start(conn, False, seq, segment)
            return
        if conn.resp_p == starttls.IMAP_PORT:
            # Zeek's IMAP analyzer, attached by the port, is confirmed by the greeting.
            first = segment.split(b"\n", 1)[0]
            if not conn.partial and starttls.imap_confirms(first.rstrip(b"\r"), False):
                _name(conn, "imap")
            return
        hello = None if conn.partial else handshakes.server_hello(segment)
        if hello is None:
            return
        conn.probed = True
        state = conn.app = AppState("ssl", ts)
        state.server = hello
        self._app_record(conn, state)

    def _ssh_start(self, conn: Conn, is_orig: bool, seq: int, segment: bytes) -> None:
        """A side's first payload is an SSH identification: Zeek's SSH analyzer reads the
        connection (attached by port 22, or by its signatures, which match such a line)."""
        conn.probed = True
        conn.ssh = ssh.SshStream(conn.resp_p)
        self._ssh(conn, is_orig, seq, segment)

    @staticmethod
    def _ssh(conn: Conn, is_orig: bool, seq: int, segment: bytes) -> None:
        stream = conn.ssh
        if stream is None:
            return
        verdict = stream.feed(is_orig, seq, segment)
        if verdict:
            _name(conn, "ssh")  # NEWKEYS: Zeek's SSH analyzer confirms
        if verdict is not None:
            conn.ssh, conn.inspect = None, False  # the rest is encrypted, or not SSH

    def _commands(self, conn: Conn, seq: int, segment: bytes) -> None:
        """Text that may be the commands of a protocol that starts TLS later (FTP, SMTP,
        POP3, IMAP, XMPP), followed until it does, or is clearly not going to; or a database
        client's request for TLS (PostgreSQL, MySQL)."""
        request = starttls.tls_request(segment, conn.resp_p)
        if request is not None:
            conn.upgrade = state = starttls.Handover()
            if request == starttls.MYSQL:
                state.handed = True  # its TLS handshake follows, unanswered
            else:
                state.asked = request
        elif segment[:1] == b"\x30" and conn.resp_p in starttls.LDAP_PORTS:
            # LDAP: its StartTLS may follow other messages.
            conn.upgrade = state = starttls.Handover()
            state.mode = starttls.BER
            state.feed(True, seq, segment)
        elif starttls.may_start(segment):
            conn.upgrade = starttls.Handover(conn.resp_p)
            self._handover(conn, 0.0, True, seq, segment)

    def _handover(self, conn: Conn, ts: float, is_orig: bool, seq: int, segment: bytes) -> None:
        state = conn.upgrade
        if state is None:
            return
        if state.handed:
            if is_orig:  # the client speaks first: its TLS ClientHello, or the tunnel's opening
                conn.upgrade = None
                self._opening(conn, ts, seq, segment)
            return
        if conn.resp_p in starttls.FTP_PORTS and not state.analyzer_off:
            self._ftp(conn, state, is_orig, segment)
        elif conn.resp_p in starttls.IRC_PORTS and not state.analyzer_off:
            self._irc(conn, state, is_orig, segment)
        elif conn.resp_p == starttls.IMAP_PORT and not conn.partial:
            for line in state.lines(is_orig, segment):
                if starttls.imap_confirms(line, is_orig):
                    _name(conn, "imap")
        verdict = state.feed(is_orig, seq, segment)
        if verdict:
            state.handed = True
        elif verdict is False:
            conn.upgrade, conn.inspect = None, False

    def _ftp(self, conn: Conn, state: starttls.Handover, is_orig: bool, segment: bytes) -> None:
        """Zeek's FTP analyzer, on its ports, until TLS: a client's command confirms it (the
        service "ftp"); a server's reply line it rejects removes it, and its name. A data
        connection announced is expected for 5 minutes (service "ftp-data")."""
        for line in state.lines(is_orig, segment):  # Zeek's lines end at LF, less a CR
            if not line:
                continue  # an empty line: Zeek's FTP analyzer reads nothing of it
            channel = starttls.ftp_data_channel(line, is_orig)
            if channel is not None:
                host, port = channel
                if is_orig:  # active mode: the server connects to the client's address
                    expected = (conn.resp_h, host or conn.orig_h, port)
                else:  # passive: the client connects to the server's
                    expected = (conn.orig_h, host or conn.resp_h, port)
                self.expected[expected] = (conn.last + EXPECTED_FOR, "ftp-data")  # from now
            if is_orig:
                if starttls.ftp_command(line):
                    _name(conn, "ftp")
                continue
            pending = starttls.ftp_reply(line, state.ftp_pending)
            if pending is None:
                state.analyzer_off = True
                _unname(conn, "ftp")
                return
            state.ftp_pending = pending

    def _irc(self, conn: Conn, state: starttls.Handover, is_orig: bool, segment: bytes) -> None:
        """Zeek's IRC analyzer, on its ports: a client's line confirms it (the service "irc");
        a line it calls a violation removes it, and its name. A DCC SEND announces a
        connection, expected for 5 minutes (service "irc-dcc-data")."""
        for line in state.lines(is_orig, segment):
            dcc = starttls.irc_dcc_send(line)
            if dcc is not None:  # any originator may connect to the address it names
                self.expected[(b"", *dcc)] = (conn.last + EXPECTED_FOR, "irc-dcc-data")
            verdict = starttls.irc_line(line, is_orig)
            if verdict:
                _name(conn, "irc")
            elif verdict is False:
                state.analyzer_off = True
                _unname(conn, "irc")
                return

    def _answer(self, conn: Conn, ts: float, is_orig: bool, segment: bytes) -> None:
        state = conn.app
        if state is None or state.done:
            return
        if state.kind == "ssl":
            if is_orig:
                return
            state.server = handshakes.server_hello(segment)
        else:
            version = handshakes.smb_version(segment)
            if state.smb is None:
                # After a NetBIOS session request: wait for the first SMB message, through the
                # session's answer; anything else is no SMB, and no concern.
                if version is None and not handshakes.netbios_session(segment):
                    state.done, conn.inspect = True, False
                    return
                if version is not None:
                    conn.service, state.smb = "smb", version
                if is_orig or version is None:
                    return
            elif is_orig:
                return
            state.smb = version or state.smb
        self._app_record(conn, state)

    def _app_record(self, conn: Conn, state: AppState) -> None:
        state.done = True
        if state.kind == "smb" and state.smb is None:
            return  # a NetBIOS session that never carried SMB
        envelope: dict[str, Any] = {
            "ts": state.ts, "uid": conn.uid, "orig_h": addr(conn.orig_h), "orig_p": conn.orig_p,
            "resp_h": addr(conn.resp_h), "resp_p": conn.resp_p, "proto": PROTO_NAMES[conn.proto],
        }  # fmt: skip
        if state.kind == "ssl":
            client, server = state.client, state.server
            self.done.append(
                SslRecord(
                    **envelope,
                    version=server.version if server else (client.version if client else None),
                    cipher=server.cipher if server else None,
                    server_name=client.server_name if client else None,
                    # A server hello answering a client hello.
                    established=server is not None and client is not None,
                )
            )
        else:
            self.done.append(SmbRecord(**envelope, version=state.smb or "2"))

    def _dicom_record(
        self, conn: Conn, ts: float, request: dicom.AssociationRequest | None,
        result: str | None, *, tls: bool,
    ) -> None:  # fmt: skip
        self.dicom_records += 1
        self.done.append(
            DicomRecord(
                ts=ts, uid=conn.uid, orig_h=addr(conn.orig_h), orig_p=conn.orig_p,
                resp_h=addr(conn.resp_h), resp_p=conn.resp_p, proto=PROTO_NAMES[conn.proto],
                calling_ae=request.calling_ae if request else None,
                called_ae=request.called_ae if request else None,
                abstract_syntaxes=tuple(
                    dicom.syntax_name(u) for u in (request.abstract_syntaxes if request else ())
                ),
                result=result, tls=tls,
            )
        )  # fmt: skip

    def _dns(self, conn: Conn, ts: float, is_orig: bool, payload: bytes) -> None:
        try:
            msg = dns.parse(payload)
        except dns.DnsFormatError:
            self.dns_errors += 1
            return
        conn.service = "dns"
        if (
            msg.is_response
            and is_orig
            and not conn.dns_pending
            and conn.proto == UDP
            and not _multicast(conn.resp_h)  # multicast answers are unsolicited (Zeek's)
        ):
            # The first DNS message is a response: its sender is the server (Zeek flips too).
            _flip(conn)
        if not msg.is_response:
            previous = conn.dns_pending.pop(msg.trans_id, None)
            if previous is not None:
                self._dns_record(conn, previous[0], previous[1], None, None)
            conn.dns_pending[msg.trans_id] = (ts, msg)
            return
        pending = conn.dns_pending.get(msg.trans_id)
        # mDNS answers often share ID 0 with unrelated queries: pair only on the same question.
        if pending is not None and msg.query is not None and pending[1].query != msg.query:
            pending = None
        if pending is not None:
            del conn.dns_pending[msg.trans_id]
        if pending is None:
            if not msg.answers:
                # An unsolicited answer carrying no records: Zeek logs no query name for it.
                msg = dataclasses.replace(msg, query=None, qtype=None, qclass=None)
            self._dns_record(conn, ts, msg, msg, None)
        else:
            self._dns_record(conn, pending[0], pending[1], msg, ts - pending[0])

    def _dns_record(
        self, conn: Conn, ts: float, query: dns.DnsMessage, reply: dns.DnsMessage | None,
        rtt: float | None,
    ) -> None:  # fmt: skip
        self.dns_records += 1
        self.done.append(
            DnsRecord(
                ts=ts, uid=conn.uid, orig_h=addr(conn.orig_h), orig_p=conn.orig_p,
                resp_h=addr(conn.resp_h), resp_p=conn.resp_p, proto=PROTO_NAMES[conn.proto],
                trans_id=query.trans_id, rtt=rtt, query=query.query, qclass=query.qclass,
                qtype=query.qtype, qtype_name=dns.qtype_name(query.qtype),
                rcode=None if reply is None else reply.rcode,
                rcode_name=None if reply is None else dns.rcode_name(reply.rcode),
                aa=bool(reply and reply.aa), tc=bool(reply and reply.tc), rd=query.rd,
                ra=bool(reply and reply.ra),
                answers=reply.answers if reply is not None and reply.answers else None,
                ttls=reply.ttls if reply is not None and reply.ttls else None,
            )
        )  # fmt: skip

    # ---- ending connections ----

    def sweep(self, now: float) -> None:
        """End connections idle for longer than their timeout."""
        self.next_sweep = now + SWEEP_EVERY
        # `until` is never later than the connection's end: most are passed over on it alone.
        for conn in [c for c in self.table.values() if now >= c.until and self._expired(c, now)]:
            self.finish(conn, now)
        if self.active:
            self.expire_tunnels(now)
        if self.expected:
            self.expected = {k: v for k, v in self.expected.items() if v[0] >= now}

    def end_closed(self, before: float) -> None:
        """End the TCP connections closed by both sides, or reset, whose last packet came
        before `before` (a late ACK of the last FIN still belongs to them). A capture file
        ends them when idle or at its end; a live capture calls this by the clock, with
        Zeek's close delay, so a closed connection's record comes out soon after."""
        ended = [
            conn
            for conn in self.table.values()
            if conn.proto == TCP
            and conn.last < before
            and (
                conn.o_state == RESET
                or conn.r_state == RESET
                or (conn.o_state == CLOSED and conn.r_state == CLOSED)
            )
        ]
        for conn in sorted(ended, key=lambda c: c.start):
            self.finish(conn)

    def finish(self, conn: Conn, now: float | None = None) -> None:
        if self.table.get(conn.key) is conn:
            del self.table[conn.key]
            proto, a, a_port, b, b_port = conn.key
            self.index.pop((proto, a, a_port, b, b_port), None)
            self.index.pop((proto, b, b_port, a, a_port), None)
            self.hit = None
        for ts, msg in conn.dns_pending.values():
            self._dns_record(conn, ts, msg, None, None)
        stream = conn.http
        if stream is not None and stream.confirmed:
            for ts, found in stream.pending:
                self._http_record(conn, ts, found, None)  # no answer seen
        if conn.app is not None and not conn.app.done:
            self._app_record(conn, conn.app)  # no answer seen: what the client said
        state = conn.dicom
        if state is not None and state.request is not None and not state.done:
            self._dicom_record(conn, state.ts, state.request, None, tls=False)  # no answer seen
        conn.dns_pending.clear()
        self.connections += 1
        self.done.append(conn_record(conn))
        if conn.tunnel is not None:
            # The UDP flow that carried a tunnel ended: so did the tunnel (Zeek's CLOSE),
            # unless it had expired.
            tunnel = self.active.pop(conn.uid, None)
            if tunnel is not None and tunnel.live:
                self._tunnel_record(
                    now if now is not None else conn.last, conn.uid, tunnel, "CLOSE"
                )

    def flush(self) -> None:
        """End every connection (end of the capture)."""
        now = max((c.last for c in self.table.values()), default=0.0)
        for conn in sorted(self.table.values(), key=lambda c: c.start):
            self.finish(conn, now)

    def drain(self) -> Iterator[Record]:
        while self.done:
            yield self.done.popleft()


# History letters by side: the originator's in capitals.
_RESP_CODES = {c: c for c in "shfrdaiq"}
_ORIG_CODES = {c: c.upper() for c in "shfrdaiq"}


def _multicast(address: bytes) -> bool:
    """An IPv4 (224.0.0.0/4) or IPv6 (ff00::/8) multicast address."""
    return (len(address) == 4 and address[0] >> 4 == 14) or (
        len(address) == 16 and address[0] == 0xFF
    )


def _tunnel_key(parent: Parent | None) -> tuple[object, ...] | None:
    """A tunnel's identity, whichever way its packet went."""
    if parent is None:
        return None
    kind, carrier, src, sport, dst, dport = parent
    a, b = (src, sport), (dst, dport)
    return (kind, carrier, a, b) if a <= b else (kind, carrier, b, a)


def _name(conn: Conn, service: str) -> None:
    """Add a service to the connection's (Zeek logs the set of analyzers confirmed, joined by
    commas: "http,ssl" for TLS through an HTTP CONNECT tunnel)."""
    found = conn.service
    if found is None:
        conn.service = service
    elif found != service and service not in found.split(","):
        conn.service = ",".join(sorted((*found.split(","), service)))


def _ntp_readable(data: bytes, off: int, length: int, mode: int) -> bool:
    """An NTP message as long as Zeek's NTP parser needs: 48 bytes for the time modes (1 to
    5); a control message (6) its 12-byte header and its data; a mode 7 message its 6-byte
    header, its data and, when authenticated, a 20-byte MAC; anything for mode 0."""
    if 1 <= mode <= 5:
        return length >= 48
    if mode == 6:
        return length >= 12 and length >= 12 + (data[off + 10] << 8 | data[off + 11])
    if mode == 7:
        if length < 6:
            return False
        size = (data[off + 4] << 8 | data[off + 5]) & 0x0FFF
        return length >= 6 + size + (20 if data[off + 1] & 0x80 else 0)
    return True


def _unname(conn: Conn, service: str) -> None:
    """Take a service off the connection's: Zeek removes an analyzer that reports a protocol
    violation, and its name from the services."""
    names = [n for n in (conn.service or "").split(",") if n and n != service]
    conn.service = ",".join(names) or None


def _clean(state: int, prev: int) -> bool:
    """Established, or closed from established: where Zeek trusts a gap."""
    return state == ESTABLISHED or (state == CLOSED and prev == ESTABLISHED)


def _flip(conn: Conn) -> None:
    """Swap originator and responder, as Zeek does when it learns it guessed them wrong."""
    conn.orig_h, conn.resp_h = conn.resp_h, conn.orig_h
    conn.orig_p, conn.resp_p = conn.resp_p, conn.orig_p
    conn.o_pkts, conn.r_pkts = conn.r_pkts, conn.o_pkts
    conn.o_ipb, conn.r_ipb = conn.r_ipb, conn.o_ipb
    conn.o_bytes, conn.r_bytes = conn.r_bytes, conn.o_bytes
    conn.o_state, conn.r_state = conn.r_state, conn.o_state
    conn.o_base, conn.r_base = conn.r_base, conn.o_base
    conn.o_end, conn.r_end = conn.r_end, conn.o_end
    conn.o_top, conn.r_top = conn.r_top, conn.o_top
    hist = [c.swapcase() for c in conn.hist if c != "^"]
    conn.hist = hist if conn.hist[:1] == ["^"] else ["^", *hist]
    conn.seen = set(hist)


def conn_record(conn: Conn) -> ConnRecord:
    duration = conn.last - conn.start
    if conn.proto == TCP:
        # Sequence space less the FIN's byte (the base already leaves out the SYN's).
        o_size = max(conn.o_end - conn.o_fin, 0)
        r_size = max(conn.r_end - conn.r_fin, 0)
    else:
        o_size, r_size = conn.o_bytes, conn.r_bytes
    # Zeek leaves duration and sizes unset for a connection of one instant.
    has_span = duration > 0
    return ConnRecord(
        ts=conn.start,
        uid=conn.uid,
        orig_h=addr(conn.orig_h),
        orig_p=conn.orig_p,
        resp_h=addr(conn.resp_h),
        resp_p=conn.resp_p,
        proto=PROTO_NAMES.get(conn.proto, "unknown_transport"),
        service=conn.service,
        duration=round(duration, 6) if has_span else None,
        orig_bytes=o_size if has_span else None,
        resp_bytes=r_size if has_span else None,
        conn_state=conn_state(conn),
        missed_bytes=0,
        history="".join(conn.hist) if conn.proto in (TCP, UDP) and conn.hist else None,
        orig_pkts=conn.o_pkts,
        orig_ip_bytes=conn.o_ipb,
        resp_pkts=conn.r_pkts,
        resp_ip_bytes=conn.r_ipb,
        tunnel_parents=tuple(conn.parents) if conn.parents else (),
    )


def conn_state(conn: Conn) -> str:
    """Zeek's conn_state from the endpoint states (TCP) or who sent anything (UDP)."""
    if conn.proto == UDP:
        if conn.o_pkts:
            return "SF" if conn.r_pkts else "S0"
        return "SHR" if conn.r_pkts else "OTH"
    if conn.proto != TCP:
        return "OTH"
    os_, rs = conn.o_state, conn.r_state
    o_inactive = os_ in (INACTIVE, PARTIAL)
    r_inactive = rs in (INACTIVE, PARTIAL)
    if rs == RESET:
        if os_ in (SYN_SENT, SYN_ACK_SENT) or (os_ == RESET and not conn.o_end and not conn.r_end):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if os_ == RESET:
        if r_inactive:
            hist = "".join(conn.hist).lstrip("^")
            if hist.startswith("S") and _syn_then_reset(hist[1:]):
                return "RSTOS0"
            return "OTH"
        return "RSTO"
    if os_ == CLOSED and rs == CLOSED:
        return "SF"
    if os_ == CLOSED:
        return "SH" if r_inactive else "S2"
    if rs == CLOSED:
        return "SHR" if o_inactive else "S3"
    if os_ == SYN_SENT and rs == INACTIVE:
        return "S0"
    if os_ == ESTABLISHED and rs == ESTABLISHED:
        return "S1"
    return "OTH"


def _syn_then_reset(rest: str) -> bool:
    """Zeek's /^?S[^HAFGIQ]*R.*/ on the history after the leading S."""
    for ch in rest:
        if ch == "R":
            return True
        if ch in "HAFGIQ":
            return False
    return False


_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Random bytes to base62 letters in one C call (byte % 62: a slight bias is no matter for ids).
_B62_BYTES: Final = bytes(ord(_B62[i % 62]) for i in range(256))


def _scaled(conn: Conn, count: int, code: str) -> None:
    """A repeated event's history letter, at its 1st, 10th, 100th... occurrence (Zeek's
    scaled letters: T/t, G/g, W/w)."""
    if count in SCALED:
        conn.hist.append(code)
        conn.seen.add(code)
