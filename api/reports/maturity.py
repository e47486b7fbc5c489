"""The maturity report of one establishment (research part B, R1): a PDF for people (A4, in
French, `maturity_pdf`) and an XLSX of its controls for spreadsheets, both from one read.

What it says is what was known at `as_of`: the establishment's latest snapshot of that day
or before that had been computed by then (a recompute later that day changes nothing), its
peers ranked on what was computed by then too, its score history over the 12 months before,
and the exceptions and profile declarations made by then, each in the state it had then (an
exception revoked later is reported as in force). The snapshot is read as the API reads it
(`maturity_read`), so the report and the dashboard never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import IO

from sqlalchemy.orm import Session

from api.errors import NotFound
from api.establishments.models import Establishment
from api.maturity import declarations, snapshots
from api.maturity.framework import Framework, default
from api.maturity.routes import maturity_read
from api.maturity.schemas import ControlRead, MaturityRead
from api.reports import french, runs
from api.reports.catalogue import Params
from api.reports.tables import Column, Workbook
from api.web.actions import BASIS_FR, EFFORT_FR, STATUS_FR
from api.web.render import KINDS as KINDS_FR

TREND_DAYS = 365
TOP_FIXES = 10
EVIDENCE_FR = {
    "automatic": "automatique",
    "questionnaire": "questionnaire",
    "both": "automatique et questionnaire",
}
EXCEPTION_FR = {"risk_accepted": "risque accepté", "compensated": "mesure compensatoire"}
STATE_FR = {"active": "en vigueur", "expired": "expirée", "revoked": "révoquée"}


@dataclass(frozen=True)
class Point:
    day: date
    score: float
    level: int
    coverage: float


@dataclass(frozen=True)
class ExceptionLine:
    """An exception as it stood at `as_of` (a later revocation is not known yet)."""

    control: str
    kind: str
    reason: str
    approver: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    revoked_by: str | None
    revoked_at: datetime | None
    state: str  # active | expired | revoked


@dataclass(frozen=True)
class ProfileLine:
    """The profile declaration the snapshot judged applicability by."""

    declared_by: str
    declared_at: datetime
    reason: str
    flags: dict[str, bool]


@dataclass(frozen=True)
class Contents:
    """Everything the report says, read once and rendered as PDF or XLSX."""

    as_of: datetime
    name: str
    kind: str  # the establishment's on the snapshot's day
    region: str
    legal_status: str | None
    read: MaturityRead
    history: list[Point]
    exceptions: list[ExceptionLine]
    profile: ProfileLine | None
    framework: Framework  # the one in force; `read.framework` is the one scored with
    versions: dict[str, str]

    @property
    def finess(self) -> str:
        return self.read.finess

    @property
    def kind_fr(self) -> str:
        return KINDS_FR.get(self.kind, self.kind)

    def title_of(self, control_id: str) -> str:
        return next((c.title for c in self.read.controls if c.id == control_id), "")

    def domain_title(self, domain_id: str) -> str:
        return next((d.title for d in self.read.domains if d.id == domain_id), domain_id)

    def contradictions(self) -> list[ControlRead]:
        return [c for c in self.read.controls if c.contradiction]

    def not_applicable(self) -> list[ControlRead]:
        return [c for c in self.read.controls if c.status == "na"]


def gather(session: Session, params: Params) -> Contents:
    """The report's contents as of `params.as_of`, or NotFound (no such establishment, or
    no score computed for it by then)."""
    as_of = french.utc(params.as_of)
    finess = (params.finess or "").strip().upper()
    establishment = session.get(Establishment, finess)
    if establishment is None:
        raise NotFound(f"no establishment {finess}")
    day = as_of.date()
    snapshot = snapshots.latest(session, finess, day, known_at=as_of)
    if snapshot is None:
        raise NotFound(
            f"no maturity score for {finess} as of {as_of.isoformat()}: "
            "run the maturity job first (aucun score de maturité à cette date)"
        )
    read = maturity_read(session, snapshot, known_at=as_of)
    history = [
        Point(s.as_of, s.score, s.level, s.coverage)
        for s in snapshots.history(
            session, finess, day - timedelta(days=TREND_DAYS), until=day, known_at=as_of
        )
    ]
    cutoff = min(french.utc(snapshots.cutoff_of(snapshot)), as_of)
    profile = None
    for declared in declarations.profile_history(session, finess):  # oldest first
        if french.utc(declared.declared_at) <= cutoff:
            profile = ProfileLine(
                declared.declared_by,
                french.utc(declared.declared_at),
                declared.reason,
                dict(declared.flags),
            )
    return Contents(
        as_of=as_of,
        name=establishment.name,
        kind=snapshot.kind,
        region=snapshot.region,
        legal_status=establishment.legal_status,
        read=read,
        history=history,
        exceptions=_exceptions(session, finess, as_of),
        profile=profile,
        framework=default(),
        versions=runs.versions(),
    )


def _exceptions(session: Session, finess: str, as_of: datetime) -> list[ExceptionLine]:
    found = []
    for x in declarations.exceptions(session, finess):  # by creation time, then id
        created = french.utc(x.created_at)
        if created > as_of:
            continue
        expires = french.utc(x.expires_at)
        revoked = french.utc(x.revoked_at) if x.revoked_at is not None else None
        if revoked is not None and revoked > as_of:
            revoked = None  # not yet
        state = "revoked" if revoked else "expired" if expires <= as_of else "active"
        found.append(
            ExceptionLine(
                x.control_id,
                x.kind,
                x.reason,
                x.approver,
                x.created_by,
                created,
                expires,
                x.revoked_by if revoked else None,
                revoked,
                state,
            )
        )
    return found


def build(session: Session, params: Params, out: IO[bytes]) -> None:
    contents = gather(session, params)
    if params.format == "pdf":
        from api.reports import maturity_pdf

        out.write(maturity_pdf.render(contents))
    else:
        write_xlsx(contents, out)


# --- XLSX ---------------------------------------------------------------------------------

CONTROLS = [
    Column("mesure", "identifiant de la mesure dans le référentiel", width=10),
    Column("intitulé", "ce que la mesure demande", width=50),
    Column("domaine", "identifiant du domaine", width=9),
    Column("domaine (intitulé)", "intitulé du domaine", width=28),
    Column("niveau", "niveau de maturité auquel la mesure compte (2 à 4)", "int", width=8),
    Column("critique", "une mesure critique non remplie bloque son niveau", "bool", width=9),
    Column("poids", "poids de la mesure dans son domaine", "float", width=8),
    Column("statut", "statut en français", width=16),
    Column("code statut", "statut tel que l'API le donne (pass, partial, fail, ...)", width=14),
    Column("score", "score de la mesure, de 0 à 100 %", "percent", decimals=0, width=9),
    Column("type de preuve", "automatique, questionnaire, ou les deux", width=16),
    Column("base", "ce qui a fondé le score : observé, déclaré, prouvé", width=16),
    Column("explication", "pourquoi ce statut, en une phrase", width=70),
    Column("preuves", "ce qui a été vu ou déclaré, preuve par preuve", width=70),
    Column("lien", "où lire les enregistrements derrière la preuve (API Vigie)", width=40),
    Column("contradiction", "la déclaration contredit ce que Vigie observe", "bool", width=13),
    Column("CaRE", "références du programme CaRE", width=14),
    Column("ANSSI", "mesures du guide d'hygiène de l'ANSSI", width=10),
    Column("CIS", "CIS Controls v8", width=12),
    Column("que faire", "la correction proposée", width=70),
]
DOMAINS = [
    Column("domaine", "identifiant du domaine", width=9),
    Column("intitulé", "intitulé du domaine", width=34),
    Column("poids", "poids du domaine dans le score global", "float", width=8),
    Column("score", "score du domaine (0 à 100), vide : aucune mesure applicable", "float"),
    Column("mesures applicables", "mesures du domaine qui s'appliquent", "int"),
    Column("conformes", "mesures applicables au statut conforme", "int"),
]
FIXES = [
    Column("rang", "ordre de la liste : ce qui débloque un niveau, puis gain par effort", "int"),
    Column("mesure", "identifiant de la mesure", width=10),
    Column("intitulé", "ce que la mesure demande", width=50),
    Column("gain", "points de score global gagnés si la mesure était remplie", "float", 2),
    Column("débloque le niveau", "le niveau atteint grâce à elle seule, s'il change", "int"),
    Column("effort", "faible, moyen ou important", width=10),
    Column("que faire", "la correction proposée", width=80),
]
EXCEPTIONS = [
    Column("mesure", "identifiant de la mesure", width=10),
    Column("type", "risque accepté ou mesure compensatoire", width=20),
    Column("motif", "la justification déclarée", width=60),
    Column("approuvée par", "qui l'a signée", width=24),
    Column("déclarée par", "le compte qui l'a saisie", width=18),
    Column("déclarée le", "quand (heure de Paris)", "moment", width=17),
    Column("expire le", "fin de validité (heure de Paris)", "moment", width=17),
    Column("révoquée par", "le compte qui l'a révoquée, à la date du rapport", width=18),
    Column("révoquée le", "quand, à la date du rapport", "moment", width=17),
    Column("état", "en vigueur, expirée ou révoquée à la date du rapport", width=12),
]
NOT_APPLICABLE = [
    Column("mesure", "identifiant de la mesure", width=10),
    Column("intitulé", "ce que la mesure demande", width=50),
    Column("motif", "ce que le profil déclare", width=50),
    Column("profil déclaré par", "le compte qui a déclaré le profil en vigueur", width=18),
    Column("profil déclaré le", "quand (heure de Paris)", "moment", width=17),
    Column("raison donnée", "la raison donnée avec le profil", width=50),
]
CONTRADICTIONS = [
    Column("mesure", "identifiant de la mesure", width=10),
    Column("intitulé", "ce que la mesure demande", width=50),
    Column("déclaré", "la réponse de l'établissement", width=50),
    Column("observé", "ce que Vigie a vu (c'est ce qui compte)", width=50),
    Column("score retenu", "score de la mesure, de 0 à 100 %", "percent", decimals=0),
]
HISTORY = [
    Column("jour", "jour de l'instantané (le dernier calculé ce jour-là)", "date", width=12),
    Column("score", "score global (0 à 100)", "float", decimals=2),
    Column("niveau", "niveau de maturité (1 à 5)", "int"),
    Column("couverture", "part du poids des mesures avec une preuve à jour", "percent"),
]
SUMMARY = [
    Column("rubrique", "ce que dit la ligne", width=34),
    Column("valeur", "sa valeur, écrite en français", width=80),
]


def write_xlsx(c: Contents, out: IO[bytes]) -> None:
    book = Workbook(out, title=f"Maturité {c.finess} au {french.day(c.as_of)}", as_of=c.as_of)
    book.sheet("synthese", SUMMARY).rows(summary_rows(c))
    controls = book.sheet("mesures", CONTROLS)
    domains = {d.id: d.title for d in c.read.domains}
    for x in c.read.controls:
        controls.row(
            [
                x.id,
                x.title,
                x.domain,
                domains.get(x.domain, x.domain),
                x.level,
                x.critical,
                x.weight,
                STATUS_FR.get(x.status, x.status),
                x.status,
                x.score,
                EVIDENCE_FR.get(x.evidence_kind, x.evidence_kind),
                BASIS_FR.get(x.basis, x.basis) if x.basis else None,
                x.explanation,
                evidence_said(x),
                next((e["link"] for e in x.evidence if e.get("link")), None),
                x.contradiction,
                ", ".join(x.refs.care),
                ", ".join(x.refs.anssi),
                ", ".join(x.refs.cis),
                x.remediation,
            ]
        )
    sheet = book.sheet("domaines", DOMAINS)
    for d in c.read.domains:
        mine = [x for x in c.read.controls if x.domain == d.id and x.status != "na"]
        passed = sum(x.status == "pass" for x in mine)
        sheet.row([d.id, d.title, d.weight, d.score, len(mine), passed])
    sheet = book.sheet("corrections", FIXES)
    for rank, f in enumerate(c.read.fixes, 1):
        sheet.row([rank, f.control, c.title_of(f.control), f.gain, f.unlocks_level,
                   EFFORT_FR.get(f.effort, str(f.effort)), f.remediation])  # fmt: skip
    sheet = book.sheet("exceptions", EXCEPTIONS)
    for e in c.exceptions:
        sheet.row([e.control, EXCEPTION_FR.get(e.kind, e.kind), e.reason, e.approver,
                   e.created_by, e.created_at, e.expires_at, e.revoked_by, e.revoked_at,
                   STATE_FR[e.state]])  # fmt: skip
    sheet = book.sheet("non_applicables", NOT_APPLICABLE)
    p = c.profile
    for x in c.not_applicable():
        sheet.row([x.id, x.title, x.explanation, p.declared_by if p else None,
                   p.declared_at if p else None, p.reason if p else None])  # fmt: skip
    sheet = book.sheet("contradictions", CONTRADICTIONS)
    for x in c.contradictions():
        declared, seen = sides(x)
        sheet.row([x.id, x.title, declared, seen, x.score])
    book.sheet("evolution", HISTORY).rows([p.day, p.score, p.level, p.coverage] for p in c.history)
    book.definitions(
        [
            ("synthese", SUMMARY),
            ("mesures", CONTROLS),
            ("domaines", DOMAINS),
            ("corrections", FIXES),
            ("exceptions", EXCEPTIONS),
            ("non_applicables", NOT_APPLICABLE),
            ("contradictions", CONTRADICTIONS),
            ("evolution", HISTORY),
        ]
    )
    book.close()


def summary_rows(c: Contents) -> list[tuple[str, str]]:
    """Identity and headline figures, as the PDF's cover and summary give them."""
    r = c.read
    level_name = f" · {r.level_name}" if r.level_name else ""
    return [
        ("FINESS", c.finess),
        ("Établissement", c.name),
        ("Catégorie", c.kind_fr),
        ("Région", c.region),
        (
            "Situation au",
            f"{french.long_day(french.utc(c.as_of).astimezone(french.PARIS).date())}"
            f" ({french.moment(c.as_of)}, heure de Paris)",
        ),  # fmt: skip
        ("Instantané", f"du {french.day(r.as_of)}, calculé le {french.moment(r.computed_at)}"),
        ("Référentiel", f"{r.framework.id} version {r.framework.version}"),
        ("Empreinte du référentiel (SHA-256)", r.framework.digest),
        ("Empreinte des données (SHA-256)", r.inputs_digest),
        ("Score", f"{french.number(r.score, 1)} / 100"),
        ("Niveau", f"{r.level} / 5{level_name}"),
        ("Couverture", french.percent(r.coverage)),
        ("Preuves", french.percent(r.proof_ratio)),
        ("Parmi les comparables", percentile_said(r)),
    ]


def percentile_said(r: MaturityRead) -> str:
    p = r.percentile
    if p.value is None:
        return f"pas de rang : {p.label} ({french.number(p.peers)} en tout)"
    quartiles = ""
    if p.quartiles:
        quartiles = " ; quartiles du groupe " + " · ".join(french.number(q, 1) for q in p.quartiles)
    return (
        f"percentile {french.number(p.value, 1)} sur {french.number(p.peers)} établissements "
        f"({p.label}){quartiles}"
    )


def evidence_said(x: ControlRead) -> str:
    """Each piece of evidence in one line: what it is, what it showed."""
    kinds = {"automatic": "observé", "declared": "déclaré", "proven": "prouvé",
             "exception": "exception"}  # fmt: skip
    parts = []
    for e in x.evidence:
        said = f"{kinds.get(e.get('kind', ''), e.get('kind', ''))} : {e.get('summary', '')}"
        if e.get("proof_sha256"):
            said += f" (preuve SHA-256 {e['proof_sha256']})"
        parts.append(said)
    return " | ".join(parts)


def sides(x: ControlRead) -> tuple[str, str]:
    """A contradiction's two sides: what was declared, what Vigie saw."""
    declared = " ".join(e["summary"] for e in x.evidence if e.get("kind") in ("declared", "proven"))
    seen = " ".join(e["summary"] for e in x.evidence if e.get("kind") == "automatic")
    return declared or french.NONE, seen or french.NONE
