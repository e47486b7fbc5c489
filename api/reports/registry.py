"""Registre des incidents et échéances NIS2 (research part B, R3): one row per incident that
existed at `as_of`, in order of awareness, CSV or XLSX.

Each row: the incident's identity and classification, the fields of the national
health-incident report Vigie holds, and for each NIS2 deadline (`api/incidents/nis2.py`) its
due time, the time the report was sent and its state as of `as_of`:

- `met`: sent by `as_of`, on or before its due time;
- `missed`: sent by `as_of` after its due time, or not sent by `as_of` and `as_of` is past it;
- `pending`: not sent by `as_of`, and `as_of` is not past its due time;
- `n/a`: the incident is not significant (`notifiable` false): NIS2's deadlines do not apply.

A report recorded after `as_of` counts as not sent. The states are computed in SQL by one
expression (`_state`), so that the rows and the XLSX summary cannot disagree.

The final report is due one calendar month after awareness, as the service counts it
(`nis2.due_dates`, stored with each incident). NIS2 art. 23(4)(d) counts that month from the
incident notification, and some transpositions from the incident's end: the registry follows
the service's deadlines rather than a second rule of its own, so that it says what the
dashboard and the overdue job said (change it in `nis2.py`, for all of them).

Fields the service keeps no history of are as they are now: the classification (category,
severity, impact on care, personal data), `notifiable`, the establishment's name, kind and
region. The status is as of `as_of`, from the timeline's status changes.

Streams: one query (incidents joined to their establishment, the status as of `as_of` and
the times of resolution and closure as correlated subqueries), read `yield_per` rows at a
time and written row by row; the summary sheet is one aggregate query.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import IO, Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from api.establishments.models import Establishment
from api.incidents import nis2
from api.incidents.models import Incident, Status, TimelineEntry
from api.reports import french, scope, tables
from api.reports.catalogue import KINDS, Params
from api.reports.tables import Column

MET, MISSED, PENDING, NOT_APPLICABLE = "met", "missed", "pending", "n/a"
STATES = (MET, MISSED, PENDING, NOT_APPLICABLE)
BATCH = 1000  # rows read from the database at a time

# Per deadline: its name in the document and the delay it gives.
DEADLINES = {
    "early_warning": ("alerte précoce", "24 heures après la prise de connaissance"),
    "notification": ("notification", "72 heures après la prise de connaissance"),
    "final_report": (
        "rapport final",
        "un mois calendaire après la prise de connaissance, comme Vigie le compte pour "
        "le tableau de bord et les relances (la directive NIS2 compte ce mois depuis la "
        "notification ; certaines transpositions depuis la fin de l'incident)",
    ),
}
assert tuple(DEADLINES) == nis2.KINDS

_NOW = "tel qu'il est enregistré aujourd'hui (Vigie n'en garde pas l'historique)"
_AS_OF = "si elle est antérieure ou égale à la date d'arrêté du registre, vide sinon"
_STATES = (
    "met : rapport envoyé au plus tard à l'échéance ; missed : envoyé après l'échéance, ou "
    "non envoyé à la date d'arrêté alors que l'échéance est passée ; pending : non envoyé et "
    "échéance à venir à la date d'arrêté ; n/a : incident non significatif, l'échéance ne "
    "s'applique pas. Un rapport enregistré après la date d'arrêté compte comme non envoyé."
)


def _deadline_columns() -> list[Column]:
    out = []
    for name, delay in DEADLINES.values():
        sent = "envoyé" if name == "rapport final" else "envoyée"
        out += [
            Column(
                f"{name} : échéance",
                f"Heure limite d'envoi ({delay}) ; vide pour un incident non significatif.",
                "moment",
                width=17,
            ),
            Column(
                f"{name} : {sent} le", f"Heure d'envoi enregistrée, {_AS_OF}.", "moment", width=17
            ),
            Column(f"{name} : état", f"État de l'échéance à la date d'arrêté. {_STATES}", width=10),
        ]
    return out


COLUMNS: tuple[Column, ...] = (
    Column("identifiant", "Identifiant de l'incident dans Vigie.", width=38),
    Column("FINESS", "Numéro FINESS géographique de l'établissement.", width=11),
    Column("établissement", f"Nom de l'établissement, {_NOW}.", width=30),
    Column(
        "type d'établissement",
        "CHU, CH, clinic (clinique), EHPAD, psychiatry (psychiatrie), SSR (soins de suite et "
        "de réadaptation) ou other (autre).",
        width=12,
    ),
    Column("région", "Région de l'établissement (déduite de son numéro FINESS).", width=20),
    Column(
        "statut juridique",
        "public, private_nonprofit (privé non lucratif) ou private_commercial (privé "
        "commercial) ; vide si inconnu.",
        width=16,
    ),
    Column(
        "origine",
        "detection (ouvert par les détections de Vigie), declared (déclaré par "
        "l'établissement) ou retro-hunt (trouvé en recherchant dans les événements conservés "
        "les indicateurs d'une alerte du CERT).",
        width=11,
    ),
    Column("titre", "Titre de l'incident.", width=40),
    Column(
        "catégorie",
        "Catégorie du signalement national des incidents de sécurité des systèmes "
        "d'information de santé : ransomware (rançongiciel), phishing (hameçonnage), "
        "data_breach (fuite ou vol de données), denial_of_service (déni de service), "
        "intrusion, unavailability (indisponibilité d'un système), other (autre), exercise "
        f"(exercice de crise joué comme réel) ; {_NOW}.",
        width=14,
    ),
    Column(
        "sévérité",
        f"low (faible), medium (moyenne), high (élevée) ou critical (critique) ; {_NOW}.",
    ),
    Column(
        "impact sur les soins",
        "unknown (inconnu à ce stade), none (aucun), degraded (soins maintenus en mode "
        f"dégradé) ou interrupted (soins interrompus ou patients transférés) ; {_NOW}.",
    ),
    Column(
        "données personnelles",
        f"Des données personnelles (de santé) sont touchées : oui, non, vide si inconnu ; {_NOW}.",
        "bool",
        width=12,
    ),
    Column(
        "CNIL notifiée le",
        f"Heure de la notification de la violation à la CNIL (RGPD art. 33), {_AS_OF}.",
        "moment",
        width=17,
    ),
    Column(
        "survenu le",
        "Début de l'incident, s'il est connu (déclaration de l'établissement).",
        "moment",
        width=17,
    ),
    Column(
        "première détection",
        "Heure de la première détection de Vigie (incidents ouverts par des détections).",
        "moment",
        width=17,
    ),
    Column(
        "enregistré le", "Heure à laquelle l'incident a été créé dans Vigie.", "moment", width=17
    ),
    Column(
        "connaissance le",
        "Heure à laquelle l'établissement a eu connaissance de l'incident : départ des "
        "échéances NIS2.",
        "moment",
        width=17,
    ),
    Column(
        "systèmes touchés",
        "Systèmes ou hôtes touchés, séparés par des virgules (signalement national).",
        width=30,
    ),
    Column(
        "incident significatif",
        "oui si l'incident est significatif au sens de NIS2 et que ses échéances s'appliquent "
        "(par défaut : oui pour un incident déclaré, pour un incident détecté s'il est "
        f"critique ; un rapport envoyé le rend significatif) ; {_NOW}.",
        "bool",
        width=12,
    ),
    Column(
        "campagne",
        "Identifiant de la campagne nationale qui relie cet incident à ceux d'autres "
        "établissements (vue du CERT) ; toujours vide dans le registre d'un seul "
        "établissement, qui n'apprend pas qui d'autre a été touché.",
        width=38,
    ),
    *_deadline_columns(),
    Column(
        "statut à la date d'arrêté",
        "new (nouveau), acknowledged (pris en compte), contained (confiné), resolved (résolu) "
        "ou closed (clos), d'après les changements de statut enregistrés jusqu'à la date "
        "d'arrêté.",
        width=13,
    ),
    Column(
        "résolu le",
        "Heure du dernier passage au statut resolved avant la date d'arrêté, si l'incident "
        "était alors résolu ou clos.",
        "moment",
        width=17,
    ),
    Column(
        "clos le",
        "Heure du passage au statut closed avant la date d'arrêté, si l'incident était alors clos.",
        "moment",
        width=17,
    ),
)

SUMMARY: tuple[Column, ...] = (
    Column("échéance", "L'échéance NIS2.", width=16),
    Column("délai", "Le délai qu'elle laisse.", width=60),
    Column("met", "Incidents dont le rapport a été envoyé à temps.", "int", width=10),
    Column("missed", "Incidents dont l'échéance est manquée.", "int", width=10),
    Column(
        "pending", "Incidents dont l'échéance est à venir, rapport non envoyé.", "int", width=10
    ),
    Column("n/a", "Incidents non significatifs.", "int", width=10),
    Column("incidents", "Incidents du registre.", "int", width=10),
    Column(
        "taux de respect",
        "met / (met + missed) : part des échéances échues ou honorées qui l'ont été à temps ; "
        "vide s'il n'y en a aucune.",
        "percent",
        width=12,
    ),
)


def build(session: Session, params: Params, out: IO[bytes]) -> None:
    conditions = [Incident.created_at <= params.as_of, *scope.establishments(session, params)]
    rows = _rows(session, _query(params.as_of, conditions), params)
    if params.format == "csv":
        tables.CsvWriter(out, COLUMNS).rows(rows)
        return
    book = tables.Workbook(out, title=KINDS["registry"].title, as_of=params.as_of)
    book.sheet("registre", COLUMNS).rows(rows)
    book.sheet("synthese", SUMMARY).rows(_summary(session, params.as_of, conditions))
    book.definitions(
        [("document", _document(params)), ("registre", COLUMNS), ("synthese", SUMMARY)]
    )
    book.close()


# --- the rows ---------------------------------------------------------------------------------


def _state(kind: str, as_of: datetime) -> ColumnElement[str]:
    """The state of one deadline as of `as_of` (the module's docstring says which)."""
    done, due = getattr(Incident, f"{kind}_at"), getattr(Incident, f"{kind}_due")
    sent = and_(done.is_not(None), done <= as_of)
    return case(
        (Incident.notifiable.is_not(True), NOT_APPLICABLE),
        (and_(sent, done <= due), MET),
        (or_(sent, due < as_of), MISSED),
        else_=PENDING,
    )


def _status_changes(as_of: datetime) -> tuple[Any, Any, Any]:
    """Correlated subqueries on the incident's timeline: its status as of `as_of` (the status
    it left at its first change after `as_of`; its present status if none came after), the
    time of its last resolution and of its closure up to `as_of`."""
    change = and_(TimelineEntry.incident_id == Incident.id, TimelineEntry.kind == "status")
    left = (
        select(TimelineEntry.from_status)
        .where(change, TimelineEntry.at > as_of)
        .order_by(TimelineEntry.at, TimelineEntry.id)
        .limit(1)
        .scalar_subquery()
    )

    def last(status: Status) -> Any:
        return (
            select(func.max(TimelineEntry.at))
            .where(change, TimelineEntry.to_status == status, TimelineEntry.at <= as_of)
            .scalar_subquery()
        )

    return func.coalesce(left, Incident.status), last(Status.RESOLVED), last(Status.CLOSED)


def _query(as_of: datetime, conditions: Sequence[ColumnElement[bool]]) -> Select[Any]:
    columns: list[Any] = [
        Incident.id,
        Establishment.finess,
        Establishment.name,
        Establishment.kind,
        Establishment.region,
        Establishment.legal_status,
        Incident.origin,
        Incident.title,
        Incident.category,
        Incident.severity,
        Incident.care_impact,
        Incident.personal_data,
        Incident.cnil_notified_at,
        Incident.started_at,
        Incident.first_seen,
        Incident.created_at,
        Incident.aware_at,
        Incident.affected_systems,
        Incident.notifiable,
        Incident.campaign_id,
    ]
    for kind in nis2.KINDS:
        columns += [
            getattr(Incident, f"{kind}_due"),
            getattr(Incident, f"{kind}_at"),
            _state(kind, as_of),
        ]
    columns += _status_changes(as_of)
    return (
        select(*columns)
        .join(Establishment, Establishment.finess == Incident.establishment_finess)
        .where(*conditions)
        .order_by(Incident.aware_at, Incident.id)
    )


def _rows(session: Session, query: Select[Any], params: Params) -> Iterator[list[Any]]:
    as_of = params.as_of

    def by_then(moment: datetime | None) -> datetime | None:
        """A time recorded by `as_of`, else none (it had not happened yet)."""
        return moment if moment is not None and french.utc(moment) <= as_of else None

    for found in session.execute(query.execution_options(yield_per=BATCH)):
        values: tuple[Any, ...] = tuple(found)
        (
            incident_id, finess, name, kind, region, legal_status, origin, title, category,
            severity, care_impact, personal_data, cnil, started, first_seen, created, aware,
            systems, notifiable, campaign, *deadlines, status, resolved, closed,
        ) = values  # fmt: skip
        row = [
            incident_id, finess, name, kind, region, legal_status, origin, title, category,
            severity, care_impact, personal_data, by_then(cnil), started, first_seen, created,
            aware, ", ".join(systems or []), notifiable,
            None if params.finess else campaign,
        ]  # fmt: skip
        for i in range(0, len(deadlines), 3):
            due, done, state = deadlines[i : i + 3]
            row += [due if notifiable else None, by_then(done), state]
        row += [
            status,
            resolved if status in (Status.RESOLVED, Status.CLOSED) else None,
            closed if status == Status.CLOSED else None,
        ]
        yield row


# --- the summary ------------------------------------------------------------------------------


def _summary(
    session: Session, as_of: datetime, conditions: Sequence[ColumnElement[bool]]
) -> list[list[Any]]:
    """Per deadline, how many incidents are in each state: one aggregate query."""
    counts = [
        func.coalesce(func.sum(case((_state(kind, as_of) == state, 1), else_=0)), 0)
        for kind in nis2.KINDS
        for state in STATES
    ]
    query = (
        select(func.count(), *counts)
        .select_from(Incident)
        .join(Establishment, Establishment.finess == Incident.establishment_finess)
        .where(*conditions)
    )
    total, *found = (int(n) for n in session.execute(query).one())
    out = []
    for n, (name, delay) in enumerate(DEADLINES.values()):
        met, missed, pending, not_applicable = found[n * 4 : n * 4 + 4]
        judged = met + missed
        rate = met / judged if judged else None
        out.append([name, delay, met, missed, pending, not_applicable, total, rate])
    return out


def _document(params: Params) -> list[Column]:
    """What the registry covers, as rows of the definitions sheet."""
    if params.finess:
        covers = f"l'établissement FINESS {params.finess}"
    elif params.region:
        covers = f"les établissements de la région {params.region}"
    else:
        covers = "tous les établissements"
    return [
        Column(
            "date d'arrêté",
            f"{french.moment(params.as_of)} (heure de Paris, {french.iso(params.as_of)}) : le "
            "registre décrit les incidents et leurs échéances tels qu'ils étaient à ce moment ; "
            "les incidents enregistrés après n'y sont pas.",
        ),
        Column("périmètre", f"Incidents de {covers}, par ordre de prise de connaissance."),
        Column(
            "format CSV",
            "Le registre existe aussi en CSV : la feuille registre seule, mêmes colonnes ; "
            "séparateur point-virgule, UTF-8 avec BOM, heures de Paris avec leur décalage.",
        ),
    ]
