"""Pages that act: declaring an incident, the maturity score and questionnaire, publishing
and withdrawing alerts.

Each form posts to the same service function as the JSON route it mirrors, with the same
principal, and audits the same way. A refused value brings the form back filled, with the
reasons in French (422); another establishment's object answers as an absent one (404,
audited as `denied` by the session dependency), as in the API.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Annotated, Any, get_args
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.alerts import routes as alert_routes
from api.alerts import service as alert_service
from api.alerts.models import Severity as AlertSeverity
from api.alerts.models import Tlp
from api.alerts.schemas import CVE, AlertCreate, IndicatorKind
from api.audit.service import record_request
from api.deps import Principal, SessionDep
from api.errors import Invalid, NotFound, NotYours
from api.establishments import service as establishments
from api.establishments.finess import Region
from api.establishments.schemas import Kind
from api.incidents import routes as incident_routes
from api.incidents import service as incidents
from api.incidents.models import CareImpact, Category, Severity
from api.incidents.schemas import IncidentDeclare
from api.maturity import declarations, snapshots
from api.maturity import routes as maturity_routes
from api.maturity.framework import PROFILE_FLAGS, Control, default
from api.maturity.schemas import AnswerWrite, ProfileWrite
from api.maturity.scoring import CHOICE_FR, CHOICES
from api.roles import Role
from api.web import forms
from api.web.deps import Viewer, viewer
from api.web.forms import Posted, Refused, text, texts
from api.web.pages import roles
from api.web.render import page
from detection.indicators import IndicatorError, normalise

router = APIRouter(prefix="/ui", include_in_schema=False)

# --- declaring an incident ---------------------------------------------------------------------

IncidentWriter = Annotated[Viewer, Depends(viewer(*incident_routes.WRITERS))]

CATEGORIES = {
    Category.RANSOMWARE: "Rançongiciel",
    Category.PHISHING: "Hameçonnage",
    Category.DATA_BREACH: "Fuite ou vol de données",
    Category.DENIAL_OF_SERVICE: "Déni de service",
    Category.INTRUSION: "Intrusion",
    Category.UNAVAILABILITY: "Indisponibilité d'un système",
    Category.OTHER: "Autre",
    Category.EXERCISE: "Exercice de crise (joué comme réel)",
}
CARE_IMPACTS = {
    CareImpact.UNKNOWN: "Inconnu à ce stade",
    CareImpact.NONE: "Aucun",
    CareImpact.DEGRADED: "Soins maintenus en mode dégradé",
    CareImpact.INTERRUPTED: "Soins interrompus ou patients transférés",
}
INCIDENT_LABELS = {
    "establishment": "FINESS de l'établissement",
    "title": "Titre",
    "category": "Catégorie",
    "severity": "Sévérité",
    "care_impact": "Impact sur les soins",
    "personal_data": "Données personnelles",
    "aware_at": "Prise de connaissance",
    "started_at": "Début",
    "affected_systems": "Systèmes touchés",
    "description": "Description",
    "notifiable": "Incident significatif",
}
# The service's refusals, by their first words (its messages are the API's, in English).
DECLARE_REFUSALS = (
    ("say which establishment", "Indiquez le FINESS de l'établissement concerné."),
    ("aware_at is in the future",
     "Prise de connaissance : cette heure est dans le futur."),
    ("started_at is after aware_at",
     "Début : il précède forcément la prise de connaissance (ou laissez-le vide)."),
    ("affected system", "Systèmes touchés : de 1 à 200 caractères par ligne."),
)  # fmt: skip


def _declare_page(
    request: Request, v: Viewer, typed: dict[str, str], errors: list[str], status: int = 200
) -> HTMLResponse:
    return page(
        request,
        "incident_new.html",
        {
            "v": v,
            "f": typed,
            "errors": errors,
            "CATEGORIES": CATEGORIES,
            "CARE_IMPACTS": CARE_IMPACTS,
            "severities": [str(s) for s in Severity],
        },
        status,
    )


@router.get("/incidents/new", **roles(*incident_routes.WRITERS))
def declare_form(request: Request, v: IncidentWriter) -> HTMLResponse:
    """CERT, admin, an establishment (for itself): the national incident report's form."""
    typed = {
        "aware_at": forms.paris_input(datetime.now(UTC)),
        "severity": str(Severity.MEDIUM),
        "care_impact": str(CareImpact.UNKNOWN),
        "notifiable": "on",
    }
    return _declare_page(request, v, typed, [])


@router.post("/incidents/new", **roles(*incident_routes.WRITERS))
def declare(request: Request, session: SessionDep, v: IncidentWriter, form: Posted) -> Response:
    """As POST /incidents: `incidents.service.declare` with the same principal, audited as
    `create`. Times are typed in Paris time and stored in UTC."""
    names = ("establishment", "title", "category", "severity", "care_impact", "personal_data",
             "aware_at", "started_at", "affected_systems", "description", "notifiable")  # fmt: skip
    typed = {name: text(form, name) for name in names}
    try:
        data = _declaration(typed)
        incident = incidents.declare(session=session, who=v.who, data=data)
    except Refused as exc:
        return _declare_page(request, v, typed, exc.reasons, 422)
    except NotYours:
        raise  # another establishment's: answered as absent, and audited as refused
    except NotFound:
        unknown = f"Aucun établissement suivi n'a le FINESS « {typed['establishment'].strip()} »."
        return _declare_page(request, v, typed, [unknown], 422)
    except Invalid as exc:
        reason = forms.said(exc.detail, DECLARE_REFUSALS, "Déclaration refusée")
        return _declare_page(request, v, typed, [reason], 422)
    record_request(request, session, v.who, "create", "incident", incident.id)
    return RedirectResponse(f"/ui/incidents/{incident.id}", status_code=303)


def _declaration(typed: dict[str, str]) -> IncidentDeclare:
    """The form's text as the JSON route's body, or `Refused` with every reason."""
    reasons: list[str] = []
    values: dict[str, Any] = {
        "establishment": typed["establishment"].strip() or None,
        "title": typed["title"].strip(),
        "category": typed["category"] or None,
        "severity": typed["severity"] or None,
        "care_impact": typed["care_impact"] or None,
        "description": typed["description"].strip(),
        "affected_systems": forms.lines(typed["affected_systems"]),
        "notifiable": typed["notifiable"] == "on",
    }
    values["personal_data"] = {"oui": True, "non": False}.get(typed["personal_data"])
    unread: set[str] = set()
    for name in ("aware_at", "started_at"):
        try:
            values[name] = forms.paris_time(typed[name], INCIDENT_LABELS[name])
        except Refused as exc:
            reasons += exc.reasons
            unread.add(name)  # said once: not also "à remplir"
    try:
        data = IncidentDeclare.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise Refused(reasons + forms.french(exc, INCIDENT_LABELS, skip=unread)) from None
    if reasons:
        raise Refused(reasons)
    return data


# --- maturity: the score -----------------------------------------------------------------------

MaturityReader = Annotated[Viewer, Depends(viewer(*maturity_routes.READERS))]
EstablishmentOnly = Annotated[Viewer, Depends(viewer(Role.ESTABLISHMENT))]
FinessPath = Annotated[str, Path(min_length=9, max_length=11)]

STATUS_FR = {
    "pass": "conforme",
    "partial": "partiel",
    "fail": "non conforme",
    "no_evidence": "sans preuve",
    "stale": "preuve périmée",
    "na": "non applicable",
    "risk_accepted": "risque accepté",
    "compensated": "compensé",
}
EFFORT_FR = {1: "faible", 2: "moyen", 3: "important"}
BASIS_FR = {"automatic": "observé par Vigie", "declared": "déclaré", "proven": "prouvé"}


def _mine(session: Session, who: Principal, finess: str) -> str:
    """As the JSON routes: the FINESS when `who` may see it; another's answers as absent."""
    return establishments.get(session=session, who=who, finess=finess).finess


@router.get("/maturity", **roles(*maturity_routes.READERS))
def maturity_home(
    request: Request,
    session: SessionDep,
    v: MaturityReader,
    finess: Annotated[str | None, Query(max_length=11)] = None,
) -> Response:
    """An establishment: its own score. National readers: which establishment to read."""
    if v.who.scope is not None:
        return _maturity(request, session, v, v.who.scope)
    if finess and finess.strip():
        return RedirectResponse(f"/ui/maturity/{quote(finess.strip())}", status_code=303)
    return page(request, "maturity_pick.html", {"v": v})


@router.get("/maturity/questionnaire", **roles(Role.ESTABLISHMENT))
def questionnaire(request: Request, session: SessionDep, v: EstablishmentOnly) -> HTMLResponse:
    """An establishment: the controls its answers score, each with its answers and a form."""
    return _questionnaire(request, session, v)


@router.get("/maturity/profile", **roles(Role.ESTABLISHMENT))
def profile(request: Request, session: SessionDep, v: EstablishmentOnly) -> HTMLResponse:
    """An establishment: what makes controls applicable (flags, sites, expected sources)."""
    return _profile(request, session, v)


@router.get("/maturity/{finess}", **roles(*maturity_routes.READERS))
def maturity_of(
    finess: FinessPath, request: Request, session: SessionDep, v: MaturityReader
) -> HTMLResponse:
    """Every reader (an establishment: its own only): the latest snapshot and its history."""
    return _maturity(request, session, v, finess)


def _maturity(request: Request, session: Session, v: Viewer, finess: str) -> HTMLResponse:
    who = v.who
    item = establishments.get(session=session, who=who, finess=finess)
    finess = item.finess
    snapshot = snapshots.latest(session, finess, None)
    doc = None
    if snapshot is not None:  # as GET /establishments/{finess}/maturity
        record_request(request, session, who, "read", "maturity", finess,
                       f"snapshot {snapshot.id}")  # fmt: skip
        doc = maturity_routes.maturity_read(session, snapshot)
    points = snapshots.history(session, finess, None)  # as GET .../maturity/history
    record_request(request, session, who, "read", "maturity_history", finess)
    chart = {
        "x": [int(datetime.combine(p.as_of, time(), UTC).timestamp()) for p in points],
        "series": [
            {"label": "score (0 à 100)", "values": [p.score for p in points]},
            {"label": "couverture (%)", "values": [round(100 * p.coverage, 1) for p in points]},
        ],
        "range": [0, 100],
    }
    answers = f"/establishments/{finess}/maturity/answers/"

    def page_of(link: str) -> str | None:
        """An evidence link the dashboard shows itself (its own answers), else None."""
        if who.scope == finess and link.startswith(answers):
            return f"/ui/maturity/questionnaire#c-{link.removeprefix(answers)}"
        return None

    framework = default()
    titles = {c.id: c.title for c in framework.controls}
    domains = {d.id: d.title for d in framework.domains}
    return page(
        request,
        "maturity.html",
        {
            "v": v,
            "e": item,
            "m": doc,
            "points": points,
            "chart": chart,
            "titles": titles,
            "domains": domains,
            "own": who.scope == finess,
            "page_of": page_of,
            "STATUS_FR": STATUS_FR,
            "EFFORT_FR": EFFORT_FR,
            "BASIS_FR": BASIS_FR,
        },
    )


# --- maturity: the questionnaire ---------------------------------------------------------------

ANSWER_REFUSALS = (
    ("choice is one of", "Choisissez une réponse de l'échelle."),
    ("this question is answered with", "Donnez une réponse."),
    ("date ", "La date ne peut pas être dans le futur."),  # "date D is in the future"
)


def _asked(control: Control) -> bool:
    evidence = control.evidence
    return evidence.kind in ("questionnaire", "both") and evidence.question is not None


def _questionnaire(
    request: Request,
    session: Session,
    v: Viewer,
    errors: dict[str, list[str]] | None = None,
    typed: dict[str, dict[str, str]] | None = None,
    status: int = 200,
) -> HTMLResponse:
    finess = _mine(session, v.who, v.who.scope or "-")
    framework = default()
    groups: dict[str, list[dict[str, Any]]] = {}  # by domain, in the framework's order
    for control in framework.controls:
        if not _asked(control):
            continue
        history = declarations.answers(session, finess, control.id)
        current = history[-1] if history else None
        groups.setdefault(framework.domain(control.domain).title, []).append(
            {
                "c": control,
                "q": control.evidence.question,
                "current": current,
                "history": list(reversed(history)),
                "typed": (typed or {}).get(control.id) or _as_typed(current),
                "errors": (errors or {}).get(control.id, []),
            }
        )
    asked = [i["c"].id for items in groups.values() for i in items]
    # As GET .../answers/{control} for each control read, in one entry naming them all.
    record_request(request, session, v.who, "read", "maturity_answer", finess, " ".join(asked))
    return page(
        request,
        "questionnaire.html",
        {
            "v": v,
            "finess": finess,
            "groups": groups,
            "count": len(asked),
            "CHOICES": list(CHOICES),
            "CHOICE_FR": CHOICE_FR,
            "saved": request.query_params.get("saved"),
            "today": datetime.now(UTC).date().isoformat(),
        },
        status,
    )


def _as_typed(answer: Any) -> dict[str, str]:
    """The current answer, to fill its form with."""
    if answer is None:
        return {}
    value = answer.value
    if "number" in value:
        number = float(value["number"])
        return {"number": f"{number:g}"}
    return {k: str(value[k]) for k in ("choice", "date") if k in value}


@router.post("/maturity/questionnaire/{control_id}", **roles(Role.ESTABLISHMENT))
def answer(
    control_id: Annotated[str, Path(pattern=r"^[A-Z]{2,5}-[0-9]{2}$")],
    request: Request,
    session: SessionDep,
    v: EstablishmentOnly,
    form: Posted,
) -> Response:
    """As PUT /establishments/{finess}/maturity/answers/{control}: its own establishment's
    answer (a new one; the history stays), audited as `answer`."""
    finess = _mine(session, v.who, v.who.scope or "-")
    control = declarations.control(control_id)  # unknown: 404
    typed = {k: text(form, k) for k in ("choice", "date", "number", "comment")}
    try:
        body = _answer_body(control, typed)
        today = datetime.now(UTC).date()
        row = declarations.answer(session, finess, control_id, v.who.username,
                                  body.model_dump(), today)  # fmt: skip
    except Refused as exc:
        return _questionnaire(request, session, v, {control_id: exc.reasons},
                              {control_id: typed}, 422)  # fmt: skip
    except Invalid as exc:
        reason = forms.said(exc.detail, ANSWER_REFUSALS, "Réponse refusée")
        return _questionnaire(request, session, v, {control_id: [reason]},
                              {control_id: typed}, 422)  # fmt: skip
    record_request(request, session, v.who, "answer", "maturity_answer", finess,
                   f"{control_id} {row.value} proof {row.proof_id}")  # fmt: skip
    return RedirectResponse(
        f"/ui/maturity/questionnaire?saved={control_id}#c-{control_id}", status_code=303
    )


def _answer_body(control: Control, typed: dict[str, str]) -> AnswerWrite:
    question = control.evidence.question
    if question is None:
        raise Refused([f"{control.id} est évaluée sur ce que Vigie observe : elle ne pose pas de "
                       "question."])  # fmt: skip
    values: dict[str, Any] = {"comment": typed["comment"].strip() or None}
    if question.type == "scale":
        if not typed["choice"]:
            raise Refused(["Choisissez une réponse."])
        values["choice"] = typed["choice"]
    elif question.type == "date":
        values["date"] = forms.day(typed["date"], "Date")
        if values["date"] is None:
            raise Refused(["Date : à remplir."])
    else:
        values["number"] = forms.number(typed["number"], "Valeur")
        if values["number"] is None:
            raise Refused(["Valeur : à remplir."])
    try:
        return AnswerWrite.model_validate(values)
    except ValidationError as exc:
        labels = {"choice": "Réponse", "date": "Date", "number": "Valeur", "comment": "Commentaire"}
        raise Refused(forms.french(exc, labels)) from None


# --- maturity: the profile ---------------------------------------------------------------------

FLAG_FR = {
    "has_active_directory": "Un annuaire Active Directory",
    "has_dicom": "De l'imagerie DICOM (PACS, modalités)",
    "has_hl7": "Des flux HL7 entre applications",
    "publishes_internet_services": "Des services publiés sur Internet",
    "has_remote_access": "Des accès à distance (VPN, prestataires)",
    "ght_member": "Membre d'un GHT",
    "has_backup_infrastructure": "Une infrastructure de sauvegarde",
}
SOURCES_FR = {
    "network": "Réseau (sonde)",
    "windows": "Journaux Windows",
    "logs": "Autres journaux (syslog)",
}
PROFILE_LISTS = ("sites", "server_hosts", "admin_hosts", "resolvers")
PROFILE_LABELS = {
    "flags": "Caractéristiques",
    "sites": "Sites",
    "expected_sources": "Sources attendues",
    "server_hosts": "Serveurs",
    "admin_hosts": "Postes d'administration",
    "resolvers": "Résolveurs DNS",
    "reason": "Motif",
}


def _profile(
    request: Request,
    session: Session,
    v: Viewer,
    errors: list[str] | None = None,
    typed: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    finess = _mine(session, v.who, v.who.scope or "-")
    history = declarations.profile_history(session, finess)  # as GET .../maturity/profile
    record_request(request, session, v.who, "read", "maturity_profile", finess)
    current = history[-1] if history else None
    if typed is None:
        typed = {
            "flags": {
                f: ("" if current is None or f not in current.flags
                    else "oui" if current.flags[f] else "non")
                for f in PROFILE_FLAGS
            },
            "expected_sources": list(current.expected_sources) if current else [],
            **{n: "\n".join(getattr(current, n)) if current else "" for n in PROFILE_LISTS},
            "reason": "",
        }  # fmt: skip
    return page(
        request,
        "maturity_profile.html",
        {
            "v": v,
            "finess": finess,
            "f": typed,
            "errors": errors or [],
            "history": list(reversed(history)),
            "FLAGS": PROFILE_FLAGS,
            "FLAG_FR": FLAG_FR,
            "SOURCES_FR": SOURCES_FR,
            "saved": request.query_params.get("saved") == "1",
        },
        status,
    )


@router.post("/maturity/profile", **roles(Role.ESTABLISHMENT))
def declare_profile(
    request: Request, session: SessionDep, v: EstablishmentOnly, form: Posted
) -> Response:
    """As PUT /establishments/{finess}/maturity/profile: a new declaration, audited as
    `declare` with what changed and why."""
    finess = _mine(session, v.who, v.who.scope or "-")
    typed: dict[str, Any] = {
        "flags": {f: text(form, f"flag-{f}") for f in PROFILE_FLAGS},
        "expected_sources": texts(form, "expected_sources"),
        **{n: text(form, n) for n in PROFILE_LISTS},
        "reason": text(form, "reason"),
    }
    flags = {f: said == "oui" for f, said in typed["flags"].items() if said in ("oui", "non")}
    try:
        body = ProfileWrite.model_validate(
            {
                "flags": flags,
                "expected_sources": typed["expected_sources"],
                **{n: forms.lines(typed[n]) for n in PROFILE_LISTS},
                "reason": typed["reason"].strip(),
            }
        )
        _row, changes = declarations.declare_profile(session, finess, v.who.username,
                                                    body.model_dump())  # fmt: skip
    except ValidationError as exc:
        return _profile(request, session, v, forms.french(exc, PROFILE_LABELS), typed, 422)
    except Invalid as exc:
        return _profile(request, session, v, [f"Profil refusé : {exc.detail}"], typed, 422)
    said = "; ".join(f"{k}: {before!r} -> {after!r}" for k, (before, after) in changes.items())
    record_request(request, session, v.who, "declare", "maturity_profile", finess,
                   f"{said or 'no change'} (reason: {body.reason})"[:2000])  # fmt: skip
    return RedirectResponse("/ui/maturity/profile?saved=1", status_code=303)


# --- the CERT's alerts -------------------------------------------------------------------------

AlertWriter = Annotated[Viewer, Depends(viewer(*alert_routes.WRITERS))]
TLP_FR = {
    Tlp.CLEAR: "TLP:CLEAR — diffusion libre",
    Tlp.GREEN: "TLP:GREEN — la communauté de santé",
    Tlp.AMBER: "TLP:AMBER — l'établissement et ses prestataires, au besoin",
    Tlp.AMBER_STRICT: "TLP:AMBER+STRICT — l'établissement seulement",
    Tlp.RED: "TLP:RED — les seuls destinataires nommés",
}
INDICATOR_KINDS: tuple[str, ...] = get_args(IndicatorKind)
INDICATOR_FR = {
    "ip": "une adresse IP",
    "domain": "un nom de domaine",
    "url": "une URL http(s) ou ftp",
    "md5": "une empreinte MD5 (32 chiffres hexadécimaux)",
    "sha1": "une empreinte SHA-1 (40 chiffres hexadécimaux)",
    "sha256": "une empreinte SHA-256 (64 chiffres hexadécimaux)",
}
ALERT_LABELS = {
    "title": "Titre",
    "description": "Description",
    "severity": "Sévérité",
    "tlp": "TLP",
    "products": "Produits concernés",
    "cves": "CVE",
    "indicators": "Indicateurs",
    "target": "Destinataires",
    "retro_hunt_days": "Recherche rétrospective",
}


def _alert_page(
    request: Request, v: Viewer, typed: dict[str, Any], errors: list[str], status: int = 200
) -> HTMLResponse:
    return page(
        request,
        "alert_new.html",
        {
            "v": v,
            "f": typed,
            "errors": errors,
            "severities": [str(s) for s in AlertSeverity],
            "TLP_FR": TLP_FR,
            "regions": [str(r) for r in Region],
            "kinds": [str(k) for k in Kind],
            "INDICATOR_KINDS": INDICATOR_KINDS,
        },
        status,
    )


@router.get("/alerts/new", **roles(*alert_routes.WRITERS))
def alert_form(request: Request, v: AlertWriter) -> HTMLResponse:
    """CERT, admin: the form to publish an alert."""
    days = request.app.state.settings.retro_hunt_days
    typed = {"severity": "high", "tlp": str(Tlp.AMBER), "target": "all", "regions": [],
             "kinds": [], "retro_hunt_days": str(days)}  # fmt: skip
    return _alert_page(request, v, typed, [])


@router.post("/alerts/new", **roles(*alert_routes.WRITERS))
def publish_alert(
    request: Request,
    tasks: BackgroundTasks,
    session: SessionDep,
    v: AlertWriter,
    form: Posted,
) -> Response:
    """As POST /alerts: `alerts.service.create`, audited as `create`, its retro-hunt
    scheduled once the answer is out, and the live rules told."""
    typed: dict[str, Any] = {
        k: text(form, k)
        for k in ("title", "description", "severity", "tlp", "indicators", "products", "cves",
                  "target", "retro_hunt_days")
    }  # fmt: skip
    typed["regions"] = texts(form, "regions")
    typed["kinds"] = texts(form, "kinds")
    settings = request.app.state.settings
    live = request.app.state.live_rules
    try:
        body = _alert_body(typed)
        alert = alert_service.create(
            session=session,
            who=v.who,
            data=body,
            default_days=settings.retro_hunt_days,
            cache=live.cache,
            reserved=live.own_rule_ids,
        )
    except Refused as exc:
        return _alert_page(request, v, typed, exc.reasons, 422)
    except Invalid as exc:
        return _alert_page(request, v, typed, [f"Alerte refusée : {exc.detail}"], 422)
    record_request(request, session, v.who, "create", "alert", alert.id)
    # The JSON route's own steps: the hunt marked pending and run after the answer, the
    # bundles rebuilt as soon as the commit shows.
    alert_routes._hunt_later(request, tasks, session, alert)
    live.published(alert.bundle_version)
    return RedirectResponse(f"/ui/alerts/{alert.id}", status_code=303)


def _alert_body(typed: dict[str, Any]) -> AlertCreate:
    reasons: list[str] = []
    indicators = []
    for number, line in enumerate(typed["indicators"].splitlines(), start=1):
        if not line.strip():
            continue
        kind, _, value = line.strip().partition(" ")
        kind, value = kind.lower(), value.strip()
        if kind not in INDICATOR_KINDS:
            known = ", ".join(INDICATOR_KINDS)
            reasons.append(f"Indicateurs, ligne {number} : « type valeur », le type parmi {known}.")
            continue
        try:
            indicators.append({"type": kind, "value": normalise(kind, value)})
        except IndicatorError:
            reasons.append(f"Indicateurs, ligne {number} : « {value[:80]} » n'est pas "
                           f"{INDICATOR_FR[kind]}.")  # fmt: skip
    cves = forms.lines(typed["cves"])
    for cve in cves:
        if not CVE.match(cve.upper()):
            reasons.append(f"CVE : « {cve[:40]} » n'est pas un identifiant CVE-AAAA-NNNN.")
    if typed["target"] == "all":
        target: dict[str, Any] = {"all": True}
    else:
        target = {"regions": typed["regions"], "kinds": typed["kinds"]}
        if not typed["regions"] and not typed["kinds"]:
            reasons.append("Destinataires : tous les établissements, ou au moins une région "
                           "ou un type.")  # fmt: skip
    days: int | None = None
    try:
        found = forms.number(typed["retro_hunt_days"], ALERT_LABELS["retro_hunt_days"])
        if found is not None:
            if found != int(found):
                raise Refused([f"{ALERT_LABELS['retro_hunt_days']} : un nombre entier de jours"])
            days = int(found)
    except Refused as exc:
        reasons += exc.reasons
    values = {
        "title": typed["title"].strip(),
        "description": typed["description"].strip(),
        "severity": typed["severity"],
        "tlp": typed["tlp"],
        "products": forms.lines(typed["products"]),
        "cves": cves,
        "indicators": indicators,
        "target": target,
        "retro_hunt_days": days,
    }
    try:
        body = AlertCreate.model_validate(values)
    except ValidationError as exc:
        # What was said above is not said twice (a CVE or a target the schema refuses too).
        said = {"cves", "target", "indicators", "retro_hunt_days"} if reasons else set()
        raise Refused(reasons + forms.french(exc, ALERT_LABELS, skip=said)) from None
    if reasons:
        raise Refused(reasons)
    return body


@router.post("/alerts/{alert_id}/withdraw", **roles(*alert_routes.WRITERS))
def withdraw_alert(
    alert_id: Annotated[str, Path(max_length=36)],
    request: Request,
    session: SessionDep,
    v: AlertWriter,
) -> Response:
    """As POST /alerts/{id}/withdraw: out of the bundles and server-side detection."""
    alert = alert_service.withdraw(session=session, who=v.who, alert_id=alert_id)
    record_request(request, session, v.who, "update", "alert", alert.id)
    request.app.state.live_rules.published(alert.bundle_version)
    return RedirectResponse(f"/ui/alerts/{alert.id}", status_code=303)
