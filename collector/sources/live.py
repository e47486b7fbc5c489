"""Network traffic captured live on one interface, turned into the same network-metadata
records and events as capture files (collector/sources/pcap.py).

    capture thread   scapy's layer-2 listen socket -> (kernel time, frame bytes) -> bounded queue
    poll()           queue -> netmeta Decoder -> ConnTracker -> records of ended connections
                     -> events (Zeek field names and `_path`)

Scapy dissects nothing: the thread only receives raw frames with their kernel timestamps
(reading with a timeout, so that it sees `close()`) and queues them. The queue is bounded in
frames and in bytes; beyond it frames are dropped and counted (`dropped`), the capture never
waits. What the kernel drops itself (its socket buffer full) is counted in `kernel_dropped`.

`poll()` decodes the queued frames with `vigie netmeta`'s decoder and connection tracker (the
fast path: the same code as for capture files, scapy nowhere) and hands out the records of the
connections that ended. Connections end as Zeek ends them: idle past the inactivity timeout
(5 min for TCP, 1 min for UDP), swept by wall-clock time so that a quiet link still yields its
records; and a TCP connection closed by both sides, or reset, `close_delay` seconds after its
last packet (Zeek's `tcp_close_delay`). `close()` stops the capture, decodes what was queued
and ends every open connection; a last `poll()` hands their events out.

The capture thread and `poll()` share the GIL, so a `poll()` decodes for `max_poll_seconds` at
most and the kernel's socket buffer (`buffer_bytes`) absorbs what arrives meanwhile. On
loopback, two busy cores, polled every half second: 29,000 packets/s of 2,000 UDP flows
captured and decoded without loss; the capture thread alone reads about 55,000 packets/s.

The link type follows the interface's hardware type, as libpcap maps it (Ethernet, and Linux
loopback: DLT_EN10MB; tun and PPP: raw IP; Wi-Fi in monitor mode: 802.11, radiotap). A packet
socket sees every loopback packet twice, leaving and arriving: the leaving copy is skipped, as
libpcap does. The optional filter is a BPF expression (tcpdump's syntax) that libpcap compiles
(through scapy) and the kernel applies: what it excludes never reaches Python.

    SourceError (collector/sources/base.py)
    └── CaptureError   the capture cannot start: no permission (root or CAP_NET_RAW needed),
                       no such interface, a link type the decoder does not read, a filter
                       libpcap rejects. Also an OSError, which `vigie agent run` reports.

Linux only (AF_PACKET). The checkpoint is empty: traffic that passed while the agent was down
was never captured, and the connections open when it died are not reported.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

from collector.netmeta.decode import Decoder
from collector.netmeta.flows import ConnTracker
from collector.sources.base import SourceError, keep_error
from collector.sources.pcap import record_event
from detection.event import Event

log = logging.getLogger("vigie.agent")

ARPHRD_LOOPBACK = 772
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_IGNORE_OUTGOING = 23  # Linux 4.20+
SO_RCVBUFFORCE = 33  # root may exceed net.core.rmem_max
# An MTU-sized loopback frame (64 KiB plus the link header) whole.
SNAPLEN = 65_600
DECODE_CHUNK = 1024  # frames decoded between two looks at the clock
# The link types that collector/netmeta/decode.py reads, of those an interface can have.
DECODED_LINKTYPES = frozenset((1, 12, 14, 101, 105, 127))


class CaptureError(SourceError, OSError):
    """The live capture cannot start; the message names the interface and why."""


class LiveCapture:
    """Capture on `interface` (e.g. "eth0"), keeping what the BPF `bpf_filter` selects."""

    # close() ends the open connections: the agent polls once more after closing it.
    records_on_close = True

    def __init__(
        self,
        interface: str,
        bpf_filter: str | None = None,
        *,
        max_queue: int = 100_000,
        max_queue_bytes: int = 64 * 2**20,
        max_poll_seconds: float = 0.25,
        close_delay: float = 5.0,
        buffer_bytes: int = 32 * 2**20,
        read_timeout: float = 0.25,
    ) -> None:
        self.interface = interface
        self.bpf_filter = bpf_filter or None
        self.name = f"live:{interface}"
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self.max_poll_seconds = max_poll_seconds  # of decoding per poll(): see _decode()
        self.close_delay = close_delay
        self.read_timeout = read_timeout
        self.linktype, self.loopback = _linktype(interface)
        self._sock = _open(interface, self.bpf_filter, self.linktype)
        ins = self._sock.ins
        try:
            ins.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer_bytes)
        except OSError:  # without CAP_NET_ADMIN: as much as net.core.rmem_max allows
            with contextlib.suppress(OSError):
                ins.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
        if self.loopback:
            # The leaving copy of loopback packets is not even handed to the socket (older
            # kernels: skipped by the capture thread).
            with contextlib.suppress(OSError):
                ins.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        ins.settimeout(read_timeout)
        self._tracker = ConnTracker()
        self._decoder = Decoder(self._tracker)
        self._queue: collections.deque[tuple[float, bytes]] = collections.deque()
        # Bytes queued = in - out; each counter written by one thread only (no lock needed).
        self._bytes_in = self._bytes_out = 0
        self._packets = self._bytes = self._dropped = self._kernel_dropped = 0
        self._read = self._skipped = self._capture_errors = 0
        self._errors: list[str] = []
        self._next_close_check = 0.0
        self._stopping = self._closed = False
        self._thread = threading.Thread(target=self._capture, name=self.name, daemon=True)
        self._thread.start()

    # -- Source interface ------------------------------------------------------------------

    def poll(self) -> list[Event]:
        if not self._closed:
            last = self._decode(self.max_poll_seconds)
            self._count_kernel_drops()
            # With frames still queued, the clock is the last decoded frame's: a backlog must
            # not end connections whose next packets wait in the queue.
            self._end_connections(last if self._queue else time.time())
        events = [record_event(record, self.name) for record in self._tracker.drain()]
        self._read += len(events)
        return events

    def checkpoint(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        return None  # nothing to resume: see the module docstring

    def close(self) -> None:
        """Stop capturing and end every connection; the next `poll()` returns their events."""
        if self._closed:
            return
        self._stopping = True
        self._thread.join(timeout=self.read_timeout * 4 + 1)
        self._count_kernel_drops()
        self._sock.close()
        self._closed = True
        self._decode(None)
        self._tracker.flush()

    def stats(self) -> dict[str, Any]:
        try:
            oldest: float | None = self._queue[0][0]
        except IndexError:  # empty, or emptied by poll() meanwhile
            oldest = None
        return {
            "read": self._read,
            "records": self._read,
            "skipped": self._skipped + self._decoder.malformed,
            "lag_seconds": max(0.0, time.time() - oldest) if oldest is not None else 0.0,
            "packets": self._packets,
            "bytes": self._bytes,
            "dropped": self._dropped,
            "kernel_dropped": self._kernel_dropped,
            "queued": len(self._queue),
            "undecoded": self._decoder.undecoded,
            "open_connections": len(self._tracker.table),
            "linktype": self.linktype,
            "capture_errors": self._capture_errors,
            "errors": list(self._errors),
        }

    # -- the capture thread ----------------------------------------------------------------

    def _capture(self) -> None:
        sock = self._sock
        # recv_raw() without the sender's address, which says whether a loopback frame is the
        # leaving copy; same reading (VLAN tags put back, kernel timestamps).
        receive = sock._recv_raw
        ins = sock.ins
        queue = self._queue
        skip_leaving = self.loopback
        max_queue, max_bytes = self.max_queue, self.max_queue_bytes
        failing = False
        while not self._stopping:
            try:
                data, address, ts = receive(ins, SNAPLEN)
            except TimeoutError:
                continue
            except OSError as exc:  # e.g. the interface went down: retry, counted
                if self._stopping:
                    break
                self._capture_errors += 1
                if not failing:
                    log.warning("live capture on %s: %s", self.interface, exc)
                    keep_error(self._errors, f"capture: {exc}")
                failing = True
                time.sleep(self.read_timeout)
                continue
            failing = False
            if not data or (skip_leaving and address[2] == socket.PACKET_OUTGOING):
                continue
            size = len(data)
            self._packets += 1
            self._bytes += size
            if len(queue) >= max_queue or self._bytes_in - self._bytes_out + size > max_bytes:
                self._dropped += 1
                continue
            queue.append((ts if ts is not None else time.time(), data))
            self._bytes_in += size

    # -- decoding and ending connections ---------------------------------------------------

    def _decode(self, seconds: float | None) -> float:
        """Decode queued frames for about `seconds` (None: all of them); the time of the last
        one (now if none).

        The turn is bounded because the capture thread waits for the GIL meanwhile (it gets
        it back once per switch interval, 5 ms, per packet): frames pile up in the kernel's
        socket buffer (`buffer_bytes`) until the turn ends. On loopback (2 busy cores, UDP
        from 2,000 ports, the agent's 0.5 s between polls): 8 MiB and whole-queue turns lost
        a third of 27,000 packets/s in the kernel; 32 MiB and 0.25 s turns lost nothing of
        29,000 packets/s."""
        queue, frame, linktype = self._queue, self._decoder.frame, self.linktype
        deadline = None if seconds is None else time.perf_counter() + seconds
        ts, size = time.time(), 0
        while queue:
            for _ in range(min(DECODE_CHUNK, len(queue))):
                ts, data = queue.popleft()
                size += len(data)
                try:
                    frame(ts, linktype, data)
                except Exception as exc:  # a decoder bug must not lose the rest of the capture
                    if not self._skipped:
                        log.exception("live capture on %s: frame not decoded", self.interface)
                    self._skipped += 1
                    keep_error(self._errors, f"frame at {ts:.6f}: {exc!r}")
            if deadline is not None and time.perf_counter() >= deadline:
                break
        self._bytes_out += size
        return ts

    def _end_connections(self, now: float) -> None:
        tracker = self._tracker
        if now >= tracker.next_sweep:
            tracker.sweep(now)  # idle past Zeek's inactivity timeouts
        if now < self._next_close_check:
            return
        self._next_close_check = now + min(1.0, self.close_delay / 2)
        tracker.end_closed(now - self.close_delay)

    def _count_kernel_drops(self) -> None:
        """Add what the kernel dropped since the last call (it resets its counters)."""
        try:
            raw = self._sock.ins.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        except OSError:
            return
        self._kernel_dropped += struct.unpack("II", raw)[1]


def _linktype(interface: str) -> tuple[int, bool]:
    """The interface's link type as libpcap names it, and whether it is a loopback."""
    if not sys.platform.startswith("linux"):
        raise CaptureError(f"live capture on {interface}: only on Linux (AF_PACKET)")
    if not interface or "/" in interface or interface in (".", ".."):
        raise CaptureError(f"live capture: {interface!r} is not an interface name")
    try:
        hardware = int((Path("/sys/class/net") / interface / "type").read_text(encoding="ascii"))
    except (OSError, ValueError) as exc:
        raise CaptureError(f"live capture on {interface}: no such interface") from exc
    from scapy.data import ARPHRD_TO_DLT

    linktype = ARPHRD_TO_DLT.get(hardware)
    if linktype not in DECODED_LINKTYPES:
        raise CaptureError(
            f"live capture on {interface}: its link type (ARPHRD {hardware}, DLT {linktype}) "
            "is not one Vigie decodes"
        )
    return linktype, hardware == ARPHRD_LOOPBACK


def _open(interface: str, bpf_filter: str | None, linktype: int) -> Any:
    """Scapy's layer-2 listen socket on the interface, its filter attached."""
    import scapy.arch  # noqa: F401 - sets conf.L2listen for this platform
    from scapy.arch.common import compile_filter, free_filter
    from scapy.config import conf
    from scapy.error import Scapy_Exception

    if bpf_filter is not None:
        # Checked before a socket exists (libpcap's message, no socket left open).
        try:
            free_filter(compile_filter(bpf_filter, linktype=linktype))
        except (ImportError, Scapy_Exception) as exc:
            raise CaptureError(
                f"live capture on {interface}: filter {bpf_filter!r} not usable: {exc}"
            ) from exc
    try:
        return conf.L2listen(iface=interface, filter=bpf_filter)
    except PermissionError as exc:
        raise CaptureError(f"live capture on {interface} needs root or CAP_NET_RAW") from exc
    except (OSError, Scapy_Exception) as exc:
        raise CaptureError(f"live capture on {interface}: {exc}") from exc
