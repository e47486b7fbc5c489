"""Dashboard: the national overview and the incident list, served, over a year of national data.

    python benchmarks/dashboard_load.py [--establishments 10500] [--incidents 100000]
        [--detections 1000000] [--batches 2000000] [--snapshot-days 7] [--requests 200]
        [--warmup 10] [--peer-runs 10] [--backends sqlite postgresql] [--breakdown]
        [--reuse] [--write]

Data (seeded, built before any clock starts by bulk inserts, COPY on PostgreSQL then VACUUM
ANALYZE as autovacuum would have; times relative to the moment of building): `--establishments`
establishments with valid FINESS numbers over every département and overseas territory and
the kinds of the registry; one to three agents each (about 3% silent, 1.5% never heard from,
1% revoked, with the open notifications the `agent_silent` job would have raised);
`--incidents` incidents over the last 365 days, more in large establishments, 65% opened from
detections (rule, host, first and last detection, a sample), 30% declared, 5% from
retro-hunts, their status by age (most of those older than two months resolved or closed),
severities, about 30% notifiable with their NIS2 due dates set from `aware_at` as the model
sets them, reports sent (some late, some never) and the deadlines the `nis2_deadlines` job
would have flagged; their timelines (created, status changes, reports, deadlines); 40
campaigns; 50 CERT alerts over 120 days targeted to all, to regions or to kinds, with the
acknowledgements of 60 to 85% of their establishments; `--batches` ingested batches over the
year (`ingested_batches`, which the overview's 90-day series reads) carrying `--detections`
detections, 10% of them the server's own, and those detections in the event store (the
SQLite file `events.db` of the data directory, one row per detection as ingestion stores
it); `--snapshot-days` nights of maturity snapshots per establishment (their result
documents computed by `api.maturity.scoring` for real establishments, their scores spread).

Measured: the service as `vigie serve` runs it (`create_app` under uvicorn, one process, a
subprocess of this script, its scheduler on) over each database, SQLite (the data
directory's `vigie.db`) and PostgreSQL (127.0.0.1:5432, database `test`, a schema of its
own, dropped at the end unless `--reuse`). A CERT analyst logs in through the /login form
(cookies, CSRF), then the pages are requested one after the other, `--warmup` times each,
then `--requests` rounds of every page in turn: the national overview `/ui/`, its KPI panel
(htmx, every minute), the incident list `/ui/incidents` and its filtered variants (the
region with the most incidents, status=open, offset=5000), and for reference the JSON
routes GET /stats/overview and GET /incidents (bearer token). Each answer's time is taken
in the server by an ASGI middleware this script wraps the application in (from the request
to the last byte of the answer handed to uvicorn): network and client are not counted.
p50, p95 and max per page and database; goal: p95 under 300 ms.

Peer: the incident list as it was before it was paged in SQL (5ac3ddc's `page`: every
matching incident read into Python, sorted by the database, then sliced; the same filters,
as `IncidentFilter` states them now) against the current `api.incidents.service.page`, both
called in this process on a new session each time, on the same database: medians and the
ratio; both must return the same incidents and total. `--breakdown` also times, in this
process, each service call the overview makes. With `--write`, the "Dashboard" section of
benchmarks/RESULTS.md is replaced (or added).

Not what a browser adds (static assets, the map's JS, htmx), and one person at a time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import sqlalchemy
from sqlalchemy import Engine, func, insert, select, text, update
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.agents.models import Agent, as_utc, utcnow  # noqa: E402
from api.alerts.models import Acknowledgement, Alert  # noqa: E402
from api.auth import service as auth_service  # noqa: E402
from api.db import make_engine, session_factory, transaction, upgrade  # noqa: E402
from api.deps import Principal  # noqa: E402
from api.establishments.finess import departement_of, region_of  # noqa: E402
from api.establishments.models import Establishment  # noqa: E402
from api.events.sqlite_store import FILE_NAME as EVENTS_FILE  # noqa: E402
from api.events.sqlite_store import SQLiteEventStore  # noqa: E402
from api.incidents import nis2  # noqa: E402
from api.incidents import service as incident_service  # noqa: E402
from api.incidents.filters import IncidentFilter  # noqa: E402
from api.incidents.models import Campaign, Incident, TimelineEntry  # noqa: E402
from api.ingest.models import IngestedBatch  # noqa: E402
from api.jobs.models import JobRun  # noqa: E402
from api.maturity import inputs as maturity_inputs  # noqa: E402
from api.maturity.checks.base import evidence_windows  # noqa: E402
from api.maturity.framework import default as maturity_framework  # noqa: E402
from api.maturity.models import Snapshot  # noqa: E402
from api.maturity.scoring import as_json, evaluate  # noqa: E402
from api.notifications.models import Notification  # noqa: E402
from api.roles import Role  # noqa: E402
from benchmarks.maturity_snapshot import KINDS, finess_numbers  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "dashboard"
POSTGRES = os.environ.get(
    "VIGIE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PG_SCHEMA = "bench_dashboard"
HEADING = "## Dashboard"
GOAL_MS = 300.0
SEED = 10
ANALYST = "analyste-cert"
PASSWORD = "Phare-du-Creac'h-1863"  # noqa: S105 - the benchmark's own account
MAX_LOAD = 1.5  # 1-minute load average above which a timed run waits (2 cores)
LOAD_WAIT = 900  # seconds a timed run waits at most for the machine to calm down

# Incidents per establishment, relative: a CHU has many more than a nursing home.
INCIDENT_WEIGHT = {"CHU": 40.0, "CH": 15.0, "clinic": 6.0, "psychiatry": 5.0, "SSR": 3.0}
INCIDENT_WEIGHT |= {"other": 2.0, "EHPAD": 1.5}
SEVERITY = {"low": 0.30, "medium": 0.40, "high": 0.22, "critical": 0.08}
# Status by the incident's age: (days at most, weights of new, acknowledged, contained,
# resolved, closed).
STATUS_BY_AGE = (
    (2, (0.45, 0.30, 0.15, 0.10, 0.0)),
    (14, (0.10, 0.22, 0.23, 0.40, 0.05)),
    (60, (0.02, 0.04, 0.06, 0.48, 0.40)),
    (10_000, (0.005, 0.01, 0.02, 0.30, 0.665)),
)
STATUSES = ("new", "acknowledged", "contained", "resolved", "closed")
DECLARED = {
    "ransomware": "Chiffrement de fichiers sur le serveur de {}",
    "phishing": "Hameçonnage ciblant le service {}",
    "data_breach": "Fuite de données patients ({})",
    "denial_of_service": "Saturation du portail {}",
    "intrusion": "Connexion suspecte au compte {}",
    "unavailability": "Indisponibilité du {}",
    "other": "Anomalie signalée par {}",
}
SYSTEMS = ("DPI", "PACS", "messagerie", "Active Directory", "laboratoire", "pharmacie", "RIS")
RULE_WORDS = (
    "Suspicious PowerShell Download",
    "Mimikatz Command Line",
    "Shadow Copies Deletion",
    "Rundll32 Execution Without DLL",
    "Scheduled Task Creation",
    "LSASS Memory Dump",
    "Remote Service Creation",
    "Certutil Decode",
    "Bitsadmin Download",
    "Office Spawning Shell",
    "Cobalt Strike Named Pipe",
    "RDP Logon From Public Address",
)
TACTICS = (
    "attack.execution",
    "attack.persistence",
    "attack.credential-access",
    "attack.impact",
    "attack.lateral-movement",
    "attack.defense-evasion",
)


# --- the data ---------------------------------------------------------------------------------


@dataclass
class Site:
    finess: str
    kind: str
    region: str
    agents: list[str] = field(default_factory=list)


@dataclass
class Rule:
    id: str
    title: str
    level: str
    tags: list[str]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), list(weights.values()))[0]


def sites_of(count: int, rng: random.Random) -> list[Site]:
    kinds, weights = list(KINDS), list(KINDS.values())
    return [
        Site(f, rng.choices(kinds, weights)[0], str(region_of(departement_of(f))))
        for f in finess_numbers(count, rng)
    ]


def rules_of(rng: random.Random) -> list[Rule]:
    levels = {"low": 0.35, "medium": 0.35, "high": 0.22, "critical": 0.08}
    return [
        Rule(
            _uuid(rng),
            f"{rng.choice(RULE_WORDS)} {n:03d}",
            _pick(rng, levels),
            rng.sample(TACTICS, 2) + [f"attack.t{rng.randrange(1000, 1600)}"],
        )
        for n in range(300)
    ]


def _ts(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _sample(rule: Rule, host: str, moment: datetime, rng: random.Random) -> dict[str, Any]:
    """An incident's first detection, as `api.incidents.sample` keeps it."""
    return {
        "rule_id": rule.id,
        "rule_title": rule.title,
        "level": rule.level,
        "timestamp": _ts(moment),
        "event": {
            "host": {"name": host},
            "process": {
                "executable": r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
                "command_line": f"powershell -nop -w hidden -enc {rng.getrandbits(192):048x}",
                "pid": rng.randrange(400, 60_000),
            },
            "user": {"name": f"svc-{rng.randrange(100):02d}"},
            "event": {"code": "4688"},
        },
    }


@dataclass
class Built:
    """What the incidents' builder made, for the other tables."""

    incidents: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    campaigns: list[dict[str, Any]] = field(default_factory=list)


def incidents_of(
    sites: list[Site], rules: list[Rule], count: int, now: datetime, rng: random.Random
) -> Built:
    out = Built()
    weights = [INCIDENT_WEIGHT[s.kind] for s in sites]
    chosen = rng.choices(sites, weights, k=count)
    campaign_rules = rng.sample(rules, 40)
    campaigns = [
        (_uuid(rng), rule, now - timedelta(days=rng.uniform(3, 360))) for rule in campaign_rules
    ]
    members: dict[str, list[datetime]] = defaultdict(list)
    for site in chosen:
        aware = now - timedelta(seconds=rng.uniform(0, 365 * 86_400))
        roll = rng.random()
        origin = "detection" if roll < 0.65 else "declared" if roll < 0.95 else "retro-hunt"
        campaign_id = None
        if origin == "detection":
            if rng.random() < 0.03:
                campaign_id, rule, start = rng.choice(campaigns)
                aware = min(now - timedelta(minutes=5), start + timedelta(days=rng.uniform(0, 7)))
                members[campaign_id].append(aware)
            else:
                rule = rng.choice(rules)
            created = aware
        else:
            rule = rng.choice(rules)
            created = min(now, aware + timedelta(hours=rng.uniform(0, 48)))
        out.incidents.append(
            _incident(site, rule, origin, aware, created, campaign_id, now, rng, out.timeline)
        )
    for campaign_id, rule, _ in campaigns:
        seen = members.get(campaign_id)
        if not seen:
            continue
        first, last = min(seen), max(seen)
        out.campaigns.append(
            {
                "id": campaign_id,
                "rule_id": rule.id,
                "title": f"Campaign: {rule.title}",
                "status": "open" if now - last < timedelta(days=14) else "closed",
                "first_seen": first,
                "last_seen": last,
                "created_at": first,
            }
        )
    out.incidents.sort(key=lambda r: r["created_at"])  # inserted in the order they came
    out.timeline.sort(key=lambda r: r["at"])
    return out


def _incident(
    site: Site,
    rule: Rule,
    origin: str,
    aware: datetime,
    created: datetime,
    campaign_id: str | None,
    now: datetime,
    rng: random.Random,
    timeline: list[dict[str, Any]],
) -> dict[str, Any]:
    incident_id = _uuid(rng)
    age = (now - created).total_seconds() / 86_400
    weights = next(w for days, w in STATUS_BY_AGE if age <= days)
    status = rng.choices(STATUSES, weights)[0]
    automatic = origin != "declared"
    host = f"PC{site.finess[-4:]}-{rng.randrange(300):03d}" if automatic else None
    if automatic:
        severity = rule.level
        category = "ransomware" if "Shadow" in rule.title else "intrusion"
        title = rule.title
        notifiable = severity == "critical" or rng.random() < 0.25
        actor = "vigie"
    else:
        severity = _pick(rng, SEVERITY)
        category = rng.choice(list(DECLARED))
        title = DECLARED[category].format(rng.choice(SYSTEMS))
        notifiable = rng.random() < 0.30
        actor = f"rssi-{site.finess[-4:]}"
    due = nis2.due_dates(aware)
    sent: dict[str, datetime | None] = dict.fromkeys(nis2.KINDS)
    if notifiable:
        for kind, chance, low, high in (
            ("early_warning", 0.90, 1, 30),
            ("notification", 0.85, 24, 90),
            ("final_report", 0.75, 15 * 24, 40 * 24),
        ):
            at = aware + timedelta(hours=rng.uniform(low, high))
            if rng.random() < chance and at < now:
                sent[kind] = at
    overdue = []
    for kind in nis2.KINDS:
        report = sent[kind]
        late_report = report is None or report > due[kind] + timedelta(minutes=5)
        if notifiable and due[kind] < now and late_report:
            overdue.append(kind)  # flagged by the job, every 5 minutes, before any late report
            timeline.append(
                _entry(incident_id, due[kind] + timedelta(minutes=rng.uniform(0, 5)), "vigie",
                       "deadline",
                       f"NIS2 {kind.replace('_', ' ')} deadline passed without the report")
            )  # fmt: skip
        if report is not None:
            late = "" if report <= due[kind] else f" (late: due {due[kind].isoformat()})"
            timeline.append(
                _entry(incident_id, report, actor, "report", f"{kind.replace('_', ' ')} sent{late}")
            )
    opened = f"opened from {origin} of rule {rule.id}" if automatic else "declared"
    timeline.append(_entry(incident_id, created, actor, "created", opened))
    updated = created
    previous = "new"
    for step in STATUSES[1 : STATUSES.index(status) + 1]:
        if step == "contained" and status in ("resolved", "closed") and rng.random() < 0.5:
            continue  # a false positive goes straight to resolved
        at = min(now, updated + timedelta(hours=rng.expovariate(1 / 20)))
        timeline.append(_entry(incident_id, at, "cert" if rng.random() < 0.3 else actor,
                               "status", "", previous, step))  # fmt: skip
        updated, previous = at, step
    first = created - timedelta(minutes=rng.uniform(0, 30))
    count = 1 + int(rng.expovariate(1 / 6)) if automatic else 0
    return {
        "id": incident_id,
        "establishment_finess": site.finess,
        "origin": origin,
        "title": title,
        "category": category,
        "severity": severity,
        "status": status,
        "care_impact": "unknown" if automatic else rng.choice(["none", "degraded", "unknown"]),
        "personal_data": None if automatic else rng.choice([None, True, False, False]),
        "description": "" if automatic else f"{title}. Signalé par l'équipe informatique. " * 3,
        "affected_systems": [host] if host else rng.sample(SYSTEMS, rng.randint(1, 3)),
        "started_at": None if automatic else aware - timedelta(hours=rng.uniform(0, 72)),
        "aware_at": aware,
        "created_by": actor,
        "created_at": created,
        "updated_at": updated,
        "rule_id": rule.id if automatic else None,
        "host": host,
        "first_seen": first if automatic else None,
        "last_seen": min(now, first + timedelta(hours=rng.uniform(0, 20))) if automatic else None,
        "detection_count": count,
        "sample": _sample(rule, host, first, rng) if host else None,
        "notifiable": notifiable,
        "early_warning_at": sent["early_warning"],
        "notification_at": sent["notification"],
        "final_report_at": sent["final_report"],
        "overdue": overdue,
        # Core inserts skip the model's validator that sets these from aware_at.
        **{f"{kind}_due": moment for kind, moment in due.items()},
        "campaign_id": campaign_id,
        "known_rule": True,
    }


def _entry(
    incident_id: str,
    at: datetime,
    actor: str,
    kind: str,
    text_: str,
    from_status: str | None = None,
    to_status: str | None = None,
) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "at": at,
        "actor": actor,
        "kind": kind,
        "text": text_,
        "from_status": from_status,
        "to_status": to_status,
    }


def agents_of(
    sites: list[Site], now: datetime, rng: random.Random
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Agents and the open notifications the `agent_silent` and `agent_dropped` jobs left."""
    agents, notes = [], []
    for site in sites:
        count = {"CHU": 3, "CH": 2}.get(site.kind, 2 if rng.random() < 0.1 else 1)
        for n in range(count):
            agent_id = _uuid(rng)
            site.agents.append(agent_id)
            enrolled = now - timedelta(days=rng.uniform(1, 500))
            roll = rng.random()
            revoked = roll < 0.01
            heard: datetime | None = now - timedelta(seconds=rng.uniform(5, 90))
            if 0.01 <= roll < 0.025:
                heard = None  # enrolled, never sent a heartbeat
            elif 0.025 <= roll < 0.055:
                heard = now - timedelta(hours=rng.uniform(1.5, 480))  # silent
            dropped = rng.randrange(1, 5_000) if rng.random() < 0.02 else 0
            agents.append(
                {
                    "id": agent_id,
                    "establishment_finess": site.finess,
                    "hostname": f"vigie-{site.finess}-{n + 1}",
                    "site": "site principal" if n == 0 else f"annexe {n}",
                    "version": rng.choice(["0.9.0", "0.9.1", "0.10.0"]),
                    "sources": [{"name": "security", "kind": "evtx", "lag_seconds": 2}]
                    + ([{"name": "span", "kind": "pcap", "lag_seconds": 30}] if n == 0 else []),
                    "key_hash": hashlib.sha256(agent_id.encode()).hexdigest(),
                    "enrolled_from": "192.0.2.10",
                    "enrolled_at": enrolled,
                    "last_heartbeat": heard,
                    "lag_seconds": 30.0,
                    "counters": {"received": rng.randrange(10**6), "dropped": dropped},
                    "dropped_notified": dropped,
                    "revoked": revoked,
                    "revoked_at": enrolled + timedelta(days=1) if revoked else None,
                    "revoked_by": f"rssi-{site.finess[-4:]}" if revoked else None,
                    "enrollment_token_id": None,
                }
            )
            silent = heard is None or now - heard > timedelta(minutes=60)
            for kind, raised in (
                ("agent_silent", silent and not revoked),
                ("agent_dropped", dropped),
            ):
                if raised:
                    notes.append(
                        {
                            "id": _uuid(rng),
                            "establishment_finess": site.finess,
                            "kind": kind,
                            "subject": agent_id,
                            "message": f"agent vigie-{site.finess}-{n + 1} ({agent_id}): {kind}",
                            "created_at": (heard or enrolled) + timedelta(minutes=65),
                            "resolved_at": None,
                        }
                    )
    return agents, notes


def alerts_of(
    sites: list[Site], now: datetime, rng: random.Random
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    regions = sorted({s.region for s in sites})
    alerts, acks = [], []
    for n in range(50):
        created = now - timedelta(days=rng.uniform(0.2, 120))
        target_all = n % 4 == 0
        target_regions = [] if target_all else rng.sample(regions, rng.randint(0, 2))
        target_kinds = [] if target_all or target_regions else rng.sample(list(KINDS), 2)
        alert_id = _uuid(rng)
        alerts.append(
            {
                "id": alert_id,
                "title": f"Alerte CERT Santé {n + 1} : vulnérabilité exploitée",
                "description": "Correctif à appliquer sous 72 heures. " * 5,
                "severity": rng.choice(["medium", "high", "critical"]),
                "tlp": rng.choice(["amber", "green", "clear"]),
                "status": "withdrawn" if rng.random() < 0.05 else "published",
                "products": ["Fortinet FortiOS"],
                "cves": [f"CVE-2026-{rng.randrange(10_000, 60_000)}"],
                "indicators": [{"type": "ip", "value": f"198.51.100.{n}"}],
                "sigma_rules": [],
                "yara_rules": [],
                "target_all": target_all,
                "target_regions": target_regions,
                "target_kinds": target_kinds,
                "created_by": ANALYST,
                "created_at": created,
                "updated_at": created,
                "bundle_version": n + 1,
                "retro_hunt_days": 30,
                "retro_hunt": None,
            }
        )
        share = rng.uniform(0.6, 0.85)
        for site in sites:
            meant = (
                target_all
                or site.region in target_regions
                or (not target_regions and site.kind in target_kinds)
            )
            at = created + timedelta(hours=rng.expovariate(1 / 30))
            if meant and rng.random() < share and at < now:
                acks.append(
                    {
                        "alert_id": alert_id,
                        "establishment_finess": site.finess,
                        "acknowledged_by": f"rssi-{site.finess[-4:]}",
                        "acknowledged_at": at,
                        "comment": None,
                    }
                )
    return alerts, acks


def batches_of(
    sites: list[Site],
    agents: list[dict[str, Any]],
    count: int,
    detections: int,
    now: datetime,
    rng: random.Random,
) -> Iterator[tuple[list[dict[str, Any]], list[int]]]:
    """The ingested batches in the order they came, 100,000 at a time, with the detections
    each carried (agent's, server's interleaved as counts), summing to `detections`."""
    live = [a for a in agents if a["last_heartbeat"] is not None and not a["revoked"]]
    kind_of = {s.finess: s.kind for s in sites}
    weights = [INCIDENT_WEIGHT[kind_of[a["establishment_finess"]]] for a in live]
    times = sorted(rng.uniform(0, 365 * 86_400) for _ in range(count))
    # A quarter of the batches carry detections, some many (a burst on one host).
    carrying = rng.sample(range(count), count // 4)
    heavy = [min(rng.paretovariate(1.5), 200.0) for _ in carrying]
    per_batch: Counter[int] = Counter(rng.choices(carrying, heavy, k=detections))
    senders = rng.choices(live, weights, k=count)
    for start in range(0, count, 100_000):
        rows, found = [], []
        for i in range(start, min(count, start + 100_000)):
            agent = senders[i]
            received = now - timedelta(seconds=365 * 86_400 - times[i])
            total = per_batch.get(i, 0)
            server = sum(1 for _ in range(total) if rng.random() < 0.1)
            rows.append(
                {
                    "batch_id": f"{rng.getrandbits(128):032x}",
                    "agent": agent["id"],
                    "establishment": agent["establishment_finess"],
                    "received_at": received,
                    "events_accepted": rng.randint(50, 1000),
                    "detections_accepted": total - server,
                    "rejected": 0,
                    "server_detections": server,
                    "state": "done",
                    "owner": f"vigie-1/{rng.randrange(2, 4000)}/{rng.getrandbits(32):08x}",
                    "duplicates": 0,
                }
            )
            found.append(total)
        yield rows, found


# A batch that carried detections: agent, establishment, batch id, received at, the agent's
# detections, all its detections (the agent's, then the server's).
Carried = tuple[str, str, str, datetime, int, int]


def detection_rows(
    batch: Carried, rules: list[Rule], rng: random.Random
) -> Iterator[tuple[int, str, str, str, str, str]]:
    """The event store's `detections` rows of one batch, as `SQLiteEventStore` writes them."""
    agent, finess, batch_id, received, agents_own, count = batch
    host = f"PC{finess[-4:]}-{rng.randrange(300):03d}"
    for n in range(count):
        rule = rng.choice(rules)
        at = received - timedelta(seconds=rng.uniform(1, 120))
        server = n >= agents_own
        doc = {
            "engine": "sigma",
            "rule_id": rule.id,
            "rule_title": rule.title,
            "level": rule.level,
            "source": "server" if server else "evtx",
            "timestamp": _ts(at),
            "tags": rule.tags,
            "event": {
                "@timestamp": _ts(at),
                "host": {"name": host},
                "event": {"code": "4688", "provider": "Microsoft-Windows-Security-Auditing"},
                "process": {
                    "executable": r"C:\Windows\System32\cmd.exe",
                    "command_line": f"cmd.exe /c {rng.getrandbits(160):040x}",
                    "pid": rng.randrange(400, 60_000),
                    "parent": {"executable": r"C:\Windows\explorer.exe"},
                },
                "user": {"name": f"user{rng.randrange(500)}", "domain": "HOPITAL"},
                "agent": {"id": agent},
            },
            "establishment": finess,
        }
        place = "e" if server else "d"
        uid = f"{agent}/{batch_id}/{place}{n}"
        micros = int((at - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)
        yield (micros, finess, rule.id, rule.level, orjson.dumps(doc).decode(), uid)


def snapshot_docs(engine: Engine, now: datetime) -> list[dict[str, Any]]:
    """Real result documents: `api.maturity.scoring` over 40 of the built establishments."""
    framework = maturity_framework()
    with session_factory(engine)() as session:
        chunk = list(
            session.scalars(select(Establishment).order_by(Establishment.finess).limit(40))
        )
        loaded = maturity_inputs.load(
            session,
            chunk,
            as_of=now.date(),
            cutoff=now,
            retention_days=180,
            windows=evidence_windows(framework),
        )
        docs = []
        for e in chunk:
            doc = as_json(evaluate(framework, loaded[e.finess], set()))
            doc["cutoff"] = _ts(now)
            docs.append(doc)
    return docs


def snapshot_rows(
    sites: list[Site], docs: list[dict[str, Any]], days: list[date], rng: random.Random
) -> Iterator[list[dict[str, Any]]]:
    framework = maturity_framework()
    # Scores out of 100 as the framework gives them (they were drawn on 0-5 until the
    # statistics report showed medians of 2.4 / 100), levels rising with them.
    base = {s.finess: rng.gauss(48.0, 16.0) for s in sites}
    for day in days:
        computed = datetime(day.year, day.month, day.day, 23, 50, tzinfo=UTC)
        rows = []
        for s in sites:
            score = round(min(100.0, max(0.0, base[s.finess] + rng.gauss(0, 1.0))), 1)
            rows.append(
                {
                    "id": _uuid(rng),
                    "finess": s.finess,
                    "as_of": day,
                    "kind": s.kind,
                    "region": s.region,
                    "framework_id": framework.id,
                    "framework_version": framework.version,
                    "framework_digest": framework.digest,
                    "computed_at": computed + timedelta(seconds=rng.uniform(0, 70)),
                    "score": score,
                    "level": max(1, min(5, 1 + int(score // 20))),
                    "coverage": round(rng.uniform(0.4, 1.0), 2),
                    "proof_ratio": round(rng.uniform(0.1, 0.9), 2),
                    "inputs_digest": f"{rng.getrandbits(256):064x}",
                    "result": rng.choice(docs),
                }
            )
        yield rows


# --- building a database -----------------------------------------------------------------------


def _copy(engine: Engine, table: str, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL's COPY, JSON columns as text."""
    columns = list(rows[0])
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(
                    [json.dumps(r[c]) if isinstance(r[c], list | dict) else r[c] for c in columns]
                )
        raw.commit()
    finally:
        raw.close()


def build(engine: Engine, args: argparse.Namespace, now: datetime) -> tuple[dict[str, int], Any]:
    """Fill an empty database (schema at head); the rows per table, and what the event store
    needs (the batches' detections) as a generator to run once."""
    rng = random.Random(SEED)
    postgres = engine.dialect.name == "postgresql"
    tallies: dict[str, int] = {}

    def put(model: Any, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        tallies[model.__tablename__] = tallies.get(model.__tablename__, 0) + len(rows)
        if postgres:
            _copy(engine, model.__tablename__, rows)
            return
        for i in range(0, len(rows), 50_000):
            with engine.begin() as connection:
                connection.execute(insert(model), rows[i : i + 50_000])

    sites = sites_of(args.establishments, rng)
    rules = rules_of(rng)
    put(
        Establishment,
        [
            {
                "finess": s.finess,
                "name": f"{s.kind} {s.finess}",
                "kind": s.kind,
                "region": s.region,
                "beds": rng.randint(20, 2000) if s.kind in ("CHU", "CH") else rng.randint(20, 200),
                "legal_entity_finess": None,
                "created_at": now - timedelta(days=600),
            }
            for s in sites
        ],
    )
    with transaction(session_factory(engine)) as session:
        auth_service.create_user(
            session=session, username=ANALYST, password=PASSWORD, role=Role.CERT
        )
    tallies["users"] = 1
    agents, notes = agents_of(sites, now, rng)
    put(Agent, agents)
    put(Notification, notes)
    print(f"  {len(sites):,} establishments, {len(agents):,} agents", flush=True)
    made = incidents_of(sites, rules, args.incidents, now, rng)
    put(Campaign, made.campaigns)
    put(Incident, made.incidents)
    put(TimelineEntry, made.timeline)
    print(
        f"  {len(made.incidents):,} incidents, {len(made.timeline):,} timeline entries", flush=True
    )
    alerts, acks = alerts_of(sites, now, rng)
    put(Alert, alerts)
    put(Acknowledgement, acks)
    docs = snapshot_docs(engine, now)
    last = (
        now.date() if now.hour * 60 + now.minute >= 23 * 60 + 51 else now.date() - timedelta(days=1)
    )
    days = [last - timedelta(days=d) for d in reversed(range(args.snapshot_days))]
    for rows in snapshot_rows(sites, docs, days, rng):
        for i in range(0, len(rows), 2_000):  # each result document is about 40 kB
            put(Snapshot, rows[i : i + 2_000])
    print(f"  {tallies.get('maturity_snapshots', 0):,} maturity snapshots", flush=True)
    carried: list[Carried] = []
    for rows, found in batches_of(sites, agents, args.batches, args.detections, now, rng):
        put(IngestedBatch, rows)
        carried += [
            (r["agent"], r["establishment"], r["batch_id"], r["received_at"],
             r["detections_accepted"], n)
            for r, n in zip(rows, found, strict=True)
            if n
        ]  # fmt: skip
        print(f"\r  {tallies['ingested_batches']:,} ingested batches", end="", flush=True)
    print()
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))  # what autovacuum would have done

    def detections() -> Iterator[tuple[int, str, str, str, str, str]]:
        events_rng = random.Random(SEED + 1)
        for batch in carried:
            yield from detection_rows(batch, rules, events_rng)

    return tallies, detections


def build_events(path: Path, detections: Callable[[], Iterator[tuple[Any, ...]]]) -> int:
    """The event store's file, its schema made by `SQLiteEventStore` itself, its detections
    in the order they came."""
    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)
    SQLiteEventStore(path).close()
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA cache_size=-262144")
    sql = (
        "INSERT INTO detections (_ts, _establishment, rule_id, level, _doc, _uid) "
        "VALUES (?, ?, ?, ?, ?, ?)"
    )
    stored = 0
    chunk: list[tuple[Any, ...]] = []
    for row in detections():
        chunk.append(row)
        if len(chunk) == 50_000:
            stored += _insert_chunk(connection, sql, chunk)
            print(f"\r  {stored:,} detections in the event store", end="", flush=True)
            chunk = []
    stored += _insert_chunk(connection, sql, chunk)
    print(f"\r  {stored:,} detections in the event store")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return stored


def _insert_chunk(connection: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> int:
    connection.execute("BEGIN")
    connection.executemany(sql, rows)
    connection.execute("COMMIT")
    return len(rows)


# --- the databases ----------------------------------------------------------------------------


@dataclass
class Database:
    name: str
    url: str
    data_dir: Path
    built: dict[str, int]
    built_at: datetime
    build_seconds: float


def _params(args: argparse.Namespace) -> str:
    return (
        f"seed={SEED} establishments={args.establishments} incidents={args.incidents} "
        f"detections={args.detections} batches={args.batches} snapshot_days={args.snapshot_days}"
    )


def _marker(built: dict[str, int], built_at: datetime, seconds: float) -> str:
    return json.dumps({"built": built, "built_at": built_at.isoformat(), "seconds": seconds})


def _read_marker(note: str) -> tuple[dict[str, int], datetime]:
    found = json.loads(note)
    return found["built"], datetime.fromisoformat(found["built_at"])


def _fresh(engine: Engine) -> None:
    """Data reused later: agents heard from as long ago as when it was built (else every
    agent would be silent, and the `agent_silent` job would raise thousands at start). The
    latest heartbeat was a few seconds before the build: moved to a few seconds ago."""
    with transaction(session_factory(engine)) as session:
        heard = session.execute(
            select(Agent.id, Agent.last_heartbeat).where(Agent.last_heartbeat.is_not(None))
        ).all()
        latest = max(as_utc(h) for _, h in heard if h)
        shift = utcnow() - timedelta(seconds=5) - latest
        moved = [{"id": i, "last_heartbeat": as_utc(h) + shift} for i, h in heard if h]
        session.execute(update(Agent), moved)


def open_sqlite(args: argparse.Namespace, events: Path) -> Database:
    data_dir = OUT / "sqlite"
    path, marker = data_dir / "vigie.db", data_dir / "vigie.db.params"
    url = f"sqlite:///{path}"
    if args.reuse and path.exists() and marker.exists():
        params, note = marker.read_text().split("\n", 1)
        if params == _params(args):
            engine = make_engine(url)
            upgrade(engine)  # migrations added since it was built
            built, built_at = _read_marker(note)
            _fresh(engine)
            engine.dispose()
            _place_events(events, data_dir)
            return Database("SQLite", url, data_dir, built, built_at, 0.0)
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, mode=0o700)
    engine = make_engine(url)
    upgrade(engine)
    now = utcnow()
    began = time.perf_counter()
    built, detections = build(engine, args, now)
    engine.dispose()
    if not _events_ready(args, events):
        built["event store detections"] = build_events(events, detections)
        (events.parent / "events.params").write_text(_params(args))
    else:
        built["event store detections"] = args.detections
    took = time.perf_counter() - began
    marker.write_text(_params(args) + "\n" + _marker(built, now, took))
    _place_events(events, data_dir)
    return Database("SQLite", url, data_dir, built, now, took)


def _events_ready(args: argparse.Namespace, events: Path) -> bool:
    params = events.parent / "events.params"
    return events.exists() and params.exists() and params.read_text() == _params(args)


def _place_events(events: Path, data_dir: Path) -> None:
    """The event store in the data directory: a copy of the one built (the service writes its
    WAL next to it)."""
    target = data_dir / EVENTS_FILE
    if not target.exists() or target.stat().st_size != events.stat().st_size:
        shutil.copyfile(events, target)
        target.chmod(0o600)


def open_postgres(args: argparse.Namespace, events: Path) -> Database:
    data_dir = OUT / "postgresql"
    admin = sqlalchemy.create_engine(POSTGRES)
    schema = PG_SCHEMA if args.reuse else f"{PG_SCHEMA}_{secrets.token_hex(4)}"
    url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        note = connection.execute(
            text("SELECT obj_description(oid) FROM pg_namespace WHERE nspname = :s"),
            {"s": schema},
        ).scalar()
    admin.dispose()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if note and note.split("\n", 1)[0] == _params(args) and _events_ready(args, events):
        engine = make_engine(url)
        upgrade(engine)
        built, built_at = _read_marker(note.split("\n", 1)[1])
        _fresh(engine)
        engine.dispose()
        _place_events(events, data_dir)
        return Database("PostgreSQL", url, data_dir, built, built_at, 0.0)
    admin = sqlalchemy.create_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url)
    upgrade(engine)
    now = utcnow()
    began = time.perf_counter()
    built, detections = build(engine, args, now)
    engine.dispose()
    if not _events_ready(args, events):
        built["event store detections"] = build_events(events, detections)
        (events.parent / "events.params").write_text(_params(args))
    else:
        built["event store detections"] = args.detections
    took = time.perf_counter() - began
    note = (_params(args) + "\n" + _marker(built, now, took)).replace("'", "''")
    with admin.begin() as connection:
        connection.execute(text(f"COMMENT ON SCHEMA \"{schema}\" IS '{note}'"))
    admin.dispose()
    _place_events(events, data_dir)
    return Database("PostgreSQL", url, data_dir, built, now, took)


def drop_postgres(db: Database, args: argparse.Namespace) -> None:
    if args.reuse:
        return  # kept for the next --reuse
    schema = db.url.rsplit("%3D", 1)[1]
    admin = sqlalchemy.create_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


# --- the server (a subprocess: `--serve`) -------------------------------------------------------


class ServerTiming:
    """ASGI middleware of this benchmark only: each answer's time in the server, from the
    request to the last byte handed to uvicorn, in a `Server-Timing` header (up to the
    answer's start) and in a file, one line per request named by its `X-Bench` header."""

    def __init__(self, app: Any, log: Path) -> None:
        self.app = app
        self.log = log.open("a", buffering=1, encoding="utf-8")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        name = dict(scope["headers"]).get(b"x-bench", b"").decode()
        status = 0

        async def timed(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                took = (time.perf_counter() - began) * 1000
                headers = [
                    *message.get("headers", []),
                    (b"server-timing", f"app;dur={took:.2f}".encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed)
        if name:
            took = (time.perf_counter() - began) * 1000
            self.log.write(f"{name}\t{status}\t{took:.3f}\n")


def serve(data_dir: Path, url: str, port: int, log: Path) -> None:
    """What `vigie serve` does with one worker, the application wrapped in `ServerTiming`."""
    import uvicorn

    from api.app import create_app
    from api.settings import Settings

    settings = Settings(data_dir, url, secrets.token_urlsafe(48))
    app = ServerTiming(create_app(settings), log)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="info", server_header=False)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    timings: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(db: Database) -> Server:
    port = free_port()
    timings = db.data_dir / "timings.tsv"
    timings.unlink(missing_ok=True)
    log = (db.data_dir / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(db.data_dir), db.url, str(port), str(timings)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with {process.returncode}: see {log.name}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return Server(process, url, timings)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError("the service did not start in 2 minutes")


def stop_server(server: Server) -> None:
    server.process.terminate()
    server.process.wait(timeout=60)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the runs ---------------------------------------------------------------------------------


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    if not found:
        raise RuntimeError("no CSRF field in the login form")
    return found.group(1)


def log_in(url: str) -> tuple[httpx.Client, httpx.Client]:
    """The analyst through the /login form (cookies), and with a bearer token (JSON routes)."""
    browser = httpx.Client(base_url=url, follow_redirects=True, timeout=60)
    form = browser.get("/login")
    answer = browser.post(
        "/login",
        data={"username": ANALYST, "password": PASSWORD, "csrf": _csrf(form.text)},
        headers={"Origin": url},
    )
    if answer.status_code != 200 or not answer.url.path.startswith("/ui/"):
        raise RuntimeError(f"login refused: {answer.status_code} {answer.text[:200]}")
    token = (
        httpx.post(
            f"{url}/auth/token", json={"username": ANALYST, "password": PASSWORD}, timeout=60
        )
        .raise_for_status()
        .json()["access_token"]
    )
    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    return browser, api


def pages(region: str) -> list[tuple[str, str, bool]]:
    """(label, path, JSON route) in the order each round requests them."""
    return [
        ("overview /ui/", "/ui/", False),
        ("KPI panel /ui/panels/kpis", "/ui/panels/kpis", False),
        ("incidents /ui/incidents", "/ui/incidents", False),
        (f"incidents, region={region}", f"/ui/incidents?region={quote(region)}", False),
        ("incidents, status=open", "/ui/incidents?status=open", False),
        ("incidents, offset=5000", "/ui/incidents?offset=5000", False),
        ("JSON GET /stats/overview", "/stats/overview", True),
        ("JSON GET /incidents", "/incidents", True),
    ]


def wait_for_calm(label: str, most: float) -> tuple[float, float]:
    """Wait (at most LOAD_WAIT) until the 1-minute load is under `most`; (load, waited s)."""
    began = time.monotonic()
    load = os.getloadavg()[0]
    while load > most and time.monotonic() - began < LOAD_WAIT:
        print(f"  {label}: load {load:.2f} > {most}: waiting", flush=True)
        time.sleep(30)
        load = os.getloadavg()[0]
    return load, time.monotonic() - began


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


@dataclass
class Timed:
    label: str
    path: str
    server_ms: list[float]
    client_ms: list[float]


@dataclass
class Run:
    db: Database
    region: str
    timed: list[Timed]
    load_before: float
    waited: float
    uptime_before: str
    uptime_after: str
    server_cpu: float
    wall: float
    jobs: list[str]
    peer: dict[str, tuple[list[float], list[float], int]]
    breakdown: dict[str, list[float]]


def busiest_region(db: Database) -> str:
    engine = make_engine(db.url)
    with engine.connect() as connection:
        region = connection.execute(
            select(Establishment.region)
            .join(Incident, Incident.establishment_finess == Establishment.finess)
            .group_by(Establishment.region)
            .order_by(func.count().desc())
            .limit(1)
        ).scalar_one()
    engine.dispose()
    return str(region)


def measure(db: Database, args: argparse.Namespace) -> Run:
    region = busiest_region(db)
    server = start_server(db)
    try:
        browser, api = log_in(server.url)
        plan = pages(region)
        clients = [api if is_json else browser for _, _, is_json in plan]
        for n in range(args.warmup):
            for (_, path, _), client in zip(plan, clients, strict=True):
                client.get(path, headers={"X-Bench": f"warmup:{n}"}).raise_for_status()
        load, waited = wait_for_calm(db.name, args.max_load)
        before = uptime()
        print(f"{db.name}: timed run, {before}", flush=True)
        cpu0, began = cpu_seconds(server.process.pid), time.perf_counter()
        started_at = utcnow()
        client_ms: dict[str, list[float]] = defaultdict(list)
        for n in range(args.requests):
            for index, ((_, path, _), client) in enumerate(zip(plan, clients, strict=True)):
                t0 = time.perf_counter()
                answer = client.get(path, headers={"X-Bench": f"{index}:{n}"})
                client_ms[path].append((time.perf_counter() - t0) * 1000)
                if answer.status_code != 200:
                    raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:300]}")
        wall = time.perf_counter() - began
        cpu = cpu_seconds(server.process.pid) - cpu0
        after = uptime()
        ended_at = utcnow()
        browser.close()
        api.close()
    finally:
        stop_server(server)
    server_ms: dict[int, list[float]] = defaultdict(list)
    for line in server.timings.read_text(encoding="utf-8").splitlines():
        name, status, took = line.split("\t")
        which = name.partition(":")[0]
        if which != "warmup" and status == "200":
            server_ms[int(which)].append(float(took))
    timed = [
        Timed(label, path, server_ms[index], client_ms[path])
        for index, (label, path, _) in enumerate(plan)
    ]
    jobs = jobs_between(db, started_at, ended_at)
    print(f"{db.name}: {after}", flush=True)
    peer = peer_runs(db, region, args.peer_runs)
    breakdown = overview_breakdown(db, args.peer_runs * 2) if args.breakdown else {}
    return Run(db, region, timed, load, waited, before, after, cpu, wall, jobs, peer, breakdown)


def jobs_between(db: Database, since: datetime, until: datetime) -> list[str]:
    engine = make_engine(db.url)
    with session_factory(engine)() as session:
        runs = session.execute(
            select(JobRun.job, JobRun.started_at, JobRun.finished_at).where(
                JobRun.started_at >= since, JobRun.started_at <= until
            )
        ).all()
    engine.dispose()

    def seconds(a: datetime, b: datetime) -> float:
        return (b - a).total_seconds()

    return [f"{job} ({seconds(a, b):.1f} s)" for job, a, b in runs]


# --- the peer: the list before it was paged in SQL ----------------------------------------------


def old_page(
    *,
    session: Session,
    who: Principal,
    region: str | None = None,
    status: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[Incident], int]:
    """5ac3ddc's `page` (git show 5ac3ddc:api/incidents/service.py): every matching incident
    read into Python, then sliced; the filters as `IncidentFilter` states them now."""
    query = select(Incident).where(*IncidentFilter(region=region, status=status).conditions(who))
    items = list(session.scalars(query.order_by(Incident.updated_at.desc(), Incident.id)))
    return items[offset : offset + limit], len(items)


def peer_runs(
    db: Database, region: str, runs: int
) -> dict[str, tuple[list[float], list[float], int]]:
    """Per filter: (current page ms, 5ac3ddc's page ms, total), each on a new session."""
    engine = make_engine(db.url)
    sessions = session_factory(engine)
    who = Principal(ANALYST, str(Role.CERT), None)
    cases: dict[str, dict[str, Any]] = {
        "all": {},
        f"region={region}": {"region": region},
        "status=open": {"status": "open"},
        "offset=5000": {"offset": 5000},
    }
    out = {}
    for label, filters in cases.items():
        new_ms: list[float] = []
        old_ms: list[float] = []
        for n in range(runs * 3 + runs):
            old = n % 4 == 3  # interleaved: three current, one old
            with sessions() as session:
                t0 = time.perf_counter()
                if old:
                    items, total = old_page(session=session, who=who, **filters)
                else:
                    items, total = incident_service.page(session=session, who=who, **filters)
                (old_ms if old else new_ms).append((time.perf_counter() - t0) * 1000)
                ids = ([i.id for i in items], total)
            if n == 0:
                expected = ids
            elif ids != expected:
                raise RuntimeError(f"{label}: 5ac3ddc's page and the current differ")
        out[label] = (new_ms, old_ms, expected[1])
        print(
            f"  {db.name} list {label}: current {statistics.median(new_ms):.1f} ms, "
            f"5ac3ddc {statistics.median(old_ms):.1f} ms ({expected[1]:,} incidents)",
            flush=True,
        )
    engine.dispose()
    return out


def overview_breakdown(db: Database, runs: int) -> dict[str, list[float]]:
    """Each service call of the overview, in this process (ms per call, a new session each)."""
    from api.alerts import service as alert_service
    from api.incidents import deadlines
    from api.maturity import peers
    from api.stats import service as stats

    engine = make_engine(db.url)
    sessions = session_factory(engine)
    who = Principal(ANALYST, str(Role.CERT), None)
    opened = IncidentFilter(status="open")
    version_ = maturity_framework().version
    calls: dict[str, Callable[[Session], Any]] = {
        "stats.overview": lambda s: stats.overview(
            session=s, who=who, now=utcnow(), silent_after=timedelta(minutes=60)
        ),
        "  of which alerts.tally": lambda s: alert_service.tally(
            session=s, who=who, since=utcnow() - timedelta(days=30)
        ),
        "stats.incident_groups(region, open)": lambda s: stats.incident_groups(
            session=s, who=who, by="region", filters=opened
        ),
        "stats.incident_series(day, 90)": lambda s: stats.incident_series(
            session=s, who=who, interval="day", days=90, now=utcnow()
        ),
        "deadlines.page(open, 10)": lambda s: deadlines.page(
            session=s, who=who, now=utcnow(), open_only=True, offset=0, limit=10
        ),
        "peers.stats(kind)": lambda s: peers.stats(s, version_, utcnow().date(), "kind"),
    }
    out: dict[str, list[float]] = {}
    for label, call in calls.items():
        took = []
        for _ in range(runs):
            with sessions() as session:
                t0 = time.perf_counter()
                call(session)
                took.append((time.perf_counter() - t0) * 1000)
        out[label] = took
    engine.dispose()
    return out


# --- the report -------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-quantile, nearest rank (p95 of 200: the 190th)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()


def _server_version(db: Database) -> str:
    engine = make_engine(db.url)
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            found = str(connection.execute(text("SHOW server_version")).scalar()).split()[0]
        else:
            found = str(connection.exec_driver_sql("select sqlite_version()").scalar())
    engine.dispose()
    return found


def report(args: argparse.Namespace, runs: list[Run]) -> str:
    built = runs[0].db.built
    counts = ", ".join(f"{v:,} {k}" for k, v in built.items())
    versions = ", ".join(f"{r.db.name} {_server_version(r.db)}" for r in runs)
    lines = [
        f"{HEADING}: the national overview and the incident list, served",
        "",
        f"Command: `python benchmarks/dashboard_load.py --establishments {args.establishments} "
        f"--incidents {args.incidents} --detections {args.detections} --batches {args.batches} "
        f"--snapshot-days {args.snapshot_days} --requests {args.requests} --warmup "
        f"{args.warmup} --peer-runs {args.peer_runs} --backends "
        + " ".join(args.backends)
        + " --breakdown" * args.breakdown
        + " --reuse" * args.reuse
        + " --write" * args.write
        + "` (the service as `vigie serve` runs it, one uvicorn process with its scheduler, a "
        "subprocess; a CERT analyst logged in through /login; each answer timed in the server "
        "by an ASGI middleware of the benchmark, from the request to the answer's last byte; "
        f"{args.warmup} warm-up rounds, then {args.requests} rounds of every page in turn, one "
        "request at a time).",
        "",
        "Data (seeded, built before the clock starts by bulk inserts, COPY then VACUUM ANALYZE "
        "on PostgreSQL; times relative to the build): "
        f"{counts}. Establishments over every département and overseas territory, kinds "
        "EHPAD 50%, clinic 15%, CH 12%, SSR 10%, other 6%, psychiatry 5%, CHU 2%; incidents "
        "over 365 days weighted by kind (a CHU 27 times an EHPAD), 65% from detections, 30% "
        "declared, 5% retro-hunts, status by age, about 30% notifiable with NIS2 due dates, "
        "reports and flagged deadlines; agents 3% silent, 1.5% never heard from, 1% revoked; "
        "alerts over 120 days; batches over 365 days, a quarter of them carrying the "
        "detections (stored in the event store's SQLite file too); maturity snapshots of the "
        f"last {args.snapshot_days} nights. Built "
        + ", ".join(
            f"{r.db.built_at:%Y-%m-%d %H:%M} UTC in {r.db.build_seconds:.0f} s ({r.db.name})"
            if r.db.build_seconds
            else f"{r.db.built_at:%Y-%m-%d %H:%M} UTC ({r.db.name}, reused)"
            for r in runs
        )
        + ".",
        "",
        f"Versions: Python {sys.version.split()[0]}, SQLAlchemy {version('sqlalchemy')}, "
        f"FastAPI {version('fastapi')}, uvicorn {version('uvicorn')}, psycopg "
        f"{version('psycopg')}, {versions}, Vigie {_commit()}; {os.cpu_count()} cores.",
        "",
        "Machine load: "
        + "; ".join(
            f"{r.db.name}: before `{r.uptime_before.split('load average: ')[-1]}`"
            + (
                f" (waited {r.waited:.0f} s for it to fall under {args.max_load})"
                if r.waited
                else ""
            )
            + f", after `{r.uptime_after.split('load average: ')[-1]}`"
            for r in runs
        )
        + " (1, 5, 15-minute load averages, 2 cores).",
        "",
        "| database | page | p50 ms | p95 ms | max ms | client p50 ms | goal (p95 < 300 ms) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        for t in r.timed:
            p95 = pct(t.server_ms, 0.95)
            goal = (
                "-"
                if t.path.startswith(("/stats", "/incidents"))
                else ("met" if p95 < GOAL_MS else "NOT MET")
            )
            lines.append(
                f"| {r.db.name} | {t.label} | {statistics.median(t.server_ms):.1f} | {p95:.1f} "
                f"| {max(t.server_ms):.1f} | {statistics.median(t.client_ms):.1f} | {goal} |"
            )
    lines.append("")
    for r in runs:
        count = sum(len(t.server_ms) for t in r.timed)
        lines.append(
            f"{r.db.name}: {count:,} answers in {r.wall:.0f} s; the server's CPU "
            f"{r.server_cpu:.0f} s ({1000 * r.server_cpu / count:.0f} ms per answer); "
            "scheduled jobs during the timed run: " + (", ".join(r.jobs) or "none") + "."
        )
    lines += [
        "",
        f"Peer: the incident list as it was (5ac3ddc's `page`: every matching incident read, "
        "sorted, then sliced in Python) against the current `service.page` (count and "
        "LIMIT/OFFSET in SQL), called in the benchmark's process on a new session each, the "
        f"same filters, the same incidents returned; medians of {args.peer_runs} (5ac3ddc) "
        f"and {args.peer_runs * 3} (current) calls, interleaved.",
        "",
        "| database | filter | incidents | current ms | 5ac3ddc ms | 5ac3ddc / current |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        for label, (new_ms, old_ms, total) in r.peer.items():
            new, old = statistics.median(new_ms), statistics.median(old_ms)
            lines.append(
                f"| {r.db.name} | {label} | {total:,} | {new:.1f} | {old:.1f} | {old / new:.0f}x |"
            )
    if any(r.breakdown for r in runs):
        lines += [
            "",
            "Where the overview's time goes (`--breakdown`: each service call it makes, in the "
            f"benchmark's process, median of {args.peer_runs * 2}, ms):",
            "",
            "| call | " + " | ".join(r.db.name for r in runs) + " |",
            "| --- |" + " --- |" * len(runs),
        ]
        for label in runs[0].breakdown:
            lines.append(
                f"| {label.strip()} | "
                + " | ".join(f"{statistics.median(r.breakdown[label]):.1f}" for r in runs)
                + " |"
            )
    met = all(
        pct(t.server_ms, 0.95) < GOAL_MS for r in runs for t in r.timed if t.path.startswith("/ui/")
    )
    lines += [
        "",
        "Goal (p95 under 300 ms for the overview and the incident list, on both databases): "
        + ("**met**." if met else "**not met**."),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "--serve":
        serve(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), Path(sys.argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--establishments", type=int, default=10_500)
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--detections", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=2_000_000)
    parser.add_argument("--snapshot-days", type=int, default=7)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--peer-runs", type=int, default=10)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--max-load", type=float, default=MAX_LOAD, help="wait below this load")
    parser.add_argument("--reuse", action="store_true", help="keep and reuse the built databases")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    events = OUT / EVENTS_FILE
    runs: list[Run] = []
    opened: list[Database] = []
    try:
        for backend in args.backends:
            began = time.perf_counter()
            db = open_sqlite(args, events) if backend == "sqlite" else open_postgres(args, events)
            opened.append(db)
            print(
                f"{db.name}: ready in {time.perf_counter() - began:.0f} s: {db.built}", flush=True
            )
            runs.append(measure(db, args))
        text_ = report(args, runs)
        print(text_)
        if args.write:
            from benchmarks.results import RESULTS, write_section

            if HEADING not in RESULTS.read_text(encoding="utf-8"):
                RESULTS.write_text(RESULTS.read_text(encoding="utf-8").rstrip() + "\n\n" + HEADING)
            write_section(HEADING, text_)
    finally:
        for db in opened:
            if db.name == "PostgreSQL":
                drop_postgres(db, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
