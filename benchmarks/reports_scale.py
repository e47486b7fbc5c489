"""Reports at scale: the incident registry (and the alert acknowledgement report) built over
growing numbers of incidents, with their time and peak memory: memory must stay flat as the
count grows (issue 11: the registry streams, it never holds every incident).

    python benchmarks/reports_scale.py [--incidents 2000 20000] [--establishments 2000]
        [--database-url URL] [--reports registry] [--formats csv xlsx] [--reuse]

Data, built once per size before any clock starts (seeded; bulk inserts, COPY on
PostgreSQL), by the dashboard benchmark's generators (`benchmarks/dashboard_load.py`: the
same national mix): `--establishments` establishments with valid FINESS numbers over every
département, `--incidents` incidents over the last year with their timelines (status changes,
reports sent, deadlines flagged), about 30% notifiable, 40 campaigns; 50 CERT alerts with
the acknowledgements of 60 to 85% of their establishments. `as_of` is the moment the data
was built, so a reused database gives the same files.

Each size has its own database: `--database-url` names where. `sqlite` (the default): a file
per size under benchmarks/out/reports/; a PostgreSQL URL: a schema per size in that database
(`bench_reports_scale_<n>`), dropped at the end unless `--reuse`.

Measured: each report and format built by its builder (`build(session, params, out)`, as
`runs.make` calls it) into a file, in a subprocess of its own, so that its peak resident
memory (VmHWM, Linux) is its own: the peak before building (interpreter, imports,
connection) and the growth while building. The table gives time, size, sha256 and both peaks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy  # noqa: E402
from sqlalchemy import Engine, insert, text  # noqa: E402

from api.agents.models import utcnow  # noqa: E402
from api.alerts.models import Acknowledgement, Alert  # noqa: E402
from api.db import make_engine, session_factory, upgrade  # noqa: E402
from api.establishments.models import Establishment  # noqa: E402
from api.incidents.models import Campaign, Incident, TimelineEntry  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "reports"
SEED = 11
LEGAL = {"public": 0.45, "private_nonprofit": 0.30, "private_commercial": 0.20, None: 0.05}


@dataclass(frozen=True)
class Database:
    url: str
    incidents: int
    as_of: datetime
    built_seconds: float
    schema: str | None = None  # PostgreSQL: dropped at the end unless --reuse


# --- the data ---------------------------------------------------------------------------------


def build(engine: Engine, incidents: int, establishments: int) -> datetime:
    """Fill an empty database (schema at head); returns the moment it describes (as_of)."""
    from benchmarks.dashboard_load import _copy, alerts_of, incidents_of, rules_of, sites_of

    rng = random.Random(SEED)
    now = utcnow().replace(microsecond=0)
    postgres = engine.dialect.name == "postgresql"

    def put(model: Any, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if postgres:
            _copy(engine, model.__tablename__, rows)
            return
        for i in range(0, len(rows), 50_000):
            with engine.begin() as connection:
                connection.execute(insert(model), rows[i : i + 50_000])

    sites = sites_of(establishments, rng)
    legal, weights = list(LEGAL), list(LEGAL.values())
    put(
        Establishment,
        [
            {
                "finess": s.finess,
                "name": f"{s.kind} {s.finess}",
                "kind": s.kind,
                "region": s.region,
                "beds": rng.randint(20, 2000),
                "legal_entity_finess": None,
                "legal_status": rng.choices(legal, weights)[0],
                "created_at": now - timedelta(days=600),
            }
            for s in sites
        ],
    )
    made = incidents_of(sites, rules_of(rng), incidents, now, rng)
    put(Campaign, made.campaigns)
    put(Incident, made.incidents)
    put(TimelineEntry, made.timeline)
    alerts, acks = alerts_of(sites, now, rng)
    put(Alert, alerts)
    put(Acknowledgement, acks)
    print(
        f"  {len(sites):,} establishments, {len(made.incidents):,} incidents, "
        f"{len(made.timeline):,} timeline entries, {len(alerts)} alerts, {len(acks):,} "
        "acknowledgements",
        flush=True,
    )
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    return now


def _marker(args: argparse.Namespace, incidents: int) -> Path:
    return OUT / f"{_key(args.database_url, incidents)}.json"


def _key(base: str, incidents: int) -> str:
    return f"{hashlib.sha256(base.encode()).hexdigest()[:8]}-{incidents}"


def _params(args: argparse.Namespace, incidents: int) -> dict[str, Any]:
    return {"seed": SEED, "incidents": incidents, "establishments": args.establishments}


def open_database(args: argparse.Namespace, incidents: int) -> Database:
    """The database of one size: reused if `--reuse` and built with the same parameters."""
    marker = _marker(args, incidents)
    path = OUT / f"reports-{incidents}.db"  # SQLite
    schema: str | None = None
    url = f"sqlite:///{path}"
    if args.database_url != "sqlite":
        schema = f"bench_reports_scale_{incidents if args.reuse else secrets.token_hex(4)}"
        url = f"{args.database_url}?options=-csearch_path%3D{schema}"
    if args.reuse and marker.exists():
        found = json.loads(marker.read_text())
        exists = path.exists() if schema is None else _schema_exists(args.database_url, schema)
        if found["params"] == _params(args, incidents) and exists:
            return Database(url, incidents, datetime.fromisoformat(found["as_of"]), 0.0, schema)
    if schema is None:
        for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
    else:
        admin = sqlalchemy.create_engine(args.database_url)
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
    engine = make_engine(url)
    upgrade(engine)
    began = time.perf_counter()
    as_of = build(engine, incidents, args.establishments)
    took = time.perf_counter() - began
    engine.dispose()
    marker.write_text(json.dumps({"params": _params(args, incidents), "as_of": as_of.isoformat()}))
    return Database(url, incidents, as_of, took, schema)


def _schema_exists(base: str, schema: str) -> bool:
    admin = sqlalchemy.create_engine(base)
    with admin.connect() as connection:
        found = connection.execute(
            text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}
        ).scalar()
    admin.dispose()
    return found is not None


def drop(args: argparse.Namespace, db: Database) -> None:
    if db.schema is None or args.reuse:
        return
    admin = sqlalchemy.create_engine(args.database_url)
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{db.schema}" CASCADE'))
    admin.dispose()
    _marker(args, db.incidents).unlink(missing_ok=True)


# --- one report, in a subprocess ---------------------------------------------------------------


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Build one report into a file; its time and this process's peak memory before and after."""
    from api.reports import catalogue

    params = catalogue.checked(spec["kind"], spec["format"], datetime.fromisoformat(spec["as_of"]))
    build_report = catalogue.KINDS[spec["kind"]].builder()
    engine = make_engine(spec["url"])
    output = Path(spec["output"])
    with session_factory(engine)() as session:
        session.execute(text("SELECT 1"))  # connected before the first measure
        before = _peak_kib()
        began = time.perf_counter()
        with output.open("wb") as out:
            build_report(session, params, out)
        took = time.perf_counter() - began
        after = _peak_kib()
    engine.dispose()
    data = output.read_bytes()
    return {
        "seconds": took,
        "before_kib": before,
        "peak_kib": after,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _peak_kib() -> int:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: Linux carries it over
    exec from the forked parent, which here holds the data it built."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def measure(db: Database, kind: str, format: str) -> dict[str, Any]:
    spec = {
        "kind": kind,
        "format": format,
        "as_of": db.as_of.isoformat(),
        "url": db.url,
        "output": str(OUT / f"{kind}-{db.incidents}.{format}"),
    }
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def table(results: list[tuple[Database, str, str, dict[str, Any]]]) -> str:
    lines = [
        "| incidents | report | format | seconds | size | peak before (MiB) | peak (MiB) "
        "| growth (MiB) | sha256 |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for db, kind, format, r in results:
        growth = (r["peak_kib"] - r["before_kib"]) / 1024
        lines.append(
            f"| {db.incidents:,} | {kind} | {format} | {r['seconds']:.2f} "
            f"| {r['bytes'] / 1e6:.1f} MB | {r['before_kib'] / 1024:.0f} "
            f"| {r['peak_kib'] / 1024:.0f} | {growth:.1f} | {r['sha256'][:12]} |"
        )
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, nargs="+", default=[2_000, 20_000])
    parser.add_argument("--establishments", type=int, default=2_000)
    parser.add_argument(
        "--database-url",
        default="sqlite",
        help="sqlite (a file per size), or a PostgreSQL URL (a schema per size in it)",
    )
    parser.add_argument(
        "--reports", nargs="+", default=["registry"], choices=["registry", "acknowledgements"]
    )
    parser.add_argument("--formats", nargs="+", default=["csv", "xlsx"], choices=["csv", "xlsx"])
    parser.add_argument("--reuse", action="store_true", help="keep and reuse the built data")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    for incidents in args.incidents:
        print(f"{incidents:,} incidents:", flush=True)
        db = open_database(args, incidents)
        try:
            if db.built_seconds:
                print(f"  built in {db.built_seconds:.0f} s", flush=True)
            for kind in args.reports:
                for format in args.formats:
                    results.append((db, kind, format, measure(db, kind, format)))
                    print(f"  {kind} {format}: {results[-1][3]['seconds']:.2f} s", flush=True)
        finally:
            drop(args, db)
    print()
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
