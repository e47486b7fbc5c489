"""National and regional statistics (`stats`): an XLSX, or a ZIP of one CSV per sheet.

Sheets, each by cohort (research part B, R2):
- `etablissements`: establishments, those with an active agent, coverage;
- `scores`: maturity scores (median, quartiles, mean) and levels;
- `controles`: each control's pass, partial and fail rates;
- `incidents`: incidents of the period by category and impact on care, NIS2 deadlines met;
- `alertes`: acknowledgement of the CERT's alerts of the period, on time or not;
- `definitions`: every column of every sheet, the cohorts, the period, the rule of secrecy.

A cohort is a region, a kind and a legal status, each possibly "Ensemble" (every value: a
margin). `etablissements`, `scores` and `alertes` give every combination; `controles` and
`incidents` the national row, each region, kind and legal status alone, and region x kind.
A regional report is the national report's rows of that region, hidden cells included: the
two never tell more together than the national one alone.

The database aggregates (GROUP BY, one query per table, per alert for acknowledgements):
what Python holds is one row per cohort, and one score per establishment for the quantiles.
Statistical disclosure control: `api.reports.suppression`.
"""

from __future__ import annotations

import io
import math
import statistics
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import combinations
from typing import IO, Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import (
    JSON,
    ColumnElement,
    String,
    and_,
    column,
    distinct,
    exists,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session, load_only
from sqlalchemy.sql.expression import Executable

from api.agents.models import Agent, as_utc
from api.alerts.models import Acknowledgement, Alert, AlertStatus
from api.alerts.service import scope_of
from api.errors import Invalid
from api.establishments.finess import Region
from api.establishments.models import Establishment as E
from api.establishments.schemas import Kind, LegalStatus
from api.incidents.models import CareImpact, Category, Incident
from api.maturity import peers
from api.maturity.checks.operations import Acks
from api.maturity.framework import Framework, default
from api.maturity.models import Evidence, Snapshot
from api.reports import french
from api.reports.catalogue import KINDS, Params
from api.reports.suppression import THRESHOLD, Count, hidden_cells
from api.reports.tables import SUPPRESSED, Column, CsvWriter, Workbook
from api.web.render import KINDS as KIND_FR

ALL = "*"  # a margin in a cohort's key ("Ensemble" in the document)
UNSTATED = ""  # a legal status Vigie does not know
PERIOD = relativedelta(months=12)  # incidents and alerts: created in the 12 months to as_of
HEARD_WITHIN = timedelta(days=7)  # an active agent was heard from within this
ACK_CHECK = "alerts.acknowledgement_delays"  # the framework's control giving the ack targets
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

# A cohort (region, kind, legal status), then what the row is about (a control, a category).
Key = tuple[str, ...]
FULL = tuple(kept for n in range(4) for kept in combinations(range(3), n))
SHORT = ((), (0,), (1,), (2,), (0, 1))

STATUS_FR: dict[str, str] = {
    LegalStatus.PUBLIC: "public",
    LegalStatus.PRIVATE_NONPROFIT: "privé non lucratif",
    LegalStatus.PRIVATE_COMMERCIAL: "privé commercial",
    UNSTATED: "non renseigné",
}
CATEGORY_FR: dict[str, str] = {
    Category.RANSOMWARE: "rançongiciel",
    Category.PHISHING: "hameçonnage",
    Category.DATA_BREACH: "violation de données",
    Category.DENIAL_OF_SERVICE: "déni de service",
    Category.INTRUSION: "intrusion",
    Category.UNAVAILABILITY: "indisponibilité",
    Category.OTHER: "autre",
}
IMPACTS = {
    "impact_none": (CareImpact.NONE,),
    "impact_degraded": (CareImpact.DEGRADED,),
    "impact_interrupted": (CareImpact.INTERRUPTED,),
}
DEADLINES = {"ew": "early_warning", "nt": "notification"}
_ORDER = {
    0: {str(r): i for i, r in enumerate(Region)},
    1: {str(k): i for i, k in enumerate(Kind)},
    2: {**{str(s): i for i, s in enumerate(LegalStatus)}, UNSTATED: len(LegalStatus)},
}


@dataclass(frozen=True)
class Table:
    name: str
    columns: list[Column]
    keys: list[Key]
    lines: list[list[Any]]


@dataclass(frozen=True)
class Context:
    cutoff: datetime  # as_of in UTC: nothing later counts
    start: datetime  # the period is (start, cutoff]
    framework: Framework
    critical_hours: float
    other_hours: float
    ack_control: str
    cohorts: dict[Key, int]  # establishments of each finest cohort


def build(session: Session, params: Params, out: IO[bytes]) -> None:
    cutoff = french.utc(params.as_of)
    framework = default()
    control, acks = _ack_targets(framework)
    found = Context(
        cutoff=cutoff,
        start=cutoff - PERIOD,
        framework=framework,
        critical_hours=acks.critical_hours,
        other_hours=acks.other_hours,
        ack_control=control,
        cohorts=_establishments(session, cutoff),
    )
    if params.region is not None and params.region not in {str(r) for r in Region} | {
        c[0] for c in found.cohorts
    }:
        raise Invalid(f"no region {params.region!r}: the regions are {', '.join(Region)}")
    tables = [
        _etablissements(session, found),
        _scores(session, found),
        _controles(session, found),
        _incidents(session, found),
        _alertes(session, found),
    ]
    if params.region is not None:
        tables = [_of_region(t, params.region) for t in tables]
    tables.append(_definitions(tables, found, params))
    if params.format == "xlsx":
        title = KINDS["stats"].title + (f" — {params.region}" if params.region else "")
        book = Workbook(out, title=title, as_of=cutoff)
        for table in tables:
            book.sheet(table.name, table.columns).rows(table.lines)
        book.close()
    else:
        _zip(out, [(f"{t.name}.csv", _csv(t)) for t in tables])


def _rows(session: Session, query: Executable) -> Iterator[Any]:
    """The rows of an aggregate (a row per cohort at most), read as they come."""
    yield from session.execute(query)


def _ack_targets(framework: Framework) -> tuple[str, Acks]:
    """The acknowledgement delays the framework expects (the control checking them)."""
    for control in framework.controls:
        if control.evidence.check == ACK_CHECK:
            return control.id, Acks.model_validate(control.evidence.params)
    raise Invalid(f"framework {framework.version} has no control checking {ACK_CHECK}")


# --- sheets -----------------------------------------------------------------------------------


def _etablissements(session: Session, found: Context) -> Table:
    finest: dict[Key, dict[str, int]] = {
        c: {"n": n, "active": 0, "agents": 0} for c, n in found.cohorts.items()
    }
    for cohort, establishments, agents in _agents(session, found.cutoff):
        finest[cohort].update(active=establishments, agents=agents)
    keys, rows = _cube(finest, found.cohorts, None, FULL, ("n", "active", "agents"))
    hidden = _hidden(keys, rows, found, [Count("n"), Count("active"), Count("agents", "active")])
    lines = [
        [
            *_labels(key),
            _count(hidden, i, "n", r),
            _count(hidden, i, "active", r),
            _count(hidden, i, "agents", r),
            _rate(hidden, i, r, "active", "n"),
        ]
        for i, (key, r) in enumerate(zip(keys, rows, strict=True))
    ]
    return Table("etablissements", _cohort_columns() + ETABLISSEMENTS, keys, lines)


def _scores(session: Session, found: Context) -> Table:
    levels = [f"level_{lv.level}" for lv in found.framework.levels]
    finest: dict[Key, dict[str, int]] = defaultdict(Counter)
    scores: dict[Key, list[float]] = defaultdict(list)
    for region, kind, status, score, level in _rows(session, _latest_scores(found)):
        cohort = (region, kind, status or UNSTATED)
        finest[cohort]["scored"] += 1
        finest[cohort][f"level_{level}"] += 1
        for kept in FULL:
            scores[_margin(cohort, kept)].append(float(score))
    keys, rows = _cube(finest, found.cohorts, None, FULL, ("scored", *levels))
    counts = [Count("scored"), *(Count(name) for name in levels)]
    hidden = _hidden(keys, rows, found, counts, [("scored", tuple(levels))])
    lines = []
    for i, (key, r) in enumerate(zip(keys, rows, strict=True)):
        if hidden["scored"][i]:
            spread: list[Any] = [SUPPRESSED] * 4
        elif r["scored"] == 0:
            spread = [None] * 4
        else:
            values = sorted(scores[key])
            q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
            spread = [round(q2, 2), round(q1, 2), round(q3, 2)]
            spread.append(round(math.fsum(values) / len(values), 2))
        lines.append(
            [
                *_labels(key),
                _count(hidden, i, "scored", r),
                *spread,
                *(_count(hidden, i, name, r) for name in levels),
            ]
        )
    return Table("scores", _cohort_columns() + _score_columns(found), keys, lines)


def _controles(session: Session, found: Context) -> Table:
    controls = [c.id for c in found.framework.controls]
    finest: dict[Key, dict[str, int]] = defaultdict(Counter)
    for region, kind, legal, control, status, n in _rows(
        session, _control_statuses(session, found)
    ):
        if control in controls and status in ("pass", "partial", "fail"):
            finest[(region, kind, legal or UNSTATED, control)][status] += int(n)
            finest[(region, kind, legal or UNSTATED, control)]["assessed"] += int(n)
    names = ("assessed", "pass", "partial", "fail")
    keys, rows = _cube(finest, found.cohorts, controls, SHORT, names)
    counts = [Count(name) for name in names]
    hidden = _hidden(keys, rows, found, counts, [("assessed", ("pass", "partial", "fail"))])
    domains = {d.id: f"{d.id} · {d.title}" for d in found.framework.domains}
    by_id = {c.id: c for c in found.framework.controls}
    lines = [
        [
            *_labels(key),
            key[3],
            by_id[key[3]].title,
            domains[by_id[key[3]].domain],
            _count(hidden, i, "assessed", r),
            *(_rate(hidden, i, r, status, "assessed") for status in ("pass", "partial", "fail")),
        ]
        for i, (key, r) in enumerate(zip(keys, rows, strict=True))
    ]
    return Table("controles", _cohort_columns() + CONTROLES, keys, lines)


def _incidents(session: Session, found: Context) -> Table:
    measures = _incident_measures(found.cutoff)
    names = _incident_names(measures)
    finest: dict[Key, dict[str, int]] = {}
    seen: set[str] = set()
    for by_category in (True, False):
        width = 4 if by_category else 3
        for row in _rows(session, _incident_counts(found, measures, by_category)):
            category = str(row[3]) if by_category else ALL
            seen.add(category)
            key: Key = (row[0], row[1], row[2] or UNSTATED, category)
            finest[key] = {name: int(v) for name, v in zip(names, row[width:], strict=True)}
    known = [str(c) for c in CATEGORY_FR]
    categories = [ALL, *known, *sorted(seen - {ALL, *known})]
    keys, rows = _cube(finest, found.cohorts, categories, SHORT, names)
    # Establishments add up over cohorts, not over categories (one may have several).
    counts = [Count("incidents:e", along=(0, 1, 2))]
    counts += [Count(m, f"{m}:e", along=(0, 1, 2, 3)) for m in measures]
    sums = [
        ("incidents", (*IMPACTS, "impact_unknown")),
        *(("notifiable", (f"{d}_met", f"{d}_missed", f"{d}_pending")) for d in DEADLINES),
    ]
    hidden = _hidden(keys, rows, found, counts, sums)
    lines = []
    for i, (key, r) in enumerate(zip(keys, rows, strict=True)):
        line = [*_labels(key), _category(key[3]), _count(hidden, i, "incidents:e", r)]
        line += [_count(hidden, i, name, r) for name in ("incidents", *IMPACTS)]
        line += [_count(hidden, i, "impact_unknown", r), _count(hidden, i, "notifiable", r)]
        for d in DEADLINES:
            line += [_count(hidden, i, f"{d}_{s}", r) for s in ("met", "missed", "pending")]
            line.append(_rate(hidden, i, r, f"{d}_met", f"{d}_met", f"{d}_missed"))
        lines.append(line)
    return Table("incidents", _cohort_columns() + INCIDENTS, keys, lines)


def _alertes(session: Session, found: Context) -> Table:
    names = ("targeted", "pairs", "acked", "judged", "on_time", "pending", "withdrawn")
    finest: dict[Key, dict[str, int]] = defaultdict(Counter)
    reached: dict[Key, set[int]] = defaultdict(set)  # the alerts meant for each cohort
    for index, alert in enumerate(_period_alerts(session, found)):
        scope = scope_of(alert)
        hours = (
            found.critical_hours if alert.severity in ("critical", "high") else found.other_hours
        )
        published = as_utc(alert.created_at)
        due = published + timedelta(hours=hours)
        withdrawn = alert.status == AlertStatus.WITHDRAWN and as_utc(alert.updated_at) <= min(
            due, found.cutoff
        )
        acks: dict[Key, tuple[int, int]] = {
            (region, kind, status or UNSTATED): (int(acked), int(on_time))
            for region, kind, status, acked, on_time in _rows(
                session, _acknowledgements(alert.id, due, found.cutoff)
            )
        }
        for cohort, n in found.cohorts.items():
            if not scope.includes(cohort[0], cohort[1]):
                continue
            reached[cohort].add(index)
            row = finest[cohort]
            acked, on_time = acks.get(cohort, (0, 0))
            row["pairs"] += n
            row["acked"] += acked
            row["on_time"] += on_time
            # As the maturity check judges them: an alert still within its delay, or
            # withdrawn before it was due, is not held against those who did not acknowledge.
            if found.cutoff <= due:
                row["pending"] += n - acked
                row["judged"] += acked
            elif withdrawn:
                row["withdrawn"] += n - acked
                row["judged"] += acked
            else:
                row["judged"] += n
    for cohort in reached:
        finest[cohort]["targeted"] = found.cohorts[cohort]
    keys, rows = _cube(finest, found.cohorts, None, FULL, names)
    alerts: dict[Key, set[int]] = defaultdict(set)
    for cohort, indexes in reached.items():
        for kept in FULL:
            alerts[_margin(cohort, kept)] |= indexes
    for key, r in zip(keys, rows, strict=True):
        r["alerts"] = len(alerts[key])
    counts = [Count("alerts", "targeted", along=()), Count("targeted")]
    counts += [Count(name, "targeted") for name in names[1:]]
    sums = [("pairs", ("judged", "pending", "withdrawn"))]
    hidden = _hidden(keys, rows, found, counts, sums)
    lines = [
        [
            *_labels(key),
            *(_count(hidden, i, name, r) for name in ("alerts", *names[:5])),
            _rate(hidden, i, r, "on_time", "judged"),
            *(_count(hidden, i, name, r) for name in names[5:]),
        ]
        for i, (key, r) in enumerate(zip(keys, rows, strict=True))
    ]
    return Table("alertes", _cohort_columns() + ALERTES, keys, lines)


# --- queries: each aggregates in the database ---------------------------------------------------


def _establishments(session: Session, cutoff: datetime) -> dict[Key, int]:
    query = (
        select(E.region, E.kind, E.legal_status, func.count())
        .where(E.created_at <= cutoff)
        .group_by(E.region, E.kind, E.legal_status)
        .order_by(E.region, E.kind, E.legal_status)
    )
    out: dict[Key, int] = defaultdict(int)
    for region, kind, status, n in _rows(session, query):
        out[(region, kind, status or UNSTATED)] += n
    return dict(out)


def _agents(session: Session, cutoff: datetime) -> Iterable[tuple[Key, int, int]]:
    """Per cohort: the establishments with an active agent, and those agents.

    Active at `cutoff`: enrolled by then, not revoked by then, heard from in the
    HEARD_WITHIN before. A heartbeat is known from the agent's last one, or, when that came
    later, from the daily rows of heartbeats kept as maturity evidence (`agent` signal): a
    report made later says the same as one made at the time, as long as those rows are kept.
    """
    since = cutoff - HEARD_WITHIN
    heard = or_(
        and_(Agent.last_heartbeat > since, Agent.last_heartbeat <= cutoff),
        exists().where(
            Evidence.finess == Agent.establishment_finess,
            Evidence.signal == "agent",
            Evidence.key == Agent.id,
            Evidence.day >= since.date(),
            Evidence.day <= cutoff.date(),
            Evidence.first_seen <= cutoff,
            Evidence.last_seen > since,
        ),
    )
    query = (
        select(
            E.region,
            E.kind,
            E.legal_status,
            func.count(distinct(Agent.establishment_finess)),
            func.count(),
        )
        .join(E, E.finess == Agent.establishment_finess)
        .where(
            E.created_at <= cutoff,
            Agent.enrolled_at <= cutoff,
            or_(Agent.revoked.is_(False), Agent.revoked_at > cutoff),
            heard,
        )
        .group_by(E.region, E.kind, E.legal_status)
        .order_by(E.region, E.kind, E.legal_status)
    )
    out: dict[Key, list[int]] = defaultdict(lambda: [0, 0])
    for region, kind, status, establishments, agents in _rows(session, query):
        out[(region, kind, status or UNSTATED)][0] += establishments
        out[(region, kind, status or UNSTATED)][1] += agents
    return [(cohort, a, b) for cohort, (a, b) in sorted(out.items())]


def _latest(found: Context) -> Any:
    """Each establishment's latest snapshot of the framework's version in the week up to
    `cutoff`'s day (as peers are chosen: `api.maturity.peers`), computed by `cutoff`."""
    day = found.cutoff.date()
    rank = func.row_number().over(
        partition_by=Snapshot.finess,
        order_by=(Snapshot.as_of.desc(), Snapshot.computed_at.desc(), Snapshot.id.desc()),
    )
    return (
        select(Snapshot.id, Snapshot.finess, Snapshot.score, Snapshot.level, rank.label("rank"))
        .where(
            Snapshot.framework_version == found.framework.version,
            Snapshot.as_of <= day,
            Snapshot.as_of > day - timedelta(days=peers.WINDOW_DAYS),
            Snapshot.computed_at <= found.cutoff,
        )
        .subquery()
    )


def _latest_scores(found: Context) -> Executable:
    latest = _latest(found)
    return (
        select(E.region, E.kind, E.legal_status, latest.c.score, latest.c.level)
        .select_from(latest)
        .join(E, E.finess == latest.c.finess)
        .where(latest.c.rank == 1, E.created_at <= found.cutoff)
        .order_by(latest.c.finess)
    )


def _control_statuses(session: Session, found: Context) -> Executable:
    """Per cohort, control and status: how many latest snapshots give the control that
    status, counted by the database from the snapshots' result documents."""
    latest = _latest(found)
    element: Any
    if session.get_bind().dialect.name == "postgresql":
        # Only the two fields are taken from each control (a third faster than whole
        # elements: the documents are about 40 kB, reading them is most of the report's time).
        element = (
            func.json_to_recordset(Snapshot.result["controls"])
            .table_valued(column("id", String), column("status", String))
            .render_derived(name="control", with_types=True)
        )
        control, status = element.c.id, element.c.status
    else:
        element = func.json_each(Snapshot.result, "$.controls").table_valued(column("value", JSON))
        element = element.alias("control")
        control = element.c.value["id"].as_string()
        status = element.c.value["status"].as_string()
    # Labelled in a subquery, grouped outside: PostgreSQL does not see an expression with
    # parameters in SELECT and in GROUP BY as the same one.
    inner = (
        select(
            E.region.label("region"),
            E.kind.label("kind"),
            E.legal_status.label("legal_status"),
            control.label("control"),
            status.label("status"),
        )
        .select_from(latest)
        .join(Snapshot, Snapshot.id == latest.c.id)
        .join(E, E.finess == latest.c.finess)
        .join(element, true())
        .where(latest.c.rank == 1, E.created_at <= found.cutoff)
        .subquery()
    )
    keys = [inner.c.region, inner.c.kind, inner.c.legal_status, inner.c.control, inner.c.status]
    return select(*keys, func.count()).group_by(*keys).order_by(*keys)


def _incident_measures(cutoff: datetime) -> dict[str, ColumnElement[bool] | None]:
    """What is counted of the period's incidents, each as a condition (None: every one)."""
    known = [i for impacts in IMPACTS.values() for i in impacts]
    measures: dict[str, ColumnElement[bool] | None] = {"incidents": None}
    measures |= {name: Incident.care_impact.in_(values) for name, values in IMPACTS.items()}
    measures["impact_unknown"] = or_(
        Incident.care_impact.is_(None), Incident.care_impact.not_in(known)
    )
    notifiable = Incident.notifiable.is_(True)
    measures["notifiable"] = notifiable
    for short, kind in DEADLINES.items():
        done, due = getattr(Incident, f"{kind}_at"), getattr(Incident, f"{kind}_due")
        # As of `cutoff`: a report sent later was not sent yet.
        sent = and_(done.is_not(None), done <= cutoff)
        unsent = or_(done.is_(None), done > cutoff)
        measures[f"{short}_met"] = and_(notifiable, sent, done <= due)
        measures[f"{short}_missed"] = and_(
            notifiable, or_(and_(sent, done > due), and_(unsent, due < cutoff))
        )
        measures[f"{short}_pending"] = and_(notifiable, unsent, due >= cutoff)
    return measures


def _incident_names(measures: Mapping[str, Any]) -> list[str]:
    """Each measure, then the establishments it comes from (`name:e`)."""
    return [n for m in measures for n in (m, f"{m}:e")]


def _incident_counts(
    found: Context, measures: Mapping[str, ColumnElement[bool] | None], by_category: bool
) -> Executable:
    """Per cohort (and category): each measure's incidents and distinct establishments."""
    keys: list[Any] = [E.region, E.kind, E.legal_status]
    if by_category:
        keys.append(Incident.category)
    finess = distinct(Incident.establishment_finess)
    counted: list[Any] = []
    for condition in measures.values():
        if condition is None:
            counted += [func.count(), func.count(finess)]
        else:
            counted += [func.count().filter(condition), func.count(finess).filter(condition)]
    return (
        select(*keys, *counted)
        .select_from(Incident)
        .join(E, E.finess == Incident.establishment_finess)
        .where(
            Incident.created_at > found.start,
            Incident.created_at <= found.cutoff,
            Incident.category != Category.EXERCISE,
            E.created_at <= found.cutoff,
        )
        .group_by(*keys)
        .order_by(*keys)
    )


def _period_alerts(session: Session, found: Context) -> Sequence[Alert]:
    """The CERT's alerts of the period, withdrawn ones included (the maturity check's set)."""
    query = (
        select(Alert)
        .options(
            load_only(
                Alert.id,
                Alert.severity,
                Alert.status,
                Alert.created_at,
                Alert.updated_at,
                Alert.target_all,
                Alert.target_regions,
                Alert.target_kinds,
            )
        )
        .where(Alert.created_at > found.start, Alert.created_at <= found.cutoff)
        .order_by(Alert.created_at, Alert.id)
    )
    return session.scalars(query).all()


def _acknowledgements(alert_id: str, due: datetime, cutoff: datetime) -> Executable:
    """Per cohort: the acknowledgements of one alert given by `cutoff`, and those on time."""
    keys = [E.region, E.kind, E.legal_status]
    return (
        select(*keys, func.count(), func.count().filter(Acknowledgement.acknowledged_at <= due))
        .select_from(Acknowledgement)
        .join(E, E.finess == Acknowledgement.establishment_finess)
        .where(
            Acknowledgement.alert_id == alert_id,
            Acknowledgement.acknowledged_at <= cutoff,
            E.created_at <= cutoff,
        )
        .group_by(*keys)
        .order_by(*keys)
    )


# --- cohorts, margins and secrecy ---------------------------------------------------------------


def _margin(cohort: Key, kept: tuple[int, ...]) -> Key:
    return tuple(v if i in kept else ALL for i, v in enumerate(cohort))


def _cube(
    finest: Mapping[Key, Mapping[str, int]],
    cohorts: Iterable[Key],
    extras: Sequence[str] | None,
    sets: Sequence[tuple[int, ...]],
    names: Sequence[str],
) -> tuple[list[Key], list[dict[str, int]]]:
    """Every cohort of `sets` (each with `extras`, when given), summing the finest cohorts'
    counts; in the document's order."""
    out: dict[Key, dict[str, int]] = {}
    for cohort in cohorts:
        for tail in [(extra,) for extra in extras] if extras else [()]:
            values = finest.get((*cohort, *tail), {})
            for kept in sets:
                sums = out.setdefault((*_margin(cohort, kept), *tail), dict.fromkeys(names, 0))
                for name in names:
                    sums[name] += values.get(name, 0)
    order = {value: i for i, value in enumerate(extras or [])}
    keys = sorted(out, key=lambda key: _rank(key, order))
    return keys, [out[key] for key in keys]


def _rank(key: Key, extras: Mapping[str, int]) -> tuple[tuple[int, int, str], ...]:
    """Margins first, then the usual order (regions, kinds, statuses, as the service lists
    them), then any other value by name."""
    ranks = []
    for position, value in enumerate(key):
        usual = _ORDER[position] if position < 3 else extras
        if value == ALL:
            ranks.append((0, 0, ""))
        elif value in usual:
            ranks.append((1, usual[value], ""))
        else:
            ranks.append((2, 0, value))
    return tuple(ranks)


def _hidden(
    keys: Sequence[Key],
    rows: Sequence[Mapping[str, int]],
    found: Context,
    counts: Sequence[Count],
    sums: Sequence[tuple[str, tuple[str, ...]]] = (),
) -> dict[str, list[bool]]:
    sizes: dict[Key, int] = defaultdict(int)
    for cohort, n in found.cohorts.items():
        for kept in FULL:
            sizes[_margin(cohort, kept)] += n
    base = [sizes[key[:3]] for key in keys]
    return hidden_cells(keys, rows, base, counts, sums, total=ALL)


def _count(hidden: Mapping[str, list[bool]], i: int, name: str, row: Mapping[str, int]) -> Any:
    return SUPPRESSED if hidden[name][i] else row[name]


def _rate(
    hidden: Mapping[str, list[bool]], i: int, row: Mapping[str, int], part: str, *whole: str
) -> Any:
    """`part` over the sum of `whole`: hidden when any of them is; empty over nothing."""
    if any(hidden[name][i] for name in (part, *whole)):
        return SUPPRESSED
    total = sum(row[name] for name in whole)
    return None if total == 0 else round(row[part] / total, 4)


def _of_region(table: Table, region: str) -> Table:
    kept = [i for i, key in enumerate(table.keys) if key[0] == region]
    return Table(
        table.name, table.columns, [table.keys[i] for i in kept], [table.lines[i] for i in kept]
    )


def _labels(key: Key) -> list[str]:
    region, kind, status = key[:3]
    return [
        "Ensemble" if region == ALL else region,
        "Ensemble" if kind == ALL else KIND_FR.get(kind, kind),
        "Ensemble" if status == ALL else STATUS_FR.get(status, status),
    ]


def _category(value: str) -> str:
    return "Ensemble" if value == ALL else CATEGORY_FR.get(value, value)


# --- columns and definitions --------------------------------------------------------------------


def _cohort_columns() -> list[Column]:
    return [
        Column(
            "région",
            "Région de l'établissement (celle de son ARS) ; « Ensemble » : toutes les régions.",
            width=26,
        ),
        Column(
            "catégorie d'établissement",
            "CHU, centre hospitalier, clinique, EHPAD, psychiatrie, SSR ou autre ; "
            "« Ensemble » : toutes les catégories.",
            width=18,
        ),
        Column(
            "statut juridique",
            "Famille de statut FINESS : public, privé non lucratif, privé commercial ; "
            "« non renseigné » quand Vigie ne le connaît pas ; « Ensemble » : tous les statuts.",
            width=18,
        ),
    ]


ETABLISSEMENTS = [
    Column(
        "établissements",
        "Établissements de la cohorte enregistrés dans Vigie à la date d'arrêté.",
        "int",
    ),
    Column(
        "avec agent actif",
        "Établissements ayant au moins un agent actif à la date d'arrêté : enrôlé au plus tard "
        "à cette date, non révoqué à cette date, entendu (battement de cœur) dans les 7 jours "
        "qui la précèdent.",
        "int",
    ),
    Column(
        "agents actifs",
        "Agents actifs (même définition) de ces établissements. Masqué selon le nombre "
        "d'établissements avec agent actif.",
        "int",
    ),
    Column("couverture (%)", "avec agent actif ÷ établissements.", "percent"),
]


def _score_columns(found: Context) -> list[Column]:
    version = found.framework.version
    columns = [
        Column(
            "établissements notés",
            f"Établissements ayant un instantané de maturité du référentiel {version} daté des "
            f"{peers.WINDOW_DAYS} jours qui finissent le jour (UTC) de la date d'arrêté et "
            "calculé au plus tard à cette date ; le plus récent de chacun compte.",
            "int",
        ),
        Column("score médian", "Médiane des scores (0 à 100) des établissements notés.", "float"),
        Column(
            "score P25",
            "Premier quartile des scores (méthode inclusive : interpolation linéaire).",
            "float",
        ),
        Column("score P75", "Troisième quartile des scores (même méthode).", "float"),
        Column("score moyen", "Moyenne des scores des établissements notés.", "float"),
    ]
    columns += [
        Column(
            f"niveau {lv.level}",
            f"Établissements notés au niveau {lv.level} « {lv.name} ».",
            "int",
            width=10,
        )
        for lv in found.framework.levels
    ]
    return columns


CONTROLES = [
    Column("contrôle", "Identifiant du contrôle dans le référentiel.", width=10),
    Column("intitulé", "Intitulé du contrôle.", width=60),
    Column("domaine", "Domaine du référentiel auquel le contrôle appartient.", width=30),
    Column(
        "évalués",
        "Établissements notés (voir la feuille scores) dont le contrôle a été jugé sur "
        "preuve : conforme, partiel ou non conforme. Ne comptent pas : sans preuve, preuve "
        "périmée, non applicable, risque accepté, compensé.",
        "int",
    ),
    Column("conformes (%)", "Part des évalués où le contrôle est conforme.", "percent"),
    Column("partiels (%)", "Part des évalués où le contrôle est partiellement atteint.", "percent"),
    Column("non conformes (%)", "Part des évalués où le contrôle n'est pas atteint.", "percent"),
]

_PERIOD_INCIDENTS = "Incidents de la cohorte créés sur la période (exercices de crise exclus)"
_BEHIND = "Masqué selon le nombre d'établissements dont ces incidents proviennent."
INCIDENTS = [
    Column(
        "catégorie d'incident",
        "Catégorie du signalement national des incidents (rançongiciel, hameçonnage, "
        "violation de données, déni de service, intrusion, indisponibilité, autre) ; "
        "« Ensemble » : toutes les catégories.",
        width=20,
    ),
    Column(
        "établissements touchés",
        "Établissements de la cohorte ayant au moins un incident de la catégorie créé sur la "
        "période.",
        "int",
    ),
    Column("incidents", f"{_PERIOD_INCIDENTS}. {_BEHIND}", "int"),
    Column("sans impact sur les soins", f"Parmi eux, sans impact sur les soins. {_BEHIND}", "int"),
    Column(
        "soins dégradés",
        f"Parmi eux, les soins continuent en mode dégradé ou ralenti. {_BEHIND}",
        "int",
    ),
    Column(
        "soins interrompus",
        f"Parmi eux, des soins arrêtés ou des patients transférés. {_BEHIND}",
        "int",
    ),
    Column("impact inconnu", f"Parmi eux, impact sur les soins non connu. {_BEHIND}", "int"),
    Column(
        "notifiables",
        f"Parmi eux, incidents significatifs : les échéances NIS2 s'appliquent. {_BEHIND}",
        "int",
    ),
]
for _short, _name, _delay in (("ew", "alerte précoce", "24 h"), ("nt", "notification", "72 h")):
    INCIDENTS += [
        Column(
            f"{_name} à temps",
            f"Incidents notifiables dont l'{_name} (due {_delay} après la prise de "
            f"connaissance) a été envoyée au plus tard à l'échéance, et au plus tard à la date "
            f"d'arrêté. {_BEHIND}",
            "int",
        ),
        Column(
            f"{_name} en retard",
            f"Incidents notifiables dont l'{_name} a été envoyée après l'échéance, ou n'était "
            f"pas envoyée à la date d'arrêté alors que l'échéance était passée. {_BEHIND}",
            "int",
        ),
        Column(
            f"{_name} en attente",
            f"Incidents notifiables dont l'{_name} n'était pas envoyée à la date d'arrêté, "
            f"l'échéance n'étant pas atteinte. {_BEHIND}",
            "int",
        ),
        Column(
            f"{_name} à temps (%)",
            f"{_name} à temps ÷ ({_name} à temps + {_name} en retard) : les échéances en "
            "attente ne comptent pas.",
            "percent",
        ),
    ]

_PAIRS = "Masqué selon le nombre d'établissements ciblés."
ALERTES = [
    Column(
        "alertes publiées",
        "Alertes du CERT créées sur la période (retirées depuis comprises) destinées à au "
        "moins un établissement de la cohorte.",
        "int",
    ),
    Column(
        "établissements ciblés",
        "Établissements de la cohorte destinataires d'au moins une de ces alertes.",
        "int",
    ),
    Column("couples ciblés", f"Couples (alerte, établissement destinataire). {_PAIRS}", "int"),
    Column(
        "couples accusés",
        f"Couples dont l'accusé de réception a été donné au plus tard à la date d'arrêté, dans "
        f"le délai ou non. {_PAIRS}",
        "int",
    ),
    Column(
        "couples échus",
        "Couples jugés : accusés, ou sans accusé alors que le délai est passé (sauf alerte "
        f"retirée avant son échéance). {_PAIRS}",
        "int",
    ),
    Column("accusés dans le délai", "Couples accusés au plus tard à l'échéance.", "int"),
    Column("dans le délai (%)", "accusés dans le délai ÷ couples échus.", "percent"),
    Column(
        "en attente",
        f"Couples sans accusé dont l'échéance n'était pas atteinte à la date d'arrêté. {_PAIRS}",
        "int",
    ),
    Column(
        "retirés avant échéance",
        "Couples sans accusé d'une alerte retirée par le CERT avant son échéance : rien à "
        f"accuser, ils ne sont pas jugés. {_PAIRS}",
        "int",
    ),
]
DEFINITIONS = [
    Column("feuille", "La feuille où se trouve la colonne (« toutes » : le rapport).", width=16),
    Column("colonne", "L'en-tête de la colonne, ou le sujet de la note.", width=28),
    Column("définition", "Ce que la colonne contient, ou la note.", width=110),
]


def _definitions(tables: Sequence[Table], found: Context, params: Params) -> Table:
    cutoff, framework = found.cutoff, found.framework
    notes = [
        (
            "date d'arrêté",
            f"{french.moment(cutoff)} heure de Paris ({french.iso(cutoff)}). Rien de postérieur "
            "n'est compté : établissements, agents, instantanés, incidents, alertes et accusés "
            "enregistrés plus tard, rapports NIS2 envoyés plus tard.",
        ),
        (
            "période",
            f"Incidents et alertes créés du {french.moment(found.start)} (exclu) au "
            f"{french.moment(cutoff)} (inclus), heure de Paris : les 12 mois qui précèdent la "
            "date d'arrêté.",
        ),
        (
            "périmètre",
            "National."
            if params.region is None
            else f"Région {params.region} : les lignes de cette région du rapport national, "
            "avec les mêmes cellules masquées.",
        ),
        (
            "cohortes",
            "Une ligne par combinaison de région, de catégorie d'établissement et de statut "
            "juridique ; « Ensemble » désigne toutes les valeurs (ligne de marge). Feuilles "
            "etablissements, scores et alertes : toutes les combinaisons ; controles et "
            "incidents : national, chaque région, chaque catégorie, chaque statut, et chaque "
            "région × catégorie. Chaque établissement est classé selon ce que Vigie en "
            "enregistre à la date de production (région, catégorie et statut n'ont pas "
            "d'historique).",
        ),
        (
            "référentiel",
            f"{framework.id} version {framework.version} ({framework.framework.title}), "
            f"sha256 {framework.digest}. Délais d'accusé de réception des alertes : ceux du "
            f"contrôle {found.ack_control}, {french.number(found.critical_hours)} h pour une "
            f"alerte critique ou élevée, {french.number(found.other_hours)} h sinon, depuis la "
            "publication.",
        ),
        (
            "s",
            f"Secret statistique, masquage primaire : toutes les cellules d'une cohorte de "
            f"moins de {THRESHOLD} établissements ; toute cellule qui compte de 1 à "
            f"{THRESHOLD - 1} établissements (pour des incidents : les établissements dont ils "
            "proviennent ; pour des couples d'alertes : les établissements ciblés) ; tout "
            "taux, quantile ou moyenne dont un des nombres est masqué. Zéro n'est pas masqué : "
            "il ne désigne aucun établissement.",
        ),
        (
            "secret secondaire",
            "Masquage complémentaire : quand une ligne « Ensemble » (somme des lignes qu'elle "
            "regroupe) ou un total de ligne (niveaux des établissements notés ; impacts des "
            "incidents ; états des échéances des notifiables ; états des couples d'alertes) "
            "ne laisserait qu'une seule cellule masquée parmi ses parties, une deuxième est "
            "masquée (la plus petite non nulle), ou le total. Aucune cellule masquée ne se "
            "déduit donc d'un total par une soustraction ; ce n'est pas un audit complet : des "
            "déductions combinant plusieurs totaux, ou plusieurs feuilles, ne sont pas "
            "exclues. Le nombre d'établissements d'une cohorte vient du registre FINESS, "
            "public.",
        ),
        ("valeur vide", "Un taux, un quantile ou une moyenne sans rien à calculer."),
        (
            "exclusions",
            "Les exercices de crise ne sont pas des incidents : ils ne sont pas comptés. La "
            "catégorie, l'impact sur les soins et le caractère notifiable d'un incident sont "
            "ceux enregistrés à la date de production.",
        ),
    ]
    lines = [["toutes", topic, text] for topic, text in notes]
    for table in (*tables, Table("definitions", DEFINITIONS, [], [])):
        lines += [[table.name, c.name, c.definition] for c in table.columns]
    return Table("definitions", DEFINITIONS, [], lines)


# --- files -------------------------------------------------------------------------------------


def _csv(table: Table) -> bytes:
    buffer = io.BytesIO()
    CsvWriter(buffer, table.columns).rows(table.lines)
    return buffer.getvalue()


def _zip(out: IO[bytes], files: Sequence[tuple[str, bytes]]) -> None:
    """Fixed times and modes: the same sheets give the same bytes."""
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
