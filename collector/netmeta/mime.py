"""How deep the MIME entities of an HTTP body nest, against Zeek's limit.

Zeek's MIME analysis (of HTTP bodies, among others) makes an entity of each part of a
multipart body and of the message inside a message/rfc822 one, each one level deeper than the
entity holding it; past a depth of 100 (its default), it reports the weird
exceeded_mime_max_depth and marks the connection's analysis partial (X in conn.log's history).
`Depth` reads a body's lines for the part boundaries and the Content-Type of each entity, and
says when that depth is passed; it keeps nothing of the body but a partial line.
"""

from __future__ import annotations

import re

MAX_DEPTH = 100
MAX_LINE = 4096
_TYPE = re.compile(rb"content-type[ \t]*:[ \t]*([^;\s]+)(.*)", re.IGNORECASE | re.DOTALL)
_BOUNDARY = re.compile(rb"""boundary[ \t]*=[ \t]*(?:"([^"]*)"|([^;\s]+))""", re.IGNORECASE)


def content_type(value: bytes) -> tuple[bytes, bytes | None]:
    """The media type (lower case) and the multipart boundary, from a Content-Type line."""
    found = _TYPE.match(value.strip())
    if found is None:
        return b"", None
    boundary = _BOUNDARY.search(found.group(2))
    return found.group(1).lower(), (
        None if boundary is None else (boundary.group(1) or boundary.group(2))
    )


def body(content_type_value: str) -> Depth | None:
    """A depth reader for a body of this Content-Type, if its entities can nest."""
    kind, boundary = content_type(b"content-type: " + content_type_value.encode("latin-1"))
    if (kind.startswith(b"multipart/") and boundary) or kind == b"message/rfc822":
        return Depth(kind, boundary)
    return None


class Depth:
    """The entities of one body: fed its bytes in order, `too_deep` once Zeek's limit is
    passed (then nothing more is read)."""

    __slots__ = ("stack", "headers", "depth", "kind", "boundary", "partial", "too_deep")

    def __init__(self, kind: bytes, boundary: bytes | None) -> None:
        # Open multipart entities: (the "--boundary" line that starts their parts, depth).
        self.stack: list[tuple[bytes, int]] = []
        self.headers = False  # reading an entity's headers (else a body)
        self.depth = 1  # of the entity being read: the body itself is the first
        self.kind = b""
        self.boundary: bytes | None = None
        self.partial = bytearray()
        self.too_deep = False
        self._entered(kind, boundary)

    def feed(self, data: bytes) -> None:
        if self.too_deep:
            return
        buf = self.partial
        buf += data
        pos = 0  # always at the start of a line
        while not self.too_deep:
            if not self.headers and buf[pos : pos + 2] != b"--":
                # In a body only a line starting with "--" (a boundary) matters: skip to the
                # next one, or past the last whole line.
                nxt = buf.find(b"\n--", pos)
                if nxt < 0:
                    pos = buf.rfind(b"\n", pos) + 1 or pos
                    break
                pos = nxt + 1
            end = buf.find(b"\n", pos)
            if end < 0:
                break
            self._line(bytes(buf[pos:end]).rstrip(b"\r"))
            pos = end + 1
        del buf[:pos]
        if len(buf) > MAX_LINE:
            buf.clear()

    def _line(self, line: bytes) -> None:
        if self.headers:
            if line:
                if line[:1] not in b" \t" and line[:13].lower() == b"content-type:":
                    self.kind, self.boundary = content_type(line)
                return
            self.headers = False  # the headers end: the entity's body begins
            self._entered(self.kind, self.boundary)
            return
        if not line.startswith(b"--") or not self.stack:
            return
        for i in range(len(self.stack) - 1, -1, -1):
            start, depth = self.stack[i]
            if line.startswith(start):
                rest = line[len(start) :]
                del self.stack[i + 1 :]
                if rest.startswith(b"--"):  # the closing boundary: back in the holder's body
                    self.stack.pop()
                    return
                self._child(depth)  # a part begins, with its headers
                return

    def _entered(self, kind: bytes, boundary: bytes | None) -> None:
        """The body of the entity at `self.depth`, of this type, begins."""
        if kind.startswith(b"multipart/") and boundary:
            self.stack.append((b"--" + boundary, self.depth))
        elif kind == b"message/rfc822":
            self._child(self.depth)  # the message inside: an entity, its headers first

    def _child(self, parent: int) -> None:
        self.depth = parent + 1
        self.headers = True
        self.kind, self.boundary = b"", None
        if self.depth > MAX_DEPTH:
            self.too_deep = True
