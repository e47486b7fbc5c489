"""DNS messages: a small parser and the query/response pairing of Zeek's dns.log."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Final

# Final: compiled, flows reads it on every UDP packet as a C constant, not a module attribute.
DNS_PORTS: Final = frozenset((53, 5353, 5355))
_HDR = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_H16 = struct.Struct("!H")

QTYPES = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 11: "WKS", 12: "PTR", 13: "HINFO", 15: "MX",
    16: "TXT", 17: "RP", 18: "AFSDB", 24: "SIG", 25: "KEY", 28: "AAAA", 29: "LOC", 33: "SRV",
    35: "NAPTR", 37: "CERT", 39: "DNAME", 41: "OPT", 43: "DS", 44: "SSHFP", 46: "RRSIG",
    47: "NSEC", 48: "DNSKEY", 50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 64: "SVCB",
    65: "HTTPS", 99: "SPF", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR", 255: "*",
    256: "URI", 257: "CAA",
}  # fmt: skip
RCODES = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
}  # fmt: skip


class DnsFormatError(ValueError):
    """A payload on a DNS port that does not parse as a DNS message."""


@dataclass(frozen=True, slots=True)
class DnsMessage:
    trans_id: int
    is_response: bool
    opcode: int
    rcode: int
    aa: bool
    tc: bool
    rd: bool
    ra: bool
    query: str | None
    qtype: int | None
    qclass: int | None
    answers: tuple[str, ...]
    ttls: tuple[float, ...]

    # The __init__ the dataclass would make (frozen: through object.__setattr__), written
    # out: compiled, a dataclass's generated __init__ stays Python code, called with a dict
    # of the keywords (mypyc 1.20); the dataclass keeps one written here.
    def __init__(
        self, trans_id: int, is_response: bool, opcode: int, rcode: int, aa: bool, tc: bool,
        rd: bool, ra: bool, query: str | None, qtype: int | None, qclass: int | None,
        answers: tuple[str, ...], ttls: tuple[float, ...],
    ) -> None:  # fmt: skip
        setattr_ = object.__setattr__
        setattr_(self, "trans_id", trans_id)
        setattr_(self, "is_response", is_response)
        setattr_(self, "opcode", opcode)
        setattr_(self, "rcode", rcode)
        setattr_(self, "aa", aa)
        setattr_(self, "tc", tc)
        setattr_(self, "rd", rd)
        setattr_(self, "ra", ra)
        setattr_(self, "query", query)
        setattr_(self, "qtype", qtype)
        setattr_(self, "qclass", qclass)
        setattr_(self, "answers", answers)
        setattr_(self, "ttls", ttls)


def qtype_name(qtype: int | None) -> str | None:
    if qtype is None:
        return None
    return QTYPES.get(qtype, f"query-{qtype}")


def rcode_name(rcode: int | None) -> str | None:
    if rcode is None:
        return None
    return RCODES.get(rcode, f"rcode-{rcode}")


def parse(data: bytes) -> DnsMessage:
    """One DNS message; raises DnsFormatError when the header or the question is unreadable."""
    if len(data) < 12:
        raise DnsFormatError("shorter than a DNS header")
    # Typed (struct gives Any): compiled, the header's and records' fields are C integers.
    tid: int
    flags: int
    qd: int
    an: int
    _ns: int
    rtype: int
    ttl: int
    rdlen: int
    tid, flags, qd, an, _ns, _ar = _HDR.unpack_from(data)
    pos = 12
    query = qtype = qclass = None
    try:
        for i in range(qd):
            name, pos = _name(data, pos)
            qt, qc = struct.unpack_from("!HH", data, pos)
            pos += 4
            if i == 0:
                query, qtype, qclass = name, qt, qc
        if (flags >> 11) & 15 == 5 and query is not None:
            # UPDATE: Zeek logs the first name being updated (after the prerequisites), not
            # the zone.
            for _ in range(an + _ns):
                owner, pos = _name(data, pos)
                rdlen = _RR.unpack_from(data, pos)[3]
                pos += 10 + rdlen
                query = owner
            pos = len(data)
        answers: list[str] = []
        ttls: list[float] = []
        if flags & 0x8000:
            # Answers that do not parse are left out; the query and rcode still count.
            try:
                for _ in range(an):
                    owner, pos = _name(data, pos)
                    if query is None:
                        query = owner  # an answer without question (mDNS): its name
                    rtype, _rclass, ttl, rdlen = _RR.unpack_from(data, pos)
                    pos += 10
                    if pos + rdlen > len(data):
                        break
                    answers.append(_rdata(data, pos, rdlen, rtype))
                    ttls.append(float(ttl))
                    pos += rdlen
            except (struct.error, IndexError, DnsFormatError):
                pass
    except (struct.error, IndexError) as exc:
        raise DnsFormatError(f"truncated question: {exc}") from exc
    return DnsMessage(
        trans_id=tid,
        is_response=bool(flags & 0x8000),
        opcode=(flags >> 11) & 15,
        rcode=flags & 15,
        aa=bool(flags & 0x0400),
        tc=bool(flags & 0x0200),
        rd=bool(flags & 0x0100),
        ra=bool(flags & 0x0080),
        query=None if query is None else query.lower(),
        qtype=qtype,
        qclass=qclass,
        answers=tuple(answers),
        ttls=tuple(ttls),
    )


def _name(data: bytes, pos: int) -> tuple[str, int]:
    """A possibly compressed domain name and the position after it."""
    labels: list[bytes] = []
    end = -1
    jumps = 0
    while True:
        length = data[pos]
        if length & 0xC0 == 0xC0:
            if end < 0:
                end = pos + 2
            jumps += 1
            if jumps > 32:
                raise DnsFormatError("compression loop")
            pos = ((length & 0x3F) << 8) | data[pos + 1]
            continue
        if length & 0xC0:
            raise DnsFormatError("unsupported label type")
        if length == 0:
            pos += 1
            break
        label = data[pos + 1 : pos + 1 + length]
        if len(label) < length:
            raise DnsFormatError("label past the end")
        labels.append(label)
        pos += 1 + length
    # Decoded once, joined: the same text as label by label ("." is ASCII, and
    # backslashreplace replaces byte by byte).
    return b".".join(labels).decode("ascii", "backslashreplace"), (end if end >= 0 else pos)


def _rdata(data: bytes, pos: int, rdlen: int, rtype: int) -> str:
    raw = data[pos : pos + rdlen]
    if rtype == 1 and rdlen == 4:  # ipaddress.IPv4Address's text, without its Python code
        return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"
    if rtype == 28 and rdlen == 16:
        return str(ipaddress.IPv6Address(raw))
    # Names in lower case, as Zeek logs them (and as the query is).
    if rtype in (2, 5, 12, 39):
        return _name(data, pos)[0].lower()
    if rtype == 15:
        return _name(data, pos + 2)[0].lower()
    if rtype == 16:
        parts, i = [], 0
        while i < rdlen:
            n = raw[i]
            parts.append(raw[i + 1 : i + 1 + n].decode("utf-8", "backslashreplace"))
            i += 1 + n
        # Zeek's rendering: each character-string as "TXT <length> <text>".
        return " ".join(f"TXT {len(p)} {p}" for p in parts)
    # DNSSEC and SSH key records, as Zeek renders them: the covered type and signer of an
    # RRSIG, a DNSKEY's algorithm, an SSHFP's fingerprint.
    if rtype == 46 and rdlen > 18:
        return f"RRSIG {_H16.unpack_from(raw)[0]} {_name(data, pos + 18)[0].lower()}"
    if rtype == 48 and rdlen >= 4:
        return f"DNSKEY {raw[3]}"
    if rtype == 44 and rdlen > 2:
        return f"SSHFP: {raw[2:].hex()}"
    if rtype == 51:
        return "NSEC3PARAM"
    return f"<{qtype_name(rtype)}>"
