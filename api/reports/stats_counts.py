"""What the statistics count, counted by the database: each query groups by cohort (region,
kind, legal status of the establishment), so that what comes back is a row per cohort (per
control, per category, per alert), never a row per incident or acknowledgement.

Everything is as of `cutoff`: rows created later are left out, and so are reports sent,
acknowledgements given and agents revoked later.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

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

from api.agents.models import Agent
from api.alerts.models import Acknowledgement, Alert
from api.establishments.models import Establishment as E
from api.incidents.models import CareImpact, Category, Incident
from api.maturity import peers
from api.maturity.models import Evidence, Snapshot

# A cohort (region, kind, legal status), then what a row is about (a control, a category).
Key = tuple[str, ...]
UNSTATED = ""  # a legal status Vigie does not know
HEARD_WITHIN = timedelta(days=7)  # an active agent was heard from within this
IMPACTS = {
    "impact_none": CareImpact.NONE,
    "impact_degraded": CareImpact.DEGRADED,
    "impact_interrupted": CareImpact.INTERRUPTED,
}
DEADLINES = {"ew": "early_warning", "nt": "notification"}  # the NIS2 reports counted
STATES = ("met", "missed", "pending")
# What is counted of incidents; each also as `name:e`, the establishments it comes from.
MEASURES = (
    "incidents",
    *IMPACTS,
    "impact_unknown",
    "notifiable",
    *(f"{short}_{state}" for short in DEADLINES for state in STATES),
)


def rows(session: Session, query: Executable) -> Iterator[Any]:
    yield from session.execute(query)


def _cohort(region: str, kind: str, status: str | None) -> Key:
    return (region, kind, status or UNSTATED)


def establishments(session: Session, cutoff: datetime) -> dict[Key, int]:
    """The establishments of each cohort registered by `cutoff`."""
    query = (
        select(E.region, E.kind, E.legal_status, func.count())
        .where(E.created_at <= cutoff)
        .group_by(E.region, E.kind, E.legal_status)
        .order_by(E.region, E.kind, E.legal_status)
    )
    out: dict[Key, int] = defaultdict(int)
    for region, kind, status, n in rows(session, query):
        out[_cohort(region, kind, status)] += n
    return dict(out)


def agents(session: Session, cutoff: datetime) -> dict[Key, tuple[int, int]]:
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
    keys = [E.region, E.kind, E.legal_status]
    query = (
        select(*keys, func.count(distinct(Agent.establishment_finess)), func.count())
        .join(E, E.finess == Agent.establishment_finess)
        .where(
            E.created_at <= cutoff,
            Agent.enrolled_at <= cutoff,
            or_(Agent.revoked.is_(False), Agent.revoked_at > cutoff),
            heard,
        )
        .group_by(*keys)
        .order_by(*keys)
    )
    out: dict[Key, tuple[int, int]] = {}
    for region, kind, status, with_agent, active in rows(session, query):
        before = out.get(_cohort(region, kind, status), (0, 0))
        out[_cohort(region, kind, status)] = (before[0] + with_agent, before[1] + active)
    return out


def _latest(cutoff: datetime, version: str) -> Any:
    """Each establishment's latest snapshot of `version` in the week up to `cutoff`'s day
    (as peers are chosen: `api.maturity.peers`), computed by `cutoff`."""
    day = cutoff.date()
    rank = func.row_number().over(
        partition_by=Snapshot.finess,
        order_by=(Snapshot.as_of.desc(), Snapshot.computed_at.desc(), Snapshot.id.desc()),
    )
    return (
        select(Snapshot.id, Snapshot.finess, Snapshot.score, Snapshot.level, rank.label("rank"))
        .where(
            Snapshot.framework_version == version,
            Snapshot.as_of <= day,
            Snapshot.as_of > day - timedelta(days=peers.WINDOW_DAYS),
            Snapshot.computed_at <= cutoff,
        )
        .subquery()
    )


def scores(session: Session, cutoff: datetime, version: str) -> Iterator[tuple[Key, float, int]]:
    """Each scored establishment's cohort, score and level (quantiles need them one by one:
    one row per establishment, 10,500 at most)."""
    latest = _latest(cutoff, version)
    query = (
        select(E.region, E.kind, E.legal_status, latest.c.score, latest.c.level)
        .select_from(latest)
        .join(E, E.finess == latest.c.finess)
        .where(latest.c.rank == 1, E.created_at <= cutoff)
        .order_by(latest.c.finess)
    )
    for region, kind, status, score, level in rows(session, query):
        yield _cohort(region, kind, status), float(score), int(level)


def control_statuses(
    session: Session, cutoff: datetime, version: str
) -> Iterator[tuple[Key, str, str, int]]:
    """Per cohort, control and status: how many latest snapshots give the control that
    status, counted by the database from the snapshots' result documents."""
    latest = _latest(cutoff, version)
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
        .where(latest.c.rank == 1, E.created_at <= cutoff)
        .subquery()
    )
    keys = [inner.c.region, inner.c.kind, inner.c.legal_status, inner.c.control, inner.c.status]
    query = select(*keys, func.count()).group_by(*keys).order_by(*keys)
    for region, kind, legal, control_id, state, n in rows(session, query):
        yield _cohort(region, kind, legal), str(control_id), str(state), int(n)


def _measures(cutoff: datetime) -> dict[str, ColumnElement[bool] | None]:
    """MEASURES, each as a condition on an incident (None: every one)."""
    conditions: dict[str, ColumnElement[bool] | None] = {"incidents": None}
    conditions |= {name: Incident.care_impact == value for name, value in IMPACTS.items()}
    conditions["impact_unknown"] = or_(
        Incident.care_impact.is_(None), Incident.care_impact.not_in(list(IMPACTS.values()))
    )
    notifiable = Incident.notifiable.is_(True)
    conditions["notifiable"] = notifiable
    for short, kind in DEADLINES.items():
        done, due = getattr(Incident, f"{kind}_at"), getattr(Incident, f"{kind}_due")
        # As of `cutoff`: a report sent later was not sent yet.
        sent = and_(done.is_not(None), done <= cutoff)
        unsent = or_(done.is_(None), done > cutoff)
        conditions[f"{short}_met"] = and_(notifiable, sent, done <= due)
        conditions[f"{short}_missed"] = and_(
            notifiable, or_(and_(sent, done > due), and_(unsent, due < cutoff))
        )
        conditions[f"{short}_pending"] = and_(notifiable, unsent, due >= cutoff)
    assert tuple(conditions) == MEASURES
    return conditions


def incidents(
    session: Session, start: datetime, cutoff: datetime, by_category: bool
) -> Iterator[tuple[Key, str | None, dict[str, int]]]:
    """Per cohort (and category, or None for all): each measure's incidents created in
    (start, cutoff], exercises left out, and the distinct establishments they come from."""
    keys: list[Any] = [E.region, E.kind, E.legal_status]
    if by_category:
        keys.append(Incident.category)
    finess = distinct(Incident.establishment_finess)
    counted: list[Any] = []
    for condition in _measures(cutoff).values():
        if condition is None:
            counted += [func.count(), func.count(finess)]
        else:
            counted += [func.count().filter(condition), func.count(finess).filter(condition)]
    query = (
        select(*keys, *counted)
        .select_from(Incident)
        .join(E, E.finess == Incident.establishment_finess)
        .where(
            Incident.created_at > start,
            Incident.created_at <= cutoff,
            Incident.category != Category.EXERCISE,
            E.created_at <= cutoff,
        )
        .group_by(*keys)
        .order_by(*keys)
    )
    names = [n for m in MEASURES for n in (m, f"{m}:e")]
    for row in rows(session, query):
        category = str(row[3]) if by_category else None
        values = row[len(keys) :]
        yield _cohort(*row[:3]), category, {n: int(v) for n, v in zip(names, values, strict=True)}


def period_alerts(session: Session, start: datetime, cutoff: datetime) -> Sequence[Alert]:
    """The CERT's alerts created in (start, cutoff], withdrawn ones included (as the
    maturity check reads them), with what says whom they were for."""
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
        .where(Alert.created_at > start, Alert.created_at <= cutoff)
        .order_by(Alert.created_at, Alert.id)
    )
    return session.scalars(query).all()


def acknowledgements(
    session: Session, alert_id: str, due: datetime, cutoff: datetime
) -> dict[Key, tuple[int, int]]:
    """Per cohort: one alert's acknowledgements given by `cutoff`, and those given by `due`."""
    keys = [E.region, E.kind, E.legal_status]
    query = (
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
    out: dict[Key, tuple[int, int]] = {}
    for region, kind, status, acked, on_time in rows(session, query):
        before = out.get(_cohort(region, kind, status), (0, 0))
        out[_cohort(region, kind, status)] = (before[0] + acked, before[1] + on_time)
    return out
