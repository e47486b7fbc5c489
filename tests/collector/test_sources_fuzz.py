"""The agent's log sources under damaged input: a seeded fuzzing run over the real corpora.

Captures are fuzzed in `test_netmeta_robust.py`; here the log sources are: FileTail (a followed
file being appended), SyslogListener (UDP datagrams and TCP streams on a real loopback
listener) and WatchedFolder (EVTX and JSON exports dropped in a folder). The inputs come from
../shared/corpora (EVTX attack samples, SigmaHQ regression samples in EVTX and JSON, Zeek's
text logs) and are damaged deterministically: truncation, byte flips, NUL and 0xFF runs,
duplicated and removed chunks, very long lines, invalid UTF-8, garbage JSON, damaged EVTX
chunk headers and records.

What each test asserts, whatever the damage: no exception leaves `poll()`; a well-formed
record sent after the garbage is still delivered; bad records are counted (`skipped`,
`failed`); no well-formed record sent between bad ones is lost; and every event delivered can
go on through the agent (ECS document, spool serialisation, Sigma view).
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from collector.sources.syslog_listener import SyslogListener
from collector.sources.tail import FileTail
from collector.sources.winlog import WatchedFolder
from detection.event import Event
from detection.sources.evtx import read_evtx
from detection.sources.jsonlog import EPOCH
from detection.sources.stats import ReadStats
from tests.collector.test_agent_delivery import wait_for
from tests.conftest import corpus_path

pytestmark = pytest.mark.corpus

SEED = 20261126
# Mutations per test: the whole file takes a few seconds (about 10 s on 2 cores).
TAIL_ROUNDS = 800
TAIL_JSON_ROUNDS = 300
EVTX_ROUNDS = 1200
JSON_EXPORT_ROUNDS = 800
DATAGRAMS = 1500
TCP_MESSAGES = 1000
EVTX_CHUNK = 65536
EVTX_HEADER = 4096
_INVALID_UTF8 = (
    b"\xc3\x28",  # a lead byte without its continuation
    b"\xa0\xa1",  # continuation bytes alone
    b"\xe2\x28\xa1",
    b"\xf0\x28\x8c\xbc",
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xc0\xaf",  # an overlong encoding
    b"\xf8\x88\x80\x80\x80",  # a five-byte sequence
    b"\xff\xfe",
)
# JSON values a broken exporter or a hostile sender may put where a field is expected.
_GARBAGE_VALUES: tuple[Any, ...] = (
    None,
    True,
    [],
    {},
    "",
    -1,
    10**30,  # beyond 64 bits
    1e308,
    -(2**63),
    "\udcff",  # a lone surrogate (written as the escape \udcff)
    "\x00\x01",
    "9" * 400,
    [[[[[]]]]],
    {"#text": None, "#attributes": []},
    {"#attributes": {"SystemTime": 1e20, "Name": 5}},
)
_GARBAGE_LINES = (
    b"{",
    b"}",
    b"[]",
    b"null",
    b'"just a string"',
    b'{"a": }',
    b'{"Event": []}',
    b'{"Event": {"System": null}}',
    b'{"Event": {"System": {"EventID": {"#text": []}}}}',
    b'{"log": "not an object", "message": 1}',
    b'{"event_record_id": 1, "data": "{\\"Event\\": 7}"}',
    b"[" * 3000 + b"]" * 3000,
    b'{"a":' * 1100 + b"1" + b"}" * 1100,
    b'{"a":' * 300 + b"1" + b"}" * 300,  # read by orjson, too deep for its writer
    b'{"a": ' + b"[" * 900 + b"]" * 900 + b"}",
    b'{"Event": {"System": {"EventID": 1}, "UserData": '
    + b'{"u":' * 995
    + b"1"
    + b"}" * 995
    + b"}}",
    b'{"Event": {"System": {"EventID": 1, "TimeCreated": {"#attributes": {"SystemTime": 1e20}}}}}',
    b'{"Event": {"System": {"EventID": 1, "TimeCreated": '
    b'{"#attributes": {"SystemTime": -99999999999999}}}}}',
    b'{"x": NaN, "y": Infinity, "z": -Infinity}',
    b'{"s": "\\ud800", "t": "\\udfff\\ud800"}',
    b'{"@timestamp": 1e400, "ts": "-99999999999999999999"}',
    b'{"big": 123456789012345678901234567890123}',
    b'Record 12\n{"Event": {"System": {"EventID": 1',
)


# -- corpora -------------------------------------------------------------------------------


def _evtx_files() -> list[Path]:
    attack = corpus_path("evtx", "attack-samples")
    regression = corpus_path("sigma", "regression")
    return sorted(attack.rglob("*.evtx")) + sorted(regression.rglob("*.evtx"))


def _renderings() -> list[dict[str, Any]]:
    """SigmaHQ's regression samples in their JSON rendering (files of one or more events)."""
    out = []
    decoder = json.JSONDecoder()
    for path in sorted(corpus_path("sigma", "regression").rglob("*.json")):
        text, pos = path.read_text(encoding="utf-8"), 0
        while text[pos:].strip():
            value, pos = decoder.raw_decode(text, len(text) - len(text[pos:].lstrip()))
            out.append(value)
    return out


def _text_lines() -> list[bytes]:
    """Log-like text: the lines of Zeek's own logs (TSV with `#` header lines)."""
    lines: list[bytes] = []
    for path in sorted(corpus_path("pcap", "zeek").rglob("*.log")):
        lines += [line for line in path.read_bytes().split(b"\n") if line.strip()]
    return lines


def _syslog_lines(
    rng: random.Random, text: list[bytes], renderings: list[dict[str, Any]]
) -> list[bytes]:
    """Corpus lines as senders write them: RFC 5424, RFC 3164, bare, and JSON objects."""
    out: list[bytes] = []
    for number, line in enumerate(rng.sample(text, 400)):
        body = line.replace(b"\t", b" ")
        match number % 4:
            case 0:
                out.append(b"<134>1 2024-05-01T10:00:00.123Z pacs-01 zeek 42 CONN - " + body)
            case 1:
                out.append(b"<38>May  1 10:00:01 ris-02 zeek[77]: " + body)
            case 2:
                out.append(line)
            case _:
                out.append(b"<13>" + body)
    out += [orjson.dumps(r) for r in rng.sample(renderings, 40)]
    rng.shuffle(out)
    return out


# -- mutations -----------------------------------------------------------------------------


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))]


def _flip(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, max(1, len(buf) // 200))):
        buf[rng.randrange(len(buf))] = rng.randrange(256)
    return bytes(buf)


def _insert(rng: random.Random, data: bytes, piece: bytes) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + piece + data[at:]


def _nul_run(rng: random.Random, data: bytes) -> bytes:
    return _insert(rng, data, b"\x00" * rng.randint(1, 600))


def _ff_run(rng: random.Random, data: bytes) -> bytes:
    return _insert(rng, data, b"\xff" * rng.randint(1, 600))


def _duplicate(rng: random.Random, data: bytes) -> bytes:
    start = rng.randrange(len(data))
    piece = data[start : start + rng.randint(1, 4096)]
    return _insert(rng, data, piece)


def _remove(rng: random.Random, data: bytes) -> bytes:
    start = rng.randrange(len(data))
    return data[:start] + data[start + rng.randint(1, 4096) :]


def _long_line(rng: random.Random, data: bytes) -> bytes:
    return _insert(rng, data, bytes([rng.choice(b"Ax{ ")]) * rng.randint(5_000, 150_000))


def _invalid_utf8(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.randint(1, 8)):
        data = _insert(rng, data, rng.choice(_INVALID_UTF8))
    return data


def _garbage_json(rng: random.Random, data: bytes) -> bytes:
    """JSON that parses but holds the wrong types, or does not parse at all."""
    try:
        value = json.loads(data)
    except ValueError:
        value = None
    if isinstance(value, dict) and rng.random() < 0.6:
        _poke(rng, value)
        return json.dumps(value, indent=rng.choice([None, 2])).encode()
    return _insert(rng, data, b"\n" + rng.choice(_GARBAGE_LINES) + b"\n")


# Where a Windows rendering's reader looks first.
_TARGETS = (
    ("Event",),
    ("Event", "System"),
    ("Event", "System", "EventID"),
    ("Event", "System", "TimeCreated"),
    ("Event", "System", "TimeCreated", "#attributes", "SystemTime"),
    ("Event", "System", "Provider", "#attributes"),
    ("Event", "System", "Execution"),
    ("Event", "EventData"),
    ("Event", "UserData"),
)


def _poke(rng: random.Random, doc: dict[str, Any]) -> None:
    """Replace a few values of a nested document with garbage: where its reader looks, and
    at random places."""
    node: Any = doc
    *parents, last = rng.choice(_TARGETS)
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node[last] = rng.choice(_GARBAGE_VALUES + (10**20, 1e20, -1e18, float("nan")))
    for _ in range(rng.randint(0, 3)):
        node = doc
        while isinstance(node, dict) and node:
            key = rng.choice(sorted(node))
            if not isinstance(node[key], dict) or rng.random() < 0.3:
                node[key] = rng.choice(_GARBAGE_VALUES)
                break
            node = node[key]


Mutation = Callable[[random.Random, bytes], bytes]
TEXT_MUTATIONS: dict[str, Mutation] = {
    "truncate": _truncate,
    "flip": _flip,
    "nul_run": _nul_run,
    "ff_run": _ff_run,
    "duplicate": _duplicate,
    "remove": _remove,
    "long_line": _long_line,
    "invalid_utf8": _invalid_utf8,
    "garbage_json": _garbage_json,
}


def _record_offsets(data: bytes) -> list[int]:
    """Where the records of an EVTX file start (their `**\\0\\0` signature)."""
    offsets, at = [], data.find(b"**\x00\x00", EVTX_HEADER)
    while at >= 0:
        offsets.append(at)
        at = data.find(b"**\x00\x00", at + 4)
    return offsets


def _evtx_chunk_header(rng: random.Random, data: bytes) -> bytes:
    chunks = range(EVTX_HEADER, len(data), EVTX_CHUNK)
    buf = bytearray(data)
    base = rng.choice(chunks)
    # Magic, record numbers, header size and offsets, checksums; then the string table.
    for _ in range(rng.randint(1, 6)):
        buf[base + rng.randrange(512)] = rng.randrange(256)
    return bytes(buf)


def _evtx_record(rng: random.Random, data: bytes) -> bytes:
    offsets = _record_offsets(data) or [EVTX_HEADER + 512]
    buf = bytearray(data)
    at = rng.choice(offsets)
    match rng.randrange(4):
        case 0:  # the size
            struct.pack_into("<I", buf, at + 4, rng.choice([0, 1, 24, 0xFFFF, 0xFFFFFFFF]))
        case 1:  # the signature
            buf[at : at + 4] = b"\xff\xff\xff\xff"
        case 2:  # the BinXML body
            for _ in range(rng.randint(1, 12)):
                buf[min(len(buf) - 1, at + 24 + rng.randrange(200))] = rng.randrange(256)
        case _:  # the copy of the size at the record's end
            size = struct.unpack_from("<I", buf, at + 4)[0]
            if at + size <= len(buf) and size >= 8:
                struct.pack_into("<I", buf, at + size - 4, rng.randrange(2**32))
    return bytes(buf)


def _evtx_file_header(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        buf[rng.randrange(128)] = rng.randrange(256)
    return bytes(buf)


EVTX_MUTATIONS: dict[str, Mutation] = {
    "truncate": _truncate,
    "flip": _flip,
    "nul_run": _nul_run,
    "ff_run": _ff_run,
    "duplicate": _duplicate,
    "remove": _remove,
    "chunk_header": _evtx_chunk_header,
    "record": _evtx_record,
    "file_header": _evtx_file_header,
}
# Damage that must show in the counters when a file gives fewer records than its original:
# in an EVTX file, any (whatever is cut or shifted leaves a chunk incomplete); in a JSON
# export, any but a removed chunk (a whole record taken out leaves no trace).
EVTX_LOSSES_SHOW = set(EVTX_MUTATIONS)
JSON_LOSSES_SHOW = set(TEXT_MUTATIONS) - {"remove"}


# -- helpers -------------------------------------------------------------------------------


def _check_deliverable(events: list[Event]) -> None:
    """What the agent does with an event next (ECS document, spool, Sigma) must work."""
    for event in events:
        orjson.dumps(event.to_ecs())
        event.sigma_view()


def _line_records(data: bytes, max_line: int, ends: bytes = b"\n") -> int:
    """Records in newline-framed `data`: its lines, blank ones aside unless over-long."""
    for end in ends[1:]:
        data = data.replace(bytes([end]), ends[:1])
    return sum(1 for line in data.split(ends[:1]) if line.strip() or len(line) > max_line)


def _report(name: str, counts: dict[str, int], stats: dict[str, Any]) -> None:
    shown = {k: v for k, v in stats.items() if isinstance(v, int)}
    print(f"{name}: seed {SEED}, mutations {dict(sorted(counts.items()))}, stats {shown}")


# -- FileTail ------------------------------------------------------------------------------


def test_tail_survives_damaged_appends(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    lines = _syslog_lines(rng, _text_lines(), _renderings())
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    tail = FileTail([str(tmp_path / "*.log")], rotate_wait=0, max_line_bytes=64 * 1024)
    counts: dict[str, int] = {}
    sentinels: list[int] = []
    accounted = 0
    for round_ in range(TAIL_ROUNDS):
        kind = rng.choice(sorted(TEXT_MUTATIONS))
        counts[kind] = counts.get(kind, 0) + 1
        block = b"\n".join(rng.sample(lines, rng.randint(1, 12)))
        damaged = TEXT_MUTATIONS[kind](rng, block)
        sentinel = f"<13>1 2024-05-01T10:00:00Z fuzz vigie - - - sentinel {round_}".encode()
        data = damaged + b"\n" + sentinel + b"\n"
        before = tail.stats()
        # Written in two pieces with a poll between: a line cut by the writer's buffer.
        cut = rng.randrange(len(data))
        events: list[Event] = []
        with log.open("ab") as fh:
            fh.write(data[:cut])
        events += tail.poll()
        with log.open("ab") as fh:
            fh.write(data[cut:])
        events += tail.poll()
        _check_deliverable(events)
        sentinels += [
            int(str(e.fields["message"]).rsplit(" ", 1)[1])
            for e in events
            if str(e.fields.get("message", "")).startswith("<13>1 2024-05-01T10:00:00Z fuzz")
        ]
        after = tail.stats()
        # Every line is an event or a counted bad record (blank lines aside).
        expected = _line_records(data, 64 * 1024)
        got = (after["read"] - before["read"]) + (after["skipped"] - before["skipped"])
        assert got == expected, (round_, kind, got, expected, after["errors"][-3:])
        assert len(events) == after["read"] - before["read"]
        accounted += got
    stats = tail.stats()
    _report("tail", counts, stats)
    assert sentinels == list(range(TAIL_ROUNDS))
    assert stats["skipped"] > 0
    assert stats["files"] == 1
    assert stats["truncations"] == 0
    # Resumed from its checkpoint, nothing is read again.
    state = json.loads(json.dumps(tail.checkpoint()))
    tail.close()
    again = FileTail([str(tmp_path / "*.log")], rotate_wait=0)
    again.restore(state)
    assert again.poll() == []
    again.close()
    assert accounted > 1000


def test_tail_json_parser_counts_every_bad_line(tmp_path: Path) -> None:
    """`parser="json"`: a line that is not a JSON object is a counted bad record."""
    rng = random.Random(SEED + 1)
    renderings = [orjson.dumps(r) for r in _renderings()]
    log = tmp_path / "winlog.jsonl"
    log.write_bytes(b"")
    tail = FileTail([str(log)], parser="json", rotate_wait=0)
    counts: dict[str, int] = {}
    for round_ in range(TAIL_JSON_ROUNDS):
        kind = rng.choice(sorted(TEXT_MUTATIONS))
        counts[kind] = counts.get(kind, 0) + 1
        block = b"\n".join(rng.sample(renderings, rng.randint(1, 5)))
        good = b'{"sentinel": %d}' % round_
        data = TEXT_MUTATIONS[kind](rng, block) + b"\n" + good + b"\n"
        before = tail.stats()
        with log.open("ab") as fh:
            fh.write(data)
        events = tail.poll()
        _check_deliverable(events)
        assert events[-1].fields["sentinel"] == round_
        after = tail.stats()
        expected = _line_records(data, tail.max_line_bytes)
        got = (after["read"] - before["read"]) + (after["skipped"] - before["skipped"])
        assert got == expected, (round_, kind, got, expected, after["errors"][-3:])
    _report("tail json", counts, tail.stats())
    tail.close()


# -- WatchedFolder -------------------------------------------------------------------------


def _drain(source: WatchedFolder) -> list[Event]:
    events: list[Event] = []
    for _ in range(100):
        found = source.poll()
        if not found and source.stats()["files_done"] == len(list(source.folder.iterdir())):
            break
        events += found
    return events


def _sentinel_rendering(number: int) -> bytes:
    return orjson.dumps(
        {
            "Event": {
                "System": {
                    "EventID": 4625,
                    "EventRecordID": number,
                    "Channel": "Security",
                    "TimeCreated": {"#attributes": {"SystemTime": "2024-05-01T10:00:00Z"}},
                },
                "EventData": {"TargetUserName": "sentinel"},
            }
        }
    )


def _pristine_counts(files: list[Path]) -> dict[Path, int]:
    counts = {}
    for path in files:
        stats = ReadStats()
        counts[path] = sum(1 for _ in read_evtx(path, stats))
        assert stats.records_skipped == 0, path
    return counts


def _fuzz_folder(
    tmp_path: Path,
    rng: random.Random,
    inputs: list[tuple[str, bytes, int]],
    mutations: dict[str, Mutation],
    rounds: int,
    losses_show: set[str],
) -> tuple[dict[str, int], dict[str, Any]]:
    """Drop `rounds` damaged copies of `inputs` (suffix, bytes, records) in a watched folder,
    each with a well-formed export after it; check what comes out of each."""
    folder = tmp_path / "exports"
    folder.mkdir()
    source = WatchedFolder(folder, settle_seconds=0, max_events=500)
    counts: dict[str, int] = {}
    for round_ in range(rounds):
        suffix, data, records = rng.choice(inputs)
        kind = rng.choice(sorted(mutations))
        counts[kind] = counts.get(kind, 0) + 1
        damaged = folder / f"{round_:04d}-damaged{suffix}"
        damaged.write_bytes(mutations[kind](rng, data))
        (folder / f"{round_:04d}-sentinel.jsonl").write_bytes(_sentinel_rendering(round_) + b"\n")
        before = source.stats()
        events = _drain(source)
        after = source.stats()
        _check_deliverable(events)
        from_damaged = [e for e in events if e.source == str(damaged)]
        sentinel = [e for e in events if e.source != str(damaged)]
        assert [e.fields["winlog"]["record_id"] for e in sentinel] == [round_], (round_, kind)
        assert after["read"] - before["read"] == len(events)
        counted = (after["skipped"] - before["skipped"]) + (after["failed"] - before["failed"])
        if kind in losses_show and len(from_damaged) < records:
            # Records were lost to the damage: that shows in the counters.
            assert counted > 0, (round_, kind, damaged.name, len(from_damaged), records)
        damaged.unlink()
        (folder / f"{round_:04d}-sentinel.jsonl").unlink()
    stats = source.stats()
    source.close()
    return counts, stats


def test_watched_folder_survives_damaged_evtx(tmp_path: Path) -> None:
    rng = random.Random(SEED + 2)
    files = rng.sample(_evtx_files(), 40)
    pristine = _pristine_counts(files)
    inputs = [(".evtx", path.read_bytes(), pristine[path]) for path in files]
    counts, stats = _fuzz_folder(
        tmp_path, rng, inputs, EVTX_MUTATIONS, EVTX_ROUNDS, EVTX_LOSSES_SHOW
    )
    _report("winlog evtx", counts, stats)
    assert stats["skipped"] > 0
    assert stats["failed"] > 0


def test_watched_folder_survives_damaged_json_exports(tmp_path: Path) -> None:
    rng = random.Random(SEED + 3)
    renderings = _renderings()
    inputs: list[tuple[str, bytes, int]] = []
    for _ in range(30):  # JSONL exports, pretty-printed arrays, and evtx_dump's layout
        sample = rng.sample(renderings, rng.randint(1, 6))
        compact = [orjson.dumps(r) for r in sample]
        pretty = [json.dumps(r, indent=2).encode() for r in sample]
        inputs.append((".jsonl", b"\n".join(compact) + b"\n", len(sample)))
        inputs.append((".json", b"[" + b",\n".join(pretty) + b"]", len(sample)))
        records = b"".join(b"Record %d\n" % n + r + b"\n" for n, r in enumerate(pretty, 1))
        inputs.append((".json", records, len(sample)))
    counts, stats = _fuzz_folder(
        tmp_path, rng, inputs, TEXT_MUTATIONS, JSON_EXPORT_ROUNDS, JSON_LOSSES_SHOW
    )
    _report("winlog json", counts, stats)
    assert stats["skipped"] > 0


# -- SyslogListener ------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[SyslogListener]:
    source = SyslogListener("127.0.0.1", 0, 0, max_message=16 * 1024)
    yield source
    source.close()


def _collect(source: SyslogListener, until: Callable[[list[Event]], bool]) -> list[Event]:
    events: list[Event] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        events += source.poll()
        if until(events):
            break
        time.sleep(0.005)
    return events


def _accounted(source: SyslogListener, total: int) -> Callable[[list[Event]], bool]:
    return lambda _events: source.stats()["read"] + source.stats()["skipped"] >= total


def _received(source: SyslogListener) -> int:
    """Messages the listener took in: queued, dropped at its bound, or polled."""
    stats = source.stats()
    return int(stats["queued"] + stats["dropped"] + stats["read"] + stats["skipped"])


def _nonblank(frame: bytes) -> bool:
    return bool(frame.strip(b"\r\n\x00 "))


def _damaged_messages(
    rng: random.Random, count: int, *, cap: int = 8000
) -> tuple[list[bytes], dict[str, int]]:
    """`count` damaged syslog messages of at most `cap` bytes, never empty."""
    lines = _syslog_lines(rng, _text_lines(), _renderings())
    counts: dict[str, int] = {}
    out = []
    for _ in range(count):
        kind = rng.choice(sorted(TEXT_MUTATIONS))
        counts[kind] = counts.get(kind, 0) + 1
        # Never empty: a zero length is no octet count (RFC 6587), tested on its own below.
        out.append(TEXT_MUTATIONS[kind](rng, rng.choice(lines))[:cap] or b"-")
    return out, counts


def _send_in_pieces(rng: random.Random, port: int, stream: bytes) -> socket.socket:
    """One TCP connection sending `stream` in pieces of any size: frames cut anywhere."""
    conn = socket.create_connection(("127.0.0.1", port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pos = 0
    while pos < len(stream):
        step = rng.randint(1, 9000)
        conn.sendall(stream[pos : pos + step])
        pos += step
        if rng.random() < 0.1:
            time.sleep(0.002)
    return conn


def _names(events: list[Event]) -> list[Any]:
    return [e.fields.get("process", {}).get("name") for e in events]


def test_syslog_udp_damaged_datagrams(listener: SyslogListener) -> None:
    rng = random.Random(SEED + 4)
    messages, counts = _damaged_messages(rng, DATAGRAMS)
    datagrams: list[bytes] = []
    good = 0
    for number, message in enumerate(messages):
        datagrams.append(message)
        if number % 20 == 0:  # interleaved well-formed messages
            datagrams.append(b"<14>May  1 10:00:00 fuzz good: %d" % number)
            good += 1
    # The kernel drops datagrams its socket buffer cannot hold, however busy the machine: sent
    # in batches that fit in a quarter of it, each once the listener has taken in the one
    # before (queued, or dropped and counted), nothing is lost on the way, and a datagram the
    # listener received and then lost stops the test.
    budget = listener.stats()["udp_receive_buffer"] // 4
    address = ("127.0.0.1", listener.udp_port or 0)
    total = batch = 0

    def caught_up() -> bool:
        return _received(listener) == total

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for datagram in datagrams:
            cost = 2 * len(datagram) + 1024  # what the kernel charges: the data and its buffers
            if batch + cost > budget:
                wait_for(caught_up, timeout=30)
                batch = 0
            sender.sendto(datagram, address)
            batch += cost
            total += _nonblank(datagram)  # a blank datagram is no message: not counted
    wait_for(caught_up, timeout=30)
    assert total == sum(map(_nonblank, messages)) + good
    events = _collect(listener, _accounted(listener, total))
    _check_deliverable(events)
    stats = listener.stats()
    _report("syslog udp", counts, stats)
    assert stats["read"] + stats["skipped"] == total
    assert stats["dropped"] == 0
    assert stats["skipped"] > 0
    assert _names(events).count("good") == good


def test_syslog_tcp_newline_stream_with_damaged_lines(listener: SyslogListener) -> None:
    rng = random.Random(SEED + 5)
    messages, counts = _damaged_messages(rng, TCP_MESSAGES, cap=200_000)
    stream = b"<13>1 2024-05-01T10:00:00Z fuzz start - - - opening line\n"
    stream += b"\n".join(messages) + b"\n<13>1 2024-05-01T10:00:00Z fuzz last - - - sentinel\n"
    # Frames end at a newline or a NUL; an over-long one is counted once.
    frames = _line_records(stream, listener.max_message, b"\n\x00")
    assert any(len(m) > listener.max_message for m in messages)
    conn = _send_in_pieces(rng, listener.tcp_port or 0, stream)
    events = _collect(listener, _accounted(listener, frames))
    conn.close()
    _check_deliverable(events)
    stats = listener.stats()
    _report("syslog tcp newline", counts, stats)
    assert stats["read"] + stats["skipped"] == frames, stats["errors"][-3:]
    assert _names(events)[-1] == "last"
    assert any("line over" in error for error in stats["errors"]) or stats["skipped"] > 0


def _octet(message: bytes, length: int | None = None) -> bytes:
    return b"%d %s" % (len(message) if length is None else length, message)


_BROKEN_HEADERS = (
    b"abc <13>no length here",
    b"99999999 <13>a length over max_message",
    b"0 <13>a zero length",
    b"-5 <13>a negative length",
    b"12x <13>a length with a letter",
    b"\xff\xfe <13>binary where the length is due",
)


def test_syslog_tcp_octet_stream_with_broken_counts(listener: SyslogListener) -> None:
    """Damaged messages in well-counted frames, and broken counts between them (with or
    without a newline after): each broken one counted, the next frame delivered."""
    rng = random.Random(SEED + 6)
    messages, counts = _damaged_messages(rng, TCP_MESSAGES)
    stream = _octet(b"<13>1 2024-05-01T10:00:00Z fuzz start - - - opening frame")
    read_or_skipped, incidents = 1, 0
    for number, message in enumerate(messages):
        stream += _octet(message)
        read_or_skipped += _nonblank(message)
        if number % 8 != 5:
            continue
        incidents += 1
        good = b"<14>1 2024-05-01T10:00:00Z fuzz good - - - after broken %d ok" % number
        if rng.random() < 0.3:
            # A count too short: its frame is delivered cut, what is left is counted.
            cut = good.index(b"fuzz")
            stream += _octet(good, cut)
            read_or_skipped += 2
        else:
            stream += rng.choice(_BROKEN_HEADERS) + rng.choice([b"\n", b""])
            read_or_skipped += 1
        stream += _octet(good)
        read_or_skipped += 1
    stream += _octet(b"<13>1 2024-05-01T10:00:00Z fuzz last - - - sentinel")
    read_or_skipped += 1
    conn = _send_in_pieces(rng, listener.tcp_port or 0, stream)
    events = _collect(listener, _accounted(listener, read_or_skipped))
    conn.close()
    _check_deliverable(events)
    stats = listener.stats()
    _report("syslog tcp octet", {**counts, "broken": incidents}, stats)
    assert stats["read"] + stats["skipped"] == read_or_skipped, stats["errors"][-3:]
    names = _names(events)
    assert names.count("good") == incidents  # every frame after a broken one is delivered
    assert names[-1] == "last"


def test_syslog_tcp_peers_that_disconnect_mid_frame(listener: SyslogListener) -> None:
    rng = random.Random(SEED + 7)
    port = listener.tcp_port or 0
    cut_frames = 0
    for number in range(40):
        frame = _octet(b"<13>1 2024-05-01T10:00:00Z fuzz cut - - - message %d" % number)
        conn = socket.create_connection(("127.0.0.1", port))
        conn.sendall(frame[: rng.randint(len(str(len(frame))) + 2, len(frame) - 1)])
        if number % 2:  # a reset rather than an orderly close
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        cut_frames += 1
    # Clients that connect and leave without a byte, or with only part of a length.
    for partial in (b"", b"1", b"12", b"\n\n"):
        conn = socket.create_connection(("127.0.0.1", port))
        conn.sendall(partial)
        conn.close()
    # Many at once, each cut: the listener serves them all and keeps no connection.
    peers: list[socket.socket] = []

    def cut_peer() -> None:
        peer = socket.create_connection(("127.0.0.1", port))
        peers.append(peer)
        peer.sendall(b"500 <13>x")

    threads = [threading.Thread(target=cut_peer) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for peer in peers:
        peer.close()
    cut_frames += 10
    after = socket.create_connection(("127.0.0.1", port))
    after.sendall(_octet(b"<13>1 2024-05-01T10:00:00Z fuzz last - - - still served"))
    events = _collect(
        listener, lambda ev: len(ev) >= 3 and listener.stats()["skipped"] >= cut_frames
    )
    after.close()
    deadline = time.monotonic() + 10
    while listener.stats()["connections"] and time.monotonic() < deadline:
        time.sleep(0.01)
    stats = listener.stats()
    _report("syslog tcp cut", {"cut": cut_frames}, stats)
    # A peer that sent digits only and no newline sent a message in newline framing.
    assert [e.fields.get("process", {}).get("name") for e in events].count("last") == 1
    assert sorted(e.fields["message"] for e in events if "process" not in e.fields) == ["1", "12"]
    assert stats["skipped"] == cut_frames
    assert stats["connections"] == 0


# -- what the fuzzing run found, one test each -----------------------------------------------

DEEP_RENDERING = (
    b'{"Event": {"System": {"EventID": 1}, "UserData": ' + b'{"u":' * 995 + b"1" + b"}" * 995
) + b"}}"
FAR_FUTURE = (
    b'{"Event": {"System": {"EventID": 4625, "TimeCreated": '
    b'{"#attributes": {"SystemTime": 1e20}}}}}'
)


def test_tail_goes_past_json_lines_its_parsers_could_not_take(tmp_path: Path) -> None:
    # Each of these raised out of poll(), before the line's offset was committed: the tail
    # then met it again at every poll, and read nothing more of the file.
    log = tmp_path / "app.log"
    log.write_bytes(
        DEEP_RENDERING  # RecursionError (UserData flattened level by level)
        + b"\n"
        + b'{"a":' * 300  # read by orjson, but too deep for the spool's writer
        + b"1"
        + b"}" * 300
        + b"\n"
        + FAR_FUTURE  # OverflowError (a number of seconds beyond year 9999)
        + b'\n{"log": "GET / 200", "status": 200}\n'  # to_ecs(): 'str' is not a mapping
        + b"after the bad lines\n"
    )
    tail = FileTail([str(log)], rotate_wait=0)
    events = tail.poll()
    _check_deliverable(events)
    assert [e.fields.get("message") for e in events][-1] == "after the bad lines"
    assert events[0].fields["winlog"]["event_id"] == 4625  # its time is when it was read
    assert events[1].to_ecs()["log"]["value"] == "GET / 200"
    stats = tail.stats()
    assert (stats["read"], stats["skipped"]) == (3, 2)
    assert all("nested deeper than 64" in error for error in stats["errors"])
    tail.close()


def _parser_fails_on_boom(monkeypatch: pytest.MonkeyPatch, module: Any) -> None:
    """The source module's parser raises on a line saying "boom": a parser's bug."""
    parse = module.parse_text

    def failing(text: str, *args: Any, **kw: Any) -> Event:
        if "boom" in text:
            raise KeyError("a parser's bug")
        return parse(text, *args, **kw)

    monkeypatch.setattr(module, "parse_text", failing)


def test_tail_counts_a_parser_error_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever a parser raises is one counted bad line, never a stuck file.
    import collector.sources.tail as tail_module

    _parser_fails_on_boom(monkeypatch, tail_module)
    log = tmp_path / "app.log"
    log.write_bytes(b"line 1\nboom\nline 2\n")
    tail = FileTail([str(log)], rotate_wait=0)
    assert [e.fields["message"] for e in tail.poll()] == ["line 1", "line 2"]
    assert tail.stats()["skipped"] == 1
    assert "parser error: KeyError" in tail.stats()["errors"][0]
    tail.close()


def test_tail_refuses_an_over_long_line_however_it_was_read(tmp_path: Path) -> None:
    # Before, a line over max_line_bytes was delivered when one read took it whole, and
    # dropped (counted) when it was cut between reads.
    log = tmp_path / "app.log"
    log.write_bytes(b"x" * 3000 + b"\nline 2\n")
    tail = FileTail([str(log)], rotate_wait=0, max_line_bytes=1000)
    assert [e.fields["message"] for e in tail.poll()] == ["line 2"]
    assert tail.stats()["skipped"] == 1
    tail.close()


def test_watched_folder_counts_a_cut_evtx_export(tmp_path: Path) -> None:
    # The evtx package reads nothing of an incomplete chunk and says nothing: a copy cut
    # short was "read" with no event and no error.
    evtx = corpus_path(
        "evtx", "attack-samples", "Command and Control", "DE_RDP_Tunneling_4624.evtx"
    )
    (tmp_path / "cut.evtx").write_bytes(evtx.read_bytes()[: EVTX_HEADER + 30_000])
    source = WatchedFolder(tmp_path, settle_seconds=0)
    assert source.poll() == []
    stats = source.stats()
    assert stats["skipped"] == 1
    assert "truncated EVTX file" in stats["errors"][0]
    source.close()


def test_watched_folder_reads_concatenated_exports_as_the_spool_can_write(
    tmp_path: Path,
) -> None:
    # evtx_dump's layout is read with the json module, which takes what orjson (the spool)
    # cannot write: an integer beyond 64 bits stopped the agent's turn; NaN is refused.
    (tmp_path / "dump.json").write_bytes(
        b"Record 1\n"
        + json.dumps({"Event": {"System": {"EventID": 1}}, "n": 10**30}, indent=2).encode()
        + b'\nRecord 2\n{\n  "ratio": NaN\n}\nRecord 3\n'
        + json.dumps({"Event": {"System": {"EventID": 3}}}, indent=2).encode()
    )
    source = WatchedFolder(tmp_path, settle_seconds=0)
    events = source.poll()
    _check_deliverable(events)
    assert [e.fields["winlog"]["event_id"] for e in events] == [1, 3]
    assert source.stats()["skipped"] == 1
    source.close()


def test_watched_folder_fails_a_file_whatever_its_reader_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, an exception outside (OSError, ValueError, RuntimeError, EOFError) left poll()
    # and the file was then taken as read to its end: its other records lost, uncounted.
    import collector.sources.winlog as winlog_module

    def failing(path: Path, stats: ReadStats) -> Iterator[Event]:
        stats.records_read += 1  # as the readers count: before they yield
        yield Event(timestamp=EPOCH, fields={"n": 1}, source=str(path))
        raise OverflowError("a reader's bug")

    monkeypatch.setattr(winlog_module, "read_json", failing)
    (tmp_path / "export.jsonl").write_bytes(b'{"n": 1}\n{"n": 2}\n')
    source = WatchedFolder(tmp_path, settle_seconds=0)
    assert len(source.poll()) == 1
    stats = source.stats()
    assert (stats["failed"], stats["files_read"]) == (1, 0)
    assert "a reader's bug" in stats["errors"][0]
    source.close()


def test_syslog_octet_stream_resynchronises_without_a_newline(listener: SyslogListener) -> None:
    # Senders that count octets send no newline: a broken count used to drop the rest of the
    # connection up to a newline that never came, all of it counted as one bad frame.
    good = [b"<14>1 2024-05-01T10:00:00Z fuzz good - - - message %d" % n for n in range(5)]
    stream = _octet(good[0]) + b"12x <13>broken" + b"".join(_octet(g) for g in good[1:])
    stream += _octet(good[0], 11) + _octet(good[0])  # a count too short, then a good frame
    with socket.create_connection(("127.0.0.1", listener.tcp_port or 0)) as conn:
        conn.sendall(stream)
        events = _collect(listener, _accounted(listener, 9))
    assert [e.fields["message"] for e in events] == [
        good[0].decode(),
        *(g.decode() for g in good[1:]),
        good[0][:11].decode(),
        good[0].decode(),
    ]
    assert listener.stats()["skipped"] == 2


def test_syslog_nul_framed_stream_goes_on_after_an_over_long_message(
    listener: SyslogListener,
) -> None:
    # Python's SysLogHandler and some appliances end messages with a NUL, never a newline:
    # after an over-long message the stream was dropped up to a newline that never came.
    long = b"<14>x" + b"a" * (listener.max_message + 100)
    stream = b"<14>first\x00" + long + b"\x00<14>second\x00" + long + b"\x00<14>third\x00"
    with socket.create_connection(("127.0.0.1", listener.tcp_port or 0)) as conn:
        for piece in range(0, len(stream), 4096):  # the long message seen before its end
            conn.sendall(stream[piece : piece + 4096])
            time.sleep(0.001)
        events = _collect(listener, _accounted(listener, 5))
    assert [e.fields["message"] for e in events] == ["<14>first", "<14>second", "<14>third"]
    assert listener.stats()["skipped"] == 2
    assert all("over" in error for error in listener.stats()["errors"])


def test_syslog_counts_a_parser_error_and_keeps_the_rest_of_the_batch(
    listener: SyslogListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, an exception from a parser left poll() and the batch taken off the queue with it.
    import collector.sources.syslog_listener as listener_module

    _parser_fails_on_boom(monkeypatch, listener_module)
    with socket.create_connection(("127.0.0.1", listener.tcp_port or 0)) as conn:
        conn.sendall(b"<14>line 1\n<14>boom\n<14>line 2\n")
        events = _collect(listener, _accounted(listener, 3))
    assert [e.fields["message"] for e in events] == ["<14>line 1", "<14>line 2"]
    assert "parser error: KeyError" in listener.stats()["errors"][0]
