"""The dashboard's counts, each computed by the database (COUNT, GROUP BY), never by reading
rows into Python, and limited to what `who` may see: an establishment counts its own only.

Days and weeks are those of Europe/Paris. Their boundaries are local midnights converted to
UTC here (so a day is 23 or 25 hours long across a change of time, and a week 167 or 169),
and the database puts each incident in its bucket with a CASE over those instants: the same
SQL on SQLite and PostgreSQL, whatever the session's time zone.

Errors: Forbidden (an establishment grouping by region or kind: that compares
establishments), Invalid (an `end` too near the ends of the calendar).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, distinct, func, literal, literal_column, select, union
from sqlalchemy.orm import InstrumentedAttribute, Session

from api.agents.models import Agent
from api.agents.states import AgentState, condition
from api.alerts import service as alerts
from api.deps import Principal
from api.errors import Forbidden, Invalid
from api.establishments.finess import Region
from api.establishments.models import Establishment
from api.establishments.schemas import Kind
from api.incidents import nis2
from api.incidents.filters import IncidentFilter, overdue
from api.incidents.models import OPEN, Campaign, Incident, Severity, Status
from api.ingest.models import IngestedBatch
from api.stats.schemas import (
    AgentCounts,
    AlertCounts,
    Bucket,
    By,
    Group,
    IncidentCounts,
    IncidentGroups,
    IncidentSeries,
    Interval,
    Overview,
)

PARIS = ZoneInfo("Europe/Paris")
ALERT_PERIOD = timedelta(days=30)
_ORDER: dict[str, Sequence[str]] = {
    "region": [str(r) for r in Region],
    "kind": [str(k) for k in Kind],
    "severity": [str(s) for s in Severity],
    "status": [str(s) for s in Status],
}


# --- overview ---------------------------------------------------------------------------------


def overview(
    *, session: Session, who: Principal, now: datetime, silent_after: timedelta
) -> Overview:
    """The headline counts at `now` (`Overview`'s fields say what each counts);
    `silent_after`: the service's agent silence threshold."""
    mine = IncidentFilter().conditions(who)  # the caller's scope
    by_severity: dict[str, int] = defaultdict(int)
    notifiable = 0
    for severity, is_notifiable, n in session.execute(
        select(Incident.severity, Incident.notifiable, func.count())
        .where(*mine, Incident.status.in_(OPEN))
        .group_by(Incident.severity, Incident.notifiable)
    ):
        by_severity[severity] += n
        notifiable += n if is_notifiable else 0
    # Each overdue report is a range of its own index (`ix_incidents_<report>_open`:
    # notifiable, not sent, due before now); the incidents with any, those ranges' union.
    # Counted with FILTERs over every incident instead, each count read the whole table.
    late_ids = union(*(select(Incident.id).where(*mine, overdue(kind, now)) for kind in nis2.KINDS))
    counted = session.execute(
        select(
            select(func.count()).select_from(late_ids.subquery()).scalar_subquery(),
            *(_counted(*mine, overdue(kind, now)) for kind in nis2.KINDS),
        )
    ).one()
    late_incidents, *late = (int(n) for n in counted)
    national = who.scope is None
    tally = alerts.tally(session=session, who=who, since=now - ALERT_PERIOD)
    rate = None
    if national and tally.targets:
        rate = (tally.acknowledged or 0) / tally.targets
    return Overview(
        scope=who.scope,
        at=now,
        incidents=IncidentCounts(
            open=sum(by_severity.values()),
            open_by_severity=_filled("severity", by_severity),
            notifiable_open=notifiable,
            overdue_deadlines=sum(late),
            overdue_incidents=late_incidents,
        ),
        campaigns_open=_count(session, select(Campaign).where(Campaign.status == "open"))
        if national
        else None,
        alerts=AlertCounts(
            last_30_days=tally.published,
            targets=tally.targets,
            acknowledged=tally.acknowledged,
            acknowledgement_rate=rate,
            pending=tally.pending,
        ),
        agents=agent_counts(session=session, who=who, now=now, silent_after=silent_after),
        establishments=_count(session, _establishments(who)),
    )


def _counted(*conditions: ColumnElement[bool]) -> Any:
    """How many incidents meet every condition, as a scalar subquery."""
    return select(func.count()).select_from(Incident).where(*conditions).scalar_subquery()


def agent_counts(
    *,
    session: Session,
    who: Principal,
    now: datetime,
    silent_after: timedelta,
    establishment: str | None = None,
    region: str | None = None,
) -> AgentCounts:
    """The agents `who` sees in each state, those of one establishment (FINESS) or of the
    establishments of one region when asked: the totals `GET /agents?status=` answers."""
    query = select(*(func.count().filter(condition(s, now, silent_after)) for s in AgentState))
    if who.scope is not None:
        query = query.where(Agent.establishment_finess == who.scope)
    if establishment is not None:
        query = query.where(Agent.establishment_finess == establishment.strip().upper())
    if region is not None:
        in_region = select(Establishment.finess).where(Establishment.region == region)
        query = query.where(Agent.establishment_finess.in_(in_region))
    counts = dict(zip(AgentState, session.execute(query).one(), strict=True))
    return AgentCounts(
        active=counts[AgentState.ACTIVE],
        silent=counts[AgentState.SILENT],
        never=counts[AgentState.NEVER],
        revoked=counts[AgentState.REVOKED],
        silent_after_minutes=int(silent_after.total_seconds() // 60),
    )


def _establishments(who: Principal) -> Any:
    query = select(Establishment)
    return query if who.scope is None else query.where(Establishment.finess == who.scope)


def _count(session: Session, query: Any) -> int:
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


# --- incidents grouped ------------------------------------------------------------------------


def incident_groups(
    *, session: Session, who: Principal, by: By, filters: IncidentFilter
) -> IncidentGroups:
    """Incidents matching `filters` counted per group, every group present. By region or
    kind, each group also says how many establishments it has; an establishment may group
    its own incidents by severity or status only."""
    if by in ("region", "kind"):
        if who.scope is not None:
            raise Forbidden(f"counts by {by} compare establishments: national roles only")
        column = Establishment.region if by == "region" else Establishment.kind
        # Two counts: the matching incidents with their establishment's group (few, when
        # filtered: the open ones), and the establishments per group, so that a group
        # without incidents shows 0, not nothing. Joined the other way round (every
        # establishment to its incidents), every incident was read to check its status.
        establishments = dict(
            session.execute(
                select(column, func.count()).where(*filters.of_establishment()).group_by(column)
            ).all()
        )
        incidents = dict(
            session.execute(
                select(column, func.count())
                .select_from(Incident)
                .join(Establishment, Establishment.finess == Incident.establishment_finess)
                .where(*filters.of_establishment(), *filters.of_incident())
                .group_by(column)
            ).all()
        )
        # An incident's establishment is in the registry: its group is among these.
        groups = [
            Group(key=key, incidents=incidents.get(key, 0), establishments=n)
            for key, n in _filled(by, establishments).items()
        ]
    else:
        column = Incident.severity if by == "severity" else Incident.status
        counted = dict(
            session.execute(
                select(column, func.count()).where(*filters.conditions(who)).group_by(column)
            ).all()
        )
        keys = _ORDER[by]
        if by == "status" and filters.status is not None:  # only the statuses asked for
            keys = [str(s) for s in OPEN] if filters.status == "open" else [filters.status]
        groups = [Group(key=k, incidents=n) for k, n in _filled(by, counted, keys).items()]
    return IncidentGroups(by=by, groups=groups, total=sum(g.incidents for g in groups))


def _filled(by: str, counted: dict[str, int], keys: Sequence[str] | None = None) -> dict[str, int]:
    """`counted` with every usual key (0 when absent) in its order, then any other key
    found (a region registered by hand), sorted."""
    usual = list(_ORDER[by] if keys is None else keys)
    out = {key: counted.get(key, 0) for key in usual}
    out.update((key, counted[key]) for key in sorted(set(counted) - set(usual)))
    return out


# --- incidents per day or week ----------------------------------------------------------------


def incident_series(
    *,
    session: Session,
    who: Principal,
    interval: Interval,
    days: int,
    now: datetime,
    end: date | None = None,
    filters: IncidentFilter | None = None,
) -> IncidentSeries:
    """Incidents opened (created_at) per day or ISO week of Europe/Paris, per severity, over
    the `days` days ending on `end` (today when None; weeks: every week touching them), and
    the detections received in the same buckets. `filters`: its establishment, region and
    kind apply to both, the rest to incidents only."""
    filters = filters or IncidentFilter()
    last = end or now.astimezone(PARIS).date()
    starts, bounds = _buckets(interval, days, last)
    incidents = _bucketed(
        session,
        Incident.created_at,
        bounds,
        [Incident.severity],
        literal(1),
        filters.conditions(who),
    )
    received = IngestedBatch.detections_accepted + IngestedBatch.server_detections
    detections = _summed(
        session,
        IngestedBatch.received_at,
        bounds,
        received,
        # Most batches carry no detection: the partial index of those that do
        # (`ix_ingested_batches_detections`) holds all that is summed here. Its condition,
        # word for word and with a literal 0, not a parameter: PostgreSQL's generic plan of
        # a prepared statement could not tell that a parameter is 0.
        [received > literal_column("0"), IngestedBatch.state == "done", *_batches_of(who, filters)],
    )
    buckets = []
    for index, start in enumerate(starts):
        counted = {str(key[0]): n for key, n in incidents.get(index, {}).items()}
        per_severity = _filled("severity", counted)
        buckets.append(
            Bucket(
                start=start,
                since=bounds[index],
                until=bounds[index + 1],
                incidents=per_severity,
                total=sum(per_severity.values()),
                detections=detections[index],
            )
        )
    return IncidentSeries(
        interval=interval, timezone=PARIS.key, days=days, end=last, buckets=buckets
    )


def _buckets(interval: Interval, days: int, last: date) -> tuple[list[date], list[datetime]]:
    """The first day of each bucket, and the bucket boundaries in UTC (one more than the
    buckets: the last is where the last bucket ends)."""
    try:
        first = last - timedelta(days=days - 1)
        if interval == "week":  # ISO weeks start on Monday
            first -= timedelta(days=first.weekday())
            step = timedelta(days=7)
        else:
            step = timedelta(days=1)
        starts = [first]
        while starts[-1] + step <= last:
            starts.append(starts[-1] + step)
        bounds = [_midnight(day) for day in [*starts, starts[-1] + step]]
    except OverflowError:
        raise Invalid("end is too near the ends of the calendar") from None
    return starts, bounds


def _midnight(day: date) -> datetime:
    """Midnight in Paris (a time that always exists there: clocks change at 2 or 3 a.m.)."""
    return datetime.combine(day, time(), tzinfo=PARIS).astimezone(UTC)


def _bucketed(
    session: Session,
    moment: InstrumentedAttribute[datetime],
    bounds: list[datetime],
    keys: list[InstrumentedAttribute[Any]],
    measure: ColumnElement[Any],
    conditions: list[ColumnElement[bool]],
) -> dict[int, dict[tuple[Any, ...], int]]:
    """The sum of `measure` (a value per row) per bucket (the index of the bounds `moment`
    falls between) and `keys`."""
    bucket = _bucket(moment, bounds, 0, len(bounds) - 1)
    # Grouped in an outer query: PostgreSQL does not see a CASE with parameters in SELECT
    # and in GROUP BY as one expression.
    inner = (
        select(bucket.label("bucket"), *keys, measure.label("measure"))
        .where(moment >= bounds[0], moment < bounds[-1], *conditions)
        .subquery()
    )
    key_columns = [inner.c[k.key] for k in keys]
    rows = session.execute(
        select(inner.c.bucket, *key_columns, func.sum(inner.c.measure)).group_by(
            inner.c.bucket, *key_columns
        )
    ).all()
    out: dict[int, dict[tuple[Any, ...], int]] = {}
    for row in rows:
        out.setdefault(int(row[0]), {})[tuple(row[1:-1])] = int(row[-1] or 0)
    return out


def _summed(
    session: Session,
    moment: InstrumentedAttribute[datetime],
    bounds: list[datetime],
    measure: ColumnElement[Any],
    conditions: list[ColumnElement[bool]],
) -> list[int]:
    """The sum of `measure` in each bucket, as one range of an index on `moment` each (all in
    one statement): for many rows, cheaper than putting each row in its bucket."""
    sums = [
        select(func.sum(measure)).where(moment >= low, moment < high, *conditions).scalar_subquery()
        for low, high in zip(bounds, bounds[1:], strict=False)
    ]
    return [int(total or 0) for total in session.execute(select(*sums)).one()]


def _bucket(
    moment: InstrumentedAttribute[datetime], bounds: list[datetime], low: int, high: int
) -> Any:
    """The bucket of `moment` among buckets `low` to `high` - 1 (`moment` is within them), as
    a tree of CASEs halving the range: about log2(buckets) comparisons per row, where a CASE
    trying the bounds in turn made 45 on average over 90 days."""
    if high - low == 1:
        return literal_column(str(low))
    middle = (low + high) // 2
    return case(
        (moment < bounds[middle], _bucket(moment, bounds, low, middle)),
        else_=_bucket(moment, bounds, middle, high),
    )


def _batches_of(who: Principal, filters: IncidentFilter) -> list[ColumnElement[bool]]:
    """The batches of the establishments `filters` names, within `who`'s scope."""
    out: list[ColumnElement[bool]] = []
    if who.scope is not None:
        out.append(IngestedBatch.establishment == who.scope)
    if filters.establishment:
        out.append(IngestedBatch.establishment == filters.establishment.strip().upper())
    if filters.region is not None or filters.kind is not None:
        wanted = select(Establishment.finess).where(*filters.of_establishment(finess=False))
        out.append(IngestedBatch.establishment.in_(wanted))
    return out


# --- per establishment and per campaign (the dashboard's lists) --------------------------------


@dataclass(frozen=True)
class EstablishmentCounts:
    """What a list of establishments shows of each one."""

    open_incidents: int  # new, acknowledged or contained
    agents: dict[AgentState, int]  # every state present, 0 when none


def per_establishment(
    *,
    session: Session,
    who: Principal,
    finesses: Sequence[str],
    now: datetime,
    silent_after: timedelta,
) -> dict[str, EstablishmentCounts]:
    """Open incidents and agents by state of each of `finesses` `who` may see (the others
    are left out), in two grouped queries whatever their number: the totals `GET /incidents`
    and `GET /agents` answer for one establishment."""
    wanted = sorted({f for f in finesses if who.sees(f)})
    if not wanted:
        return {}
    opened = IncidentFilter(status="open").conditions(who)
    incidents = dict(
        session.execute(
            select(Incident.establishment_finess, func.count())
            .where(Incident.establishment_finess.in_(wanted), *opened)
            .group_by(Incident.establishment_finess)
        ).all()
    )
    agents = {
        finess: dict(zip(AgentState, counts, strict=True))
        for finess, *counts in session.execute(
            select(
                Agent.establishment_finess,
                *(func.count().filter(condition(s, now, silent_after)) for s in AgentState),
            )
            .where(Agent.establishment_finess.in_(wanted))
            .group_by(Agent.establishment_finess)
        )
    }
    none = dict.fromkeys(AgentState, 0)
    return {
        f: EstablishmentCounts(open_incidents=incidents.get(f, 0), agents=agents.get(f, none))
        for f in wanted
    }


@dataclass(frozen=True)
class RegionHit:
    """The incidents of a campaign in one region, and the establishments they are in."""

    region: str
    incidents: int
    establishments: int


def campaign_regions(
    *, session: Session, who: Principal, campaign_ids: Sequence[str]
) -> dict[str, list[RegionHit]]:
    """The regions each campaign reached, most establishments first, in one grouped query.
    Campaigns compare establishments: national roles only."""
    if who.scope is not None:
        raise Forbidden("campaigns are the national view: national roles only")
    if not campaign_ids:
        return {}
    rows = session.execute(
        select(
            Incident.campaign_id,
            Establishment.region,
            func.count(Incident.id),
            func.count(distinct(Establishment.finess)),
        )
        .join(Establishment, Establishment.finess == Incident.establishment_finess)
        .where(Incident.campaign_id.in_(list(campaign_ids)))
        .group_by(Incident.campaign_id, Establishment.region)
    ).all()
    out: dict[str, list[RegionHit]] = {c: [] for c in campaign_ids}
    for campaign_id, region, incidents, establishments in rows:
        out[str(campaign_id)].append(RegionHit(region, incidents, establishments))
    for hits in out.values():
        hits.sort(key=lambda h: (-h.establishments, -h.incidents, h.region))
    return out
