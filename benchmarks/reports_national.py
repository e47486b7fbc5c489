"""Reports at national scale: the statistics and the incident registry on PostgreSQL.

    python benchmarks/reports_national.py [--establishments 10500]
        [--incidents 25000 100000] [--runs 3] [--reuse] [--write]

Data (seeded, built before any clock starts, by `benchmarks/dashboard_load.py`'s own builder:
bulk COPY into a schema of its own in the `test` database, then VACUUM ANALYZE): for each
count in `--incidents`, `--establishments` establishments over every region and kind (a legal
status each, by kind), their agents, that many incidents over the last 365 days with their
timelines (about 30% notifiable, NIS2 reports sent on time, late or never), 50 CERT alerts with
their acknowledgements, and one night of maturity snapshots (each establishment's 40 controls).
A thousand ingested batches (the builder wants some), which no report reads.

Measured: each report as an admin makes it on the server, `vigie report KIND --format F
--as-of T --database-url URL --output FILE`, in a new process each time: its wall time
(process start and imports included, about a second) and its peak resident memory (VmHWM,
read by the process itself: after its imports, and at the end; the difference is what making
the report took). `--runs` runs each, medians. The same `as_of` every time;
each run's sha256 is compared with the first's (the same bytes, or the script fails).

Peer: the registry the way a pandas script would write it, all in memory: every incident of
the registry's query read whole by `pandas.read_sql` (the same join, the same columns
except the computed NIS2 states), then `DataFrame.to_csv` / `to_excel(engine="xlsxwriter")`.
Also in a new process, timed and measured the same way.

Goal (issue 11): under 30 s each at 10,500 establishments and 100,000 incidents, and memory
flat as the count grows (the peak at the largest count against the smallest).
With `--write`, the "Reports" section of benchmarks/RESULTS.md is replaced (or added).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import sqlalchemy
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.db import make_engine, upgrade  # noqa: E402
from benchmarks import dashboard_load  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "reports"
POSTGRES = dashboard_load.POSTGRES
PG_SCHEMA = "bench_reports"
HEADING = "## Reports"
GOAL_SECONDS = 30.0
# Legal status by kind (FINESS's families; EHPAD are split three ways in France).
LEGAL = {
    "CHU": {"public": 1.0},
    "CH": {"public": 1.0},
    "clinic": {"private_commercial": 0.8, "private_nonprofit": 0.2},
    "EHPAD": {"public": 0.45, "private_nonprofit": 0.30, "private_commercial": 0.25},
    "psychiatry": {"public": 0.7, "private_nonprofit": 0.2, "private_commercial": 0.1},
    "SSR": {"public": 0.3, "private_nonprofit": 0.4, "private_commercial": 0.3},
}
REPORTS = (
    ("stats", "xlsx"),
    ("stats", "csv"),
    ("registry", "csv"),
    ("registry", "xlsx"),
    ("acknowledgements", "xlsx"),
)
PEERS = (("pandas-registry", "csv"), ("pandas-registry", "xlsx"))


def _schema(incidents: int, establishments: int) -> str:
    return f"{PG_SCHEMA}_{establishments}_{incidents}"


def _url(schema: str) -> str:
    return f"{POSTGRES}?options=-csearch_path%3D{schema}"


def build(args: argparse.Namespace, incidents: int) -> tuple[str, datetime, float]:
    """The schema for `incidents` (reused when `--reuse` finds it complete); its URL, the
    moment it was built as of, and the seconds building took (0 when reused)."""
    schema = _schema(incidents, args.establishments)
    admin = sqlalchemy.create_engine(POSTGRES)
    with admin.begin() as connection:
        note = connection.execute(
            text("SELECT obj_description(oid) FROM pg_namespace WHERE nspname = :s"),
            {"s": schema},
        ).scalar()
    if args.reuse and note:
        admin.dispose()
        return _url(schema), datetime.fromisoformat(note), 0.0
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(_url(schema))
    upgrade(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    began = time.perf_counter()
    spec = argparse.Namespace(
        establishments=args.establishments,
        incidents=incidents,
        detections=100,  # the builder wants some; no report reads them
        batches=1_000,
        snapshot_days=1,
    )
    dashboard_load.build(engine, spec, now)
    _legal_statuses(engine)
    took = time.perf_counter() - began
    engine.dispose()
    with admin.begin() as connection:
        connection.execute(text(f"COMMENT ON SCHEMA \"{schema}\" IS '{now.isoformat()}'"))
    admin.dispose()
    return _url(schema), now, took


def _legal_statuses(engine: sqlalchemy.Engine) -> None:
    rng = random.Random(dashboard_load.SEED + 7)
    with engine.begin() as connection:
        rows = connection.execute(text("SELECT finess, kind FROM establishments ORDER BY finess"))
        chosen = [
            {"f": finess, "s": rng.choices(list(w), weights=list(w.values()))[0]}
            for finess, kind in rows
            for w in [LEGAL.get(kind, {"public": 1.0})]
        ]
        connection.execute(
            text("UPDATE establishments SET legal_status = :s WHERE finess = :f"), chosen
        )
        connection.execute(text("ANALYZE establishments"))


def _hwm_mb() -> float:
    """This process's peak resident memory (VmHWM): its own, unlike `ru_maxrss`, which
    Linux carries over from the parent a child was forked from."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(command: list[str]) -> tuple[float, float, float]:
    """A process's wall seconds, its peak resident memory in MB before the report (after
    its imports), and its peak at the end."""
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr}")
    before, after = (float(x) for x in done.stdout.strip().splitlines()[-1].split())
    return took, before, after


def measured(args: argparse.Namespace) -> None:
    """In the measured process: imports first, then the report; prints both peaks."""
    import importlib

    import cli.main

    for module in ("api.reports.registry", "api.reports.stats", "api.reports.acknowledgements",
                   "pandas", "xlsxwriter", "psycopg"):  # fmt: skip
        importlib.import_module(module)
    before = _hwm_mb()
    if args.peer:
        peer(args)
    else:
        status = cli.main.main(args.command)
        if status:
            raise SystemExit(status)
    print(f"{before:.1f} {_hwm_mb():.1f}")


def report_command(url: str, kind: str, fmt: str, as_of: datetime, out: Path) -> list[str]:
    return [
        sys.executable, __file__, "--measured", "--", "report", kind, "--format", fmt,
        "--as-of", as_of.isoformat(), "--output", str(out),
        "--data-dir", str(OUT / "data"), "--database-url", url,
    ]  # fmt: skip


def peer_command(url: str, fmt: str, as_of: datetime, out: Path) -> list[str]:
    return [sys.executable, __file__, "--measured", "--peer", fmt, "--url", url,
            "--as-of", as_of.isoformat(), "--output", str(out)]  # fmt: skip


def peer(args: argparse.Namespace) -> None:
    """The peer, in its own process: the registry's rows read whole by pandas, then written."""
    import pandas as pd

    engine = make_engine(args.url)
    query = text(
        "SELECT i.id, i.establishment_finess, e.name, e.kind, e.region, e.legal_status, "
        "i.origin, i.title, i.category, i.severity, i.care_impact, i.personal_data, "
        "i.cnil_notified_at, i.started_at, i.first_seen, i.created_at, i.aware_at, "
        "i.campaign_id, i.affected_systems, i.notifiable, i.early_warning_due, "
        "i.early_warning_at, i.notification_due, i.notification_at, i.final_report_due, "
        "i.final_report_at, i.status "
        "FROM incidents i JOIN establishments e ON e.finess = i.establishment_finess "
        "WHERE i.created_at <= :as_of ORDER BY i.aware_at, i.id"
    )
    with engine.connect() as connection:
        frame = pd.read_sql(query, connection, params={"as_of": args.as_of})
    engine.dispose()
    if args.peer == "csv":
        frame.to_csv(args.output, sep=";", index=False, encoding="utf-8-sig")
    else:
        for column in frame.select_dtypes(include=["datetimetz"]).columns:
            frame[column] = frame[column].dt.tz_localize(None)
        frame.to_excel(args.output, index=False, engine="xlsxwriter")


def run(args: argparse.Namespace) -> list[dict[str, object]]:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "data").mkdir(exist_ok=True, mode=0o700)
    rows: list[dict[str, object]] = []
    for count in args.incidents:
        print(f"{args.establishments:,} establishments, {count:,} incidents", flush=True)
        url, built_at, took = build(args, count)
        if took:
            print(f"  built in {took:.0f} s", flush=True)
        as_of = built_at
        for name, fmt in (*REPORTS, *PEERS):
            times, peaks, growths, digests = [], [], [], set()
            for i in range(args.runs):
                out = OUT / f"{name}-{count}-{i}.{fmt}"
                command = (
                    peer_command(url, fmt, as_of, out)
                    if name.startswith("pandas")
                    else report_command(url, name, fmt, as_of, out)
                )
                seconds, before, peak = measure(command)
                times.append(seconds)
                peaks.append(peak)
                growths.append(peak - before)
                digests.add(hashlib.sha256(out.read_bytes()).hexdigest())
                size = out.stat().st_size
                out.unlink()
            same = len(digests) == 1
            if not name.startswith("pandas") and not same:
                raise SystemExit(f"{name} {fmt}: different bytes for the same as_of")
            row = {
                "incidents": count,
                "report": name,
                "format": fmt,
                "median_s": statistics.median(times),
                "peak_mb": max(peaks),
                "growth_mb": max(growths),
                "size_mb": size / 1e6,
                "same_bytes": same,
            }
            rows.append(row)
            print(
                f"  {name:17} {fmt:5} {row['median_s']:7.2f} s  peak {row['peak_mb']:7.1f} MB"
                f" (+{row['growth_mb']:.1f} MB while making it)"
                f"  file {row['size_mb']:6.1f} MB  same bytes: {same}",
                flush=True,
            )
        if not args.reuse:
            admin = sqlalchemy.create_engine(POSTGRES)
            with admin.begin() as connection:
                connection.execute(
                    text(f'DROP SCHEMA "{_schema(count, args.establishments)}" CASCADE')
                )
            admin.dispose()
    return rows


def table(rows: list[dict[str, object]], args: argparse.Namespace) -> str:
    counts = sorted({int(r["incidents"]) for r in rows})  # type: ignore[call-overload]
    low, high = counts[0], counts[-1]
    lines = [
        f"{HEADING}: statistics and the incident registry at national scale (PostgreSQL)",
        "",
        f"Command: `python benchmarks/reports_national.py --establishments {args.establishments}"
        f" --incidents {' '.join(str(c) for c in args.incidents)} --runs {args.runs}`, "
        f"{datetime.now(UTC):%Y-%m-%d}, on this 2-core machine. Data: the builder of "
        "benchmarks/dashboard_load.py (seeded), see the script's docstring. Versions: "
        + ", ".join(
            f"{p} {version(p)}"
            for p in ("vigie", "sqlalchemy", "psycopg", "xlsxwriter", "pandas", "fpdf2")
        )
        + f", PostgreSQL {_server_version()}.",
        "",
        "Each cell: the median wall time of a new `vigie report` process (imports included)"
        " / its peak resident memory (+ how much of it came while making the report, after"
        " the imports). The peer is pandas reading the registry whole (`read_sql`), then"
        " `to_csv` / `to_excel`. Last column: the peak at the largest count over the peak at"
        " the smallest.",
        "",
        "| report | format | "
        + " | ".join(f"{c:,} incidents" for c in counts)
        + f" | memory {high:,} / {low:,} |",
        "| --- | --- | " + " | ".join("---" for _ in counts) + " | --- |",
    ]
    keys = sorted({(str(r["report"]), str(r["format"])) for r in rows}, key=_order)
    for name, fmt in keys:
        cells = {int(r["incidents"]): r for r in rows if (r["report"], r["format"]) == (name, fmt)}  # type: ignore[call-overload]
        ratio = float(cells[high]["peak_mb"]) / float(cells[low]["peak_mb"])  # type: ignore[arg-type]
        lines.append(
            f"| {name} | {fmt} | "
            + " | ".join(
                f"{float(cells[c]['median_s']):.1f} s / {float(cells[c]['peak_mb']):.0f} MB"  # type: ignore[arg-type]
                f" (+{float(cells[c]['growth_mb']):.0f})"  # type: ignore[arg-type]
                for c in counts
            )
            + f" | {ratio:.2f} |"
        )
    lines += ["", f"Goal: under {GOAL_SECONDS:.0f} s each, memory flat as the count grows."]
    return "\n".join(lines) + "\n"


def _order(key: tuple[str, str]) -> int:
    everything = [*REPORTS, *PEERS]
    return everything.index(key) if key in everything else len(everything)


def _server_version() -> str:
    engine = sqlalchemy.create_engine(POSTGRES)
    with engine.connect() as connection:
        found = str(connection.execute(text("SHOW server_version")).scalar())
    engine.dispose()
    return found.split()[0]


def write(section: str) -> None:
    results = ROOT / "benchmarks" / "RESULTS.md"
    current = results.read_text()
    start = current.find(HEADING + ":")
    if start == -1:
        results.write_text(current.rstrip("\n") + "\n\n" + section)
        return
    end = current.find("\n## ", start + 1)
    rest = current[end + 1 :] if end != -1 else ""
    results.write_text(current[:start] + section + ("\n" + rest if rest else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--establishments", type=int, default=10_500)
    parser.add_argument("--incidents", type=int, nargs="+", default=[25_000, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="keep the schemas, use kept ones")
    parser.add_argument("--write", action="store_true", help="write the section of RESULTS.md")
    parser.add_argument("--measured", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--peer", choices=("csv", "xlsx"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--as-of", help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measured:
        args.command = [c for c in args.command if c != "--"]
        measured(args)
        return
    rows = run(args)
    section = table(rows, args)
    print("\n" + section)
    if args.write:
        write(section)


if __name__ == "__main__":
    main()
