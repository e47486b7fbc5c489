"""Conformité des accusés de réception d'alertes (research part B, R4): one row per alert of
the CERT and establishment it was meant for, with the delay of the acknowledgement and
whether it came on time; in XLSX, a summary by establishment and one by region.

- Alerts: those published in the `PERIOD` up to `as_of` (withdrawn ones too: they were
  meant to be read until withdrawn).
- Establishments: those the alert's target includes, as the service matches targets
  (`api.alerts.service.scope_of`: everyone, or regions and/or kinds), that existed when the
  alert was published: one registered later could not have acknowledged it on time.
- On time: acknowledged within the target of the maturity framework's control on alert
  acknowledgements (`alerts.acknowledgement_delays`: 24 h for critical and high alerts, 72 h
  for the others in vigie-care 2026.1), read from the framework so that the two never
  disagree. As that check does: an alert not acknowledged by `as_of` is `en attente` while
  its due time is to come, `sans objet` if the CERT withdrew it before it was due, `non`
  otherwise; an acknowledgement recorded after `as_of` counts as none.

The target, the region, the kind and the name are as they are now (the service keeps no
history of them). Streams: alerts of the period are few and held; establishments and their
acknowledgements come region by region (regions in French order, the same on every
database), one query each, read `yield_per` rows at a time. Only one region's delays are
held at a time, for its median. The CSV is the detail sheet alone.
"""

from __future__ import annotations

import itertools
import statistics
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, Any, Protocol

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session, load_only

from api.alerts.models import Acknowledgement, Alert, AlertStatus
from api.alerts.service import Scope, scope_of
from api.errors import VigieServiceError
from api.establishments.models import Establishment
from api.maturity.checks.operations import Acks
from api.maturity.framework import default as framework
from api.reports import french, scope, tables
from api.reports.catalogue import KINDS, Params
from api.reports.tables import Column

PERIOD = timedelta(days=365)  # alerts published in the year up to as_of
CHECK = "alerts.acknowledgement_delays"  # the maturity check whose targets are used
URGENT = ("critical", "high")  # severities with the shorter target, as the check has it
BATCH = 1000
ON_TIME, LATE, WAITING, VOID = "oui", "non", "en attente", "sans objet"


@dataclass(frozen=True)
class Targets:
    """Hours to acknowledge, from the framework (its control, its version)."""

    urgent: float
    other: float
    control: str
    version: str
    window_days: int  # the control's own period

    def hours(self, severity: str) -> float:
        return self.urgent if severity in URGENT else self.other


def targets() -> Targets:
    shipped = framework()
    control = next((c for c in shipped.controls if c.evidence.check == CHECK), None)
    if control is None:
        raise VigieServiceError(f"framework {shipped.version} has no control checking {CHECK}")
    found = Acks.model_validate(control.evidence.params)
    return Targets(
        found.critical_hours, found.other_hours, control.id, shipped.version, found.window_days
    )


@dataclass(frozen=True)
class _Alert:
    id: str
    title: str
    severity: str
    tlp: str
    published: datetime
    withdrawn: datetime | None  # by as_of
    due: datetime
    hours: float
    scope: Scope


def _hours(t: Targets) -> str:
    urgent, other = french.number(t.urgent), french.number(t.other)
    return f"{urgent} h pour une alerte critique ou élevée, {other} h pour les autres"


def _columns(t: Targets) -> tuple[Column, ...]:
    hours = _hours(t)
    return (
        Column("alerte", "Identifiant de l'alerte dans Vigie.", width=38),
        Column("titre", "Titre de l'alerte.", width=40),
        Column("sévérité", "low (faible), medium (moyenne), high (élevée) ou critical (critique)."),
        Column("TLP", "Diffusion de l'alerte (Traffic Light Protocol 2.0).", width=10),
        Column("publiée le", "Heure de publication par le CERT.", "moment", width=17),
        Column(
            "retirée le",
            "Heure du retrait de l'alerte par le CERT, s'il a eu lieu avant la date d'arrêté.",
            "moment",
            width=17,
        ),
        Column("FINESS", "Numéro FINESS de l'établissement destinataire.", width=11),
        Column("établissement", "Nom de l'établissement.", width=30),
        Column("région", "Région de l'établissement.", width=20),
        Column(
            "type d'établissement", "CHU, CH, clinic, EHPAD, psychiatry, SSR ou other.", width=12
        ),
        Column(
            "délai cible (h)",
            f"Délai d'accusé de réception attendu : {hours} (référentiel de maturité "
            f"{t.version}, contrôle {t.control}).",
            "float",
            decimals=0,
            width=10,
        ),
        Column("échéance", "Heure de publication plus le délai cible.", "moment", width=17),
        Column(
            "accusée le",
            "Heure de l'accusé de réception de l'établissement, s'il est antérieur ou égal à la "
            "date d'arrêté.",
            "moment",
            width=17,
        ),
        Column(
            "délai (h)", "Heures entre la publication et l'accusé de réception.", "float", width=10
        ),
        Column(
            "dans les délais",
            f"{ON_TIME} : accusée au plus tard à l'échéance ; {LATE} : accusée après, ou pas "
            f"accusée alors que l'échéance est passée ; {WAITING} : pas accusée, échéance à "
            f"venir ; {VOID} : pas accusée et retirée par le CERT avant l'échéance.",
            width=12,
        ),
    )


def _counts(first: Column) -> tuple[Column, ...]:
    return (
        first,
        Column("accusées", "Accusés de réception reçus à la date d'arrêté.", "int", width=10),
        Column("dans les délais", f"Alertes dont l'état est « {ON_TIME} ».", "int", width=10),
        Column("en retard", f"Alertes dont l'état est « {LATE} ».", "int", width=10),
        Column(WAITING, f"Alertes dont l'état est « {WAITING} ».", "int", width=10),
        Column(VOID, f"Alertes dont l'état est « {VOID} ».", "int", width=10),
        Column(
            "taux dans les délais",
            "dans les délais / (dans les délais + en retard) ; vide sans alerte jugée.",
            "percent",
            width=12,
        ),
        Column(
            "délai médian (h)",
            "Médiane des délais d'accusé de réception reçus (en heures) ; vide sans accusé.",
            "float",
            width=12,
        ),
    )


BY_ESTABLISHMENT: tuple[Column, ...] = (
    Column("FINESS", "Numéro FINESS de l'établissement.", width=11),
    Column("établissement", "Nom de l'établissement.", width=30),
    Column("région", "Région de l'établissement.", width=20),
    Column("type d'établissement", "CHU, CH, clinic, EHPAD, psychiatry, SSR ou other.", width=12),
    *_counts(Column("alertes", "Alertes de la période destinées à l'établissement.", "int")),
)
BY_REGION: tuple[Column, ...] = (
    Column("région", "La région.", width=24),
    Column("établissements", "Établissements de la région à la date d'arrêté.", "int"),
    *_counts(
        Column(
            "alertes",
            "Couples (alerte, établissement destinataire) de la région sur la période.",
            "int",
        )
    ),
)


@dataclass
class _Tally:
    """Counts of one establishment or region; its delays for the median."""

    alerts: int = 0
    states: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys((ON_TIME, LATE, WAITING, VOID), 0)
    )
    delays: array[float] = field(default_factory=lambda: array("d"))

    def add(self, state: str, delay: float | None) -> None:
        self.alerts += 1
        self.states[state] += 1
        if delay is not None:
            self.delays.append(delay)

    def merge(self, other: _Tally) -> None:
        self.alerts += other.alerts
        for state, n in other.states.items():
            self.states[state] += n
        self.delays.extend(other.delays)

    def cells(self) -> list[Any]:
        on_time, late = self.states[ON_TIME], self.states[LATE]
        return [
            self.alerts,
            len(self.delays),
            on_time,
            late,
            self.states[WAITING],
            self.states[VOID],
            on_time / (on_time + late) if on_time + late else None,
            statistics.median(self.delays) if self.delays else None,
        ]


class _Rows(Protocol):
    def row(self, values: Sequence[Any]) -> None: ...


class _Discard:
    """The summaries' sink when the CSV wants the detail only."""

    def row(self, values: Sequence[Any]) -> None:
        del values


def build(session: Session, params: Params, out: IO[bytes]) -> None:
    found = targets()
    columns = _columns(found)
    chosen = scope.establishments(session, params)
    alerts = _alerts(session, params.as_of, found)
    if params.format == "csv":
        writer = tables.CsvWriter(out, columns)
        _write(session, params.as_of, chosen, alerts, writer, _Discard(), _Discard())
        return
    book = tables.Workbook(out, title=KINDS["acknowledgements"].title, as_of=params.as_of)
    detail = book.sheet("accuses", columns)
    by_establishment = book.sheet("etablissements", BY_ESTABLISHMENT)
    by_region = book.sheet("regions", BY_REGION)
    _write(session, params.as_of, chosen, alerts, detail, by_establishment, by_region)
    book.definitions(
        [
            ("document", _document(params, found)),
            ("accuses", columns),
            ("etablissements", BY_ESTABLISHMENT),
            ("regions", BY_REGION),
        ]
    )
    book.close()


def _alerts(session: Session, as_of: datetime, found: Targets) -> list[_Alert]:
    """The period's alerts, oldest first (a few hundred a year: held)."""
    query = (
        select(Alert)
        .options(
            load_only(
                Alert.id,
                Alert.title,
                Alert.severity,
                Alert.tlp,
                Alert.status,
                Alert.created_at,
                Alert.updated_at,
                Alert.target_all,
                Alert.target_regions,
                Alert.target_kinds,
            )  # fmt: skip
        )
        .where(Alert.created_at <= as_of, Alert.created_at > as_of - PERIOD)
        .order_by(Alert.created_at, Alert.id)
    )
    out = []
    for alert in session.scalars(query):
        published = french.utc(alert.created_at)
        # A withdrawal is the alert's last change (api/alerts/service.withdraw).
        withdrawn = french.utc(alert.updated_at) if alert.status == AlertStatus.WITHDRAWN else None
        hours = found.hours(alert.severity)
        out.append(
            _Alert(
                alert.id,
                alert.title,
                alert.severity,
                alert.tlp,
                published,
                withdrawn if withdrawn is not None and withdrawn <= as_of else None,
                published + timedelta(hours=hours),
                hours,
                scope_of(alert),
            )
        )
    return out


def _write(
    session: Session,
    as_of: datetime,
    chosen: list[ColumnElement[bool]],
    alerts: list[_Alert],
    detail: _Rows,
    by_establishment: _Rows,
    by_region: _Rows,
) -> None:
    regions = session.scalars(
        select(Establishment.region)
        .where(Establishment.created_at <= as_of, *chosen)
        .distinct()
        .order_by(Establishment.region)
    )
    for region in sorted(regions, key=scope.french_order):
        total, establishments = _Tally(), 0
        for establishment, acks in _establishments(session, as_of, chosen, region):
            tally = _Tally()
            for values, state, delay in _pairs(establishment, acks, alerts, as_of):
                detail.row(values)
                tally.add(state, delay)
            by_establishment.row([*establishment[:4], *tally.cells()])
            total.merge(tally)
            establishments += 1
        by_region.row([region, establishments, *total.cells()])


def _establishments(
    session: Session, as_of: datetime, chosen: list[ColumnElement[bool]], region: str
) -> Iterator[tuple[tuple[Any, ...], dict[str, datetime]]]:
    """A region's establishments by FINESS, each with its acknowledgements by `as_of` of the
    period's alerts: one query, establishments outer-joined to their acknowledgements."""
    period = select(Alert.id).where(Alert.created_at <= as_of, Alert.created_at > as_of - PERIOD)
    query = (
        select(
            Establishment.finess,
            Establishment.name,
            Establishment.region,
            Establishment.kind,
            Establishment.created_at,
            Acknowledgement.alert_id,
            Acknowledgement.acknowledged_at,
        )
        .outerjoin(
            Acknowledgement,
            and_(
                Acknowledgement.establishment_finess == Establishment.finess,
                Acknowledgement.acknowledged_at <= as_of,
                Acknowledgement.alert_id.in_(period),
            ),
        )
        .where(Establishment.region == region, Establishment.created_at <= as_of, *chosen)
        .order_by(Establishment.finess, Acknowledgement.alert_id)
    )
    rows = session.execute(query.execution_options(yield_per=BATCH))
    for _, group in itertools.groupby(rows, key=lambda row: row[0]):
        members = list(group)  # one row per acknowledgement (one row if none)
        acks = {row[5]: french.utc(row[6]) for row in members if row[5] is not None}
        yield tuple(members[0][:5]), acks


def _pairs(
    establishment: tuple[Any, ...],
    acks: dict[str, datetime],
    alerts: Sequence[_Alert],
    as_of: datetime,
) -> Iterator[tuple[list[Any], str, float | None]]:
    """The establishment's rows: the alerts meant for it, published once it existed."""
    finess, name, region, kind, created = establishment
    existed = french.utc(created)
    for alert in alerts:
        if alert.published < existed or not alert.scope.includes(region, kind):
            continue
        acknowledged = acks.get(alert.id)
        delay = None
        if acknowledged is not None:
            delay = (acknowledged - alert.published).total_seconds() / 3600
            state = ON_TIME if acknowledged <= alert.due else LATE
        elif alert.withdrawn is not None and alert.withdrawn <= alert.due:
            state = VOID
        else:
            state = WAITING if as_of <= alert.due else LATE
        values = [
            alert.id, alert.title, alert.severity, alert.tlp, alert.published, alert.withdrawn,
            finess, name, region, kind, alert.hours, alert.due, acknowledged, delay, state,
        ]  # fmt: skip
        yield values, state, delay


def _document(params: Params, found: Targets) -> list[Column]:
    if params.finess:
        covers = f"l'établissement FINESS {params.finess}"
    elif params.region:
        covers = f"les établissements de la région {params.region}"
    else:
        covers = "tous les établissements"
    since = params.as_of - PERIOD
    return [
        Column(
            "date d'arrêté",
            f"{french.moment(params.as_of)} (heure de Paris, {french.iso(params.as_of)}) : "
            "accusés de réception et retraits comptés s'ils sont antérieurs ou égaux à ce moment.",
        ),
        Column(
            "période",
            f"Alertes publiées du {french.moment(since)} (exclu) au {french.moment(params.as_of)} "
            "(inclus), retirées ou non.",
        ),
        Column(
            "périmètre",
            f"Pour {covers} : chaque alerte et chaque établissement qu'elle vise (toutes les "
            "régions et tous les types, ou ses régions et/ou ses types), s'il existait dans "
            "Vigie à la publication de l'alerte. Cibles, noms, régions et types tels qu'ils "
            "sont enregistrés aujourd'hui. Lignes par région, FINESS, puis publication.",
        ),
        Column(
            "délais cibles",
            f"Ceux du contrôle {found.control} du référentiel de maturité {found.version} "
            f"({_hours(found)}) ; ce contrôle juge les alertes des {found.window_days} derniers "
            "jours, ce rapport celles d'un an.",
        ),
        Column(
            "format CSV",
            "Le CSV contient la feuille accuses seule (une ligne par alerte et établissement), "
            "mêmes colonnes ; les synthèses par établissement et par région sont dans le XLSX.",
        ),
    ]
