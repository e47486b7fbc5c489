"""The compiled hot paths (setup.py, detection/compiled.py) give the very records of their
pure-Python source: the same lines go through both, each in a process of its own (one with
VIGIE_PURE_PYTHON=1), from the raw bytes of a line to the JSON the agent spools."""

from __future__ import annotations

import ast
import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from detection.compiled import COMPILED, SourceFirst, stale_modules
from tests.conftest import corpus_path

ROOT = Path(__file__).resolve().parents[2]
# One process's side: every line of LINES through decode -> parse -> privacy -> ECS -> JSON.
PIPELINE = r"""
import json, sys
from datetime import UTC, datetime

import orjson

from collector.privacy import PrivacyFilter
from collector.sources.base import BadRecord
from collector.sources.lines import decode_line, parse_text
from detection.compiled import compiled_modules
from detection.event import Event, sigma_view

now = datetime(2026, 11, 20, 12, 0, 0, 250000, tzinfo=UTC)
privacy = PrivacyFilter(b"k" * 32, ["user.name", "client.ip"])
out = []
for number, raw in enumerate(open(sys.argv[1], "rb").read().split(b"\n")):
    try:
        event = parse_text(decode_line(raw), "auto", "/var/log/app.log", now, {"offset": number})
    except BadRecord as exc:
        out.append(f"skipped: {exc}")
        continue
    clean = Event(event.timestamp, privacy.clean(event.fields), event.source, "750100125", "a1")
    out.append(orjson.dumps(clean.to_ecs()).decode())
    out.append(orjson.dumps(sigma_view(clean.fields), option=orjson.OPT_NON_STR_KEYS).decode())
out.append(f"pseudonymised: {privacy.pseudonymised}")
print(json.dumps({"compiled": compiled_modules(), "records": out}))
"""
LINES = [
    "<134>Nov 20 10:00:00 srv-web-01 nginx[80]: GET /index.html 200 n=1",
    "<134>Nov 20 10:00:00 srv-web-01 nginx[80]: GET /index.html 200 n=2",
    "Dec 31 23:59:59 dpi-01 sudo: alice : TTY=pts/0 ; PWD=/root ; USER=root ; COMMAND=/bin/id",
    "2026-11-20T10:00:00.123+01:00 pacs-01 dcmqrscp[4242]: C-STORE from MODALITY1",
    '<165>1 2026-11-20T10:00:00.003Z mllp-gw hl7d 77 ID47 [exampleSDID@32473 iut="3" a="\\"x\\""]'
    " MSH|^~\\&|ADT|HOSP|LAB|HOSP|202611201000||ADT^A01|1|P|2.5 PID|1||123456^^^HOSP||DUPONT^JEAN",
    "<13>1 - - - - - - no time at all",
    "<30>Patient admitted: no segment here | a pipe",
    "<14>just a priority and text",
    "plain text without any header, accents: Pitié-Salpêtrière",
    '{"n": {"1": {"2": [1, {"x": 2}]}}, "winlog": "not an object", "": {"": 0}}',
    '{"@timestamp": "2026-11-20T09:59:00Z", "user": {"name": "jdupont"}, "PatientName": "X^Y"}',
    '{"message": "OBX|1|TX|||résultat", "client": {"ip": "10.1.2.3"}, "Patient ID": 12}',
    '{"brace": "unclosed"',
    "Feb 30 10:00:00 h p: no such day",
    "bad \x01 control character",
    "\ufeffFoo 12 10:00:00 not a month",
]


def _run(script: str, *args: str, pure: bool, timeout: int) -> dict[str, object]:
    """`script` in a fresh interpreter (compiled modules, or their `.py` files when `pure`):
    the JSON it prints."""
    env = {k: v for k, v in os.environ.items() if k != "VIGIE_PURE_PYTHON"}
    if pure:
        env["VIGIE_PURE_PYTHON"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _pipeline(lines: Path, *, pure: bool) -> dict[str, object]:
    return _run(PIPELINE, str(lines), pure=pure, timeout=120)


def test_compiled_and_pure_python_give_identical_records(tmp_path: Path) -> None:
    samples = [
        line
        for name in ("network-and-web.jsonl", "windows-events.jsonl")
        for line in (ROOT / "samples" / name).read_text(encoding="utf-8").splitlines()
    ]
    lines = tmp_path / "lines.log"
    text = "\n".join(LINES + samples).encode("utf-8")
    lines.write_bytes(text + b"\n\xff\xfe\xfd binary \xfa\xfb\n")
    pure = _pipeline(lines, pure=True)
    assert pure["compiled"] == dict.fromkeys(COMPILED, False)
    native = _pipeline(lines, pure=False)
    if not any(native["compiled"].values()):  # type: ignore[attr-defined]
        pytest.skip("no compiled module is built here (pip install -e . builds them)")
    assert native["compiled"] == dict.fromkeys(COMPILED, True)
    assert native["records"] == pure["records"]
    records = pure["records"]
    assert isinstance(records, list)
    # The input exercised what it is meant to: skips, pseudonyms, every kind of line.
    assert any(r.startswith("skipped: binary data") for r in records)
    assert records[-1] != "pseudonymised: 0"
    assert sum(r.startswith("{") for r in records) >= 2 * (len(LINES) + len(samples) - 3)
    assert any('"log.syslog.facility.name":"local0"' in r for r in records)  # a flat view


def test_setup_compiles_the_modules_detection_compiled_names() -> None:
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    paths = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "COMPILED" for t in node.targets)
    )
    assert [p.removesuffix(".py").replace("/", ".") for p in paths] == list(COMPILED)


def test_flatten_compiled_takes_keys_that_are_no_strings() -> None:
    from detection.flatten import flatten

    doc = {1: {2: "a", "b": None}, "c": {"d": [1, {"e": 2}]}, "f": {}}
    assert flatten(doc) == {"1.2": "a", "1.b": None, "c.d": [1, {"e": 2}]}  # type: ignore[arg-type]
    assert flatten({"x": 1}, "p.") == {"p.x": 1}


def test_an_edited_module_runs_from_its_source_until_built_again(tmp_path: Path) -> None:
    # The extension left from before an edit must not hide the edit; a fresh one is used.
    source = tmp_path / "mod.py"
    source.write_text("VALUE = 1\n")
    built = tmp_path / f"mod{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    built.write_bytes(b"not really an extension")
    finder = SourceFirst({"pkg.mod"}, always=False)
    os.utime(built, (1_000_000, 1_000_000))
    os.utime(source, (2_000_000, 2_000_000))
    spec = finder.find_spec("pkg.mod", [str(tmp_path)])
    assert spec is not None
    assert spec.origin == str(source)
    os.utime(built, (3_000_000, 3_000_000))  # built again after the edit
    assert finder.find_spec("pkg.mod", [str(tmp_path)]) is None  # the usual finders: the .so
    assert finder.find_spec("pkg.other", [str(tmp_path)]) is None  # not one of its modules
    always = SourceFirst({"pkg.mod"}, always=True).find_spec("pkg.mod", [str(tmp_path)])
    assert always is not None
    assert always.origin == str(source)
    built.unlink()  # nothing built: the source, by the usual finders
    assert finder.find_spec("pkg.mod", [str(tmp_path)]) is None


# One process's side of the netmeta comparison: each capture extracted alone, with and without
# checksum verification, then one pcap merging several (Ethernet frames, two copies a day
# apart, as benchmarks/netmeta_speed.py builds it); every record as both of its renderings.
NETMETA = r"""
import dataclasses, json, struct, sys
from pathlib import Path

from collector.netmeta import NetmetaStats, extract
from collector.netmeta.reader import ReadStats, read_capture
from detection.compiled import compiled_modules

captures = [Path(p) for p in sys.argv[2:]]
merged = Path(sys.argv[1])
frames = []
for path in captures:
    try:
        frames.extend(f for f in read_capture(path, ReadStats()) if f[1] == 1)
    except Exception:
        pass
with merged.open("wb") as fh:
    fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
    for copy in range(2):
        for ts, _lt, data, wire in frames:
            sec = int(ts) + copy * 86400
            usec = int(round((ts - int(ts)) * 1e6)) % 1_000_000
            fh.write(struct.pack("<IIII", sec, usec, len(data), max(wire, len(data))))
            fh.write(data)
out = []
runs = [([p], False) for p in captures] + [([p], True) for p in captures[::7]] + [([merged], False)]
for paths, verify in runs:
    stats = NetmetaStats()
    for record in extract(paths, stats, verify_checksums=verify):
        out.append([type(record).__name__, record.zeek(), record.ecs()])
    counts = dataclasses.asdict(stats)
    del counts["seconds"]
    counts["read"]["errors"] = [e.replace(str(merged), "MERGED") for e in counts["read"]["errors"]]
    out.append([paths[0].name, verify, counts])
print(json.dumps({"compiled": compiled_modules(), "records": out, "frames": len(frames)}))
"""


def _netmeta(merged: Path, captures: list[Path], *, pure: bool) -> dict[str, object]:
    return _run(NETMETA, str(merged), *map(str, captures), pure=pure, timeout=600)


def test_netmeta_compiled_and_pure_python_give_identical_records(tmp_path: Path) -> None:
    corpus = corpus_path("pcap")
    # Zeek's test traces (tunnels of every kind, fragments, flips, bad checksums, DNS),
    # Chris Sanders' captures, and a few of nDPI's (TLS, HTTP, SMB, tunnels) for the merge.
    captures = sorted(
        p
        for folder in ("zeek", "packets")
        for p in (corpus / folder).rglob("*")
        if p.suffix in (".pcap", ".pcapng")
    )
    captures += sorted(p for p in (corpus / "ndpi").glob("*.pcap*"))[::12]
    (tmp_path / "pure").mkdir()
    (tmp_path / "native").mkdir()
    pure = _netmeta(tmp_path / "pure" / "merged.pcap", captures, pure=True)
    assert pure["compiled"] == dict.fromkeys(COMPILED, False)
    native = _netmeta(tmp_path / "native" / "merged.pcap", captures, pure=False)
    if not any(native["compiled"].values()):  # type: ignore[attr-defined]
        pytest.skip("no compiled module is built here (pip install -e . builds them)")
    assert native["compiled"] == dict.fromkeys(COMPILED, True)
    merged = (tmp_path / "pure" / "merged.pcap").read_bytes()
    assert merged == (tmp_path / "native" / "merged.pcap").read_bytes()
    assert native["records"] == pure["records"]
    # The input exercised what it is meant to: tunnels, DNS, TLS, HTTP, the merged capture.
    records = pure["records"]
    assert isinstance(records, list)
    kinds = {r[0] for r in records if isinstance(r[1], dict)}
    assert {"ConnRecord", "DnsRecord", "TunnelRecord", "SslRecord", "HttpRecord"} <= kinds
    assert isinstance(pure["frames"], int)
    assert pure["frames"] > 10_000
    assert records[-1][0] == "merged.pcap"
    assert records[-1][2]["read"]["packets"] == 2 * pure["frames"]


def test_one_edited_module_sends_every_compiled_one_back_to_its_source(tmp_path: Path) -> None:
    # Compiled modules take each other's classes as C types: one of them run from its source
    # beside compiled ones would be refused (decode.Decoder(flows.ConnTracker())), hence all.
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    for name in COMPILED:
        source = tmp_path.joinpath(*name.split(".")).with_suffix(".py")
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("")
        source.with_suffix(suffix).write_bytes(b"")
        os.utime(source, (1_000_000, 1_000_000))
        os.utime(source.with_suffix(suffix), (2_000_000, 2_000_000))
    assert stale_modules(tmp_path) == []
    edited = tmp_path / "collector" / "netmeta" / "flows.py"
    os.utime(edited, (3_000_000, 3_000_000))
    assert stale_modules(tmp_path) == ["collector.netmeta.flows"]
    code = (
        "import detection.compiled as c, sys; "
        "print(any(f.always for f in sys.meta_path if isinstance(f, c.SourceFirst)))"
    )
    env = {k: v for k, v in os.environ.items() if k != "VIGIE_PURE_PYTHON"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == str(bool(stale_modules(ROOT)))
