"""Ingestion: a load generator on loopback against `vigie serve`.

    python benchmarks/ingest_load.py [--runs 3] [--agents 4] [--batch 1000] [--duration 30]
                                     [--workers 1 2] [--data evtx|agent-mix]
                                     [--evidence on off] [--profile] [--write]

Each run starts `vigie serve --workers W` as a subprocess, for each W of `--workers` (default
SQLite stores, an empty data dir under benchmarks/out/ingest/), logs in as admin with the
password printed at first start, creates one establishment, enrolls `--agents` agents, then
has each agent (one thread, one httpx client) post gzip batches of `--batch` ECS events to
POST /ingest, back to back, for `--duration` seconds. Server-side detection is on (Vigie's
Sigma rules and published indicators run on arrival, detections open incidents).
Every 10th batch an agent re-sends a batch already acknowledged (a retry): it must come back
`duplicate` and store nothing. A 429 is waited out and retried (counted). The batch bodies
(JSON, gzip) are built before the clock starts, as real agents build theirs on their own
machines; the clients' HTTP work still runs on the server's 2 cores.

Data (`--data evtx`, the default): every record of the EVTX corpus (../shared/corpora/evtx)
read by `detection.sources.evtx.read_evtx` and turned into ECS documents (`Event.to_ecs()`),
cycled. `--data agent-mix`: the same EVTX documents and the network metadata of every
capture of ../shared/corpora/pcap (`collector.netmeta.extract`, each record shipped as the
agent ships it: `collector.sources.pcap.record_event(...).to_ecs()`, Zeek's field names),
interleaved, every `@timestamp` moved into the hour before the run (in order): agents ship
what just happened, and maturity evidence is folded per day.

`--evidence on off` runs every configuration both with the service's maturity evidence
gathering (`VIGIE_MATURITY_EVIDENCE`, on by default) and without it, interleaved, on the same
data; the report then goes to its own section ("Ingestion: maturity evidence on and off"),
with the throughput and server CPU per event of each and their ratio.

Measured: events/s acknowledged (sum of `events_accepted` of non-duplicate answers over the
run's wall time), p50/p99 batch latency (request to answer), CPU of the server process (from
/proc), then nothing lost: events counted in the store afterwards must equal events
acknowledged. Medians over the runs. `--profile` times the stages of one batch in-process
(gzip, JSON parsing, event checks, detection, event store, incidents and commit) and prints
cProfile's top functions. With `--write`, the Ingestion section of benchmarks/RESULTS.md is
replaced.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import gzip
import io
import os
import pstats
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "ingest"
CORPUS = ROOT.parent / "shared" / "corpora" / "evtx"
PCAPS = ROOT.parent / "shared" / "corpora" / "pcap"
GOAL = 20_000
FINESS = "750100125"  # Pitié-Salpêtrière (AP-HP)
HEADING = "## Ingestion"
HEADING_EVIDENCE = "## Ingestion: maturity evidence on and off"
EVIDENCE_GOAL = 0.05  # at most 5% slower with the evidence gathered
DUPLICATE_EVERY = 10
ENROLL_RETRIES: list[str] = []

sys.path.insert(0, str(ROOT))


def corpus_events(limit: int) -> list[bytes]:
    """ECS documents of the EVTX corpus, each already serialised (orjson)."""
    return [orjson.dumps(doc) for doc in _evtx_docs(limit)]


def _evtx_docs(limit: int) -> list[dict[str, Any]]:
    from detection.sources.evtx import read_evtx
    from detection.sources.stats import ReadStats

    stats = ReadStats()
    docs: list[dict[str, Any]] = []
    for path in sorted(CORPUS.rglob("*.evtx")):
        for event in read_evtx(path, stats):
            docs.append(event.to_ecs())
            if len(docs) >= limit:
                return docs
    return docs


def agent_mix(limit: int) -> tuple[list[bytes], dict[str, int]]:
    """The EVTX documents and the capture corpus's network records as the agent ships them,
    interleaved, stamped in order over the hour before now; and what each kind counts."""
    from collector.netmeta import NetmetaStats, extract
    from collector.sources.pcap import record_event
    from detection.event import iso_utc

    windows = _evtx_docs(limit)
    captures = sorted(
        p for p in PCAPS.rglob("*") if p.suffix in (".pcap", ".pcapng") and p.is_file()
    )
    network = [
        record_event(record, "pcap:/var/spool/vigie/span.pcap").to_ecs()
        for record in extract(captures, NetmetaStats())
    ]
    total = len(windows) + len(network)
    # Spread evenly: each batch holds both kinds in the corpus's proportions.
    mixed = sorted(
        [(i / len(windows), 0, doc) for i, doc in enumerate(windows)]
        + [(i / len(network), 1, doc) for i, doc in enumerate(network)],
        key=lambda t: (t[0], t[1]),
    )
    start = time.time() - 3600
    out = []
    for n, (_, _, doc) in enumerate(mixed):
        moment = datetime.fromtimestamp(start + n * 3600 / total, UTC)
        out.append(orjson.dumps({**doc, "@timestamp": iso_utc(moment)}))
    counts = {"windows": len(windows), "network": len(network)}
    for doc in network:
        key = f"network {doc.get('_path')}"
        counts[key] = counts.get(key, 0) + 1
    counts["windows 4624"] = sum(
        1 for doc in windows if (doc.get("winlog") or {}).get("event_id") == 4624
    )
    return out, counts


def observations(docs: list[bytes]) -> dict[str, int]:
    """What `api.maturity.signals.observe` takes from the documents, by signal (in one go)."""
    from api.maturity.signals import observe
    from detection.event import Event, parse_timestamp

    views, times = [], []
    for raw in docs:
        doc = orjson.loads(raw)
        moment = parse_timestamp(doc.pop("@timestamp"))
        assert moment is not None
        views.append(Event(moment, doc).sigma_view())
        times.append(moment)
    counts: dict[str, int] = {}
    for seen in observe(views, times, [str(n) for n in range(len(docs))], "agent"):
        name = f"{seen.signal} {seen.key}"
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def batch_body(docs: list[bytes], start: int, size: int, batch_id: str) -> bytes:
    chosen = [docs[(start + i) % len(docs)] for i in range(size)]
    raw = b'{"batch_id":"%s","events":[%s],"detections":[]}' % (
        batch_id.encode(),
        b",".join(chosen),
    )
    return gzip.compress(raw, compresslevel=1)


# --- the server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children still running (uvicorn's workers)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += (task / "children").read_text().split()
        except FileNotFoundError:
            continue
    return own + sum(cpu_seconds(int(child)) for child in children)


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    password: str
    data_dir: Path


def start_server(data_dir: Path, workers: int, evidence: bool = True) -> Server:
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    port = free_port()
    vigie = Path(sys.executable).parent / "vigie"
    process = subprocess.Popen(
        [
            str(vigie),
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={
            **os.environ,
            "VIGIE_SECRET_KEY": secrets.token_urlsafe(48),  # production
            "VIGIE_MATURITY_EVIDENCE": "1" if evidence else "0",
        },
    )
    password = ""
    started = 0
    assert process.stderr is not None
    for line in process.stderr:
        found = re.search(r"with password (\S+)", line)
        if found:
            password = found.group(1)
        if "Application startup complete" in line:
            started += 1
        if started >= workers:
            break
    else:
        raise RuntimeError(f"vigie serve exited with {process.wait()}")
    # Keep reading the server's log so that it never blocks on a full pipe; kept in the data
    # dir, where the cause of an error answer can be read.
    threading.Thread(target=_keep_log, args=(process, data_dir / "server.log"), daemon=True).start()
    return Server(process, f"http://127.0.0.1:{port}", password, data_dir)


def _keep_log(process: subprocess.Popen[str], path: Path) -> None:
    with path.open("w", encoding="utf-8") as log:
        for line in process.stderr or ():
            log.write(line)


def enroll_agents(server: Server, count: int) -> list[str]:
    from cli.common import first_login

    with httpx.Client(base_url=server.url, timeout=60) as client:
        token, _ = first_login(client, server.password)
        auth = {"Authorization": f"Bearer {token}"}
        client.post(
            "/establishments",
            json={"finess": FINESS, "name": "Pitié-Salpêtrière", "kind": "CHU"},
            headers=auth,
        ).raise_for_status()
        keys = []
        for n in range(count):
            made = client.post(
                f"/establishments/{FINESS}/enrollment-tokens", json={}, headers=auth
            ).raise_for_status()
            body = {
                "token": made.json()["token"],
                "hostname": f"bench-agent-{n:02d}",
                "version": "0.1.0",
                "sources": [{"name": "dc01-security", "kind": "evtx"}],
            }
            for _ in range(20):
                answer = client.post("/agents/enroll", json=body)
                if answer.status_code != 401:
                    break
                # Seen now and then: the token just made is not yet visible (see RESULTS.md).
                ENROLL_RETRIES.append(answer.text)
                time.sleep(0.1)
            if answer.status_code != 201:
                raise RuntimeError(f"enroll: {answer.status_code} {answer.text}")
            keys.append(answer.json()["agent_key"])
    return keys


# --- the agents -------------------------------------------------------------------------------


@dataclass
class AgentStats:
    latencies: list[float] = field(default_factory=list)
    acknowledged: int = 0
    batches: int = 0
    duplicates_sent: int = 0
    duplicates_ok: int = 0
    throttled: int = 0
    errors: list[str] = field(default_factory=list)


def prebuilt(n: int, docs: list[bytes], size: int, count: int) -> list[bytes]:
    """An agent's first `count` batch bodies, built before the clock starts: the load
    generator shares the server's 2 cores, and real agents build theirs on other machines."""
    return [
        batch_body(docs, (n * 7919 + number * size) % len(docs), size, _batch_id(n, number))
        for number in range(1, count + 1)
    ]


def _batch_id(n: int, number: int) -> str:
    return f"agent{n}-batch{number:06d}"


def agent(
    n: int,
    key: str,
    url: str,
    docs: list[bytes],
    size: int,
    until: float,
    stats: AgentStats,
    bodies: list[bytes],
) -> None:
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    sent: bytes | None = None
    with httpx.Client(base_url=url, timeout=120, headers=headers) as client:
        number = 0
        while time.monotonic() < until:
            number += 1
            retry = sent is not None and number % DUPLICATE_EVERY == 0
            if retry:
                assert sent is not None
                body = sent
            elif number <= len(bodies):
                body = bodies[number - 1]
            else:
                start = (n * 7919 + number * size) % len(docs)
                body = batch_body(docs, start, size, _batch_id(n, number))
            while True:
                began = time.perf_counter()
                try:
                    answer = client.post("/ingest", content=body)
                except httpx.TransportError as exc:  # counted, and the agent goes on
                    answer = httpx.Response(599, text=f"{type(exc).__name__}: {exc}")
                elapsed = time.perf_counter() - began
                if answer.status_code != 429:
                    break
                stats.throttled += 1
                time.sleep(float(answer.headers.get("Retry-After", "1")))
            if answer.status_code != 200:
                stats.errors.append(f"{answer.status_code}: {answer.text[:200]}")
                continue
            result = answer.json()
            if retry:
                stats.duplicates_sent += 1
                stats.duplicates_ok += bool(result["duplicate"])
                continue
            stats.latencies.append(elapsed)
            stats.batches += 1
            stats.acknowledged += result["events_accepted"] * (not result["duplicate"])
            sent = body


def one_run(
    number: int, workers: int, docs: list[bytes], args: argparse.Namespace, evidence: bool = True
) -> dict[str, Any]:
    import sqlite3

    from api.events.sqlite_store import SQLiteEventStore

    mode = "" if evidence else "-no-evidence"
    server = start_server(OUT / f"w{workers}-run{number}{mode}", workers, evidence)
    try:
        keys = enroll_agents(server, args.agents)
        stats = [AgentStats() for _ in keys]
        # Enough for about 40,000 events/s per run: past that, built on the fly.
        per_agent = int(40_000 * args.duration / args.batch / len(keys)) + 1
        bodies = [prebuilt(n, docs, args.batch, per_agent) for n in range(len(keys))]
        cpu0, wall0 = cpu_seconds(server.process.pid), time.monotonic()
        until = wall0 + args.duration
        threads = [
            threading.Thread(
                target=agent,
                args=(n, key, server.url, docs, args.batch, until, stats[n], bodies[n]),
            )
            for n, key in enumerate(keys)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - wall0
        server_cpu = cpu_seconds(server.process.pid) - cpu0
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
    store = SQLiteEventStore.in_data_dir(server.data_dir)
    try:
        stored = store.count("events")
    finally:
        store.close()
    db = sqlite3.connect(server.data_dir / "vigie.db")
    try:
        query = "SELECT count(*), coalesce(sum(count), 0) FROM maturity_evidence"
        evidence_rows, observed = (int(x) for x in db.execute(query).fetchone())
    finally:
        db.close()
    latencies = sorted(x for s in stats for x in s.latencies)
    acknowledged = sum(s.acknowledged for s in stats)
    run: dict[str, Any] = {
        "wall": wall,
        "events_per_s": acknowledged / wall,
        "acknowledged": acknowledged,
        "stored": stored,
        "batches": sum(s.batches for s in stats),
        "duplicates_sent": sum(s.duplicates_sent for s in stats),
        "duplicates_ok": sum(s.duplicates_ok for s in stats),
        "throttled": sum(s.throttled for s in stats),
        "errors": [e for s in stats for e in s.errors],
        "p50": latencies[len(latencies) // 2] if latencies else float("nan"),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        if latencies
        else float("nan"),
        "server_cpu": server_cpu / wall,
        "cpu_ms_per_1000": server_cpu * 1e6 / acknowledged if acknowledged else float("nan"),
        "evidence_rows": evidence_rows,
        "observed": observed,
    }
    run["workers"] = workers
    run["evidence"] = evidence
    print(
        f"{workers} worker(s), evidence {'on' if evidence else 'off'}, run {number}: "
        f"{run['events_per_s']:,.0f} events/s, "
        f"{acknowledged:,} acknowledged, "
        f"{stored:,} stored, {run['batches']} batches, p50 {run['p50'] * 1000:.0f} ms, "
        f"p99 {run['p99'] * 1000:.0f} ms, server CPU {run['server_cpu'] * 100:.0f}% of a core, "
        f"duplicates {run['duplicates_ok']}/{run['duplicates_sent']}, 429s {run['throttled']}, "
        f"errors {len(run['errors'])}, server CPU {run['cpu_ms_per_1000']:.0f} ms per 1000 "
        f"events, evidence rows {evidence_rows:,} ({observed:,} observations)",
        flush=True,
    )
    for error in run["errors"][:5]:
        print("  ", error)
    return run


# --- where the time goes (in process) ---------------------------------------------------------


def profile(
    docs: list[bytes], size: int, batches: int, evidence: bool = True
) -> tuple[dict[str, float], str]:
    """Seconds per batch of each stage of POST /ingest, the route's own steps in order."""
    import zlib

    from api.alerts.live import LiveRules
    from api.app import prepare
    from api.db import make_engine, session_factory, transaction
    from api.deps import Principal
    from api.establishments.models import Establishment
    from api.events.sqlite_store import SQLiteEventStore
    from api.events.store import stamped_event
    from api.incidents import service as incidents
    from api.ingest import service
    from api.maturity.evidence import gather
    from api.maturity.signals import observe, observe_detections
    from api.settings import Settings

    data_dir = OUT / "profile"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    settings = Settings(data_dir, f"sqlite:///{data_dir / 'vigie.db'}", "x" * 40)
    prepare(settings)
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        session.add(Establishment(finess=FINESS, name="Pitié", kind="CHU", region="IDF"))
    live = LiveRules(settings, sessions)
    store = SQLiteEventStore.in_data_dir(data_dir)
    who = Principal(username="agent-profile", role="agent", establishment=FINESS)
    bodies = [batch_body(docs, i * size, size, f"profile-{i:06d}") for i in range(batches)]
    gc.freeze()  # as the service does once started
    names = ("gzip", "parse", "event checks", "detection", "event store")
    maturity = ("maturity: observe", "maturity: gather")
    stages = dict.fromkeys((*names, *maturity * evidence, "incidents+commit"), 0.0)
    profiler = cProfile.Profile()
    gathering = cProfile.Profile()  # the maturity evidence alone, on the profiled pass

    def run(body: bytes) -> None:
        t0 = time.perf_counter()
        data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body)
        t1 = time.perf_counter()
        batch = service.parse_batch(data)
        t2 = time.perf_counter()
        events, uids = service._valid_events(batch, who.username, [])
        t3 = time.perf_counter()
        events = [stamped_event(doc, FINESS, who.username) for doc in events]
        parsed = service._events(events, who)
        sources = service._detect(live, parsed)
        found = [d for _, d in sources]
        t4 = time.perf_counter()
        views = [e.sigma_view() for e in parsed]
        server_uids = service._server_uids(sources, uids)
        store.add_events(FINESS, who.username, events, views, uids)
        store.add_detections(FINESS, found, server_uids)
        t5 = t5b = time.perf_counter()
        with transaction(sessions) as session:
            if evidence:  # as the route does, in the request's transaction
                if profiled:
                    gathering.enable()
                seen = observe(views, [e.timestamp for e in parsed], uids, "agent-profile")
                seen += observe_detections(found, server_uids)
                t5b = time.perf_counter()
                gather(session, FINESS, seen)
                if profiled:
                    gathering.disable()
            t6 = time.perf_counter()
            incidents.open_from_detections(session=session, establishment=FINESS, detections=found)
        t7 = time.perf_counter()
        took = [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4]
        took += [t5b - t5, t6 - t5b] * evidence + [t7 - t6]
        for name, seconds in zip(stages, took, strict=True):
            stages[name] += seconds

    profiled = False
    run(bodies[0])  # warm up
    stages = dict.fromkeys(stages, 0.0)
    for body in bodies[1:]:  # timed without the profiler's overhead
        run(body)
    timed = {k: v / (batches - 1) for k, v in stages.items()}
    profiled = True
    profiler.enable()
    for body in bodies[1:]:
        run(body)
    profiler.disable()
    store.close()
    engine.dispose()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    if evidence:
        out.write("\nThe maturity evidence alone (observe, observe_detections, gather):\n")
        pstats.Stats(gathering, stream=out).sort_stats("tottime").print_stats(15)
    return timed, out.getvalue()


def _commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()


def report(runs: list[dict[str, Any]], args: argparse.Namespace, events: int, stages: Any) -> str:
    import sqlite3

    configs = sorted({r["workers"] for r in runs})

    def med(key: str, workers: int) -> float:
        return statistics.median(r[key] for r in runs if r["workers"] == workers)

    def row(label: str, key: str, show: Any, workers: int) -> str:
        mine = [r for r in runs if r["workers"] == workers]
        return (
            f"| {label} | {workers} | {show(med(key, workers))} | "
            + ", ".join(show(r[key]) for r in mine)
            + " |"
        )

    best = max(configs, key=lambda w: med("events_per_s", w))
    rate = med("events_per_s", best)
    lost = [r["acknowledged"] - r["stored"] for r in runs]
    lines = [
        f"{HEADING}: `POST /ingest` under load on loopback",
        "",
        f"Command: `python benchmarks/ingest_load.py --runs {args.runs} --agents {args.agents} "
        f"--batch {args.batch} --duration {args.duration:g} --workers "
        + " ".join(map(str, configs))
        + " --profile" * args.profile
        + " --write" * args.write
        + "` (`vigie serve --workers W` as a subprocess, default SQLite stores in an empty data "
        "dir, Vigie's Sigma rules and published alerts' indicators run on arrival, incidents "
        "opened from the detections; the agents are threads of the benchmark on the same 2 "
        "cores).",
        "",
        f"Data: {events:,} ECS documents made from the EVTX corpus (`read_evtx` then "
        f"`Event.to_ecs()`), cycled; batches of {args.batch} events, gzip; {args.agents} "
        f"enrolled agents posting back to back for {args.duration:g} s; every "
        f"{DUPLICATE_EVERY}th batch is a retry of one already acknowledged. Each agent's "
        "bodies are built before the clock starts (real agents build theirs on their own "
        "machines); the clients' HTTP work shares the server's 2 cores.",
        "",
        f"Versions: Python {sys.version.split()[0]}, FastAPI {version('fastapi')}, uvicorn "
        f"{version('uvicorn')}, SQLite {sqlite3.sqlite_version}, httpx {version('httpx')}, "
        f"orjson {version('orjson')}, Vigie {_commit()}; 2 cores.",
        "",
        "| measure | workers | median | runs |",
        "| --- | --- | --- | --- |",
    ]
    for workers in configs:
        lines += [
            row("events/s acknowledged", "events_per_s", lambda v: f"{v:,.0f}", workers),
            row("batch latency p50 (ms)", "p50", lambda v: f"{v * 1000:.0f}", workers),
            row("batch latency p99 (ms)", "p99", lambda v: f"{v * 1000:.0f}", workers),
            row("server CPU (cores)", "server_cpu", lambda v: f"{v:.2f}", workers),
        ]
    lines += [
        "",
        "Per run: events acknowledged / stored "
        + "; ".join(f"{r['acknowledged']:,} / {r['stored']:,}" for r in runs)
        + ". Retried batches answered `duplicate`: "
        + ", ".join(f"{r['duplicates_ok']}/{r['duplicates_sent']}" for r in runs)
        + ". 429 answers / errors: "
        + ", ".join(f"{r['throttled']} / {len(r['errors'])}" for r in runs)
        + ".",
        "",
        f"Best: {best} worker(s). Ratio to the goal (20,000 events/s): {rate / GOAL:.2f}x "
        + ("(met)." if rate >= GOAL else "(not met).")
        + (
            f" {configs[-1]} workers against 1: "
            f"{med('events_per_s', configs[-1]) / med('events_per_s', configs[0]):.2f}x."
            if len(configs) > 1
            else ""
        ),
        "Nothing lost: "
        + (
            "events stored equal events acknowledged in every run, retries stored nothing."
            if not any(lost) and all(r["duplicates_ok"] == r["duplicates_sent"] for r in runs)
            else f"NO: acknowledged minus stored per run {lost}."
        ),
    ]
    if ENROLL_RETRIES:
        lines += [
            "",
            f"Setup: `POST /agents/enroll` answered 401 {len(ENROLL_RETRIES)} time(s) for a "
            "token made just before (retried after 0.1 s, then accepted): "
            f"`{ENROLL_RETRIES[0][:160]}`.",
        ]
    if stages:
        total = sum(stages.values())
        lines += [
            "",
            f"Where the server's time goes, in process, per batch of {args.batch} events "
            "(`--profile`, the route's steps timed one by one without the profiler, "
            f"{total * 1000:.0f} ms in all, "
            f"i.e. at most {args.batch / total:,.0f} events/s on one core):",
            "",
            "| stage | ms per batch | share |",
            "| --- | --- | --- |",
        ]
        lines += [
            f"| {name} | {took * 1000:.1f} | {took / total:.0%} |" for name, took in stages.items()
        ]
    return "\n".join(lines) + "\n"


def report_evidence(
    runs: list[dict[str, Any]],
    args: argparse.Namespace,
    data: dict[str, int],
    seen: dict[str, int],
    stages: Any,
) -> str:
    """The section comparing the same runs with and without the maturity evidence."""
    import sqlite3

    configs = sorted({r["workers"] for r in runs})

    def mine(workers: int, evidence: bool) -> list[dict[str, Any]]:
        return [r for r in runs if r["workers"] == workers and r["evidence"] == evidence]

    def med(key: str, workers: int, evidence: bool) -> float:
        return statistics.median(r[key] for r in mine(workers, evidence))

    lines = [
        f"{HEADING_EVIDENCE}",
        "",
        f"Command: `python benchmarks/ingest_load.py --runs {args.runs} --agents {args.agents} "
        f"--batch {args.batch} --duration {args.duration:g} --workers "
        + " ".join(map(str, configs))
        + f" --data {args.data} --evidence on off"
        + " --profile" * args.profile
        + " --write" * args.write
        + '` (as in "Ingestion" above: `vigie serve --workers W`, default SQLite stores, '
        "server-side detection on; each run starts a fresh service, with "
        "`VIGIE_MATURITY_EVIDENCE=1` (on, the default) or `0` (off), the two interleaved run "
        "by run).",
        "",
        f"Data (`--data {args.data}`): "
        + (
            f"{data['windows']:,} ECS documents of the EVTX corpus ({data['windows 4624']:,} of "
            f"them logons 4624) and {data['network']:,} network records of the capture corpus "
            "as the agent ships them (`record_event(...).to_ecs()`: "
            + ", ".join(
                f"{v:,} {k.split()[1]}" for k, v in data.items() if k.startswith("network ")
            )
            + "), interleaved, stamped over the hour before the run; cycled, batches of "
            f"{args.batch}, gzip, {args.agents} agents of one establishment."
            if data
            else f"the EVTX corpus's ECS documents, cycled, batches of {args.batch}."
        )
        + " What `api.maturity.signals.observe` takes from one pass over the data: "
        + ", ".join(f"{v:,} {k}" for k, v in seen.items())
        + ".",
        "",
        f"Versions: Python {sys.version.split()[0]}, FastAPI {version('fastapi')}, uvicorn "
        f"{version('uvicorn')}, SQLite {sqlite3.sqlite_version}, httpx {version('httpx')}, "
        f"orjson {version('orjson')}, Vigie {_commit()}; {os.cpu_count()} cores.",
        "",
        "| workers | evidence | events/s, median | runs | p50 ms | p99 ms | server CPU ms "
        "per 1,000 events | evidence rows after the run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for workers in configs:
        for evidence in (False, True):
            rs = mine(workers, evidence)
            if not rs:
                continue
            lines.append(
                f"| {workers} | {'on' if evidence else 'off'} | "
                f"{med('events_per_s', workers, evidence):,.0f} | "
                + ", ".join(f"{r['events_per_s']:,.0f}" for r in rs)
                + f" | {med('p50', workers, evidence) * 1000:.0f} | "
                f"{med('p99', workers, evidence) * 1000:.0f} | "
                f"{med('cpu_ms_per_1000', workers, evidence):.0f} | "
                + ", ".join(f"{r['evidence_rows']:,}" for r in rs)
                + " |"
            )
    lines.append("")
    for workers in configs:
        if not (mine(workers, True) and mine(workers, False)):
            continue
        rate = med("events_per_s", workers, True) / med("events_per_s", workers, False)
        cpu = med("cpu_ms_per_1000", workers, True) / med("cpu_ms_per_1000", workers, False)
        slower = 1 - rate
        verdict = "met" if slower < EVIDENCE_GOAL else "not met"
        lines.append(
            f"{workers} worker(s): with the evidence, {rate:.3f}x the events/s of without "
            f"({slower:+.1%} slower; goal under {EVIDENCE_GOAL:.0%}: {verdict}), "
            f"{cpu:.3f}x the server CPU per event."
        )
    lost = [r["acknowledged"] - r["stored"] for r in runs]
    lines.append(
        "Nothing lost: "
        + (
            "events stored equal events acknowledged in every run, retries stored nothing."
            if not any(lost) and all(r["duplicates_ok"] == r["duplicates_sent"] for r in runs)
            else f"NO: acknowledged minus stored per run {lost}."
        )
    )
    if stages:
        total = sum(stages.values())
        share = sum(v for k, v in stages.items() if k.startswith("maturity"))
        lines += [
            "",
            f"In process, per batch of {args.batch} events of the same data (`--profile`, the "
            f"route's steps timed one by one, {total * 1000:.0f} ms in all): the maturity "
            f"evidence (observe, observe_detections, gather in the request's transaction) "
            f"takes {share * 1000:.2f} ms, {share / total:.1%} of the batch.",
            "",
            "| stage | ms per batch | share |",
            "| --- | --- | --- |",
        ]
        lines += [
            f"| {name} | {took * 1000:.2f} | {took / total:.1%} |" for name, took in stages.items()
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--events", type=int, default=20_000, help="at most, distinct")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--data", choices=["evtx", "agent-mix"], default="evtx")
    parser.add_argument("--evidence", nargs="+", choices=["on", "off"], default=["on"])
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    data: dict[str, int] = {}
    if args.data == "agent-mix":
        docs, data = agent_mix(args.events)
        print(f"{len(docs):,} documents: {data}", flush=True)
    else:
        docs = corpus_events(args.events)
        print(f"{len(docs):,} ECS documents from {CORPUS}", flush=True)
    modes = [mode == "on" for mode in args.evidence]
    runs = [
        one_run(n + 1, w, docs, args, evidence)
        for w in args.workers
        for n in range(args.runs)
        for evidence in (modes if n % 2 == 0 else modes[::-1])  # neither always goes first
    ]
    stages = None
    if args.profile:
        stages, top = profile(docs, args.batch, 11, evidence=True in modes)
        for name, took in stages.items():
            print(f"{name:>17}: {took * 1000:7.2f} ms per batch")
        print(top)
    both = len(set(modes)) == 2
    if both:
        heading = HEADING_EVIDENCE
        text = report_evidence(runs, args, data, observations(docs), stages)
    else:
        heading = HEADING
        text = report(runs, args, len(docs), stages)
    print(text)
    if args.write:
        from benchmarks.results import RESULTS, write_section

        if heading not in RESULTS.read_text(encoding="utf-8"):
            RESULTS.write_text(RESULTS.read_text(encoding="utf-8").rstrip() + "\n\n" + heading)
        write_section(heading, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
