"""HL7 v2 over MLLP, captured on loopback between real implementations (python-hl7's MLLP
client and server): `vigie netmeta` gives each message's header and acknowledgement, and none
of the invented patient's data."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path

import hl7
import pytest
from hl7.mllp import open_hl7_connection, start_hl7_server

from collector.netmeta import Hl7Record, extract
from tests.collector.sniffing import sniffing

PATIENT = ("DUPONTEL", "JEANNETTE", "8801017512345", "19800101")
MESSAGES = [
    "MSH|^~\\&|LABO|CHU-DEMO|DPI|CHU-DEMO|20261120100000||ORU^R01|CTRL0001|P|2.5\r"
    "PID|1||8801017512345^^^CHU-DEMO^PI||DUPONTEL^JEANNETTE||19800101|F\r"
    "OBR|1||LAB123|GLU^Glucose\rOBX|1|NM|GLU^Glucose||5.4|mmol/L",
    "MSH|^~\\&|ADT|CHU-DEMO|PACS|IMAGERIE|20261120100500||ADT^A01|CTRL0002|P|2.5\r"
    "PID|1||8801017512345^^^CHU-DEMO^PI||DUPONTEL^JEANNETTE||19800101|F\r"
    "PV1|1|I|CARDIO^101^1",
]


def _serve(port_box: list[int], ready: threading.Event, stop: threading.Event) -> None:
    async def handle(reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
        try:
            while not reader.at_eof():
                message = await reader.readmessage()
                writer.writemessage(message.create_ack())
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await start_hl7_server(handle, host="127.0.0.1", port=0)
        port_box.append(server.sockets[0].getsockname()[1])
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        server.close()

    asyncio.run(main())


async def _send(port: int) -> list[str]:
    reader, writer = await open_hl7_connection("127.0.0.1", port)
    acks = []
    for text in MESSAGES:
        writer.writemessage(hl7.parse(text))
        await writer.drain()
        acks.append(str(await reader.readmessage()))
    writer.close()
    await writer.wait_closed()
    return acks


@pytest.mark.skipif(os.geteuid() != 0, reason="capturing on loopback needs root (raw sockets)")
def test_mllp_capture_gives_headers_and_no_patient_data(tmp_path: Path) -> None:
    from scapy.all import wrpcap

    port_box: list[int] = []
    ready, stop = threading.Event(), threading.Event()
    server = threading.Thread(target=_serve, args=(port_box, ready, stop), daemon=True)
    server.start()
    assert ready.wait(10)
    port = port_box[0]
    with sniffing(port) as packets:
        acks = asyncio.run(_send(port))
        stop.set()  # the server's side of the connection closed within the capture too
        server.join(timeout=10)
    assert not server.is_alive()
    assert len(acks) == 2
    capture = tmp_path / "mllp.pcap"
    wrpcap(str(capture), packets)

    records = list(extract([capture]))
    hl7_records = [r for r in records if isinstance(r, Hl7Record)]
    sent = [r for r in hl7_records if r.is_orig]
    answered = [r for r in hl7_records if not r.is_orig]
    assert [(r.message_type, r.trigger_event) for r in sent] == [("ORU", "R01"), ("ADT", "A01")]
    assert [r.sending_application for r in sent] == ["LABO", "ADT"]
    assert [r.receiving_facility for r in sent] == ["CHU-DEMO", "IMAGERIE"]
    assert [r.control_id for r in sent] == ["CTRL0001", "CTRL0002"]
    assert [(r.message_type, r.ack_code) for r in answered] == [("ACK", "AA"), ("ACK", "AA")]
    assert all(r.resp_p == port for r in hl7_records)
    conns = [r for r in records if r.path == "conn"]
    assert [c.service for c in conns] == ["hl7"]
    text = json.dumps([r.zeek() for r in records] + [r.ecs() for r in records])
    assert not [p for p in PATIENT if p in text]


def test_mllp_frames_across_segments_retransmissions_and_gaps() -> None:
    from collector.netmeta.hl7 import MllpStream, header

    frame = b"\x0b" + MESSAGES[0].encode() + b"\x1c\x0d"
    stream = MllpStream(1000)
    assert stream.feed(1000, frame[:30]) == []
    assert stream.feed(1000, frame[:30]) == []  # the same segment again: skipped
    (message,) = stream.feed(1030, frame[30:])
    found = header(message)
    assert found is not None
    assert (found.message_type, found.sending_facility) == ("ORU", "CHU-DEMO")
    # A lost segment: the frame in progress is dropped, the next one is read whole.
    after = 1000 + len(frame)
    assert stream.feed(after, frame[:40]) == []
    assert stream.feed(after + 60, frame[60:]) == []
    assert len(stream.feed(after + len(frame) + 5, frame)) == 1
    assert header(b"not hl7 at all") is None
