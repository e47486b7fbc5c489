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

The database counts (`api.reports.stats_counts`, GROUP BY): what Python holds is one row per
cohort, and one score per establishment for the quantiles. Margins are sums of the finest
cohorts, made here. Statistical disclosure control: `api.reports.suppression`.
"""

from __future__ import annotations

import io
import math
import statistics
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import combinations
from typing import IO, Any

from dateutil.relativedelta import relativedelta
from sqlalchemy.orm import Session

from api.agents.models import as_utc
from api.alerts.models import AlertStatus
from api.alerts.service import scope_of
from api.errors import Invalid
from api.establishments.finess import Region
from api.establishments.schemas import Kind, LegalStatus
from api.incidents.models import Category
from api.maturity.checks.operations import Acks
from api.maturity.framework import Framework, default
from api.reports import french
from api.reports import stats_columns as columns
from api.reports import stats_counts as counted
from api.reports.catalogue import KINDS, Params
from api.reports.stats_counts import DEADLINES, IMPACTS, MEASURES, STATES, UNSTATED, Key
from api.reports.suppression import Count, hidden_cells
from api.reports.tables import SUPPRESSED, Column, CsvWriter, Workbook
from api.web.render import KINDS as KIND_FR

ALL = "*"  # a margin in a cohort's key ("Ensemble" in the document)
PERIOD = relativedelta(months=12)  # incidents and alerts: created in the 12 months to as_of
ACK_CHECK = "alerts.acknowledgement_delays"  # the framework's control giving the ack targets
FULL = tuple(kept for n in range(4) for kept in combinations(range(3), n))
SHORT = ((), (0,), (1,), (2,), (0, 1))
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

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
        cohorts=counted.establishments(session, cutoff),
    )
    regions = {str(r) for r in Region} | {c[0] for c in found.cohorts}
    if params.region is not None and params.region not in regions:
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
    tables.append(_definitions(tables, found, params.region))
    if params.format == "xlsx":
        title = KINDS["stats"].title + (f" — {params.region}" if params.region else "")
        book = Workbook(out, title=title, as_of=cutoff)
        for table in tables:
            book.sheet(table.name, table.columns).rows(table.lines)
        book.close()
    else:
        _zip(out, [(f"{t.name}.csv", _csv(t)) for t in tables])


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
    for cohort, (establishments, agents) in counted.agents(session, found.cutoff).items():
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
    return Table("etablissements", columns.cohort_columns() + columns.ETABLISSEMENTS, keys, lines)


def _scores(session: Session, found: Context) -> Table:
    levels = [f"level_{lv.level}" for lv in found.framework.levels]
    finest: dict[Key, dict[str, int]] = defaultdict(Counter)
    scores: dict[Key, list[float]] = defaultdict(list)
    for cohort, score, level in counted.scores(session, found.cutoff, found.framework.version):
        finest[cohort]["scored"] += 1
        finest[cohort][f"level_{level}"] += 1
        for kept in FULL:
            scores[_margin(cohort, kept)].append(score)
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
    sheet = columns.cohort_columns() + columns.score_columns(found.framework)
    return Table("scores", sheet, keys, lines)


def _controles(session: Session, found: Context) -> Table:
    by_id = {c.id: c for c in found.framework.controls}
    judged = ("pass", "partial", "fail")
    finest: dict[Key, dict[str, int]] = defaultdict(Counter)
    for cohort, control, status, n in counted.control_statuses(
        session, found.cutoff, found.framework.version
    ):
        if control in by_id and status in judged:
            finest[(*cohort, control)][status] += n
            finest[(*cohort, control)]["assessed"] += n
    names = ("assessed", *judged)
    keys, rows = _cube(finest, found.cohorts, list(by_id), SHORT, names)
    hidden = _hidden(keys, rows, found, [Count(n) for n in names], [("assessed", judged)])
    domains = {d.id: f"{d.id} · {d.title}" for d in found.framework.domains}
    lines = [
        [
            *_labels(key),
            key[3],
            by_id[key[3]].title,
            domains[by_id[key[3]].domain],
            _count(hidden, i, "assessed", r),
            *(_rate(hidden, i, r, status, "assessed") for status in judged),
        ]
        for i, (key, r) in enumerate(zip(keys, rows, strict=True))
    ]
    return Table("controles", columns.cohort_columns() + columns.CONTROLES, keys, lines)


def _incidents(session: Session, found: Context) -> Table:
    names = [n for m in MEASURES for n in (m, f"{m}:e")]
    finest: dict[Key, dict[str, int]] = {}
    seen: set[str] = set()
    for by_category in (True, False):
        for cohort, category, values in counted.incidents(
            session, found.start, found.cutoff, by_category
        ):
            seen.add(category or ALL)
            finest[(*cohort, category or ALL)] = values
    known = [str(c) for c in CATEGORY_FR]
    categories = [ALL, *known, *sorted(seen - {ALL, *known})]
    keys, rows = _cube(finest, found.cohorts, categories, SHORT, names)
    # Establishments add up over cohorts, not over categories (one may have several).
    counts = [Count("incidents:e", along=(0, 1, 2))]
    counts += [Count(m, f"{m}:e", along=(0, 1, 2, 3)) for m in MEASURES]
    sums = [
        ("incidents", (*IMPACTS, "impact_unknown")),
        *(("notifiable", tuple(f"{d}_{s}" for s in STATES)) for d in DEADLINES),
    ]
    hidden = _hidden(keys, rows, found, counts, sums)
    lines = []
    for i, (key, r) in enumerate(zip(keys, rows, strict=True)):
        line = [*_labels(key), _category(key[3]), _count(hidden, i, "incidents:e", r)]
        line += [_count(hidden, i, name, r) for name in MEASURES[:6]]
        for d in DEADLINES:
            line += [_count(hidden, i, f"{d}_{s}", r) for s in STATES]
            line.append(_rate(hidden, i, r, f"{d}_met", f"{d}_met", f"{d}_missed"))
        lines.append(line)
    return Table("incidents", columns.cohort_columns() + columns.INCIDENTS, keys, lines)


def _alertes(session: Session, found: Context) -> Table:
    names = ("targeted", "pairs", "acked", "judged", "on_time", "pending", "withdrawn")
    finest: dict[Key, dict[str, int]] = defaultdict(Counter)
    reached: dict[Key, set[int]] = defaultdict(set)  # the alerts meant for each cohort
    for index, alert in enumerate(counted.period_alerts(session, found.start, found.cutoff)):
        scope = scope_of(alert)
        critical = alert.severity in ("critical", "high")
        due = as_utc(alert.created_at) + timedelta(
            hours=found.critical_hours if critical else found.other_hours
        )
        withdrawn = alert.status == AlertStatus.WITHDRAWN and as_utc(alert.updated_at) <= min(
            due, found.cutoff
        )
        acks = counted.acknowledgements(session, alert.id, due, found.cutoff)
        for cohort, n in found.cohorts.items():
            if not scope.includes(cohort[0], cohort[1]):
                continue  # acknowledgements from outside its targets are not counted
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
        r["alerts"] = len(alerts[key])  # not a sum: an alert may reach several cohorts
    counts = [Count("alerts", "targeted", along=()), Count("targeted")]
    counts += [Count(name, "targeted") for name in names[1:]]
    hidden = _hidden(keys, rows, found, counts, [("pairs", ("judged", "pending", "withdrawn"))])
    lines = [
        [
            *_labels(key),
            *(_count(hidden, i, name, r) for name in ("alerts", *names[:5])),
            _rate(hidden, i, r, "on_time", "judged"),
            *(_count(hidden, i, name, r) for name in names[5:]),
        ]
        for i, (key, r) in enumerate(zip(keys, rows, strict=True))
    ]
    return Table("alertes", columns.cohort_columns() + columns.ALERTES, keys, lines)


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


def _definitions(tables: Sequence[Table], found: Context, region: str | None) -> Table:
    lines = [["toutes", topic, text] for topic, text in columns.notes(found, region)]
    for table in (*tables, Table("definitions", columns.DEFINITIONS, [], [])):
        lines += [[table.name, c.name, c.definition] for c in table.columns]
    return Table("definitions", columns.DEFINITIONS, [], lines)


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
