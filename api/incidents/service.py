"""Incidents: opened from detections or declared, moved through their workflow, reported.

Automatic incidents group detections: the same rule on the same host of one establishment
within `GROUP_WINDOW` of the incident's detections (by the detections' own times, which may
arrive late or days apart in one batch) adds to that incident instead of opening another.
Informational detections open nothing (they stay in the event store).
A rule (or an alert's indicators) firing in `CAMPAIGN_MIN_ESTABLISHMENTS` establishments within
`CAMPAIGN_WINDOW` opens a national campaign linking their incidents (the CERT's view only);
only incidents of rules the service knows each establishment runs count (`known_rule`).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from api.agents.models import as_utc, utcnow
from api.deps import Principal
from api.errors import Invalid, NotFound
from api.establishments import service as establishments
from api.incidents import nis2
from api.incidents.filters import IncidentFilter, any_overdue, next_due
from api.incidents.models import (
    Campaign,
    Category,
    Incident,
    Origin,
    Severity,
    Status,
    TimelineEntry,
)
from api.incidents.sample import sample_of
from api.incidents.schemas import IncidentDeclare, IncidentUpdate, ReportSent, StatusChange
from detection.event import parse_timestamp

GROUP_WINDOW = timedelta(hours=24)
CAMPAIGN_WINDOW = timedelta(days=7)
CAMPAIGN_MIN_ESTABLISHMENTS = 2
SYSTEM = "vigie"  # the actor of what the service does by itself

_SEVERITY = {"low": "low", "medium": "medium", "high": "high", "critical": "critical"}
_ORDER = list(Status)
# ATT&CK techniques and tactics that name a report category; the first match wins.
_CATEGORY_TAGS = (
    (Category.RANSOMWARE, ("attack.t1486", "attack.t1490", "ransomware")),
    (Category.PHISHING, ("attack.t1566", "attack.t1598", "phishing")),
    (Category.DENIAL_OF_SERVICE, ("attack.t1498", "attack.t1499")),
    (Category.DATA_BREACH, ("attack.exfiltration", "attack.collection", "attack.t1567")),
)


# --- opened from detections ------------------------------------------------------------------


def open_from_detections(
    *,
    session: Session,
    establishment: str,
    detections: Iterable[Mapping[str, Any]],
    origin: str = Origin.DETECTION,
    known: Callable[[str], bool] | None = None,
) -> list[Incident]:
    """Open or extend incidents for detections (`Detection.to_dict()` shape) of one
    establishment; returns the incidents touched. Campaigns are updated on the way, from
    the rules `known` says the service knows this establishment runs (None: all)."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for detection in detections:
        if detection.get("level") not in _SEVERITY:
            continue  # informational, or unknown: kept in the store, no incident
        groups[(str(detection["rule_id"]), _host(detection))].append(detection)
    touched = []
    for (rule_id, host), found in groups.items():
        counts = known is None or known(rule_id)
        for run, first, last in _runs(found):
            incident = _open_incident(session, establishment, rule_id, host, first, last)
            if incident is None:
                incident = _new_incident(
                    session, establishment, rule_id, host, run[0], origin, first
                )
                incident.known_rule = counts
            else:
                _timeline(session, incident, SYSTEM, "detection", f"{len(run)} more detection(s)")
                incident.known_rule = incident.known_rule or counts
            incident.detection_count += len(run)
            incident.first_seen = min(as_utc(incident.first_seen or first), first)
            incident.last_seen = max(as_utc(incident.last_seen or last), last)
            incident.severity = _worst(incident.severity, *(_SEVERITY[d["level"]] for d in run))
            incident.updated_at = utcnow()
            touched.append(incident)
    session.flush()
    for incident in touched:
        if incident.rule_id and incident.known_rule:
            _campaign(session, incident)
    return touched


def _runs(
    found: list[Mapping[str, Any]],
) -> list[tuple[list[Mapping[str, Any]], datetime, datetime]]:
    """The detections of one rule and host in time order, cut where two follow each other by
    more than `GROUP_WINDOW` (an agent back after days away sends them in one batch): each
    run goes to one incident. Returns (detections, first time, last time) per run."""
    now = utcnow()
    timed = sorted(((_time(d) or now, d) for d in found), key=lambda pair: pair[0])
    runs: list[tuple[list[Mapping[str, Any]], datetime, datetime]] = []
    for moment, detection in timed:
        if runs and moment - runs[-1][2] <= GROUP_WINDOW:
            runs[-1] = ([*runs[-1][0], detection], runs[-1][1], moment)
        else:
            runs.append(([detection], moment, moment))
    return runs


def _open_incident(
    session: Session, establishment: str, rule_id: str, host: str, first: datetime, last: datetime
) -> Incident | None:
    return session.scalars(
        select(Incident)
        .where(
            Incident.establishment_finess == establishment,
            Incident.rule_id == rule_id,
            Incident.host == host,
            Incident.status.not_in((Status.RESOLVED, Status.CLOSED)),
            Incident.last_seen >= first - GROUP_WINDOW,
            Incident.first_seen <= last + GROUP_WINDOW,
        )
        .order_by(Incident.last_seen.desc())
        .limit(1)
    ).first()


def _new_incident(
    session: Session,
    establishment: str,
    rule_id: str,
    host: str,
    detection: Mapping[str, Any],
    origin: str,
    first: datetime,
) -> Incident:
    now = utcnow()
    severity = _SEVERITY[detection["level"]]
    incident = Incident(
        id=str(uuid.uuid4()),
        establishment_finess=establishment,
        origin=str(origin),
        title=str(detection.get("rule_title") or rule_id).replace("\x00", "")[:300],
        category=_category(detection.get("tags") or []),
        severity=severity,
        status=Status.NEW,
        description="",
        affected_systems=[host] if host != "-" else [],
        aware_at=now,
        created_by=SYSTEM,
        created_at=now,
        updated_at=now,
        rule_id=rule_id,
        host=host,
        first_seen=first,
        last_seen=first,
        detection_count=0,
        sample=_sample(detection),
        notifiable=severity == Severity.CRITICAL,
        overdue=[],
    )
    session.add(incident)
    _timeline(session, incident, SYSTEM, "created", f"opened from {origin} of rule {rule_id}")
    return incident


def _host(detection: Mapping[str, Any]) -> str:
    event = detection.get("event") or {}
    host = event.get("host") if isinstance(event, Mapping) else None
    if isinstance(host, Mapping):
        name = host.get("name") or host.get("hostname")
        if name:
            return str(name).replace("\x00", "")[:253]  # PostgreSQL text holds no NUL
    return str(detection.get("host") or "-").replace("\x00", "")[:253]


def _time(detection: Mapping[str, Any]) -> datetime | None:
    moment = parse_timestamp(detection.get("timestamp"))
    return as_utc(moment) if moment is not None else None


def _category(tags: Iterable[str]) -> str:
    lowered = {str(t).lower() for t in tags}
    for category, markers in _CATEGORY_TAGS:
        if any(m in lowered or any(t.startswith(m + ".") for t in lowered) for m in markers):
            return str(category)
    return str(Category.INTRUSION)


def _worst(*severities: str) -> str:
    order = list(Severity)
    return str(max((Severity(s) for s in severities), key=order.index))


def _sample(detection: Mapping[str, Any]) -> dict[str, Any]:
    """The first detection, trimmed: enough to triage, bounded in size (sample.py)."""
    return sample_of(detection)


# --- campaigns --------------------------------------------------------------------------------


def _campaign(session: Session, incident: Incident) -> Campaign | None:
    """Link the incidents of `incident`'s rule, in any establishment, whose detections come
    within `CAMPAIGN_WINDOW` of its own (before or after: times are the detections')."""
    rule_id = incident.rule_id
    first, last = _seen(incident)
    since, until = first - CAMPAIGN_WINDOW, last + CAMPAIGN_WINDOW
    recent = list(
        session.scalars(
            select(Incident).where(
                Incident.rule_id == rule_id,
                Incident.last_seen >= since,
                Incident.first_seen <= until,
                Incident.known_rule.is_(True),
            )
        )
    )
    if len({i.establishment_finess for i in recent}) < CAMPAIGN_MIN_ESTABLISHMENTS:
        return None
    campaign = session.scalars(
        select(Campaign)
        .where(Campaign.rule_id == rule_id, Campaign.status == "open")
        .where(Campaign.last_seen >= since, Campaign.first_seen <= until)
        .order_by(Campaign.last_seen.desc())
        .limit(1)
    ).first()
    first = min(_seen(i)[0] for i in recent)
    last = max(_seen(i)[1] for i in recent)
    if campaign is None:
        campaign = Campaign(
            id=str(uuid.uuid4()),
            rule_id=rule_id,
            title=f"Campaign: {recent[0].title}"[:300],
            status="open",
            first_seen=first,
            last_seen=last,
        )
        session.add(campaign)
    campaign.first_seen = min(as_utc(campaign.first_seen), first)
    campaign.last_seen = max(as_utc(campaign.last_seen), last)
    for member in recent:
        if member.campaign_id is None:
            member.campaign_id = campaign.id
    session.flush()
    return campaign


def _seen(incident: Incident) -> tuple[datetime, datetime]:
    """The times of an incident's first and last detections (set on every one from detections)."""
    first = as_utc(incident.first_seen or incident.created_at)
    return first, as_utc(incident.last_seen or first)


def list_campaigns(*, session: Session) -> list[tuple[Campaign, list[Incident]]]:
    campaigns = session.scalars(select(Campaign).order_by(Campaign.last_seen.desc()))
    return [(c, _members(session, c.id)) for c in campaigns]


def get_campaign(*, session: Session, campaign_id: str) -> tuple[Campaign, list[Incident]]:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id}")
    return campaign, _members(session, campaign_id)


def update_campaign(
    *, session: Session, campaign_id: str, title: str | None, status: str | None
) -> tuple[Campaign, list[Incident]]:
    campaign, members = get_campaign(session=session, campaign_id=campaign_id)
    if title is not None:
        campaign.title = title
    if status is not None:
        campaign.status = status
    session.flush()
    return campaign, members


def _members(session: Session, campaign_id: str) -> list[Incident]:
    return list(
        session.scalars(
            select(Incident).where(Incident.campaign_id == campaign_id).order_by(Incident.id)
        )
    )


# --- declared, read, changed ------------------------------------------------------------------


def declare(*, session: Session, who: Principal, data: IncidentDeclare) -> Incident:
    finess = data.establishment or who.scope
    if not finess or finess == "-":
        raise Invalid("say which establishment (FINESS) the incident is for")
    establishments.get(session=session, who=who, finess=finess)  # NotFound when not yours
    now = utcnow()
    if data.aware_at > now + timedelta(minutes=5):
        raise Invalid("aware_at is in the future")
    if data.started_at is not None and data.started_at > data.aware_at:
        raise Invalid("started_at is after aware_at: one cannot know of it before it began")
    incident = Incident(
        id=str(uuid.uuid4()),
        establishment_finess=finess.strip().upper(),
        origin=Origin.DECLARED,
        title=data.title,
        category=data.category,
        severity=data.severity,
        status=Status.NEW,
        care_impact=data.care_impact,
        personal_data=data.personal_data,
        description=data.description,
        affected_systems=_systems(data.affected_systems),
        started_at=data.started_at,
        aware_at=data.aware_at,
        created_by=who.username,
        created_at=now,
        updated_at=now,
        detection_count=0,
        notifiable=data.notifiable,
        overdue=[],
    )
    session.add(incident)
    _timeline(session, incident, who.username, "created", "declared")
    session.flush()
    return incident


def get(*, session: Session, who: Principal, incident_id: str) -> Incident:
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    if not who.sees(incident.establishment_finess):  # not yours and absent look alike
        raise who.not_yours(f"no incident {incident_id}", kind="incident", target=incident.id)
    return incident


# How a list may be sorted: the key, most pressing first; ties by id (pages are stable).
Sort = Literal["updated", "created", "last_seen", "severity", "due"]
_SEVERITY_RANK = {str(s): rank for rank, s in enumerate(reversed(Severity))}  # critical: 0


def page(
    *,
    session: Session,
    who: Principal,
    establishment: str | None = None,
    region: str | None = None,
    kind: str | None = None,
    status: str | None = None,  # a Status, or "open"
    severity: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    overdue: bool | None = None,
    campaign: str | None = None,
    sort: Sort = "updated",
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[Incident], int]:
    """Incidents `who` may see, filtered (`IncidentFilter` says how) and sorted in SQL.
    `overdue`: a NIS2 deadline has passed without its report (computed at the time of
    asking: a deadline passes without a write). Sorts: `updated`, `created`, `last_seen`
    (latest first, never seen last), `severity` (critical first, then latest updated), `due`
    (the next NIS2 report due soonest first, overdue ones first; incidents with none last)."""
    filters = IncidentFilter(
        establishment=establishment,
        region=region,
        kind=kind,
        status=status,
        severity=severity,
        since=since,
        until=until,
    )
    conditions = filters.conditions(who)
    if overdue is not None:
        late = any_overdue(utcnow())
        conditions.append(late if overdue else ~late)
    if campaign is not None and who.scope is None:  # campaigns are the national view
        conditions.append(Incident.campaign_id == campaign)
    # Counted on the table itself: over a subquery of every column, SQLite read every row.
    total = session.scalar(select(func.count()).select_from(Incident).where(*conditions)) or 0
    query = select(Incident).where(*conditions).order_by(*_order(sort), Incident.id)
    items = session.scalars(query.offset(offset).limit(limit))
    return list(items), total


def _order(sort: Sort) -> list[Any]:
    if sort == "created":
        return [Incident.created_at.desc()]
    if sort == "last_seen":
        return [Incident.last_seen.is_(None), Incident.last_seen.desc()]
    if sort == "severity":
        rank = case(_SEVERITY_RANK, value=Incident.severity, else_=len(_SEVERITY_RANK))
        return [rank, Incident.updated_at.desc()]
    if sort == "due":
        upcoming = next_due()
        return [upcoming.is_(None), upcoming]
    return [Incident.updated_at.desc()]


def update(*, session: Session, who: Principal, incident_id: str, data: IncidentUpdate) -> Incident:
    incident = get(session=session, who=who, incident_id=incident_id)
    changes = data.model_dump(exclude_unset=True)
    if not changes:
        return incident
    if "affected_systems" in changes and changes["affected_systems"] is not None:
        changes["affected_systems"] = _systems(changes["affected_systems"])
    for key, value in changes.items():
        if value is None and key in ("title", "category", "care_impact", "aware_at", "severity"):
            raise Invalid(f"{key} cannot be emptied")
        setattr(incident, key, str(value) if key in _ENUMS and value is not None else value)
    started, aware = incident.started_at, incident.aware_at
    if started is not None and as_utc(started) > as_utc(aware):
        raise Invalid("started_at is after aware_at")
    incident.updated_at = utcnow()
    _timeline(session, incident, who.username, "updated", "changed " + ", ".join(sorted(changes)))
    session.flush()
    return incident


_ENUMS = ("category", "care_impact", "severity")


def change_status(
    *, session: Session, who: Principal, incident_id: str, data: StatusChange
) -> Incident:
    """Forward along new -> acknowledged -> contained -> resolved -> closed (steps may be
    skipped: a false positive goes straight to resolved); a resolved incident may be reopened
    to acknowledged; closed is final."""
    incident = get(session=session, who=who, incident_id=incident_id)
    current, target = Status(incident.status), data.status
    reopen = current is Status.RESOLVED and target is Status.ACKNOWLEDGED
    if current is Status.CLOSED:
        raise Invalid("the incident is closed")
    if not reopen and _ORDER.index(target) <= _ORDER.index(current):
        raise Invalid(f"cannot go from {current} to {target}")
    incident.status = target
    incident.updated_at = utcnow()
    _timeline(session, incident, who.username, "status", data.comment, current, target)
    session.flush()
    return incident


def comment(*, session: Session, who: Principal, incident_id: str, text: str) -> Incident:
    incident = get(session=session, who=who, incident_id=incident_id)
    incident.updated_at = utcnow()
    _timeline(session, incident, who.username, "comment", text)
    session.flush()
    return incident


def report_sent(
    *, session: Session, who: Principal, incident_id: str, data: ReportSent
) -> Incident:
    incident = get(session=session, who=who, incident_id=incident_id)
    column = "cnil_notified_at" if data.kind == "cnil" else f"{data.kind}_at"
    if getattr(incident, column) is not None:
        raise Invalid(f"the {data.kind.replace('_', ' ')} was already recorded")
    sent = data.sent_at or utcnow()
    if sent < as_utc(incident.aware_at):
        raise Invalid("a report cannot be sent before the establishment became aware")
    setattr(incident, column, sent)
    incident.updated_at = utcnow()
    if data.kind == "cnil":
        text = "CNIL notified" + (f": {data.comment}" if data.comment else "")
        _timeline(session, incident, who.username, "report", text)
        session.flush()
        return incident
    incident.notifiable = True  # a report sent makes the deadlines apply
    incident.updated_at = utcnow()
    due = nis2.due_dates(incident.aware_at)[data.kind]
    late = "" if sent <= due else f" (late: due {due.isoformat()})"
    text = f"{data.kind.replace('_', ' ')} sent{late}" + (
        f": {data.comment}" if data.comment else ""
    )
    _timeline(session, incident, who.username, "report", text)
    session.flush()
    return incident


def timeline(*, session: Session, incident: Incident) -> list[TimelineEntry]:
    return list(
        session.scalars(
            select(TimelineEntry)
            .where(TimelineEntry.incident_id == incident.id)
            .order_by(TimelineEntry.at, TimelineEntry.id)
        )
    )


# --- NIS2 deadlines ---------------------------------------------------------------------------


def deadlines(incident: Incident) -> list[nis2.Deadline]:
    if not incident.notifiable:
        return []
    return nis2.deadlines(
        incident.aware_at,
        {kind: getattr(incident, f"{kind}_at") for kind in nis2.KINDS},
    )


def overdue_kinds(incident: Incident, now: datetime) -> list[str]:
    return [d.kind for d in deadlines(incident) if d.overdue(now)]


def flag_overdue(*, session: Session, now: datetime) -> int:
    """Flag the NIS2 deadlines that passed since the last run (a timeline entry each, once);
    returns how many were flagged. Run by the scheduler."""
    flagged = 0
    # Only incidents whose earliest deadline has passed can have an overdue report.
    candidates = session.scalars(
        select(Incident).where(
            Incident.notifiable.is_(True),
            Incident.aware_at <= now - timedelta(hours=24),
            Incident.final_report_at.is_(None),
        )
    )
    for incident in candidates:
        new = [k for k in overdue_kinds(incident, now) if k not in (incident.overdue or [])]
        if not new:
            continue
        incident.overdue = [*(incident.overdue or []), *new]
        for kind in new:
            text = f"NIS2 {kind.replace('_', ' ')} deadline passed without the report"
            _timeline(session, incident, SYSTEM, "deadline", text)
        flagged += len(new)
    session.flush()
    return flagged


# --- helpers ----------------------------------------------------------------------------------


def _timeline(
    session: Session,
    incident: Incident,
    actor: str,
    kind: str,
    text: str,
    from_status: str | None = None,
    to_status: str | None = None,
) -> None:
    session.add(
        TimelineEntry(
            incident_id=incident.id,
            at=utcnow(),
            actor=actor,
            kind=kind,
            text=text,
            from_status=from_status,
            to_status=to_status,
        )
    )


def _systems(values: Iterable[str]) -> list[str]:
    out = []
    for value in values:
        value = value.strip()
        if not value or len(value) > 200:
            raise Invalid(f"affected system {value[:40]!r}: 1 to 200 characters")
        if value not in out:
            out.append(value)
    return out
