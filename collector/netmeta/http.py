"""HTTP/1.x requests and their status, from the segments that start a request or a response.

A request head (`GET /path HTTP/1.1` and its header lines) or a response head (`HTTP/1.1 200
OK`) nearly always starts a TCP segment: a client writes each request at once, a server its
status line and headers first. Reading only such segments keeps the fast path fast (one
`startswith` per segment) at the cost of heads split across segments, which are missed.
The i-th response answers the i-th request, as HTTP/1.1 without pipelining has it.
"""

from __future__ import annotations

from dataclasses import dataclass

METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"CONNECT ")
RESPONSE = b"HTTP/1."
MAX_HEAD = 16 * 1024


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    uri: str
    version: str | None
    host: str | None
    user_agent: str | None


def starts_request(segment: bytes) -> bool:
    return segment.startswith(METHODS)


def request(segment: bytes) -> Request | None:
    head = segment[:MAX_HEAD].split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) < 2:
        return None
    version = parts[2].removeprefix("HTTP/") if len(parts) > 2 else None
    headers = _headers(lines[1:])
    return Request(parts[0], parts[1], version, headers.get("host"), headers.get("user-agent"))


def status(segment: bytes) -> int | None:
    """The status code of a response head, or None."""
    if not segment.startswith(RESPONSE) or len(segment) < 12:
        return None
    code = segment[9:12]
    return int(code) if code.isdigit() else None


def _headers(lines: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            found.setdefault(name.strip().lower(), value.strip())
    return found
