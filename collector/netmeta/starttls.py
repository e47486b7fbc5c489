"""Clear-text protocols that hand their connection over to TLS mid-stream.

Zeek's FTP, SMTP, POP3, IMAP and XMPP analyzers read the commands and replies of their
protocol, and when the client asks for TLS and the server agrees, they hand the rest of the
stream to the SSL analyzer, which names `ssl` in the connection's services once it reads a
ClientHello. The pairs that start TLS, as those analyzers read them:

- FTP: `AUTH TLS` (RFC 4217), answered with reply code 234;
- SMTP: `STARTTLS` (RFC 3207), answered with 220;
- POP3: `STLS` (RFC 2595), answered with `+OK`;
- IMAP: `<tag> STARTTLS` (RFC 3501), answered with `<tag> OK`;
- XMPP: `<starttls .../>`, answered with `<proceed .../>` (RFC 6120);
- PostgreSQL: the SSLRequest message, answered with the byte `S`;
- MySQL: a handshake response with the CLIENT_SSL capability (the SSL request), unanswered:
  the client's TLS handshake follows it;
- LDAP: the extended request StartTLS (OID 1.3.6.1.4.1.1466.20037, RFC 4511), answered with
  an extended response of result success.

FTP and XMPP are read on their analyzers' ports only: Zeek finds them elsewhere by signatures
that an FTP session turning TLS before its USER command, or an XMPP stream, never matches.
A refusal ends the request; anything else waits. The client's lines are read in sequence order
(a command split across segments is read whole, a retransmission once); a client that sent many
commands without asking, or a line longer than any command, is not followed further. The
server's bytes are read only while a request awaits its answer (which starts a segment: the
server writes it after reading the request). XMPP's XML stream has no lines: its segments are
searched for the two elements.
"""

from __future__ import annotations

import re
import socket
import struct

MASK = 0xFFFFFFFF
MAX_COMMANDS = 32  # client lines read before giving up: TLS is asked for near the start
MAX_LINE = 2048
FTP, SMTP, POP3, IMAP, XMPP = "ftp", "smtp", "pop3", "imap", "xmpp"
POSTGRESQL, MYSQL, LDAP = "postgresql", "mysql", "ldap"
LDAP_STARTTLS = b"1.3.6.1.4.1.1466.20037"
LDAP_PORTS = frozenset((389, 3268))  # Zeek's LDAP analyzer's TCP ports
FTP_PORTS = frozenset((21, 2811))
IRC_PORTS = frozenset((6666, 6667, 6668, 6669))  # Zeek's IRC analyzer's ports
IMAP_PORT = 143  # Zeek's IMAP analyzer's port
# IMAP commands that confirm Zeek's IMAP analyzer from either side, compared as written.
_IMAP_CONFIRMING = frozenset((b"authenticate", b"login", b"examine", b"create", b"list", b"fetch"))
XMPP_PORTS = frozenset((5222, 5269))
XML, BER, LINES = "xml", "ber", "lines"
POSTGRESQL_SSL_REQUEST = struct.pack("!II", 8, 80877103)
MYSQL_PORTS = frozenset((1434, 3306))  # Zeek's MySQL analyzer's ports
CLIENT_PROTOCOL_41, CLIENT_SSL = 0x0200, 0x0800
# XMPP's elements, with or without a namespace prefix ("<tls:starttls").
_XMPP_STARTTLS = re.compile(rb"<(?:[\w.-]+:)?starttls[\s/>]")
_XMPP_PROCEED = re.compile(rb"<(?:[\w.-]+:)?proceed[\s/>]")
_XMPP_FAILURE = re.compile(rb"<(?:[\w.-]+:)?failure[\s/>]")


def tls_request(segment: bytes, resp_port: int) -> str | None:
    """A client's binary request for TLS, as its first payload: PostgreSQL's SSLRequest,
    MySQL's SSL request (a 32-byte handshake response with CLIENT_SSL, its packet number 1)
    on Zeek's MySQL ports, LDAP's StartTLS extended request."""
    if segment == POSTGRESQL_SSL_REQUEST:
        return POSTGRESQL
    if segment[:1] == b"\x30" and LDAP_STARTTLS in segment:
        return LDAP
    if resp_port in MYSQL_PORTS and len(segment) == 36 and segment[:4] == b"\x20\x00\x00\x01":
        flags = int.from_bytes(segment[4:8], "little")
        if flags & CLIENT_PROTOCOL_41 and flags & CLIENT_SSL:
            return MYSQL
    return None


def ftp_command(line: bytes) -> bool:
    """A client line Zeek's FTP analyzer reads as a command, which confirms it: its first word
    (after spaces) 3 to FTP::max_command_length (100) printable characters, no space."""
    word = line.lstrip(b" \t").split(None, 1)
    return bool(word) and 3 <= len(word[0]) <= 100 and all(0x21 <= c < 0x7F for c in word[0])


def ftp_reply(line: bytes, pending: int) -> int | None:
    """A server line as Zeek's FTP analyzer reads it, given the code of the multi-line reply
    under way (0: none): that code after this line, or None for a line it calls a protocol
    violation (no 3-digit code of 100 or more, or another character than a space or a dash
    after it), after which Zeek removes the analyzer and its name from the services."""
    code = int(line[:3]) if len(line) >= 3 and line[:3].isdigit() else 0
    if pending:
        return 0 if code == pending and line[3:4] == b" " else pending
    if code < 100:
        return None
    if line[3:4] == b"-":
        return code
    return None if len(line) > 3 and line[3:4] != b" " else 0


_FTP_HOST_PORT = re.compile(rb"(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})")
_FTP_EPSV = re.compile(rb"\(([!-~])\1\1(\d{1,5})\1\)")
_FTP_EPRT = re.compile(rb"([!-~])([12])\1([0-9A-Fa-f.:]+)\1(\d{1,5})\1")


def ftp_data_channel(line: bytes, is_orig: bool) -> tuple[bytes | None, int] | None:
    """Where an FTP data connection is announced, as Zeek's FTP scripts read it: a client's
    PORT or EPRT (the server connects to that address and port), the server's 227 (PASV) or
    229 (EPSV) reply (the client connects; None for EPSV's address: the server's own)."""
    if is_orig:
        words = line.lstrip(b" \t").split(None, 1)
        if len(words) < 2:
            return None
        verb = words[0].upper()
        if verb == b"PORT":
            return _host_port(words[1])
        if verb == b"EPRT":
            found = _FTP_EPRT.search(words[1])
            if found is None or int(found.group(4)) > 0xFFFF:
                return None
            family = socket.AF_INET if found.group(2) == b"1" else socket.AF_INET6
            try:
                host = socket.inet_pton(family, found.group(3).decode("ascii"))
            except (OSError, UnicodeDecodeError):
                return None
            return host, int(found.group(4))
        return None
    if line[:4] == b"227 ":
        return _host_port(line[4:])
    if line[:4] == b"229 ":
        found = _FTP_EPSV.search(line)
        if found is not None and int(found.group(2)) <= 0xFFFF:
            return None, int(found.group(2))
    return None


def _host_port(text: bytes) -> tuple[bytes | None, int] | None:
    found = _FTP_HOST_PORT.search(text)
    if found is None:
        return None
    numbers = [int(n) for n in found.groups()]
    if max(numbers) > 255:
        return None
    return bytes(numbers[:4]), numbers[4] << 8 | numbers[5]


def irc_dcc_send(line: bytes) -> tuple[bytes, int] | None:
    """The address and port a DCC SEND offers (a PRIVMSG whose message is "DCC SEND file
    address port [size]"), as Zeek's IRC analyzer reads it: the address a decimal number,
    read digit by digit."""
    line = line.lstrip(b" ")
    if line[:1] == b":":
        line = line.partition(b" ")[2].lstrip(b" ")
    command, _, params = line.partition(b" ")
    if command.upper() != b"PRIVMSG":
        return None
    message = params.lstrip(b" ").partition(b" ")[2].lstrip(b" ")
    message = message[1:] if message[:1] == b":" else message
    message = message[1:] if message[:1] == b"\x01" else message
    if len(message) <= 3 or not message.startswith(b"DCC"):
        return None
    message = message[:-1] if message.endswith(b"\x01") else message
    parts = [p for p in message.split(b" ") if p]
    if not (5 <= len(parts) <= 6 or (len(parts) == 7 and parts[6] == b"T")):
        return None
    if parts[1] != b"SEND":
        return None
    raw = 0
    for c in parts[3]:
        raw = (10 * raw + (c - 0x30 if 0x30 <= c <= 0x39 else 0)) & 0xFFFFFFFF
    digits = parts[4][: len(parts[4]) - len(parts[4].lstrip(b"0123456789"))]
    port = int(digits) if digits else 0
    return raw.to_bytes(4, "big"), port & 0xFFFF


def irc_line(line: bytes, is_orig: bool) -> bool | None:
    """A line as Zeek's IRC analyzer reads it: True if it confirms the analyzer (a client's
    line of 3 characters or more, its prefix aside), False if it is a protocol violation (too
    short once its prefix is taken off, or a reply number that is not 3 digits and a space),
    None otherwise (lines over 512 bytes and server lines are read, nothing more)."""
    if len(line) > 512:
        return None
    line = line.lstrip(b" ")
    if len(line) < 3:
        return None
    if line[:1] == b":":
        space = line.find(b" ")
        if space < 0:
            return None
        line = line[space + 1 :].lstrip(b" ")
    if len(line) < 3:
        return False
    if line[:1].isdigit() and not (line[1:3].isdigit() and line[3:4] == b" "):
        return False
    return True if is_orig else None


def imap_confirms(line: bytes, is_orig: bool) -> bool:
    """An IMAP line that confirms Zeek's IMAP analyzer: the server's untagged OK (its
    greeting); the client's STARTTLS (any case) or capability; from either side one of
    authenticate, login, examine, create, list, fetch (these in lower case, as Zeek compares
    them)."""
    words = line.split(None, 2)
    if len(words) < 2:
        return False
    tag, command = words[0], words[1]
    if command in _IMAP_CONFIRMING:
        return True
    if is_orig:
        return command == b"capability" or command.lower() == b"starttls"
    return tag == b"*" and command.lower() == b"ok"


def may_start(segment: bytes) -> bool:
    """Could this originator's first payload be a command of one of these protocols (a line
    of printable text, or XMPP's opening XML)?"""
    line = segment[:64].split(b"\n", 1)[0].rstrip(b"\r")
    return bool(line) and all(0x20 <= c < 0x7F or c == 0x09 for c in line)


class Handover:
    """The commands of one connection and the server's replies, until TLS starts.

    `feed` answers True once the server agreed to start TLS (the client's next bytes are its
    TLS handshake), False when the connection is no longer worth following, None otherwise.
    """

    __slots__ = (
        "expected", "buffers", "asked", "tag", "commands", "handed", "mode", "port",
        "ftp_pending", "analyzer_off", "partial",
    )  # fmt: skip

    def __init__(self, resp_port: int = 0) -> None:
        self.port = resp_port
        # Per direction (True: originator): the next sequence number expected, and a partial
        # line.
        self.expected: dict[bool, int] = {}
        self.buffers: dict[bool, bytearray] = {True: bytearray(), False: bytearray()}
        self.asked: str | None = None  # the protocol whose request for TLS awaits its answer
        self.tag = b""  # IMAP: the request's tag, which its answer repeats
        self.commands = 0
        # TLS was agreed (or an HTTP CONNECT tunnel opened): the client's next payload opens
        # what follows.
        self.handed = False
        # How the client's bytes are read: lines of commands, XMPP's XML stream, LDAP's BER
        # messages (none of these two in lines); known at its first bytes.
        self.mode: str | None = None
        # FTP (on its ports): the code of a multi-line reply under way; FTP or IRC: whether
        # Zeek's analyzer was removed (a line it rejects: see ftp_reply, irc_line).
        self.ftp_pending = 0
        self.analyzer_off = False
        # FTP or IRC, per direction: the end of the last segment, a line begun (see lines).
        self.partial: dict[bool, bytes] = {True: b"", False: b""}

    def lines(self, is_orig: bool, segment: bytes) -> list[bytes]:
        """The whole lines a direction's segment ends (CR LF or LF taken off), its last line
        carried over to the next segment (none over MAX_LINE bytes)."""
        pieces = (self.partial[is_orig] + segment).split(b"\n")
        rest = pieces.pop()
        self.partial[is_orig] = rest if len(rest) <= MAX_LINE else b""
        return [p[:-1] if p.endswith(b"\r") else p for p in pieces]

    def feed(self, is_orig: bool, seq: int, segment: bytes) -> bool | None:
        segment = self._in_order(is_orig, seq, segment)
        if not segment:
            return None
        if self.asked == POSTGRESQL:
            # The server's one-byte answer: S, TLS follows; N (or anything else), it does not.
            return None if is_orig else (segment[:1] == b"S" or False)
        if self.asked == LDAP:
            return None if is_orig else _ldap_answer(segment)
        if self.mode == BER:  # LDAP messages before a StartTLS, if one comes
            if is_orig:
                if LDAP_STARTTLS in segment:
                    self.asked = LDAP
                self.commands += 1
                return False if self.commands >= MAX_COMMANDS and self.asked is None else None
            return None
        if not is_orig and self.asked is None:
            # Nothing asked: the server's bytes (a mailbox, a listing) need no reading; its
            # answer to a request starts a segment of its own.
            self.buffers[False].clear()
            return None
        if self.mode is None:
            xml = segment.lstrip()[:1] == b"<" and self.port in XMPP_PORTS
            self.mode = XML if xml else LINES
        if self.mode == XML:
            return self._xmpp(is_orig, segment)
        buf = self.buffers[is_orig]
        buf += segment
        while True:
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) > MAX_LINE:
                    return False
                return None
            line = bytes(buf[:end]).rstrip(b"\r")
            del buf[: end + 1]
            verdict = self._command(line) if is_orig else self._reply(line)
            if verdict is not None:
                return verdict

    def _in_order(self, is_orig: bool, seq: int, segment: bytes) -> bytes:
        """The new bytes of a segment: none of a retransmission; after a gap, the partial
        line is lost."""
        expected = self.expected.get(is_orig)
        start = seq
        if expected is not None:
            ahead = (seq - expected) & MASK
            if ahead >= 0x80000000:  # starts before what was read: an overlap
                overlap = (expected - seq) & MASK
                if overlap >= len(segment):
                    return b""
                segment, start = segment[overlap:], expected
            elif ahead:
                self.buffers[is_orig].clear()
        self.expected[is_orig] = (start + len(segment)) & MASK
        return segment

    def _command(self, line: bytes) -> bool | None:
        words = line.split()
        if not words:
            return None
        self.commands += 1
        verb = words[0].upper()
        if verb == b"AUTH":
            # Zeek's FTP analyzer: the argument exactly "TLS".
            if self.port in FTP_PORTS and line.lstrip()[4:].lstrip() == b"TLS":
                self.asked = FTP
        elif verb == b"STARTTLS":
            self.asked = SMTP
        elif verb == b"STLS":
            self.asked = POP3
        elif len(words) > 1 and words[1].upper() == b"STARTTLS":
            self.asked, self.tag = IMAP, words[0]
        elif self.commands >= MAX_COMMANDS and self.asked is None:
            return False
        return None

    def _reply(self, line: bytes) -> bool | None:
        asked = self.asked
        if asked is None:
            return None
        if asked in (FTP, SMTP):
            code = line[:3]
            if not code.isdigit():
                return None
            if code == (b"234" if asked == FTP else b"220"):
                return True
            if line[3:4] != b"-":  # another final reply: refused
                self.asked = None
        elif asked == POP3:
            if line.startswith(b"+OK"):
                return True
            if line.startswith(b"-ERR"):
                self.asked = None
        else:
            words = line.split(None, 2)
            if len(words) >= 2 and words[0] == self.tag:
                if words[1].upper() == b"OK":
                    return True
                self.asked = None
        return None

    def _xmpp(self, is_orig: bool, segment: bytes) -> bool | None:
        if is_orig:
            if _XMPP_STARTTLS.search(segment):
                self.asked = XMPP
            self.commands += 1  # here: the client's segments
            return False if self.commands >= MAX_COMMANDS and self.asked is None else None
        if self.asked != XMPP:
            return None
        if _XMPP_PROCEED.search(segment):
            return True
        if _XMPP_FAILURE.search(segment):
            self.asked = None
        return None


def _ldap_answer(segment: bytes) -> bool | None:
    """LDAP's answer to StartTLS: an extended response (application tag 24) whose result
    code is success (True) or another (False); None for another message."""
    try:
        if segment[0] != 0x30:
            return None
        pos = _after_length(segment, 1)
        if segment[pos] != 0x02:  # the message ID
            return None
        pos += 2 + segment[pos + 1]
        if segment[pos] != 0x78:
            return None
        pos = _after_length(segment, pos + 1)
        if segment[pos : pos + 2] != b"\x0a\x01":  # the result code, an enumeration
            return None
        return segment[pos + 2] == 0
    except IndexError:
        return None


def _after_length(data: bytes, pos: int) -> int:
    """The offset just past a BER length that starts at `pos`."""
    first = data[pos]
    return pos + 1 + (first & 0x7F if first & 0x80 else 0)
