"""Everything a snapshot scores an establishment from, detached from the database.

`load` reads it for many establishments at once (one query per table, not per
establishment: the nightly job scores 10,500 of them), keeping only what existed at the
cutoff. The checks are pure functions of an `Inputs`, and `Inputs.digest()` is the SHA-256 of
its canonical JSON: the same inputs give the same digest, and the same scores.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date, datetime, timedelta
from functools import cache
from itertools import product
from typing import Any

import orjson
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from api.agents.models import Agent, as_utc
from api.alerts.models import Acknowledgement, Alert, AlertStatus
from api.alerts.service import scope_of
from api.establishments.models import Establishment
from api.incidents.models import Incident, TimelineEntry
from api.maturity.models import Answer, Evidence, Exception_, Profile

# How far back incidents and alerts are read: the longest window a check may have (NIS2
# deadlines over 12 months). Evidence is read only as far back as the checks look.
LOOKBACK_DAYS = 366


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    day: date
    count: int
    first_seen: datetime
    last_seen: datetime
    samples: tuple[str, ...]
    subjects: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProfileFacts:
    flags: dict[str, bool] = field(default_factory=dict)
    sites: tuple[str, ...] = ()
    expected_sources: tuple[str, ...] = ()
    server_hosts: tuple[str, ...] = ()
    admin_hosts: tuple[str, ...] = ()
    resolvers: tuple[str, ...] = ()
    declared_at: datetime | None = None  # None: never declared


@dataclass(frozen=True, slots=True)
class AgentFacts:
    id: str
    hostname: str
    site: str | None
    enrolled_at: datetime
    revoked_at: datetime | None
    last_heartbeat: datetime | None
    source_kinds: tuple[str, ...]
    dropped: int


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    id: str
    origin: str
    category: str
    severity: str
    status: str
    notifiable: bool
    aware_at: datetime
    created_at: datetime
    early_warning_at: datetime | None
    notification_at: datetime | None
    final_report_at: datetime | None
    acknowledged_at: datetime | None  # first left `new`
    contained_at: datetime | None  # first reached contained or beyond
    rule_id: str | None


@dataclass(frozen=True, slots=True)
class AlertFacts:
    id: str
    severity: str
    published_at: datetime
    acknowledged_at: datetime | None
    # When the CERT withdrew it, as far as the cutoff knows (its last change, if withdrawn).
    withdrawn_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AnswerFacts:
    id: int
    value: dict[str, Any]
    declared_at: datetime
    proven: bool
    proof_sha256: str | None


@dataclass(frozen=True, slots=True)
class ExceptionFacts:
    id: str
    kind: str
    approver: str
    expires_at: datetime


@dataclass(frozen=True)
class Inputs:
    finess: str
    kind: str
    region: str
    as_of: date
    cutoff: datetime  # nothing later than this was read
    retention_days: int
    profile: ProfileFacts
    evidence: dict[str, list[Row]] = field(default_factory=dict)
    agents: list[AgentFacts] = field(default_factory=list)
    incidents: list[IncidentFacts] = field(default_factory=list)
    alerts: list[AlertFacts] = field(default_factory=list)
    answers: dict[str, AnswerFacts] = field(default_factory=dict)
    exceptions: dict[str, ExceptionFacts] = field(default_factory=dict)
    # Days of each signal loaded (`load`); None: whatever `evidence` holds (built by hand).
    windows: dict[str, int] | None = None

    def rows(self, signal: str, days: int, keys: Iterable[str] | None = None) -> list[Row]:
        """The signal's rows of the last `days` days up to `as_of`, of `keys` only if given."""
        if self.windows is not None and days > self.windows.get(signal, 0):
            # A check reading more than it declared would judge on missing rows, silently.
            raise LookupError(
                f"{signal} read over {days} days, {self.windows.get(signal, 0)} loaded: "
                "declare it in the check's `reads`"
            )
        start = self.as_of - timedelta(days=days - 1)
        wanted = None if keys is None else set(keys)
        return [
            r
            for r in self.evidence.get(signal, ())
            if start <= r.day <= self.as_of and (wanted is None or r.key in wanted)
        ]

    def digest(self, framework_digest: str) -> str:
        # The bytes of the sorted JSON of `asdict(self)`, without asdict: its deep copies were
        # most of the nightly job's time. orjson hands each dataclass to `_plain`, which gives
        # its fields as a dict, whose keys OPT_SORT_KEYS then sorts as it sorts asdict's.
        doc = {"framework": framework_digest, **_plain(self)}
        blob = orjson.dumps(doc, option=_DIGEST_OPTIONS, default=_plain)
        return hashlib.sha256(blob).hexdigest()


_DIGEST_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS


@cache
def _field_names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(kind))


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {name: getattr(value, name) for name in _field_names(type(value))}
    if isinstance(value, tuple | set | frozenset):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(type(value).__name__)


def load(
    session: Session,
    establishments: list[Establishment],
    *,
    as_of: date,
    cutoff: datetime,
    retention_days: int,
    windows: dict[str, int],
) -> dict[str, Inputs]:
    """The inputs of each establishment, as of `as_of`, reading nothing after `cutoff`, and
    of each evidence signal only its last `windows[signal]` days (the checks' windows)."""
    finesses = [e.finess for e in establishments]
    evidence: dict[str, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    by_days: dict[int, list[str]] = defaultdict(list)
    for signal, days in sorted(windows.items()):
        by_days[days].append(signal)
    # Columns, not ORM objects, and the two JSON lists read as text for orjson: the nightly
    # job reads millions of these rows, and building entities and json.loads were most of it.
    columns = (
        Evidence.finess,
        Evidence.signal,
        Evidence.key,
        Evidence.day,
        Evidence.count,
        Evidence.first_seen,
        Evidence.last_seen,
        cast(Evidence.samples, Text),
        cast(Evidence.subjects, Text),
    )
    loads = orjson.loads
    for chunk, (days, signals) in product(_chunks(finesses), sorted(by_days.items())):
        query = (
            select(*columns)
            .where(
                Evidence.finess.in_(chunk),
                Evidence.signal.in_(signals),
                Evidence.day >= as_of - timedelta(days=days - 1),
                Evidence.day <= as_of,
            )
            .order_by(Evidence.finess, Evidence.signal, Evidence.day, Evidence.key)
        )
        for finess, signal, key, day, count, first, last, samples, subjects in session.execute(
            query
        ):
            evidence[finess][signal].append(
                Row(
                    key,
                    day,
                    count,
                    as_utc(first),
                    as_utc(last),
                    tuple(loads(samples)),
                    tuple(loads(subjects)),
                )
            )
    profiles = _profiles(session, finesses, cutoff)
    agents = _agents(session, finesses, cutoff)
    incidents = _incidents(session, finesses, cutoff, as_of)
    alerts = _alerts(session, establishments, cutoff, as_of)
    answers = _answers(session, finesses, cutoff)
    exceptions = _exceptions(session, finesses, cutoff)
    return {
        e.finess: Inputs(
            finess=e.finess,
            kind=e.kind,
            region=e.region,
            as_of=as_of,
            cutoff=cutoff,
            retention_days=retention_days,
            profile=profiles.get(e.finess, ProfileFacts()),
            evidence={k: list(v) for k, v in sorted(evidence.get(e.finess, {}).items())},
            agents=agents.get(e.finess, []),
            incidents=incidents.get(e.finess, []),
            alerts=alerts.get(e.finess, []),
            answers=answers.get(e.finess, {}),
            exceptions=exceptions.get(e.finess, {}),
            windows=dict(sorted(windows.items())),
        )
        for e in establishments
    }


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    # Bounded IN lists: SQLite caps a statement's parameters.
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _profiles(session: Session, finesses: list[str], cutoff: datetime) -> dict[str, ProfileFacts]:
    out: dict[str, ProfileFacts] = {}
    for chunk in _chunks(finesses):
        query = (
            select(Profile)
            .where(Profile.finess.in_(chunk), Profile.declared_at <= cutoff)
            .order_by(Profile.finess, Profile.declared_at, Profile.id)
        )
        for p in session.scalars(query):  # the latest declaration wins
            out[p.finess] = ProfileFacts(
                flags=dict(sorted(p.flags.items())),
                sites=tuple(p.sites),
                expected_sources=tuple(p.expected_sources),
                server_hosts=tuple(p.server_hosts),
                admin_hosts=tuple(p.admin_hosts),
                resolvers=tuple(p.resolvers),
                declared_at=as_utc(p.declared_at),
            )
    return out


def _agents(session: Session, finesses: list[str], cutoff: datetime) -> dict[str, list[AgentFacts]]:
    out: dict[str, list[AgentFacts]] = defaultdict(list)
    for chunk in _chunks(finesses):
        query = (
            select(Agent)
            .where(Agent.establishment_finess.in_(chunk), Agent.enrolled_at <= cutoff)
            .order_by(Agent.establishment_finess, Agent.id)
        )
        for a in session.scalars(query):
            dropped = (a.counters or {}).get("dropped", 0)
            out[a.establishment_finess].append(
                AgentFacts(
                    id=a.id,
                    hostname=a.hostname,
                    site=a.site,
                    enrolled_at=as_utc(a.enrolled_at),
                    revoked_at=as_utc(a.revoked_at) if a.revoked_at else None,
                    last_heartbeat=_before(a.last_heartbeat, cutoff),
                    source_kinds=tuple(
                        sorted({str(s.get("kind")) for s in a.sources or [] if s.get("kind")})
                    ),
                    dropped=dropped if isinstance(dropped, int) and dropped > 0 else 0,
                )
            )
    return out


def _before(moment: datetime | None, cutoff: datetime) -> datetime | None:
    if moment is None:
        return None
    moment = as_utc(moment)
    return moment if moment <= cutoff else None


def _incidents(
    session: Session, finesses: list[str], cutoff: datetime, as_of: date
) -> dict[str, list[IncidentFacts]]:
    since = cutoff - timedelta(days=LOOKBACK_DAYS)
    out: dict[str, list[IncidentFacts]] = defaultdict(list)
    for chunk in _chunks(finesses):
        rows = list(
            session.scalars(
                select(Incident)
                .where(
                    Incident.establishment_finess.in_(chunk),
                    Incident.created_at <= cutoff,
                    Incident.created_at >= since,
                )
                .order_by(Incident.establishment_finess, Incident.created_at, Incident.id)
            )
        )
        moves: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
        if rows:
            for incident_id, at, to_status in session.execute(
                select(TimelineEntry.incident_id, TimelineEntry.at, TimelineEntry.to_status)
                .where(
                    TimelineEntry.incident_id.in_([r.id for r in rows]),
                    TimelineEntry.to_status.is_not(None),
                    TimelineEntry.at <= cutoff,
                )
                .order_by(TimelineEntry.at, TimelineEntry.id)
            ):
                moves[incident_id].append((as_utc(at), str(to_status)))
        for r in rows:
            steps = moves.get(r.id, [])
            acknowledged = next((at for at, to in steps if to != "new"), None)
            contained = next(
                (at for at, to in steps if to in ("contained", "resolved", "closed")), None
            )
            out[r.establishment_finess].append(
                IncidentFacts(
                    id=r.id,
                    origin=r.origin,
                    category=r.category,
                    severity=r.severity,
                    status=steps[-1][1] if steps else "new",
                    notifiable=bool(r.notifiable),
                    aware_at=as_utc(r.aware_at),
                    created_at=as_utc(r.created_at),
                    early_warning_at=_before(r.early_warning_at, cutoff),
                    notification_at=_before(r.notification_at, cutoff),
                    final_report_at=_before(r.final_report_at, cutoff),
                    acknowledged_at=acknowledged,
                    contained_at=contained,
                    rule_id=r.rule_id,
                )
            )
    del as_of
    return out


def _alerts(
    session: Session, establishments: list[Establishment], cutoff: datetime, as_of: date
) -> dict[str, list[AlertFacts]]:
    since = cutoff - timedelta(days=LOOKBACK_DAYS)
    alerts = list(
        session.scalars(
            select(Alert)
            .where(Alert.created_at <= cutoff, Alert.created_at >= since)
            .order_by(Alert.created_at, Alert.id)
        )
    )
    acks: dict[tuple[str, str], datetime] = {}
    # These establishments' acknowledgements only: a national alert has thousands, and a
    # recompute (one establishment) read them all.
    for chunk in _chunks([e.finess for e in establishments]) if alerts else ():
        for alert_id, finess, at in session.execute(
            select(
                Acknowledgement.alert_id,
                Acknowledgement.establishment_finess,
                Acknowledgement.acknowledged_at,
            ).where(
                Acknowledgement.alert_id.in_([a.id for a in alerts]),
                Acknowledgement.establishment_finess.in_(chunk),
                Acknowledgement.acknowledged_at <= cutoff,
            )
        ):
            key = (alert_id, finess)
            moment = as_utc(at)
            acks[key] = min(acks.get(key, moment), moment)
    withdrawn = {
        a.id: as_utc(a.updated_at)
        for a in alerts
        if a.status == AlertStatus.WITHDRAWN and as_utc(a.updated_at) <= cutoff
    }
    out: dict[str, list[AlertFacts]] = defaultdict(list)
    scopes = [(a, scope_of(a)) for a in alerts]
    for e in establishments:
        for alert, scope in scopes:
            if scope.includes(e.region, e.kind):
                out[e.finess].append(
                    AlertFacts(
                        alert.id,
                        alert.severity,
                        as_utc(alert.created_at),
                        acks.get((alert.id, e.finess)),
                        withdrawn.get(alert.id),
                    )
                )
    del as_of
    return out


def _answers(
    session: Session, finesses: list[str], cutoff: datetime
) -> dict[str, dict[str, AnswerFacts]]:
    from api.maturity.models import Proof

    out: dict[str, dict[str, AnswerFacts]] = defaultdict(dict)
    for chunk in _chunks(finesses):
        query = (
            select(Answer, Proof.sha256)
            .outerjoin(Proof, Proof.id == Answer.proof_id)
            .where(Answer.finess.in_(chunk), Answer.declared_at <= cutoff)
            .order_by(Answer.finess, Answer.declared_at, Answer.id)
        )
        for answer, sha256 in session.execute(query):  # the latest answer wins
            reviewed = answer.reviewed_at is not None and as_utc(answer.reviewed_at) <= cutoff
            out[answer.finess][answer.control_id] = AnswerFacts(
                id=answer.id,
                value=dict(answer.value),
                declared_at=as_utc(answer.declared_at),
                proven=reviewed and answer.review == "proven",
                proof_sha256=sha256,
            )
    return out


def _exceptions(
    session: Session, finesses: list[str], cutoff: datetime
) -> dict[str, dict[str, ExceptionFacts]]:
    out: dict[str, dict[str, ExceptionFacts]] = defaultdict(dict)
    for chunk in _chunks(finesses):
        query = (
            select(Exception_)
            .where(Exception_.finess.in_(chunk), Exception_.created_at <= cutoff)
            .order_by(Exception_.finess, Exception_.created_at, Exception_.id)
        )
        for x in session.scalars(query):
            if as_utc(x.expires_at) <= cutoff:
                continue
            if x.revoked_at is not None and as_utc(x.revoked_at) <= cutoff:
                continue
            out[x.finess][x.control_id] = ExceptionFacts(
                x.id, x.kind, x.approver, as_utc(x.expires_at)
            )
    return out
