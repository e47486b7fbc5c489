"""A capture on loopback of one TCP port's traffic, for the tests that write what real
implementations exchanged to a pcap file: it starts once the capture socket is open and ends
once everything sent before its end was seen, with no sleep either side."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def sniffing(port: int, timeout: float = 30.0) -> Iterator[list[Any]]:
    """The packets to or from TCP `port` on lo, sent within the `with` block.

    The kernel applies the filter (other tests' traffic on lo never reaches Python, nor fills
    the socket's buffer), and at the end a datagram to a port of this helper's own is sent
    after the exchange: once the capture has it, it has every packet sent before it."""
    from scapy.all import AsyncSniffer

    started, probed = threading.Event(), threading.Event()
    packets: list[Any] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        probe_port = probe.getsockname()[1]

        def keep(packet: Any) -> None:
            if packet.haslayer("TCP"):
                packets.append(packet)
            else:
                probed.set()

        sniffer = AsyncSniffer(
            iface="lo",
            filter=f"tcp port {port} or (udp and dst host 127.0.0.1 and dst port {probe_port})",
            prn=keep,
            store=False,
            started_callback=started.set,
        )
        sniffer.start()
        try:
            assert started.wait(timeout), "the capture did not start"
            yield packets
            probe.sendto(b"probe", ("127.0.0.1", probe_port))
            assert probed.wait(timeout), "the capture did not see its probe"
        finally:
            sniffer.stop()
