"""Syslog received over the network: UDP and TCP, RFC 3164 and RFC 5424.

One background thread serves both sockets with a selector and only frames and queues what it
receives (bytes, sender, time of receipt); `poll()` parses in the caller's thread. The thread
so stays quick enough to empty the UDP socket buffer under bursts. The queue is bounded:
beyond `max_queue` messages new ones are dropped and counted (`dropped`), never silently.

TCP framing (RFC 6587) is detected per connection from its first bytes: octet counting
(`123 <34>1 ...`, a length, a space, the message) or non-transparent framing (each message
ends with a newline, or a NUL as Python's `SysLogHandler` and some appliances send). A
malformed frame (no length where one is due, a length over `max_message`, a line over
`max_message`) is counted in `skipped` and the connection goes on: a newline-framed stream
resynchronises at the next newline or NUL, an octet-counted one at the next newline or the
next length followed by a priority (`57 <13>`), as senders that count octets seldom send
newlines.

Events carry the sender as `log.source.address` (`ip:port`) and their source as
`syslog+udp://ip:port` or `syslog+tcp://ip:port`. The checkpoint is empty: the core spools
what `poll()` returns at once, and what a sender sent while the agent was down is its own
to resend.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import re
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from collector.sources.base import BadRecord, keep_error
from collector.sources.lines import decode_line, parse_text
from detection.event import Event

_OCTET_HEADER = re.compile(rb"([1-9]\d{0,8}) ")
_DIGITS = re.compile(rb"\d{1,9}")
_TOKEN = re.compile(rb"\S*")
_LINE_END = re.compile(rb"[\n\x00]")
# Where an octet-counted stream starts again after a malformed frame.
_RESYNC = re.compile(rb"\n|[1-9]\d{0,8} <\d{1,3}>")
_RESYNC_KEEP = len(b"123456789 <191>") - 1  # a header cut by the end of what arrived
_UDP_BUFFER = 4 * 1024 * 1024  # asked of the kernel, which may grant less
_RECV_SIZE = 65536

log = logging.getLogger(__name__)


@dataclass
class _Received:
    data: bytes
    address: tuple[str, int]
    transport: str
    at: float  # wall time of receipt


@dataclass
class _Framer:
    """The frames of one TCP connection, fed as bytes arrive."""

    max_message: int
    octet: bool | None = None  # None until the first bytes tell
    buffer: bytearray = field(default_factory=bytearray)
    discarding: bool = False  # dropping the rest of a malformed frame, up to a newline

    def feed(self, data: bytes) -> tuple[list[bytes], list[str]]:
        """Add bytes; return the whole frames now available and the malformed ones' reasons."""
        self.buffer += data
        frames: list[bytes] = []
        errors: list[str] = []
        while self.buffer:
            if self.discarding:
                if not self._resynchronise():
                    break
                continue
            if self.octet is None:
                self.octet = self._detect()
                if self.octet is None:
                    break
            frame = self._next_octet(errors) if self.octet else self._next_line(errors)
            if frame is None:
                break
            if frame.strip(b"\r\n\x00 "):
                frames.append(frame)
        return frames, errors

    def _resynchronise(self) -> bool:
        """Drop what is left of a malformed frame; False if its end has not arrived yet."""
        found = (_RESYNC if self.octet else _LINE_END).search(self.buffer)
        if found is None:
            keep = _RESYNC_KEEP if self.octet else 0
            del self.buffer[: max(0, len(self.buffer) - keep)]
            return False
        # A line end goes with the frame it ends; a length starts the next frame.
        del self.buffer[: found.end() if len(found.group()) == 1 else found.start()]
        self.discarding = False
        return True

    def _detect(self) -> bool | None:
        head = bytes(self.buffer[:10]).lstrip(b"\r\n\x00")
        if _OCTET_HEADER.match(head):
            return True
        digits = _DIGITS.match(head)
        if digits and digits.end() == len(head) and len(head) < 10:
            return None  # only digits so far: a length, or the start of a stamp
        return False

    def _next_octet(self, errors: list[str]) -> bytes | None:
        # Some senders end octet-counted frames with a newline anyway.
        while self.buffer[:1] in (b"\n", b"\r", b"\x00"):
            del self.buffer[:1]
        if not self.buffer:
            return None
        header = _OCTET_HEADER.match(self.buffer)
        if header is None:
            digits = _DIGITS.match(self.buffer)
            if digits and digits.end() == len(self.buffer):
                return None  # the length is still arriving
            token = _TOKEN.match(self.buffer)
            skip = max(1, token.end()) if token is not None else 1
            return self._malformed(errors, "octet-counted frame without its length", skip)
        length = int(header.group(1))
        if length > self.max_message:
            return self._malformed(
                errors, f"frame length {length} over {self.max_message}", header.end()
            )
        end = header.end() + length
        if len(self.buffer) < end:
            return None
        frame = bytes(self.buffer[header.end() : end])
        del self.buffer[:end]
        return frame

    def _next_line(self, errors: list[str]) -> bytes | None:
        match = re.search(rb"[\n\x00]", self.buffer)
        if match is None:
            if len(self.buffer) > self.max_message:
                return self._malformed(errors, f"line over {self.max_message} bytes")
            return None
        frame = bytes(self.buffer[: match.start()])
        del self.buffer[: match.end()]
        if len(frame) > self.max_message:  # whole, but as over-long as one still arriving
            errors.append(f"line over {self.max_message} bytes")
            return b""
        return frame

    def _malformed(self, errors: list[str], reason: str, skip: int = 0) -> bytes | None:
        """Count a malformed frame; drop its first `skip` bytes (its bad header) and, as
        `discarding`, the rest of it."""
        errors.append(reason)
        del self.buffer[:skip]
        self.discarding = True
        return b""  # not a frame, but the loop goes on (resynchronising)


class SyslogListener:
    """Receive syslog on `host` over UDP and TCP (a port of None: that transport is off; a
    port of 0: an ephemeral port, read back from `udp_port` / `tcp_port`)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        udp_port: int | None = 514,
        tcp_port: int | None = 514,
        *,
        max_queue: int = 100_000,
        max_message: int = 64 * 1024,
        max_connections: int = 256,
        max_events: int = 10_000,
    ) -> None:
        if udp_port is None and tcp_port is None:
            raise ValueError("SyslogListener needs a UDP port, a TCP port, or both")
        self.name = f"syslog:{host}:udp/{udp_port}:tcp/{tcp_port}"
        self.max_queue = max_queue
        self.max_message = max_message
        self.max_connections = max_connections
        self.max_events = max_events
        self._queue: collections.deque[_Received] = collections.deque()
        self._lock = threading.Lock()
        self._read = self._skipped = self._dropped = self._refused = 0
        self._errors: list[str] = []
        self._selector = selectors.DefaultSelector()
        self._conns: dict[socket.socket, tuple[_Framer, tuple[str, int]]] = {}
        self._stopping = False
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._udp: socket.socket | None = None
        self._udp_buffer = 0  # what the kernel granted (Linux reports twice what it keeps)
        self._tcp: socket.socket | None = None
        try:
            if udp_port is not None:
                self._udp = socket.socket(family, socket.SOCK_DGRAM)
                with contextlib.suppress(OSError):  # else the kernel's default buffer
                    self._udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _UDP_BUFFER)
                self._udp_buffer = self._udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
                self._udp.bind((host, udp_port))
                self._udp.setblocking(False)
                self._selector.register(self._udp, selectors.EVENT_READ, "udp")
            if tcp_port is not None:
                self._tcp = socket.socket(family, socket.SOCK_STREAM)
                self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self._tcp.bind((host, tcp_port))
                self._tcp.listen(64)
                self._tcp.setblocking(False)
                self._selector.register(self._tcp, selectors.EVENT_READ, "accept")
        except OSError:
            self._close_sockets()
            raise
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
        self._thread.start()

    @property
    def udp_port(self) -> int | None:
        return self._udp.getsockname()[1] if self._udp is not None else None

    @property
    def tcp_port(self) -> int | None:
        return self._tcp.getsockname()[1] if self._tcp is not None else None

    # -- Source interface ------------------------------------------------------------------

    def poll(self) -> list[Event]:
        with self._lock:
            count = min(len(self._queue), self.max_events)
            batch = [self._queue.popleft() for _ in range(count)]
        events: list[Event] = []
        for item in batch:
            ip, port = item.address[0], item.address[1]
            address = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
            source = f"syslog+{item.transport}://{address}"
            try:
                text = decode_line(item.data.rstrip(b"\r\n\x00"))
                event = parse_text(
                    text,
                    "syslog",
                    source,
                    datetime.fromtimestamp(item.at, UTC),
                    {"source": {"address": address}},
                )
            except BadRecord as exc:
                self._count_bad(f"{source}: {exc}")
                continue
            except Exception as exc:  # a parser's bug: raised, the rest of the batch is lost
                self._count_bad(f"{source}: parser error: {exc!r}")
                continue
            events.append(event)
        with self._lock:
            self._read += len(events)
        return events

    def checkpoint(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        return None  # nothing to resume: see the module docstring

    def close(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        with contextlib.suppress(OSError):  # else it sees `_stopping` within a second
            self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        for conn in list(self._conns):
            conn.close()
        self._conns.clear()
        self._close_sockets()
        self._wake_r.close()
        self._wake_w.close()
        self._selector.close()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            oldest = self._queue[0].at if self._queue else None
            return {
                "read": self._read,
                "skipped": self._skipped,
                "dropped": self._dropped,
                "queued": len(self._queue),
                "lag_seconds": max(0.0, time.time() - oldest) if oldest is not None else 0.0,
                "connections": len(self._conns),
                "refused_connections": self._refused,
                "udp_receive_buffer": self._udp_buffer,
                "errors": list(self._errors),
            }

    # -- the listening thread --------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stopping:
            for key, _ in self._selector.select(timeout=1.0):
                if key.data == "wake":
                    return
                try:
                    if key.data == "udp":
                        self._receive_udp()
                    elif key.data == "accept":
                        self._accept()
                    else:
                        self._receive_tcp(key.fileobj)  # type: ignore[arg-type]  # our sockets
                except Exception as exc:  # the listener must outlive any one bad peer
                    log.exception("syslog listener %s", self.name)
                    self._count_bad(f"listener error: {exc!r}")

    def _receive_udp(self) -> None:
        assert self._udp is not None
        for _ in range(1024):  # then let TCP connections have their turn
            try:
                data, address = self._udp.recvfrom(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. an ICMP error reported on the socket
                self._count_bad(f"udp: {exc}")
                return
            if data.strip(b"\r\n\x00 "):
                self._enqueue([data], address, "udp")

    def _accept(self) -> None:
        assert self._tcp is not None
        try:
            conn, address = self._tcp.accept()
        except (BlockingIOError, InterruptedError):
            return
        if len(self._conns) >= self.max_connections:
            conn.close()
            with self._lock:
                self._refused += 1
            return
        conn.setblocking(False)
        self._conns[conn] = (_Framer(self.max_message), address)
        self._selector.register(conn, selectors.EVENT_READ, "conn")

    def _receive_tcp(self, conn: socket.socket) -> None:
        framer, address = self._conns[conn]
        try:
            data = conn.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # reset by the peer: as a close
        if not data:
            rest = bytes(framer.buffer) if not framer.discarding else b""
            if rest.strip(b"\r\n\x00 "):
                if framer.octet:
                    self._count_bad(f"tcp {address[0]}:{address[1]}: closed inside a frame")
                else:  # a last message without its newline is still a message
                    self._enqueue([rest], address, "tcp")
            self._selector.unregister(conn)
            conn.close()
            del self._conns[conn]
            return
        frames, errors = framer.feed(data)
        for reason in errors:
            self._count_bad(f"tcp {address[0]}:{address[1]}: {reason}")
        if frames:
            self._enqueue(frames, address, "tcp")

    def _enqueue(self, frames: list[bytes], address: Any, transport: str) -> None:
        now = time.time()
        sender = (str(address[0]), int(address[1]))
        with self._lock:
            for data in frames:
                if len(self._queue) >= self.max_queue:
                    self._dropped += 1
                else:
                    self._queue.append(_Received(data, sender, transport, now))

    def _count_bad(self, reason: str) -> None:
        with self._lock:
            self._skipped += 1
            keep_error(self._errors, reason)

    def _close_sockets(self) -> None:
        for sock in (self._udp, self._tcp):
            if sock is not None:
                sock.close()
