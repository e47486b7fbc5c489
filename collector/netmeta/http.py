"""HTTP/1.x requests read from the originator's byte stream, and the status of each response.

A connection is followed when its originator's first byte is an upper-case letter (the start
of a method): its bytes are joined in sequence order, so a request head split across
segments (or typed one character at a time) is read whole, retransmissions are read once, and
request bodies are skipped by their Content-Length. What counts as a request line follows
Zeek: on the ports Zeek's HTTP analyzer is registered for, any method token; elsewhere the
methods its detection signature knows (and, for HTTP/0.9's line without a version, only
those), and only once the server's first bytes were a status line, as that signature needs.
Responses are read from the segments that start with a status line (servers write it first),
and the i-th response answers the i-th request, as HTTP/1.1 without pipelining has it.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote

from collector.netmeta import mime

RESPONSE = b"HTTP/1."
MAX_HEAD = 16 * 1024
MASK = 0xFFFFFFFF
# Zeek's HTTP analyzer ports, and the methods of its signature for HTTP on other ports.
HTTP_PORTS = frozenset((80, 81, 631, 1080, 3128, 8000, 8080, 8888))
KNOWN_METHODS = frozenset(
    (b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE",
     b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"POLL",
     b"REPORT", b"SUBSCRIBE", b"BMOVE", b"SEARCH")
)  # fmt: skip
_METHOD = re.compile(rb"[A-Z][A-Z_-]*")
_CONTENT_LENGTH = re.compile(rb"\ncontent-length[ \t]*:[ \t]*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\ntransfer-encoding[ \t]*:[^\n]*chunked", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    uri: str
    version: str | None
    host: str | None
    user_agent: str | None


def could_start(segment: bytes) -> bool:
    """Might this be the first byte of a request line?"""
    return 0x41 <= segment[0] <= 0x5A


class RequestStream:
    """The originator's bytes of a connection that speaks (or may speak) HTTP, in order.

    `feed` yields the requests whose heads completed. `http` is None until the first request
    line was read, then True, or False when the stream turned out not to be HTTP.
    """

    __slots__ = (
        "any_method", "expected", "buffer", "skip", "hunting", "http", "pending", "confirmed",
        "replied", "mime",
    )  # fmt: skip

    def __init__(self, seq: int, resp_port: int) -> None:
        self.any_method = resp_port in HTTP_PORTS
        # Zeek's HTTP analyzer reads the connection: on its ports from the start; elsewhere
        # once its signature matched both ways, the server's first bytes a status line
        # ("HTTP/" and a digit), and then it reads the requests it held back. Until then, the
        # requests read here are no HTTP of Zeek's. `replied`: the server's first bytes came.
        self.confirmed = self.any_method
        self.replied = False
        # The MIME entities of the request body being read, when they can nest.
        self.mime: mime.Depth | None = None
        self.expected = seq
        self.buffer = bytearray()
        self.skip = 0  # body bytes still to pass over
        # After a gap or a body that cannot be measured (chunked), wait for a segment that
        # starts a request.
        self.hunting = False
        self.http: bool | None = None
        # Requests waiting for their response: when each was seen, and what it said.
        self.pending: deque[tuple[float, Request]] = deque()

    def feed(self, seq: int, segment: bytes) -> Iterator[Request]:
        if self.http is False:
            return
        end = (seq + len(segment)) & MASK
        ahead = (seq - self.expected) & MASK
        if ahead >= 0x80000000:  # starts before what was read: a retransmission or an overlap
            overlap = (self.expected - seq) & MASK
            if overlap >= len(segment):
                return
            segment = segment[overlap:]
        elif ahead:  # a gap: what was pending is lost
            self.buffer.clear()
            self.skip = 0
            self.hunting = True
        self.expected = end
        if self.skip:
            if self.skip >= len(segment):
                self.skip -= len(segment)
                if self.mime is not None:
                    self.mime.feed(segment)
                return
            if self.mime is not None:
                self.mime.feed(segment[: self.skip])
            segment = segment[self.skip :]
            self.skip = 0
        if self.hunting:
            if not _starts_request(segment.lstrip(b"\r\n"), self.any_method):
                return
            self.hunting = False
        self.buffer += segment
        yield from self._heads()

    def _heads(self) -> Iterator[Request]:
        buf = self.buffer
        while True:
            start = 0
            while start < len(buf) and buf[start] in (0x0D, 0x0A):  # CRLF after a body
                start += 1
            line_end = buf.find(b"\n", start)
            if line_end < 0:
                del buf[:start]
                if len(buf) > MAX_HEAD:
                    self._lost()
                return
            found = _request_line(bytes(buf[start:line_end]), self.any_method)
            if found is None:
                if self.http is None:
                    self.http = False  # the first line is no request: not HTTP
                    buf.clear()
                else:
                    self._lost()
                return
            method, uri, version = found
            self.http = True  # Zeek's analyzer confirms HTTP at the request line
            if version is None:  # HTTP/0.9: a request line alone, no headers
                end = line_end + 1
            else:
                blank = _blank_line(buf, line_end)
                if blank < 0:
                    if len(buf) - start > MAX_HEAD:
                        self._lost()
                    return
                end = blank
            head = bytes(buf[line_end:end])
            del buf[:end]
            headers = _headers(head)
            yield Request(method, uri, version, headers.get("host"), headers.get("user-agent"))
            if _CHUNKED.search(head):
                self._lost()  # a chunked body: resume at the next segment starting a request
                return
            length = _CONTENT_LENGTH.search(head)
            body = int(length.group(1)) if length else 0
            self.mime = mime.body(headers["content-type"]) if "content-type" in headers else None
            if body:
                taken = min(body, len(buf))
                if self.mime is not None:
                    self.mime.feed(bytes(buf[:taken]))
                del buf[:taken]
                self.skip = body - taken

    def _lost(self) -> None:
        self.buffer.clear()
        self.skip = 0
        self.hunting = True


def _starts_request(segment: bytes, any_method: bool) -> bool:
    token = segment[:24].split(b" ", 1)
    return (
        len(token) == 2
        and bool(token[0])
        and (token[0] in KNOWN_METHODS or (any_method and _METHOD.fullmatch(token[0]) is not None))
    )


def _request_line(line: bytes, any_method: bool) -> tuple[str, str, str | None] | None:
    """Method, URI (percent-decoded, as Zeek logs it) and version (None: HTTP/0.9).

    The line is what the expression `([A-Z][A-Z_-]*) +(.*?) *\\r?` matches whole, read with
    byte operations (a lazy `.*?` costs the regular expression engine a step per byte, and
    lines run to a kilobyte): a method token, spaces, then the rest less its trailing spaces
    and CR. The version is the rest's last word when it starts with HTTP/ after a space (or
    is the whole rest), as `(?:^| )HTTP/(\\S*)$` finds it."""
    token = _METHOD.match(line)
    if token is None:
        return None
    cut = token.end()
    if line[cut : cut + 1] != b" " or b"\n" in line:
        return None
    method, rest = line[:cut], line[cut:].lstrip(b" ")
    if rest.endswith(b"\r"):
        rest = rest[:-1]
    rest = rest.rstrip(b" ")
    known = method in KNOWN_METHODS
    # Where the last word starts: just past the last ASCII white space (\s; no LF here).
    word = 1 + max(
        rest.rfind(b" "), rest.rfind(b"\t"), rest.rfind(b"\r"), rest.rfind(b"\x0b"),
        rest.rfind(b"\x0c"),
    )  # fmt: skip
    if rest.startswith(b"HTTP/", word) and (word == 0 or rest[word - 1] == 0x20):
        if not (known or any_method):
            return None
        uri, ver = rest[: max(word - 1, 0)].strip(), rest[word + 5 :].decode("latin-1")
    elif known and b" " not in rest:
        uri, ver = rest, None  # HTTP/0.9
    else:
        # Without a version, only a known method and one URI: "NICK x" or "USER a b :c" of
        # IRC on port 8000 is no request.
        return None
    return method.decode("ascii"), unquote(uri.decode("latin-1"), encoding="latin-1"), ver


def _blank_line(buf: bytearray, line_end: int) -> int:
    """The offset just past the blank line that ends a head (CRLF or bare LF lines), or -1."""
    pos = line_end
    while True:
        nxt = buf.find(b"\n", pos + 1)
        if nxt < 0:
            return -1
        if nxt == pos + 1 or (nxt == pos + 2 and buf[pos + 1] == 0x0D):
            return nxt + 1
        pos = nxt


def status(segment: bytes) -> int | None:
    """The status code of a response head, or None."""
    if not segment.startswith(RESPONSE) or len(segment) < 12:
        return None
    code = segment[9:12]
    return int(code) if code.isdigit() else None


def _headers(head: bytes) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in head.decode("latin-1").split("\n"):
        name, sep, value = line.partition(":")
        if sep:
            found.setdefault(name.strip().lower(), value.strip())
    return found
