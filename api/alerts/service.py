"""Alerts: publication, reading by target, acknowledgements (the bundle: `bundle.py`).

Who sees what: the CERT, administrators and auditors see every alert; an establishment sees
the alerts whose target includes it (its region and kind), and only its own
acknowledgement; an agent sees only its establishment's bundle. An alert that is not for the
caller answers like one that does not exist.

Every change of what agents run (publication, edit, withdrawal) bumps the national bundle
version, a counter kept in one row (`alert_bundle_state`) and updated by the database, so that
concurrent publications each get their own number and every service process reads the same.
It is internal: the live rules follow it, national readers see it on alerts; establishments
see their own bundle's version only (`bundle.py`).

A Sigma rule id belongs to the alert that first published it, for good (`AlertRuleId`).

Errors (under `api.errors`): NotFound (absent or not yours), Invalid (a rule that does not
compile, with the reason; an acknowledgement by a caller without an establishment),
RuleIdTaken (a Conflict: a rule id another alert, or Vigie's own rules, already hold).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.agents.models import utcnow
from api.alerts.models import Acknowledgement, Alert, AlertRuleId, AlertStatus, BundleState
from api.alerts.rules import RuleTextError, SigmaCache, check_yara, compile_sigma
from api.alerts.schemas import (
    AcknowledgementRead,
    AcknowledgementReport,
    AlertCreate,
    AlertRead,
    AlertUpdate,
    PendingEstablishment,
    Target,
    rules_size,
)
from api.deps import Principal
from api.errors import Conflict, Invalid, NotFound
from api.establishments import service as establishments
from api.establishments.models import Establishment

# Rules ------------------------------------------------------------------------------------------


def check_rules(
    sigma_rules: list[str],
    yara_rules: list[str],
    *,
    cache: SigmaCache | None = None,
    reserved: Collection[str] = frozenset(),
) -> list[str]:
    """The ids of the Sigma rules, when every rule text compiles; else `Invalid` naming the
    first that does not, and why. `reserved`: ids no alert may take (Vigie's own rules)."""
    try:  # again here: an edit may change one list and keep the other
        rules_size(sigma_rules, yara_rules)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc
    ids: dict[str, int] = {}
    for n, text in enumerate(sigma_rules):
        try:
            rule = cache.compile(text) if cache is not None else compile_sigma(text)
        except RuleTextError as exc:
            raise Invalid(f"sigma_rules[{n}]: {exc}") from exc
        if rule.id in ids:
            raise Invalid(f"sigma_rules[{n}]: same id {rule.id} as sigma_rules[{ids[rule.id]}]")
        if rule.id in reserved:
            raise RuleIdTaken(f"sigma_rules[{n}]: id {rule.id} is one of Vigie's own rules")
        ids[rule.id] = n
    for n, text in enumerate(yara_rules):
        try:
            check_yara(text)
        except RuleTextError as exc:
            raise Invalid(f"yara_rules[{n}]: {exc}") from exc
    return list(ids)


class RuleIdTaken(Conflict):
    code = "rule_id_taken"


def _hold_rule_ids(session: Session, alert: Alert, ids: list[str]) -> None:
    """Make `alert` the holder of these Sigma rule ids, or `RuleIdTaken` when another alert
    (published or withdrawn: stored detections and incidents still name it) holds one.

    The table's primary key settles two publications racing for one id."""
    holders = dict(
        session.execute(
            select(AlertRuleId.rule_id, AlertRuleId.alert_id).where(AlertRuleId.rule_id.in_(ids))
        ).all()
    )
    for n, rule_id in enumerate(ids):
        holder = holders.get(rule_id)
        if holder is not None and holder != alert.id:
            raise RuleIdTaken(
                f"sigma_rules[{n}]: rule id {rule_id} belongs to alert {holder}; "
                "give this rule an id of its own"
            )
    new = [AlertRuleId(rule_id=r, alert_id=alert.id) for r in ids if r not in holders]
    if not new:
        return
    try:
        with session.begin_nested():
            session.add_all(new)
    except IntegrityError as exc:
        raise RuleIdTaken(
            "a rule id of this alert was taken by another alert at the same moment"
        ) from exc


# Bundle version ---------------------------------------------------------------------------------


def bundle_version(*, session: Session) -> int:
    return session.scalar(select(BundleState.version).where(BundleState.id == 1)) or 0


def _bump(session: Session) -> int:
    """The next bundle version, taken under the row's lock until the transaction ends."""
    session.execute(
        update(BundleState)
        .where(BundleState.id == 1)
        .values(version=BundleState.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bundle_version(session=session)


# Targets ----------------------------------------------------------------------------------------


def _target(alert: Alert) -> Target:
    return Target.model_validate(
        {"all": alert.target_all, "regions": alert.target_regions, "kinds": alert.target_kinds}
    )


def targets(alert: Alert, establishment: Establishment) -> bool:
    """Whether `establishment` is among those `alert` is meant for."""
    return scope_of(alert).includes(establishment.region, establishment.kind)


@dataclass(frozen=True)
class Scope:
    """An alert's target, detached from the database (the live rules keep one per alert)."""

    everyone: bool
    regions: frozenset[str]
    kinds: frozenset[str]

    def includes(self, region: str, kind: str) -> bool:
        if self.everyone:
            return True
        if self.regions and region.casefold() not in self.regions:
            return False
        return not self.kinds or kind.casefold() in self.kinds


def scope_of(alert: Alert) -> Scope:
    return Scope(
        alert.target_all,
        frozenset(r.casefold() for r in alert.target_regions),
        frozenset(k.casefold() for k in alert.target_kinds),
    )


def own_establishment(session: Session, who: Principal) -> Establishment | None:
    if who.scope is None:
        return None
    establishment = session.get(Establishment, who.scope)
    if establishment is None:  # an account whose establishment is gone: sees nothing
        raise NotFound("no establishment for this account")
    return establishment


# Reads ------------------------------------------------------------------------------------------


def get(*, session: Session, who: Principal, alert_id: str) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    own = own_establishment(session, who)
    if own is not None and not targets(alert, own):
        # Not for you answers like absent.
        raise who.not_yours(f"no alert {alert_id}", kind="alert", target=alert.id)
    return alert


def page(
    *,
    session: Session,
    who: Principal,
    status: AlertStatus | None,
    offset: int,
    limit: int,
    pending_for: str | None = None,
) -> tuple[list[Alert], int]:
    """`pending_for` (a FINESS): the published alerts meant for that establishment that it
    has not acknowledged; an establishment may ask it of itself only (another's answers
    like an absent one)."""
    query = select(Alert).order_by(Alert.created_at.desc(), Alert.id)
    if status is not None:
        query = query.where(Alert.status == status)
    own = own_establishment(session, who)
    if pending_for is not None:
        own = establishments.get(session=session, who=who, finess=pending_for)
        query = query.where(Alert.status == AlertStatus.PUBLISHED, ~_acknowledged_by(own.finess))
    if own is None:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        return list(session.scalars(query.offset(offset).limit(limit))), total
    # Targets are lists in JSON: filtered here, the same way on SQLite and PostgreSQL.
    mine = [a for a in session.scalars(query) if targets(a, own)]
    return mine[offset : offset + limit], len(mine)


def _acknowledged_by(finess: str) -> ColumnElement[bool]:
    return (
        select(Acknowledgement.id)
        .where(Acknowledgement.alert_id == Alert.id, Acknowledgement.establishment_finess == finess)
        .exists()
    )


@dataclass(frozen=True)
class Tally:
    """The published alerts of a period as `who` sees them (`AlertCounts` says what each
    number counts)."""

    published: int
    targets: int | None = None
    acknowledged: int | None = None
    pending: int | None = None


def tally(*, session: Session, who: Principal, since: datetime) -> Tally:
    """National: the alerts published since `since`, how many establishments they were meant
    for (one per alert and establishment) and how many of those acknowledged. An
    establishment: those of them meant for it, and how many alerts meant for it (of any
    date) it has not acknowledged yet."""
    recent = list(
        session.scalars(
            select(Alert).where(Alert.status == AlertStatus.PUBLISHED, Alert.created_at >= since)
        )
    )
    own = own_establishment(session, who)
    if own is not None:
        _, pending = page(
            session=session, who=who, status=None, offset=0, limit=1, pending_for=own.finess
        )
        return Tally(published=sum(targets(a, own) for a in recent), pending=pending)
    # Counted per (region, kind) in SQL; targets are matched here, as everywhere.
    groups = session.execute(
        select(Establishment.region, Establishment.kind, func.count()).group_by(
            Establishment.region, Establishment.kind
        )
    ).all()
    scopes = {a.id: scope_of(a) for a in recent}
    # An alert meant for everyone: each of its acknowledgements counts, counted from the
    # (alert, establishment) index alone; joined to the establishments, the alerts meant for
    # everyone were most of the 150,000 acknowledgements a national overview read.
    everyone = [a for a, s in scopes.items() if s.everyone]
    acknowledged = session.scalar(
        select(func.count())
        .select_from(Acknowledgement)
        .where(Acknowledgement.alert_id.in_(everyone))
    )
    acks = session.execute(
        select(Acknowledgement.alert_id, Establishment.region, Establishment.kind, func.count())
        .join(Establishment, Establishment.finess == Acknowledgement.establishment_finess)
        .where(Acknowledgement.alert_id.in_([a for a in scopes if a not in everyone]))
        .group_by(Acknowledgement.alert_id, Establishment.region, Establishment.kind)
    ).all()
    return Tally(
        published=len(recent),
        targets=sum(
            n for s in scopes.values() for region, kind, n in groups if s.includes(region, kind)
        ),
        acknowledged=(acknowledged or 0)
        + sum(n for a, region, kind, n in acks if scopes[a].includes(region, kind)),
    )


def read(*, session: Session, who: Principal, alerts: list[Alert]) -> list[AlertRead]:
    """The alerts as `who` may see them: its own acknowledgement, or the national view."""
    ids = [a.id for a in alerts]
    out: list[AlertRead] = []
    if who.scope is not None:
        acks = {
            a.alert_id: a
            for a in session.scalars(
                select(Acknowledgement).where(
                    Acknowledgement.alert_id.in_(ids),
                    Acknowledgement.establishment_finess == who.scope,
                )
            )
        }
        for alert in alerts:
            ack = acks.get(alert.id)
            ack_read = AcknowledgementRead.model_validate(ack) if ack else None
            # The national counter would tell when alerts it cannot see change.
            out.append(_read(alert, acknowledgement=ack_read, bundle_version=None))
        return out
    counts = dict(
        session.execute(
            select(Acknowledgement.alert_id, func.count())
            .where(Acknowledgement.alert_id.in_(ids))
            .group_by(Acknowledgement.alert_id)
        ).all()
    )
    for alert in alerts:
        out.append(
            _read(
                alert,
                retro_hunt=alert.retro_hunt,
                acknowledged=counts.get(alert.id, 0),
                bundle_version=alert.bundle_version,
            )
        )
    return out


def _read(alert: Alert, **extra: Any) -> AlertRead:
    return AlertRead(
        id=alert.id,
        title=alert.title,
        description=alert.description,
        severity=alert.severity,  # type: ignore[arg-type]
        tlp=alert.tlp,  # type: ignore[arg-type]
        status=alert.status,  # type: ignore[arg-type]
        products=alert.products,
        cves=alert.cves,
        indicators=alert.indicators,  # type: ignore[arg-type]
        sigma_rules=alert.sigma_rules,
        yara_rules=alert.yara_rules,
        target=_target(alert),
        created_by=alert.created_by,
        created_at=alert.created_at,
        updated_at=alert.updated_at,
        **extra,
    )


# Writes -----------------------------------------------------------------------------------------


def create(
    *,
    session: Session,
    who: Principal,
    data: AlertCreate,
    default_days: int,
    cache: SigmaCache | None = None,
    reserved: Collection[str] = frozenset(),
) -> Alert:
    """Publish an alert: it goes into the bundles of its targets at a new version."""
    rule_ids = check_rules(data.sigma_rules, data.yara_rules, cache=cache, reserved=reserved)
    now = utcnow()
    alert = Alert(
        id=str(uuid.uuid4()),
        title=data.title,
        description=data.description,
        severity=data.severity,
        tlp=data.tlp,
        status=AlertStatus.PUBLISHED,
        products=[p.strip() for p in data.products if p.strip()],
        cves=data.cves,
        indicators=_indicators(data.indicators),
        sigma_rules=data.sigma_rules,
        yara_rules=data.yara_rules,
        target_all=data.target.all,
        target_regions=[str(r) for r in data.target.regions],
        target_kinds=[str(k) for k in data.target.kinds],
        created_by=who.username,
        created_at=now,
        updated_at=now,
        retro_hunt_days=default_days if data.retro_hunt_days is None else data.retro_hunt_days,
    )
    alert.bundle_version = _bump(session)
    session.add(alert)
    session.flush()
    _hold_rule_ids(session, alert, rule_ids)
    return alert


def _indicators(items: Any) -> list[dict[str, str]]:
    """Indicators as stored: normalised by the schema, duplicates dropped, order kept."""
    seen: dict[tuple[str, str], dict[str, str]] = {}
    for item in items:
        seen.setdefault((item.type, item.value), {"type": item.type, "value": item.value})
    return list(seen.values())


def edit(
    *,
    session: Session,
    who: Principal,
    alert_id: str,
    data: AlertUpdate,
    cache: SigmaCache | None = None,
    reserved: Collection[str] = frozenset(),
) -> Alert:
    alert = get(session=session, who=who, alert_id=alert_id)
    changes = data.model_dump(exclude_unset=True)
    if "sigma_rules" in changes or "yara_rules" in changes:
        rule_ids = check_rules(
            alert.sigma_rules if data.sigma_rules is None else data.sigma_rules,
            alert.yara_rules if data.yara_rules is None else data.yara_rules,
            cache=cache,
            reserved=reserved,
        )
        _hold_rule_ids(session, alert, rule_ids)
    for name in ("title", "description", "severity", "tlp", "sigma_rules", "yara_rules"):
        value = getattr(data, name)
        if name in changes and value is not None:
            setattr(alert, name, str(value) if name in ("severity", "tlp") else value)
    if data.products is not None:
        alert.products = [p.strip() for p in data.products if p.strip()]
    if data.cves is not None:
        alert.cves = data.cves
    if data.indicators is not None:
        alert.indicators = _indicators(data.indicators)
    if data.target is not None:
        alert.target_all = data.target.all
        alert.target_regions = [str(r) for r in data.target.regions]
        alert.target_kinds = [str(k) for k in data.target.kinds]
    alert.updated_at = utcnow()
    if alert.status == AlertStatus.PUBLISHED:
        alert.bundle_version = _bump(session)
    session.flush()
    return alert


def withdraw(*, session: Session, who: Principal, alert_id: str) -> Alert:
    """Take an alert out of bundles and server-side detection (again: no change)."""
    alert = get(session=session, who=who, alert_id=alert_id)
    if alert.status != AlertStatus.WITHDRAWN:
        alert.status = AlertStatus.WITHDRAWN
        alert.updated_at = utcnow()
        alert.bundle_version = _bump(session)
        session.flush()
    return alert


# Acknowledgements -------------------------------------------------------------------------------


def acknowledge(
    *, session: Session, who: Principal, alert_id: str, comment: str | None
) -> Acknowledgement:
    """The caller's establishment has read the alert (again: the first acknowledgement)."""
    if who.scope is None or who.establishment is None:
        raise Invalid("only an establishment's account acknowledges an alert, for itself")
    alert = get(session=session, who=who, alert_id=alert_id)
    existing = session.scalar(
        select(Acknowledgement).where(
            Acknowledgement.alert_id == alert.id,
            Acknowledgement.establishment_finess == who.establishment,
        )
    )
    if existing is not None:
        return existing
    ack = Acknowledgement(
        alert_id=alert.id,
        establishment_finess=who.establishment,
        acknowledged_by=who.username,
        acknowledged_at=utcnow(),
        comment=comment,
    )
    try:
        with session.begin_nested():  # a savepoint: a lost race leaves the request usable
            session.add(ack)
    except IntegrityError:
        # Another request acknowledged between our read and our write: the first one stands.
        first = session.scalar(
            select(Acknowledgement).where(
                Acknowledgement.alert_id == alert.id,
                Acknowledgement.establishment_finess == who.establishment,
            )
        )
        if first is None:
            raise
        return first
    return ack


def acknowledgements(*, session: Session, who: Principal, alert_id: str) -> AcknowledgementReport:
    alert = get(session=session, who=who, alert_id=alert_id)
    acks = list(
        session.scalars(
            select(Acknowledgement)
            .where(Acknowledgement.alert_id == alert.id)
            .order_by(Acknowledgement.acknowledged_at)
        )
    )
    done = {a.establishment_finess for a in acks}
    meant = [
        e
        for e in session.scalars(select(Establishment).order_by(Establishment.finess))
        if targets(alert, e)
    ]
    return AcknowledgementReport(
        alert_id=alert.id,
        targets=len(meant),
        acknowledged=[AcknowledgementRead.model_validate(a) for a in acks],
        pending=[
            PendingEstablishment(finess=e.finess, name=e.name, region=e.region, kind=e.kind)
            for e in meant
            if e.finess not in done
        ],
    )


# The bundle -------------------------------------------------------------------------------------


def published(*, session: Session) -> list[Alert]:
    query = select(Alert).where(Alert.status == AlertStatus.PUBLISHED)
    return list(session.scalars(query.order_by(Alert.created_at, Alert.id)))


def record_hunt(*, session: Session, alert_id: str, outcome: dict[str, Any]) -> None:
    alert = session.get(Alert, alert_id)
    if alert is not None:
        alert.retro_hunt = outcome
        session.flush()
