"""Sigma: `vigie scan` against the SQLite approach (Zircolite's), same events, same rules.

    python benchmarks/sigma_vs_sqlite.py [--runs 3] [--min-events 50000] [--write]

Data: every record of the EVTX corpus (../shared/corpora/evtx) in the JSON rendering of the
`evtx` package, `{"Event": {...}}` one per line, the whole corpus repeated until there are at
least `--min-events` lines (benchmarks/out/sigma/events.jsonl, built once). Rules: every
SigmaHQ Windows rule (../shared/corpora/sigma/rules/windows).

Each run measures, in turn (interleaved, so that a noisy moment hurts both):
- Vigie: `vigie scan --sigma RULES --format jsonl --output FILE --stats EVENTS`, both cores,
  from an empty cache folder (every rule parsed), then again with the cache it left.
- The SQLite approach (`benchmarks/sqlite_approach.py`), as Zircolite works: the rules parsed
  with pySigma and converted by its SQLite backend; the events flattened (Vigie's Sigma view)
  into one in-memory SQLite table indexed on Channel and EventID; every converted rule run as
  a query over every event, matched rows written out as JSONL detections. Both cores: each of
  two forked workers loads every other event into its own table and runs every query.
Both are whole commands in a fresh process: wall time from start to exit, and peak memory as
PSS summed over the process tree (sampled every 250 ms: forked workers share their parent's
pages, which RSS would count twice). Wall time without rule loading/conversion comes from the
tools themselves (`--stats` time for Vigie; the child's own clock for SQLite). Detections per
rule must be the same; every difference is listed. Medians over the runs. With `--write`, the
Sigma section of benchmarks/RESULTS.md is replaced by the results.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: import Vigie from this checkout

from benchmarks.results import write_section  # noqa: E402
from benchmarks.yara_vs_cli import _pss_kb  # noqa: E402  (PSS of a process tree)

CORPORA = REPO.parent / "shared" / "corpora"
RULES = CORPORA / "sigma" / "rules" / "windows"
OUT = REPO / "benchmarks" / "out" / "sigma"
SECTION = "## Sigma"


# --- data -----------------------------------------------------------------------------------


def build_dataset(dest: Path, min_events: int) -> int:
    """The EVTX corpus as JSONL, repeated to at least `min_events` lines; its line count."""
    if dest.exists():
        with dest.open("rb") as fh:
            count = sum(1 for _ in fh)
        if count >= min_events:
            return count
    from evtx import PyEvtxParser

    lines: list[bytes] = []
    for path in sorted((CORPORA / "evtx").rglob("*.evtx")):
        for record in PyEvtxParser(str(path)).records_json():
            if record is None:
                continue
            try:
                lines.append(orjson.dumps(orjson.loads(record["data"])))
            except orjson.JSONDecodeError:
                continue
    copies = -(-min_events // len(lines))
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as fh:
        for _ in range(copies):
            fh.write(b"\n".join(lines) + b"\n")
    return copies * len(lines)


# --- measuring a command --------------------------------------------------------------------


def measure(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `cmd`: wall time, peak PSS of its process tree, its stderr."""
    peak = 0
    done = threading.Event()
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.25):
            try:
                peak = max(peak, _pss_kb(proc.pid))
            except OSError:  # a process of the tree ended while it was being read
                continue

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}): {err.strip()[-800:]}")
    return {"wall": wall, "peak_mb": peak / 1024, "stderr": err}


def run_vigie(events: Path, out: Path, workers: int, cache: Path) -> dict[str, Any]:
    """One `vigie scan`; `cache` is its cache folder (rules parsed earlier are reused)."""
    cmd = [sys.executable, "-m", "cli.main", "scan", "--sigma", str(RULES), "--format", "jsonl"]
    result = measure(
        [*cmd, "--output", str(out), "--stats", "--workers", str(workers), str(events)],
        env={"XDG_CACHE_HOME": str(cache)},
    )
    scan = re.search(r"^time: ([\d.]+) s", result["stderr"], re.MULTILINE)
    result["scan"] = float(scan.group(1)) if scan else float("nan")
    result["rules"] = result["wall"] - result["scan"]  # start, imports, rule loading, exit
    result["hits"] = _count_rules(out)
    return result


def run_sqlite(events: Path, out: Path, workers: int) -> dict[str, Any]:
    timings = out.with_suffix(".timings.json")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--sqlite-child", str(events)]
    result = measure(
        [*cmd, "--output", str(out), "--workers", str(workers), "--timings", str(timings)]
    )
    child = json.loads(timings.read_text())
    # Rule loading and conversion, with start and exit, as for Vigie.
    result.update(scan=child["scan"], rules=result["wall"] - child["scan"], child=child)
    result["hits"] = _count_rules(out)
    return result


def _count_rules(out: Path) -> Counter[str]:
    hits: Counter[str] = Counter()
    with out.open("rb") as fh:
        for line in fh:
            hits[orjson.loads(line)["rule_id"]] += 1
    return hits


# --- the SQLite approach, in its own process ------------------------------------------------

_CHILD: dict[str, Any] = {}  # what forked workers inherit: the converted rules, the input


def sqlite_child(args: argparse.Namespace) -> None:
    import yaml
    from sigma.collection import SigmaCollection
    from sigma.rule import SigmaRule

    from detection.sigma.convert import to_sqlite
    from detection.sigma.load import iter_rule_files

    started = time.perf_counter()
    rules: list[SigmaRule] = []
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml, as Vigie: its best shot
    for path in iter_rule_files([RULES]):
        docs = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=loader))
        collection = SigmaCollection.from_dicts(docs, collect_errors=True)
        rules.extend(r for r in collection.rules if isinstance(r, SigmaRule) and not r.errors)
    converted = [r for r in to_sqlite(rules, copy_rules=False) if r.ok]
    ruled = time.perf_counter()
    _CHILD.update(converted=converted, events=args.events, workers=args.workers)
    context = multiprocessing.get_context("fork")
    with context.Pool(args.workers) as pool:
        parts = pool.map(_sqlite_worker, range(args.workers))
    with Path(args.output).open("wb") as out:
        for part in parts:
            out.write(Path(part["output"]).read_bytes())
            Path(part["output"]).unlink()
    finished = time.perf_counter()
    report = {
        "rules": ruled - started,
        "scan": finished - ruled,
        "rules_converted": len(converted),
        "rules_parsed": len(rules),
        "converted_ids": [r.rule_id for r in converted],
        "events": sum(p["events"] for p in parts),
        "load": [p["load"] for p in parts],
        "query": [p["query"] for p in parts],
        "errors": {k: v for p in parts for k, v in p["errors"].items()},
    }
    Path(args.timings).write_text(json.dumps(report))


def _sqlite_worker(part: int) -> dict[str, Any]:
    from benchmarks.sqlite_approach import EventTable, connect, run_queries
    from detection.sources.windows import event_from_rendering

    workers: int = _CHILD["workers"]
    started = time.perf_counter()

    def views() -> Any:
        with open(_CHILD["events"], "rb") as fh:
            for number, line in enumerate(fh):
                if number % workers == part and line.strip():
                    yield number, event_from_rendering(orjson.loads(line)).sigma_view()

    table = EventTable(connect())
    stats = table.load(views())
    loaded = time.perf_counter()
    outcome, detections = run_queries(table, _CHILD["converted"], fetch=True)
    titles = {r.rule_id: r.title for r in _CHILD["converted"]}
    output = OUT / f"sqlite-part{part}.jsonl"
    with output.open("wb") as out:
        for rule_id, row in detections:
            doc = {
                "engine": "sigma",
                "rule_id": rule_id,
                "rule_title": titles[rule_id],
                "event": row,
            }
            out.write(orjson.dumps(doc) + b"\n")
    return {
        "events": stats.rows,
        "load": loaded - started,
        "query": time.perf_counter() - loaded,
        "errors": outcome.errors,
        "output": str(output),
    }


# --- report ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--min-events", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--write", action="store_true", help="write the Sigma section of RESULTS.md"
    )
    parser.add_argument("--sqlite-child", dest="events", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--timings", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.events:
        sqlite_child(args)
        return

    data = OUT / "events.jsonl"
    events = build_dataset(data, args.min_events)
    print(f"data: {data} ({events} events, {data.stat().st_size / 2**20:.1f} MiB)", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {"vigie": [], "warm": [], "sqlite": []}
    for number in range(args.runs):
        # Vigie from an empty cache (every rule parsed, as SQLite converts every rule), then
        # again with the cache that run left (what a second scan costs).
        cache = OUT / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        runs["vigie"].append(run_vigie(data, OUT / "vigie.jsonl", args.workers, cache))
        runs["warm"].append(run_vigie(data, OUT / "vigie.jsonl", args.workers, cache))
        runs["sqlite"].append(run_sqlite(data, OUT / "sqlite.jsonl", args.workers))
        print(
            f"run {number + 1}: "
            + "; ".join(
                f"{name} {r[-1]['wall']:.1f} s ({r[-1]['scan']:.1f} s scan), "
                f"{r[-1]['peak_mb']:.0f} MB"
                for name, r in runs.items()
            ),
            flush=True,
        )
    text = report(runs, events, data, args.workers)
    print(text)
    if args.write:
        write_section(SECTION, text)


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def report(runs: dict[str, list[dict[str, Any]]], events: int, data: Path, workers: int) -> str:
    vigie, warm, sql = runs["vigie"], runs["warm"], runs["sqlite"]
    w_wall = _median(warm, "wall")
    child = sql[-1]["child"]
    v_wall, s_wall = _median(vigie, "wall"), _median(sql, "wall")
    v_scan, s_scan = _median(vigie, "scan"), _median(sql, "scan")
    rows = [
        ("wall time, whole command", f"{v_wall:.1f} s", f"{s_wall:.1f} s", s_wall / v_wall),
        ("wall time, whole command, rules cached by an earlier scan", f"{w_wall:.1f} s",
         "", s_wall / w_wall),
        ("events/s, whole command", f"{events / v_wall:,.0f}", f"{events / s_wall:,.0f}", None),
        ("wall time without rule loading/conversion", f"{v_scan:.1f} s", f"{s_scan:.1f} s",
         s_scan / v_scan),
        ("events/s without rule loading/conversion", f"{events / v_scan:,.0f}",
         f"{events / s_scan:,.0f}", None),
        ("rule loading (+ conversion), start, exit", f"{_median(vigie, 'rules'):.1f} s",
         f"{_median(sql, 'rules'):.1f} s", None),
        ("peak memory (PSS, process tree)", f"{_median(vigie, 'peak_mb'):.0f} MB",
         f"{_median(sql, 'peak_mb'):.0f} MB", None),
    ]  # fmt: skip
    lines = [
        f"{SECTION}: `vigie scan` against the SQLite approach",
        "",
        "Command: `python benchmarks/sigma_vs_sqlite.py --runs "
        f"{len(vigie)} --write` (both tools as whole commands, {workers} processes each, "
        "interleaved runs; medians).",
        "",
        f"Data: the EVTX corpus rendered as JSONL by the `evtx` package, repeated: {events:,} "
        f"events, {data.stat().st_size / 2**20:.0f} MiB. Rules: SigmaHQ `rules/windows`, "
        f"{child['rules_parsed']} rules; {child['rules_converted']} convert to SQLite (the "
        "others are keyword searches or ETW-only log sources), Vigie runs all of them.",
        "",
        f"Versions: Python {platform.python_version()}, pySigma {version('pysigma')}, "
        f"pySigma-backend-sqlite {version('pysigma-backend-sqlite')}, SQLite "
        f"{sqlite3.sqlite_version}, evtx {version('evtx')}, Vigie {_commit()}; "
        f"{os.cpu_count()} cores.",
        "",
        "| measure | vigie scan | SQLite approach | SQLite / Vigie |",
        "| --- | --- | --- | --- |",
    ]
    for name, mine, theirs, ratio in rows:
        lines.append(f"| {name} | {mine} | {theirs} | {f'{ratio:.1f}x' if ratio else ''} |")
    whole, scan = s_wall / v_wall, s_scan / v_scan
    verdict = (
        "meets the 10x goal"
        if whole >= 10
        else "meets the 5x must"
        if whole >= 5
        else ("is below the 5x must")
    )
    lines += [
        "",
        f"Throughput ratio, Vigie over SQLite: {whole:.1f}x for the whole command "
        f"({scan:.1f}x without rule loading/conversion; {s_wall / w_wall:.1f}x when an earlier "
        f"scan cached the parsed rules): Vigie {verdict} (must 5x, goal 10x).",
    ]
    lines += ["", *detections_text(vigie[-1]["hits"], sql[-1]["hits"], sql[-1]["child"])]
    lines += [
        "",
        "SQLite side, per worker (last run): load "
        + ", ".join(f"{t:.1f} s" for t in child["load"])
        + "; queries "
        + ", ".join(f"{t:.1f} s" for t in child["query"])
        + ".",
    ]
    return "\n".join(lines) + "\n"


def detections_text(vigie: Counter[str], sql: Counter[str], child: dict[str, Any]) -> list[str]:
    converted = set(child["converted_ids"])
    compared = sorted((set(vigie) | set(sql)) & converted)
    differ = [r for r in compared if vigie[r] != sql[r]]
    only_vigie = sorted(set(vigie) - converted)
    lines = [
        f"Detections on the rules that convert: Vigie {sum(vigie[r] for r in compared):,}, "
        f"SQLite {sum(sql[r] for r in compared):,}, from {len(compared)} rules; "
        f"{len(compared) - len(differ)} rules with the same count, {len(differ)} differ."
    ]
    if differ:
        lines.append("Rules whose detections differ (Vigie / SQLite):")
        lines += [f"- `{r}`: {vigie[r]} / {sql[r]}" for r in differ]
    if only_vigie:
        lines.append(
            f"Rules SQLite cannot run (keyword searches) that Vigie matched: {len(only_vigie)} "
            f"({sum(vigie[r] for r in only_vigie):,} detections): "
            + ", ".join(f"`{r}`" for r in only_vigie)
        )
    if child["errors"]:
        lines.append(f"SQLite query errors: {child['errors']}")
    return lines


def _commit() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
