"""Maturity: the nightly snapshot job (`api.maturity.snapshots.take_all`) over a national fleet.

    python benchmarks/maturity_snapshot.py [--establishments 10500] [--days 30] [--runs 3]
        [--backends sqlite postgresql] [--baseline-runs 1] [--profile] [--reuse] [--write]

Data (built before the clock starts, seeded, the same every time; bulk inserts, COPY on
PostgreSQL): `--establishments` establishments with valid FINESS numbers spread over every
département (overseas included), of the kinds of the registry (EHPAD, clinics, CH, SSR,
psychiatry, CHU, other) and their regions; each with `--days` days of maturity evidence as
ingestion gathers it (`api.maturity.signals`: source/network, source/windows, net.tls
ok:internal, net.smb v2, net.dns internal, net.outbound, win.logon other, win.privileged,
win.av ok, win.os on the days hosts boot, one `agent` row per agent and day from the
heartbeats; about 15% of the establishments with bad signals: NTLMv1, SMBv1, TLS 1.0, RDP
exposed, Telnet, public DNS, antivirus off, recovery inhibition), a declared profile for 40%,
questionnaire answers for 30%, one or two agents each (some silent for days), incidents with
their timelines for about 10%, 24 CERT alerts targeted by region, kind or to all, with
acknowledgements, and a few exceptions.

Measured: the wall time of `take_all(sessions=..., now=..., retention_days=180)` on a SQLite
file and on PostgreSQL (127.0.0.1:5432, database `test`, a schema of its own dropped at the
end), medians of `--runs`; the snapshots written are deleted between runs (not timed). The
reference point is the same job done one establishment at a time (`_take` called with one
establishment, every read one query per table and establishment, as `recompute` reads one):
the same code and the same results, only the bulk loading differs. Every run's results are
fingerprinted (SHA-256 over every snapshot's FINESS, inputs digest, score, level and result
document): the fingerprint must be the same on both databases, in every run, and across
changes that only make the job faster. `--profile` runs the job once more under cProfile
(SQLite) and prints where the time goes. With `--write`, the "Maturity snapshots" section of
benchmarks/RESULTS.md is replaced (or added).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import random
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy
from sqlalchemy import Engine, delete, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.agents.models import Agent  # noqa: E402
from api.alerts.models import Acknowledgement, Alert  # noqa: E402
from api.db import make_engine, session_factory, transaction, upgrade  # noqa: E402
from api.establishments.finess import (  # noqa: E402
    REGION_OF_DEPARTEMENT,
    check_key,
    departement_of,
    region_of,
    validate_finess,
)
from api.establishments.models import Establishment  # noqa: E402
from api.incidents import nis2  # noqa: E402
from api.incidents.models import Incident, TimelineEntry  # noqa: E402
from api.maturity import snapshots  # noqa: E402
from api.maturity.framework import PROFILE_FLAGS, default  # noqa: E402
from api.maturity.models import Answer, Evidence, Exception_, Profile, Snapshot  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "maturity"
POSTGRES = os.environ.get(
    "VIGIE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PG_SCHEMA = "bench_maturity"
HEADING = "## Maturity snapshots"
GOAL_SECONDS = 120.0
# The job's moment: the nightly run, 02:00 UTC, the day after the last full day of evidence.
NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
RETENTION_DAYS = 180
SEED = 9

# Shares of the registry's kinds (EHPAD are most sites; CHU the fewest).
KINDS = {
    "EHPAD": 0.50,
    "clinic": 0.15,
    "CH": 0.12,
    "SSR": 0.10,
    "psychiatry": 0.05,
    "other": 0.06,
    "CHU": 0.02,
}
HOSTS = {"EHPAD": (4, 12), "clinic": (10, 40), "CH": (30, 120), "SSR": (6, 25)}
HOSTS |= {"psychiatry": (10, 40), "other": (3, 15), "CHU": (150, 600)}
OVERSEAS = ("9701", "9702", "9703", "9704", "9805")
BUILDS = ("19045", "22631", "17763", "20348", "19044", "14393")
OLD_BUILDS = ("7601", "9600")
BAD = ("ntlmv1", "smbv1", "weak_tls", "rdp", "telnet", "public_dns", "av_off", "t1490")
BAD_WINDOWS = ("end_of_support",)


# --- the data ---------------------------------------------------------------------------------


def finess_numbers(count: int, rng: random.Random) -> list[str]:
    """`count` distinct, valid FINESS numbers over every département and overseas territory."""
    prefixes = [d for d in REGION_OF_DEPARTEMENT if len(d) == 2] + list(OVERSEAS)
    out: set[str] = set()
    while len(out) < count:
        prefix = rng.choice(prefixes)
        # The digit after the département is 0 for most sites, 1/3/7 for the others seen.
        body = f"{rng.choice('0013700'):s}{rng.randrange(100_000):05d}"
        first = (prefix + body)[:8] if len(prefix) == 2 else prefix + f"{rng.randrange(10_000):04d}"
        out.add(validate_finess(first + check_key(first)))
    return sorted(out)


@dataclass
class Site:
    finess: str
    kind: str
    region: str
    hosts: list[str]
    servers: list[str]
    agents: list[str]  # ids
    bad: tuple[str, ...]
    silent_days: frozenset[int]  # day offsets without heartbeats
    logs: bool


def fleet(count: int, rng: random.Random) -> list[Site]:
    sites = []
    kinds, weights = list(KINDS), list(KINDS.values())
    for finess in finess_numbers(count, rng):
        kind = rng.choices(kinds, weights)[0]
        region = region_of(departement_of(finess))
        low, high = HOSTS[kind]
        n = rng.randint(low, high)
        prefix = finess[-4:]
        hosts = [f"PC{prefix}-{i:03d}" for i in range(n)]
        servers = [f"SRV{prefix}-{i:02d}" for i in range(max(2, n // 15))]
        agents = [str(uuid.UUID(int=rng.getrandbits(128), version=4))]
        if kind in ("CHU", "CH") or rng.random() < 0.1:
            agents.append(str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        bad: tuple[str, ...] = ()
        if rng.random() < 0.15:
            bad = tuple(rng.sample(BAD + BAD_WINDOWS, rng.randint(1, 3)))
        silent = frozenset(rng.sample(range(30), 3)) if rng.random() < 0.05 else frozenset()
        sites.append(
            Site(
                finess,
                kind,
                str(region),
                hosts,
                servers,
                agents,
                bad,
                silent,
                rng.random() < 0.5,
            )
        )
    return sites


def _at(day: date, seconds: float) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=seconds)


def evidence_rows(site: Site, days: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    """The rows `api.maturity.evidence.gather` leaves for one establishment over `days` days
    before NOW (the night's day itself: the two hours since midnight)."""
    last_day = NOW.date()
    agent_user = f"agent-{site.agents[0][:8]}"
    internal = f"10.{int(site.finess[:2].replace('A', '0').replace('B', '1')) % 250}"

    def row(
        signal: str, key: str, day: date, count: int, subjects: list[str], span: float
    ) -> dict[str, Any]:
        start = rng.uniform(0, span / 3)
        end = rng.uniform(span * 2 / 3, span)
        samples = [f"{agent_user}/{rng.getrandbits(48):012x}" for _ in range(min(5, count))]
        return {
            "finess": site.finess,
            "signal": signal,
            "key": key,
            "day": day,
            "count": count,
            "first_seen": _at(day, start),
            "last_seen": _at(day, end),
            "samples": samples,
            "subjects": sorted(set(subjects)),
        }

    def some(items: list[str], most: int) -> list[str]:
        return rng.sample(items, min(len(items), rng.randint(1, most)))

    for offset in range(days):
        day = last_day - timedelta(days=days - 1 - offset)
        span = 7200.0 if day == last_day else 86_399.0
        volume = len(site.hosts)
        yield row("source", "network", day, rng.randint(50, 400), [site.agents[0]], span)
        yield row("source", "windows", day, rng.randint(50, 400), [site.agents[-1]], span)
        if site.logs:
            yield row("source", "logs", day, rng.randint(5, 100), [site.agents[0]], span)
        tls = [f"{internal}.1.{i}:443" for i in range(1, 1 + max(1, len(site.servers) // 2))]
        yield row("net.tls", "ok:internal", day, volume * 40, some(tls, 4), span)
        smb = [f"{internal}.1.{i}" for i in range(1, 1 + len(site.servers))]
        yield row("net.smb", "v2", day, volume * 25, some(smb, 5), span)
        yield row("net.dns", "internal", day, volume * 300, some(site.hosts, 6), span)
        yield row("net.outbound", "out", day, volume * 200, some(site.hosts, 6), span)
        yield row("win.logon", "other", day, volume * 12, some(site.hosts, 6), span)
        yield row("win.privileged", "logon", day, volume * 2, some(site.servers, 3), span)
        yield row("win.av", "ok", day, volume, some(site.hosts, 6), span)
        if rng.random() < 0.15:
            booted = some(site.hosts, 3)
            yield row("win.os", rng.choice(BUILDS), day, len(booted), booted, span)
        for n, agent in enumerate(site.agents):
            if offset in site.silent_days and n == 0:
                continue
            kinds = ["evtx", "pcap"] if n == 0 else ["evtx"]
            beats = 120 if day == last_day else 1440
            yield row("agent", agent, day, beats * len(kinds), kinds, span)
        for bad in site.bad:
            if rng.random() < 0.4:
                continue  # a bad habit shows on some days, not every day
            if bad == "ntlmv1":
                yield row("win.logon", "ntlmv1", day, rng.randint(1, 30), some(site.hosts, 2), span)
            elif bad == "smbv1":
                yield row("net.smb", "v1", day, rng.randint(1, 200), some(smb, 2), span)
            elif bad == "weak_tls":
                yield row("net.tls", "weak:internal", day, rng.randint(1, 90), tls[:1], span)
            elif bad == "rdp":
                peers = [f"185.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"]
                yield row("net.exposed", "rdp", day, rng.randint(1, 20), peers, span)
            elif bad == "telnet":
                yield row("net.cleartext", "telnet", day, rng.randint(1, 5), smb[:1], span)
            elif bad == "public_dns":
                yield row("net.dns", "public", day, rng.randint(5, 500), some(site.hosts, 3), span)
            elif bad == "av_off":
                yield row("win.av", "rtp_off", day, rng.randint(1, 3), some(site.hosts, 1), span)
            elif bad == "t1490" and rng.random() < 0.2:
                rule = "c947b146-0abc-4c87-9c64-b17e9d7274a2"
                yield row("det.recovery", rule, day, rng.randint(1, 4), some(site.hosts, 1), span)
        if "end_of_support" in site.bad or (site.kind == "EHPAD" and rng.random() < 0.02):
            booted = some(site.hosts, 1)
            yield row("win.os", rng.choice(OLD_BUILDS), day, 1, booted, span)


def profile_row(site: Site, rng: random.Random) -> dict[str, Any]:
    flags = {f: rng.random() < 0.7 for f in PROFILE_FLAGS}
    prefix = site.finess[-4:]
    return {
        "finess": site.finess,
        "flags": flags,
        "sites": ["site principal"] + (["annexe"] if len(site.agents) > 1 else []),
        "expected_sources": ["network", "windows"],
        "server_hosts": [f"SRV{prefix}-*", "DC*"],
        "admin_hosts": [f"SRV{prefix}-00", f"SRV{prefix}-01"],
        "resolvers": [],
        "reason": "profil initial",
        "declared_by": f"rssi-{prefix}",
        "declared_at": NOW - timedelta(days=rng.randint(10, 200)),
    }


def answer_rows(site: Site, rng: random.Random, questions: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for control in rng.sample(questions, rng.randint(5, min(15, len(questions)))):
        question = control.evidence.question
        if question.type == "scale":
            value: dict[str, Any] = {
                "choice": rng.choice(["non", "partiel", "largement", "oui", "ne_sait_pas"])
            }
        elif question.type == "date":
            value = {"date": (NOW.date() - timedelta(days=rng.randint(20, 900))).isoformat()}
        else:
            value = {"number": rng.randint(0, 100)}
        rows.append(
            {
                "finess": site.finess,
                "control_id": control.id,
                "value": value,
                "comment": "",
                "proof_id": None,
                "declared_by": f"rssi-{site.finess[-4:]}",
                "declared_at": NOW - timedelta(days=rng.randint(1, 300)),
                "reviewed_by": None,
                "reviewed_at": None,
                "review": None,
            }
        )
    return rows


def agent_rows(site: Site, rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for n, agent in enumerate(site.agents):
        silent = n == 0 and 29 in site.silent_days  # silent since yesterday
        rows.append(
            {
                "id": agent,
                "establishment_finess": site.finess,
                "hostname": f"vigie-{site.finess}-{n + 1}",
                "site": "site principal" if n == 0 else "annexe",
                "version": "0.9.0",
                "sources": [{"name": "security", "kind": "evtx", "lag_seconds": 2}]
                + ([{"name": "span", "kind": "pcap", "lag_seconds": 30}] if n == 0 else []),
                "key_hash": secrets.token_hex(32),
                "enrolled_from": "192.0.2.10",
                "enrolled_at": NOW - timedelta(days=rng.randint(40, 400)),
                "last_heartbeat": NOW
                - timedelta(hours=30 if silent else 0, seconds=rng.randint(5, 90)),
                "lag_seconds": 30.0,
                "counters": {"received": 10_000, "dropped": rng.choice([0] * 30 + [12])},
                "dropped_notified": 0,
                "revoked": False,
            }
        )
    return rows


def incident_rows(
    site: Site, rng: random.Random
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    incidents: list[dict[str, Any]] = []
    moves: list[dict[str, Any]] = []
    kinds = ["intrusion", "phishing", "ransomware", "unavailability", "other"]
    count = rng.randint(1, 3)
    if "t1490" in site.bad:
        count += 1
    for n in range(count):
        incident_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        created = NOW - timedelta(days=rng.uniform(1, 120))
        exercise = n == 0 and rng.random() < 0.3
        detection = "t1490" in site.bad and n == count - 1
        notifiable = not exercise and rng.random() < 0.3
        incidents.append(
            {
                "id": incident_id,
                "establishment_finess": site.finess,
                "origin": "detection" if detection else "declared",
                "title": "Exercice de crise" if exercise else "Incident",
                "category": "exercise" if exercise else rng.choice(kinds),
                "severity": rng.choice(["low", "medium", "high", "critical"]),
                "status": "new",
                "care_impact": "unknown",
                "description": "",
                "affected_systems": [],
                "aware_at": created,
                # Core inserts skip the model's validator that sets these from aware_at.
                **{f"{kind}_due": due for kind, due in nis2.due_dates(created).items()},
                "created_by": "system" if detection else f"rssi-{site.finess[-4:]}",
                "created_at": created,
                "updated_at": created,
                "rule_id": "c947b146-0abc-4c87-9c64-b17e9d7274a2" if detection else None,
                "detection_count": 1 if detection else 0,
                "notifiable": notifiable,
                "early_warning_at": created + timedelta(hours=rng.uniform(2, 40))
                if notifiable
                else None,
                "overdue": [],
                "known_rule": True,
            }
        )
        at = created
        for status in ("acknowledged", "contained", "resolved")[: rng.randint(0, 3)]:
            at = at + timedelta(hours=rng.uniform(0.5, 48))
            if at > NOW:
                break
            moves.append(
                {
                    "incident_id": incident_id,
                    "at": at,
                    "actor": "cert",
                    "kind": "status",
                    "text": "",
                    "from_status": None,
                    "to_status": status,
                }
            )
    return incidents, moves


def alert_rows(
    rng: random.Random, sites: list[Site]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    regions = sorted({s.region for s in sites})
    alerts, acks = [], []
    for n in range(24):
        created = NOW - timedelta(days=rng.uniform(0.5, 80))
        target_all = n % 4 == 0
        target_regions = [] if target_all else rng.sample(regions, rng.randint(0, 2))
        target_kinds = [] if target_all or target_regions else rng.sample(list(KINDS), 2)
        alert_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        alerts.append(
            {
                "id": alert_id,
                "title": f"Alerte CERT Santé {n + 1}",
                "description": "",
                "severity": rng.choice(["low", "medium", "high", "critical"]),
                "tlp": "amber",
                "status": "published",
                "products": [],
                "cves": [],
                "indicators": [],
                "sigma_rules": [],
                "yara_rules": [],
                "target_all": target_all,
                "target_regions": target_regions,
                "target_kinds": target_kinds,
                "created_by": "cert",
                "created_at": created,
                "updated_at": created,
                "bundle_version": n + 1,
                "retro_hunt_days": 30,
            }
        )
        for site in sites:
            meant = (
                target_all
                or site.region in target_regions
                or (not target_regions and site.kind in target_kinds)
            )
            if meant and rng.random() < 0.6:
                acks.append(
                    {
                        "alert_id": alert_id,
                        "establishment_finess": site.finess,
                        "acknowledged_by": f"rssi-{site.finess[-4:]}",
                        "acknowledged_at": created + timedelta(hours=rng.expovariate(1 / 30)),
                    }
                )
    return alerts, acks


def _json_text(value: Any) -> str:
    return json.dumps(value)


def _copy(engine: Engine, table: str, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """PostgreSQL's COPY, JSON columns as text."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(
                    [_json_text(r[c]) if isinstance(r[c], list | dict) else r[c] for c in columns]
                )
        raw.commit()
    finally:
        raw.close()


def build(engine: Engine, count: int, days: int) -> dict[str, int]:
    """Fill an empty database (schema at head); returns the rows written per table."""
    rng = random.Random(SEED)
    sites = fleet(count, rng)
    postgres = engine.dialect.name == "postgresql"
    questions = [c for c in default().controls if c.evidence.question is not None]
    tallies: dict[str, int] = {}

    def put(model: Any, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        tallies[model.__tablename__] = tallies.get(model.__tablename__, 0) + len(rows)
        if postgres and model is Evidence:
            _copy(engine, model.__tablename__, list(rows[0]), rows)
            return
        with engine.begin() as connection:
            connection.execute(insert(model), rows)

    put(
        Establishment,
        [
            {
                "finess": s.finess,
                "name": f"{s.kind} {s.finess}",
                "kind": s.kind,
                "region": s.region,
                "beds": len(s.hosts) * 3,
                "created_at": NOW - timedelta(days=500),
            }
            for s in sites
        ],
    )
    for i in range(0, len(sites), 250):
        chunk = sites[i : i + 250]
        put(Evidence, [r for s in chunk for r in evidence_rows(s, days, rng)])
        put(Agent, [r for s in chunk for r in agent_rows(s, rng)])
        put(Profile, [profile_row(s, rng) for s in chunk if rng.random() < 0.4])
        put(
            Answer, [r for s in chunk if rng.random() < 0.3 for r in answer_rows(s, rng, questions)]
        )
        made = [incident_rows(s, rng) for s in chunk if s.bad or rng.random() < 0.08]
        put(Incident, [r for incidents, _ in made for r in incidents])
        put(TimelineEntry, [r for _, moves in made for r in moves])
        put(
            Exception_,
            [
                {
                    "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "finess": s.finess,
                    "control_id": "HYG-01",
                    "kind": "compensated",
                    "reason": "automates biomédicaux isolés dans un VLAN",
                    "approver": "la direction",
                    "created_by": f"rssi-{s.finess[-4:]}",
                    "created_at": NOW - timedelta(days=30),
                    "expires_at": NOW + timedelta(days=335),
                }
                for s in chunk
                if rng.random() < 0.02
            ],
        )
        print(f"\r  built {i + len(chunk):,} establishments", end="", flush=True)
    print()
    alerts, acks = alert_rows(rng, sites)
    put(Alert, alerts)
    put(Acknowledgement, acks)
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))  # what autovacuum would have done by night
    return tallies


# --- the databases ----------------------------------------------------------------------------


@dataclass
class Database:
    name: str
    url: str
    engine: Engine
    built: dict[str, int]
    build_seconds: float


def _params(args: argparse.Namespace) -> str:
    return f"seed={SEED} establishments={args.establishments} days={args.days} now={NOW}"


def open_sqlite(args: argparse.Namespace) -> Database:
    OUT.mkdir(parents=True, exist_ok=True)
    path, marker = OUT / "vigie.db", OUT / "vigie.db.params"
    url = f"sqlite:///{path}"
    reuse = args.reuse and path.exists() and marker.exists()
    if reuse and marker.read_text().split("\n", 1)[0] == _params(args):
        engine = make_engine(url)
        upgrade(engine)  # migrations added since it was built
        built = json.loads(marker.read_text().split("\n", 1)[1])
        return Database("SQLite", url, engine, built, 0.0)
    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), marker):
        stale.unlink(missing_ok=True)
    engine = make_engine(url)
    upgrade(engine)
    began = time.perf_counter()
    built = build(engine, args.establishments, args.days)
    took = time.perf_counter() - began
    marker.write_text(_params(args) + "\n" + json.dumps(built))
    return Database("SQLite", url, engine, built, took)


def open_postgres(args: argparse.Namespace) -> Database:
    admin = sqlalchemy.create_engine(POSTGRES)
    schema = PG_SCHEMA if args.reuse else f"{PG_SCHEMA}_{secrets.token_hex(4)}"
    url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"), {"s": schema}
        ).first()
        params = None
        if exists:
            params = connection.execute(
                text(f"SELECT obj_description('\"{schema}\"'::regnamespace)")
            ).scalar()
    admin.dispose()
    if exists and params and params.split("\n", 1)[0] == _params(args):
        return Database(
            "PostgreSQL", url, make_engine(url), json.loads(params.split("\n", 1)[1]), 0
        )
    admin = sqlalchemy.create_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url)
    upgrade(engine)
    began = time.perf_counter()
    built = build(engine, args.establishments, args.days)
    took = time.perf_counter() - began
    note = (_params(args) + "\n" + json.dumps(built)).replace("'", "''")
    with admin.begin() as connection:
        connection.execute(text(f"COMMENT ON SCHEMA \"{schema}\" IS '{note}'"))
    admin.dispose()
    return Database("PostgreSQL", url, engine, built, took)


def drop_postgres(db: Database, args: argparse.Namespace) -> None:
    schema = db.url.rsplit("%3D", 1)[1]
    db.engine.dispose()
    if args.reuse:
        return  # kept for the next --reuse
    admin = sqlalchemy.create_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def clear_snapshots(db: Database) -> None:
    with transaction(session_factory(db.engine)) as session:
        session.execute(delete(Snapshot))
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE maturity_snapshots"))
    else:
        with db.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


# --- the runs ---------------------------------------------------------------------------------


def fingerprint(db: Database) -> tuple[str, dict[str, tuple[str, float, int]]]:
    """SHA-256 over every snapshot of the night (FINESS order), and a few establishments' own."""
    digest = hashlib.sha256()
    few: dict[str, tuple[str, float, int]] = {}
    with session_factory(db.engine)() as session:
        query = select(
            Snapshot.finess, Snapshot.inputs_digest, Snapshot.score, Snapshot.level, Snapshot.result
        ).order_by(Snapshot.finess)
        rows: Any = session.execute(query)
        for n, (finess, inputs, score, level, result) in enumerate(rows):
            digest.update(
                orjson.dumps([finess, inputs, score, level, result], option=orjson.OPT_SORT_KEYS)
            )
            if n % 2500 == 0:
                few[finess] = (inputs, score, level)
    return digest.hexdigest(), few


def one_at_a_time(
    *, sessions: sessionmaker[Session], now: datetime, retention_days: int
) -> dict[str, int]:
    """The reference: `take_all`'s work with every read made per establishment."""
    framework = default()
    with sessions() as session:
        finesses = list(
            session.scalars(select(Establishment.finess).order_by(Establishment.finess))
        )
    written = 0
    for i in range(0, len(finesses), snapshots.CHUNK):
        with transaction(sessions) as session:
            for finess in finesses[i : i + snapshots.CHUNK]:
                here = session.get(Establishment, finess)
                assert here is not None
                written += snapshots._take(
                    session, [here], framework, now.date(), now, retention_days
                )
    return {"establishments": len(finesses), "snapshots": written}


def timed(db: Database, job: Any, label: str, n: int) -> dict[str, Any]:
    clear_snapshots(db)
    load = os.getloadavg()[0]
    sessions = session_factory(db.engine)
    began = time.perf_counter()
    cpu0 = time.process_time()
    done = job(sessions=sessions, now=NOW, retention_days=RETENTION_DAYS)
    wall = time.perf_counter() - began
    cpu = time.process_time() - cpu0
    check, few = fingerprint(db)
    print(
        f"{db.name}, {label}, run {n}: {wall:.1f} s (CPU of this process {cpu:.1f} s), "
        f"{done['snapshots']:,} snapshots, fingerprint {check[:16]}, load before {load:.2f}",
        flush=True,
    )
    return {"wall": wall, "cpu": cpu, "snapshots": done["snapshots"], "check": check, "few": few}


def profile(db: Database) -> str:
    clear_snapshots(db)
    profiler = cProfile.Profile()
    profiler.enable()
    snapshots.take_all(sessions=session_factory(db.engine), now=NOW, retention_days=RETENTION_DAYS)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(35)
    stats.sort_stats("tottime").print_stats(25)
    return out.getvalue()


# --- the report -------------------------------------------------------------------------------


def _commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()


def _server_version(db: Database) -> str:
    with db.engine.connect() as connection:
        if db.engine.dialect.name == "postgresql":
            return str(connection.execute(text("SHOW server_version")).scalar()).split()[0]
        return str(connection.exec_driver_sql("select sqlite_version()").scalar())


def report(
    args: argparse.Namespace, dbs: list[Database], runs: dict[str, dict[str, list[dict[str, Any]]]]
) -> str:
    built = dbs[0].built
    per_site = built["maturity_evidence"] / args.establishments
    versions = ", ".join(f"{db.name} {_server_version(db)}" for db in dbs)
    lines = [
        f"{HEADING}: the nightly `take_all` over {args.establishments:,} establishments",
        "",
        f"Command: `python benchmarks/maturity_snapshot.py --establishments {args.establishments} "
        f"--days {args.days} --runs {args.runs} --baseline-runs {args.baseline_runs} --backends "
        + " ".join(args.backends)
        + " --reuse" * args.reuse
        + " --write" * args.write
        + "` (the job in this process; SQLite: a file on disk, WAL; PostgreSQL: "
        "127.0.0.1:5432, a schema of its own; snapshots deleted between runs, not timed).",
        "",
        f"Data (seeded, built before the clock starts by bulk inserts, COPY on PostgreSQL, then "
        f"ANALYZE): {args.establishments:,} establishments with valid FINESS numbers over every "
        "département and overseas territory, kinds EHPAD 50%, clinic 15%, CH 12%, SSR 10%, "
        f"other 6%, psychiatry 5%, CHU 2%; {built['maturity_evidence']:,} evidence rows "
        f"({args.days} days, {per_site:.0f} rows per establishment, {per_site / args.days:.1f} "
        "signal/key rows per day: source, net.tls, net.smb, net.dns, net.outbound, win.logon, "
        "win.privileged, win.av, win.os, one `agent` row per agent and day; 15% of the "
        "establishments with 1-3 bad signals); "
        + ", ".join(f"{v:,} {k}" for k, v in built.items() if k != "maturity_evidence")
        + f". Job as of {NOW:%Y-%m-%d %H:%M} UTC, retention {RETENTION_DAYS} days, the default "
        "framework (40 controls). Building took "
        + ", ".join(
            f"{db.build_seconds:.0f} s ({db.name})"
            if db.build_seconds
            else f"0 s ({db.name}, reused)"
            for db in dbs
        )
        + ".",
        "",
        f"Versions: Python {sys.version.split()[0]}, SQLAlchemy {version('sqlalchemy')}, "
        f"psycopg {version('psycopg')}, orjson {version('orjson')}, {versions}, "
        f"Vigie {_commit()}; {os.cpu_count()} cores.",
        "",
        "| database | job | median s | runs (s) | establishments/s | goal (< 120 s) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for db in dbs:
        for label, mine in runs[db.name].items():
            if not mine:
                continue
            walls = [r["wall"] for r in mine]
            med = statistics.median(walls)
            goal = ("met" if med < GOAL_SECONDS else "not met") if label == "take_all" else "-"
            lines.append(
                f"| {db.name} | {label} | {med:.1f} | "
                + ", ".join(f"{w:.1f}" for w in walls)
                + f" | {args.establishments / med:,.0f} | {goal} |"
            )
    lines.append("")
    for db in dbs:
        bulk = runs[db.name]["take_all"]
        single = runs[db.name].get("one at a time", [])
        if bulk and single:
            ratio = statistics.median(r["wall"] for r in single) / statistics.median(
                r["wall"] for r in bulk
            )
            lines.append(
                f"{db.name}: one establishment at a time takes {ratio:.1f}x the bulk job's time."
            )
    if len(dbs) == 2 and all(runs[db.name]["take_all"] for db in dbs):
        a, b = (statistics.median(r["wall"] for r in runs[db.name]["take_all"]) for db in dbs)
        lines.append(f"{dbs[1].name} / {dbs[0].name}, the bulk job: {b / a:.2f}x the time.")
    checks = {r["check"] for db in dbs for mine in runs[db.name].values() for r in mine}
    lines += [
        "",
        "Results: "
        + (
            f"the same fingerprint in every run, on both databases and both ways "
            f"(`{next(iter(checks))[:16]}`)."
            if len(checks) == 1
            else f"FINGERPRINTS DIFFER: {sorted(c[:16] for c in checks)}."
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--establishments", type=int, default=10_500)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline-runs", type=int, default=1)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="keep and reuse the built databases")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    dbs: list[Database] = []
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        for backend in args.backends:
            began = time.perf_counter()
            db = open_sqlite(args) if backend == "sqlite" else open_postgres(args)
            dbs.append(db)
            print(
                f"{db.name}: {db.built.get('maturity_evidence', 0):,} evidence rows, "
                f"built in {time.perf_counter() - began:.0f} s",
                flush=True,
            )
            runs[db.name] = {"take_all": [], "one at a time": []}
            for n in range(args.runs):
                runs[db.name]["take_all"].append(timed(db, snapshots.take_all, "take_all", n + 1))
            for n in range(args.baseline_runs):
                runs[db.name]["one at a time"].append(
                    timed(db, one_at_a_time, "one at a time", n + 1)
                )
            few = runs[db.name]["take_all"][0]["few"] if args.runs else {}
            for finess, (inputs, score, level) in few.items():
                print(f"  {finess}: inputs {inputs[:16]}, score {score}, level {level}")
        if args.profile:
            print(profile(dbs[0]))
        text_ = report(args, dbs, runs)
        print(text_)
        if args.write:
            from benchmarks.results import RESULTS, write_section

            if HEADING not in RESULTS.read_text(encoding="utf-8"):
                RESULTS.write_text(RESULTS.read_text(encoding="utf-8").rstrip() + "\n\n" + HEADING)
            write_section(HEADING, text_)
    finally:
        for db in dbs:
            if db.name == "PostgreSQL":
                drop_postgres(db, args)
            else:
                db.engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
