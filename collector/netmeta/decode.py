"""Frames to IP packets: link layers, VLAN/MPLS/PPPoE shims, fragments and tunnels, with `struct`
(and byte reads on the path most packets take).

Full dissection (scapy) runs at ~2,000 packets/s; this path only reads the few header fields
connection accounting needs. Each IP packet found, outer or tunnelled, goes to
`ConnTracker.packet` (`inner_packet` from inside a tunnel), so a VXLAN frame yields the outer
UDP packet and the inner one, as Zeek logs both. The tracker is named by its class, not by a
protocol: compiled (setup.py), the call of every packet is then a direct C call.
"""

from __future__ import annotations

import struct
from array import array
from typing import Final

from collector.netmeta.flows import ConnTracker

# Final: compiled (setup.py), these are constants in the C code, not look-ups of globals.
TCP: Final = 6
UDP: Final = 17
ICMP: Final = 1
ICMP6: Final = 58
_H: Final = struct.Struct("!H")
_HH: Final = struct.Struct("!HH")
_II: Final = struct.Struct("!II")
_V4: Final = struct.Struct("!BBHHHBBH4s4s")
_V6: Final = struct.Struct("!IHBB16s16s")

ETH_IP4: Final = 0x0800
ETH_IP6: Final = 0x86DD
VLAN_TYPES: Final = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
MPLS_TYPES: Final = frozenset((0x8847, 0x8848))
FABRICPATH: Final = 0x8903
IPV6_EXT: Final = frozenset((0, 43, 60, 135))  # hop-by-hop, routing, destination options, mobility

# ICMP "request <-> reply" pairs: Zeek puts the counterpart type in id.resp_p, the code otherwise.
ICMP4_PAIRS: Final = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
ICMP6_PAIRS: Final = {
    128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135,
    130: 131, 131: 130, 139: 140, 140: 139, 144: 145, 145: 144,
}  # fmt: skip

# UDP ports whose payload Zeek decapsulates by default.
VXLAN: Final = 4789
GENEVE: Final = 6081
GTPU: Final = 2152
TEREDO: Final = 3544
AYIYA: Final = 5072
GRE_UDP: Final = 4754
TUNNEL_PORTS: Final = frozenset((VXLAN, GENEVE, GTPU, TEREDO, AYIYA, GRE_UDP))
# Zeek's Tunnel::Type names (tunnel.log), by port.
TUNNEL_KINDS: Final = {
    VXLAN: "VXLAN", GENEVE: "GENEVE", GTPU: "GTPv1", TEREDO: "TEREDO", AYIYA: "AYIYA",
    GRE_UDP: "GRE",
}  # fmt: skip
MAX_DEPTH: Final = 4
MAX_FRAGMENT_SETS: Final = 10_000


def checksum_ok(data: bytes) -> bool:
    """True when the Internet checksum over `data` (its checksum field included) verifies.

    Summing 16-bit words in native byte order and folding gives the byte-swapped sum, and
    0xFFFF is its own byte swap, so the test holds whatever the machine's order.
    """
    if len(data) % 2:
        data += b"\0"
    total = sum(array("H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


class Decoder:
    """Decodes frames and hands every IP packet to the sink; counts what it could not decode."""

    def __init__(self, sink: ConnTracker, *, verify_checksums: bool = False) -> None:
        self.sink = sink
        # Zeek verifies checksums unless run with -C; captures taken on the sending host carry
        # unfinished checksums (offload), hence off by default here.
        self.verify_checksums = verify_checksums
        self.bad_checksums = 0
        self.undecoded = 0  # frames without IP (ARP, STP, ...) or of an unknown link type
        self.malformed = 0  # IP packets too short or inconsistent
        self.fragments: dict[tuple[bytes, bytes, int, int], _Fragments] = {}
        self.cut = False  # the frame being decoded is shorter than it was on the wire

    # ---- link layers ----

    def frame(self, ts: float, linktype: int, data: bytes, wire: int = 0) -> None:
        """One captured frame; `wire` is its length on the wire when the capture says it."""
        try:
            # Most frames are Ethernet + IPv4 without options or fragments: read straight, byte
            # by byte (compiled, each is a C array read), without the calls of the general path
            # (which still handles anything unusual). From 34 bytes, Ethernet and IPv4 headers:
            # short UDP and ICMP frames take it too (a TCP one holds 54: `total` is checked
            # against the frame's length).
            if (
                linktype == 1
                and not self.verify_checksums
                and len(data) >= 34
                and data[12] == 0x08  # IPv4 (0x0800)
                and data[13] == 0
                and data[14] == 0x45  # version 4, header without options
                and not data[20] & 0x3F  # neither more-fragments nor an offset
                and not data[21]
            ):
                total = data[16] << 8 | data[17]
                if 20 <= total <= len(data) - 14:
                    proto = data[23]
                    src, dst = data[26:30], data[30:34]
                    if proto == TCP and total >= 40:
                        doff = (data[46] >> 4) * 4
                        if 20 <= doff <= total - 20:
                            # The window rides above the flag bits, as in transport().
                            self.sink.packet(
                                ts, TCP, src, dst, data[34] << 8 | data[35],
                                data[36] << 8 | data[37], total, total - 20 - doff,
                                data[47] | data[48] << 16 | data[49] << 8,
                                data[38] << 24 | data[39] << 16 | data[40] << 8 | data[41],
                                data[42] << 24 | data[43] << 16 | data[44] << 8 | data[45],
                                data, 34 + doff,
                            )  # fmt: skip
                            return
                    self.transport(ts, proto, src, dst, total, data, 34, 14 + total, 0)
                    return
            # A frame cut by the snapshot length is counted with the lengths its headers say;
            # a header longer than the frame on the wire is damage (Zeek drops it too).
            self.cut = wire > len(data)
            self._frame(ts, linktype, data)
        except (struct.error, IndexError):
            self.malformed += 1

    def _frame(self, ts: float, linktype: int, data: bytes) -> None:
        if linktype == 1:
            self.ether(ts, data, 0, 0)
        elif linktype in (101, 12, 14) or linktype == 228 or linktype == 229:
            self.ip(ts, data, 0, 0)
        elif linktype == 113:  # Linux cooked capture
            self.ethertype(ts, data, 16, _H.unpack_from(data, 14)[0], 0)
        elif linktype == 276:  # Linux cooked capture v2
            self.ethertype(ts, data, 20, _H.unpack_from(data, 0)[0], 0)
        elif linktype in (0, 108):  # BSD loopback: address family, host or network order
            family = struct.unpack_from("<I" if data[0] else ">I", data, 0)[0]
            if family in (2, 24, 28, 30):
                self.ip(ts, data, 4, 0)
            else:
                self.undecoded += 1
        elif linktype in (9, 50):  # PPP, PPP in HDLC framing (or Cisco HDLC in it)
            if data[0] in (0x0F, 0x8F) and data[1] == 0:
                self.ethertype(ts, data, 4, _H.unpack_from(data, 2)[0], 0)
            else:
                self.ppp(ts, data, 0, 0)
        elif linktype == 104:  # Cisco HDLC: address, control, then an Ethernet type
            self.ethertype(ts, data, 4, _H.unpack_from(data, 2)[0], 0)
        elif linktype == 192:  # PPI: a header of its own length, then a frame of its DLT
            length, dlt = struct.unpack_from("<HI", data, 2)
            if length < 8 or dlt == 192:
                self.malformed += 1
                return
            self._frame(ts, dlt, data[length:])
        elif linktype == 127:  # radiotap then 802.11
            self.wifi(ts, data, struct.unpack_from("<H", data, 2)[0], 0)
        elif linktype == 105:
            self.wifi(ts, data, 0, 0)
        elif linktype == 239:
            self.nflog(ts, data)
        else:
            self.undecoded += 1

    def ether(self, ts: float, data: bytes, off: int, depth: int) -> None:
        etype = _H.unpack_from(data, off + 12)[0]
        if etype == ETH_IP4 and data[off + 14] >> 4 == 4:  # the common case, straight
            self.ip4(ts, data, off + 14, depth)
            return
        if etype == FABRICPATH:
            # Cisco FabricPath: outer addresses, its type and a 2-byte tag, then the host's
            # own Ethernet frame (Zeek's Ethernet analyzer skips these 16 bytes the same way).
            off += 16
            etype = _H.unpack_from(data, off + 12)[0]
        self.ethertype(ts, data, off + 14, etype, depth)

    def ethertype(self, ts: float, data: bytes, off: int, etype: int, depth: int) -> None:
        while True:
            if etype in (ETH_IP4, ETH_IP6):
                self.ip(ts, data, off, depth)
                return
            if etype in VLAN_TYPES:
                etype = _H.unpack_from(data, off + 2)[0]
                off += 4
            elif etype in MPLS_TYPES:
                while not data[off + 2] & 1:  # until the bottom-of-stack label
                    off += 4
                self.ip(ts, data, off + 4, depth)
                return
            elif etype == 0x8864:  # PPPoE session
                self.ppp(ts, data, off + 6, depth)
                return
            elif etype == 0x88E7:  # 802.1ah backbone (PBB): I-TAG then a customer frame
                self.ether(ts, data, off + 4, depth)
                return
            elif etype == 0x8926:  # VN-tag
                etype = _H.unpack_from(data, off + 4)[0]
                off += 6
            elif etype == 0x6558:  # transparent Ethernet bridging (GRE, Geneve)
                self.ether(ts, data, off, depth)
                return
            elif etype == 0x88BE:  # ERSPAN type II outside GRE (in GRE, see gre())
                self.ether(ts, data, off + 8, depth)
                return
            elif etype == 0x22EB:  # ERSPAN type III, optional platform subheader
                self.ether(ts, data, off + (20 if data[off + 11] & 1 else 12), depth)
                return
            elif etype < 1536 and data[off : off + 3] == b"\xaa\xaa\x03":  # 802.3 + SNAP
                etype = _H.unpack_from(data, off + 6)[0]
                off += 8
            else:
                self.undecoded += 1
                return

    def ppp(self, ts: float, data: bytes, off: int, depth: int) -> None:
        if data[off : off + 2] == b"\xff\x03":
            off += 2
        if data[off] & 1:  # protocol field compressed to one byte
            proto, off = data[off], off + 1
        else:
            proto, off = _H.unpack_from(data, off)[0], off + 2
        if proto in (0x21, 0x57):
            self.ip(ts, data, off, depth)
        elif proto in (0x281, 0x283):  # MPLS unicast, multicast
            self.ethertype(ts, data, off, 0x8847, depth)
        else:
            self.undecoded += 1

    def wifi(self, ts: float, data: bytes, off: int, depth: int) -> None:
        fc, flags = data[off], data[off + 1]
        ftype, subtype = (fc >> 2) & 3, fc >> 4
        if ftype != 2 or subtype & 4 or flags & 0x40:  # not data, no payload, or encrypted
            self.undecoded += 1
            return
        hdr = 30 if flags & 3 == 3 else 24
        amsdu = False
        if subtype & 8:  # QoS data
            amsdu = bool(data[off + hdr] & 0x80)
            hdr += 2
            if flags & 0x80:  # HT control
                hdr += 4
        off += hdr
        if amsdu:
            self.amsdu(ts, data, off, depth)
            return
        if data[off : off + 3] != b"\xaa\xaa\x03":
            self.undecoded += 1
            return
        self.ethertype(ts, data, off + 8, _H.unpack_from(data, off + 6)[0], depth)

    def amsdu(self, ts: float, data: bytes, off: int, depth: int) -> None:
        """An aggregate of subframes, each DA, SA, length, then LLC/SNAP, padded to 4 bytes."""
        while off + 22 <= len(data):
            length = _H.unpack_from(data, off + 12)[0]
            body = off + 14
            if data[body : body + 3] == b"\xaa\xaa\x03" and length >= 8:
                etype = _H.unpack_from(data, body + 6)[0]
                self.ethertype(ts, data[: body + length], body + 8, etype, depth)
            off = body + length + (-(14 + length) % 4)

    def nflog(self, ts: float, data: bytes) -> None:
        off = 4
        while off + 4 <= len(data):
            length, tlv_type = struct.unpack_from("<HH", data, off)
            if length < 4:
                break
            if tlv_type == 9:  # NFULA_PAYLOAD
                self.ip(ts, data[off + 4 : off + length], 0, 0)
                return
            off += (length + 3) & ~3
        self.undecoded += 1

    # ---- IP ----

    def ip(self, ts: float, data: bytes, off: int, depth: int) -> None:
        version = data[off] >> 4
        if version == 4:
            self.ip4(ts, data, off, depth)
        elif version == 6:
            self.ip6(ts, data, off, depth)
        else:
            self.malformed += 1

    def ip4(self, ts: float, data: bytes, off: int, depth: int) -> None:
        vihl, _tos, total, ident, frag, _ttl, proto, _sum, src, dst = _V4.unpack_from(data, off)
        hlen = (vihl & 15) * 4
        if total == 0:
            # Segmentation offload: a capture on the sending host sees the length unset; Zeek
            # takes what was captured.
            total = len(data) - off
        end = off + total
        if hlen < 20 or total < hlen or off + hlen > len(data):
            self.malformed += 1
            return
        if self.verify_checksums and not checksum_ok(data[off : off + hlen]):
            self.bad_checksums += 1  # Zeek drops such packets before any connection sees them
            return
        complete = end <= len(data)
        if not complete:
            if not self.cut:
                self.malformed += 1  # longer than the frame on the wire: a false length
                return
            # Cut by the snapshot length: Zeek still counts it with the length the header says.
            end = len(data)
        if frag & 0x3FFF:  # fragment: more-fragments flag or a non-zero offset
            whole = self._reassemble(
                (src, dst, ident, proto), (frag & 0x1FFF) * 8, frag & 0x2000, data[off + hlen : end]
            )
            if whole is None:
                return
            data, off, end = whole, 0, len(whole)
            total = hlen + len(whole)
            hlen = 0
        self.transport(ts, proto, src, dst, total, data, off + hlen, end, depth, complete)

    def ip6(self, ts: float, data: bytes, off: int, depth: int) -> None:
        _vtf, plen, nxt, _hop, src, dst = _V6.unpack_from(data, off)
        end = off + 40 + plen
        total = 40 + plen
        if end > len(data):
            if not self.cut:
                self.malformed += 1
                return
            end = len(data)  # cut by the snapshot length, counted as IPv4 is
        pos = off + 40
        while nxt in IPV6_EXT or nxt == 44:
            if nxt == 44:  # fragment header
                fo, ident = struct.unpack_from("!HI", data, pos + 2)
                nxt = data[pos]
                whole = self._reassemble(
                    (src, dst, ident, nxt), fo & 0xFFF8, fo & 1, data[pos + 8 : end]
                )
                if whole is None:
                    return
                total = pos + 8 - off + len(whole) - 8  # the fragment header goes with reassembly
                data, pos, end = whole, 0, len(whole)
                continue
            nxt, pos = data[pos], pos + 8 + data[pos + 1] * 8
        if pos > end:
            self.malformed += 1
            return
        self.transport(ts, nxt, src, dst, total, data, pos, end, depth)

    def _reassemble(
        self, key: tuple[bytes, bytes, int, int], offset: int, more: int, piece: bytes
    ) -> bytes | None:
        """The whole payload once every fragment arrived, else None (and keep the piece)."""
        frags = self.fragments.get(key)
        if frags is None:
            if len(self.fragments) >= MAX_FRAGMENT_SETS:
                self.fragments.pop(next(iter(self.fragments)))
                self.malformed += 1
            frags = self.fragments[key] = _Fragments()
        frags.pieces[offset] = piece
        if not more:
            frags.total = offset + len(piece)
        if frags.total < 0:
            return None
        out = bytearray()
        for start in sorted(frags.pieces):
            if start > len(out):
                return None  # a hole remains
            out[start:] = frags.pieces[start]
        if len(out) < frags.total:
            return None
        del self.fragments[key]
        return bytes(out[: frags.total])

    def transport(
        self,
        ts: float,
        proto: int,
        src: bytes,
        dst: bytes,
        total: int,
        data: bytes,
        off: int,
        end: int,
        depth: int,
        complete: bool = True,
    ) -> None:
        sink = self.sink
        if (
            self.verify_checksums
            and complete
            and proto in (TCP, UDP, ICMP6, ICMP)
            and end - off >= 8
            and not self._transport_checksum(proto, src, dst, data, off, end)
        ):
            self.bad_checksums += 1
            if proto in (TCP, UDP):
                sport, dport = _HH.unpack_from(data, off)
                flags = data[off + 13] if proto == TCP and end - off >= 14 else 0
                sink.bad_checksum(ts, proto, src, dst, sport, dport, flags)
            return
        if proto == TCP:
            if end - off < 20:
                self.malformed += 1
                return
            sport, dport = _HH.unpack_from(data, off)
            seq, ack = _II.unpack_from(data, off + 4)
            doff = (data[off + 12] >> 4) * 4
            if doff < 20 or off + doff > end:
                # A header length under 20, or past the bytes there (options cut by the
                # snapshot length): Zeek has opened the connection from the fixed header by
                # then, and drops the packet without counting it.
                self.malformed += 1
                sink.header_cut(ts, src, dst, sport, dport, data[off + 13])
                return
            # The window rides above the flag bits (zero window: flags < 0x100), for Zeek's W.
            flags = data[off + 13] | data[off + 14] << 16 | data[off + 15] << 8
            self._emit(
                depth, ts, TCP, src, dst, sport, dport, total, end - off - doff, flags, seq, ack,
                data, off + doff,
            )  # fmt: skip
        elif proto == UDP:
            if end - off < 8:
                self.malformed += 1
                return
            # Byte by byte (C array reads once compiled; about a struct call's cost otherwise).
            sport = data[off] << 8 | data[off + 1]
            dport = data[off + 2] << 8 | data[off + 3]
            ulen = data[off + 4] << 8 | data[off + 5]
            if ulen < 8 or off + ulen > end:
                ulen = end - off
            self._emit(
                depth, ts, UDP, src, dst, sport, dport, total, ulen - 8, 0, 0, 0, data, off + 8
            )
            if depth < MAX_DEPTH and (
                sport in TUNNEL_PORTS
                or dport in TUNNEL_PORTS
                # Teredo relays use any port: Zeek recognises the IPv6 inside by its content.
                or (ulen >= 48 and data[off + 8] >> 4 == 6)
            ):
                outer = sink.parent
                if outer is not None:  # a tunnel in a tunnel: the chain, for tunnel.log
                    sink.outers.append(outer)
                try:
                    self.udp_tunnel(
                        ts, src, dst, sport, dport, data, off + 8, off + ulen, depth + 1
                    )
                except (struct.error, IndexError):
                    self.malformed += 1
                finally:
                    sink.parent = outer
                    if outer is not None:
                        sink.outers.pop()
        elif proto in (ICMP, ICMP6):
            if end - off < 4:
                self.malformed += 1
                return
            itype, code = data[off], data[off + 1]
            pairs = ICMP4_PAIRS if proto == ICMP else ICMP6_PAIRS
            other = pairs.get(itype)
            # flags=1 marks a one-way message (no counterpart): its "responder port" is the code.
            self._emit(
                depth, ts, proto, src, dst, itype, code if other is None else other, total,
                max(end - off - 8, 0), 1 if other is None else 0, 0, 0, data, off + 8,
            )  # fmt: skip
        elif proto == 47 and depth < MAX_DEPTH:
            outer = sink.parent
            if outer is not None:
                sink.outers.append(outer)
            sink.parent = ("GRE", proto, src, 0, dst, 0)
            try:
                self.gre(ts, data, off, depth + 1)
            finally:
                sink.parent = outer
                if outer is not None:
                    sink.outers.pop()
        elif proto in (4, 41) and depth < MAX_DEPTH:
            outer = sink.parent
            if outer is not None:
                sink.outers.append(outer)
            sink.parent = ("IP", proto, src, 0, dst, 0)
            try:
                self.ip(ts, data[off:end], 0, depth + 1)
            finally:
                sink.parent = outer
                if outer is not None:
                    sink.outers.pop()
        elif proto != 59:  # 59: no next header (Teredo bubbles)
            self._emit(depth, ts, proto, src, dst, 0, 0, total, end - off, 0, 0, 0, data, off)

    def _emit(
        self, depth: int, ts: float, proto: int, src: bytes, dst: bytes, sport: int, dport: int,
        ip_len: int, plen: int, flags: int, seq: int, ack: int, data: bytes, poff: int,
    ) -> None:  # fmt: skip
        """Inside a tunnel, packets go to inner_packet, which also records the tunnel: the
        common, untunnelled packet pays nothing for it. For TCP, `flags` holds the flag bits
        and, above them, the window (flags | window << 8): one argument less per packet."""
        if depth:
            self.sink.inner_packet(
                ts, proto, src, dst, sport, dport, ip_len, plen, flags, seq, ack, data, poff
            )
        else:
            self.sink.packet(
                ts, proto, src, dst, sport, dport, ip_len, plen, flags, seq, ack, data, poff
            )

    @staticmethod
    def _transport_checksum(
        proto: int, src: bytes, dst: bytes, data: bytes, off: int, end: int
    ) -> bool:
        segment = data[off:end]
        if len(src) == 4:
            if proto == UDP and segment[6:8] == b"\0\0":
                return True  # IPv4 UDP without checksum
            if proto == ICMP:
                return checksum_ok(segment)
            pseudo = src + dst + struct.pack("!BBH", 0, proto, len(segment))
        else:
            pseudo = src + dst + struct.pack("!IxxxB", len(segment), proto)
        return checksum_ok(pseudo + segment)

    # ---- tunnels ----

    def gre(self, ts: float, data: bytes, off: int, depth: int) -> None:
        flags, proto = _HH.unpack_from(data, off)
        version = flags & 7
        if version > 1 or flags & 0x4078:
            # As Zeek: other versions, the deprecated routing field and reserved flags are
            # not decoded.
            self.undecoded += 1
            return
        hdr = 4 + 4 * bool(flags & 0x8000) + 4 * bool(flags & 0x2000) + 4 * bool(flags & 0x1000)
        if flags & 0x0080:  # enhanced GRE (PPTP) acknowledgment number
            hdr += 4
        off += hdr
        if proto == 0x88BE:
            # ERSPAN: type II has the sequence number flag and an 8-byte header, type I neither.
            self.ether(ts, data, off + (8 if flags & 0x1000 else 0), depth)
        elif proto == 0x880B:
            self.ppp(ts, data, off, depth)
        elif 0x8200 <= proto <= 0x82FF:  # Aruba: an 802.11 frame
            self.wifi(ts, data, off, depth)
        else:
            self.ethertype(ts, data, off, proto, depth)

    def udp_tunnel(
        self, ts: float, src: bytes, dst: bytes, sport: int, dport: int, data: bytes, off: int,
        end: int, depth: int,
    ) -> None:  # fmt: skip
        payload = data[off:end]
        kind = TUNNEL_KINDS.get(sport) or TUNNEL_KINDS.get(dport) or "TEREDO"
        # Packets decoded from here on are carried by this UDP flow (its uid is their parent).
        self.sink.parent = (kind, UDP, src, sport, dst, dport)
        sink = self.sink
        if VXLAN in (sport, dport):
            # Zeek's VXLAN analyzer confirms a header with its VNI flag, then decodes a frame.
            if len(payload) >= 8 and payload[0] & 0x08:
                sink.tunnel_valid(src, sport, dst, dport, kind, False)
            if len(payload) >= 22 and payload[0] & 0x08:
                self.ether(ts, payload, 8, depth)
            else:
                self.undecoded += 1  # no valid VNI flag, or too short for a frame
        elif GENEVE in (sport, dport):
            opt = (payload[0] & 0x3F) * 4
            if payload[0] >> 6 or 8 + opt > len(payload):
                return  # Zeek decodes version 0 only, with its options all there
            sink.tunnel_valid(src, sport, dst, dport, kind, False)
            self.ethertype(ts, payload, 8 + opt, _H.unpack_from(payload, 2)[0], depth)
        elif GTPU in (sport, dport):
            if self.gtp(ts, payload, depth):
                sink.tunnel_valid(src, sport, dst, dport, kind, False)
        elif TEREDO in (sport, dport):
            if self.teredo(ts, payload, depth):
                sink.tunnel_valid(src, sport, dst, dport, kind, True)
        elif AYIYA in (sport, dport):
            first, second, third, nxt = payload[0], payload[1], payload[2], payload[3]
            hdr = 8 + (1 << (first >> 4)) + (second >> 4) * 4
            if third & 15 == 1 and hdr <= len(payload):  # opcode "forward": Zeek confirms
                sink.tunnel_valid(src, sport, dst, dport, kind, False)
                if nxt in (4, 41):
                    self.ip(ts, payload, hdr, depth)
        elif GRE_UDP in (sport, dport):
            # Zeek makes GRE over UDP one GRE tunnel between the two addresses, whatever the
            # UDP ports: its parent is that tunnel, not the UDP flow (gre-over-udp baseline).
            sink.parent = ("GRE", 47, src, 0, dst, 0)
            self.gre(ts, payload, 0, depth)
        elif self.teredo(ts, payload, depth):
            sink.tunnel_valid(src, sport, dst, dport, kind, True)

    def gtp(self, ts: float, payload: bytes, depth: int) -> bool:
        """GTPv1 user data: its IP packet decoded; True if Zeek would confirm (the inner
        packet's IP version and length right)."""
        flags, mtype = payload[0], payload[1]
        if flags >> 5 != 1 or not flags & 0x10 or mtype != 0xFF:  # only GTPv1 user data
            return False
        hdr = 12 if flags & 7 else 8
        if flags & 4:  # extension headers, each announcing the next
            nxt = payload[11]
            while nxt:
                length = payload[hdr] * 4
                if not length:
                    return False
                nxt = payload[hdr + length - 1]
                hdr += length
        if hdr < len(payload) and payload[hdr] >> 4 in (4, 6):
            self.ip(ts, payload, hdr, depth)
            return _ip_length_exact(payload, hdr)
        return False

    def teredo(self, ts: float, payload: bytes, depth: int) -> bool:
        """A Teredo packet: its IPv6 packet decoded; True if Zeek finds it valid (an IPv6
        packet of the length it says, or a bubble, even with bytes after it)."""
        off = 0
        if payload[0:2] == b"\x00\x01":  # authentication indicator
            off += 4 + payload[2] + payload[3] + 9
        if payload[off : off + 2] == b"\x00\x00":  # origin indication
            off += 8
        # Zeek decapsulates only what is a well-formed IPv6 packet.
        if len(payload) - off >= 40 and payload[off] >> 4 == 6:
            plen = _H.unpack_from(payload, off + 4)[0]
            if off + 40 + plen == len(payload):
                self.ip6(ts, payload, off, depth)
                return True
            # A bubble (no next header, no payload) with bytes after it: valid to Zeek.
            return plen == 0 and payload[off + 6] == 59 and off + 40 < len(payload)
        return False


def _ip_length_exact(data: bytes, off: int) -> bool:
    """The IP packet at `off` is as long as its header says, to the end of `data`."""
    if data[off] >> 4 == 4:
        return len(data) - off >= 20 and _H.unpack_from(data, off + 2)[0] == len(data) - off
    return len(data) - off >= 40 and _H.unpack_from(data, off + 4)[0] + 40 == len(data) - off


class _Fragments:
    __slots__ = ("pieces", "total")

    def __init__(self) -> None:
        self.pieces: dict[int, bytes] = {}
        self.total = -1
