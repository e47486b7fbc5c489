"""From an establishment's inputs to its scores: each control, the domains, the level, the
fixes. Pure functions: the same framework and inputs give the same result.

- A control scores 0 to 1. Automatic evidence: the check's score (partial credit by coverage,
  e.g. the share of servers still on SMBv1). An answer: non 0, partiel 1/3, largement 2/3,
  oui 1, ne sait pas 0; a date 1 within its age limit; a number value/target, at most 1.
  `both`: the check wins when it has data (an answer that disagrees is a contradiction);
  otherwise the answer counts, as declared.
- No data scores 0 (`no_evidence`), and so does a pass judged on data older than the
  control's validity (`stale`): a silent agent never raises a score. A failure seen within
  the check's window stands however old the last data is. `na` comes from the declared profile only.
- A domain's score is the weighted mean of its applicable controls (0-100); the overall
  score the weighted mean of the domains. Each control's part of the overall score is its
  effective weight, W_domain/ΣW × w/Σw_domain: a fix gains 100 × that × (1 - s) points.
- Level: the highest L such that each level 2..L reaches its `min_ratio` of weighted score
  over its own controls, and no critical control up to L scores below 1. Level 5: level 4,
  every domain at least `min_domain_score`, and level 4 held at each of `held_days` ago.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from api.maturity.checks import REGISTRY, Outcome
from api.maturity.framework import Control, Framework
from api.maturity.inputs import AnswerFacts, Inputs

CHOICES = {"non": 0.0, "partiel": 1 / 3, "largement": 2 / 3, "oui": 1.0, "ne_sait_pas": 0.0}
CHOICE_FR = {
    "non": "non",
    "partiel": "partiellement",
    "largement": "largement",
    "oui": "oui",
    "ne_sait_pas": "je ne sais pas",
}
STATUSES = (
    "pass",
    "partial",
    "fail",
    "no_evidence",
    "stale",
    "na",
    "risk_accepted",
    "compensated",
)
_STATUS_FR = {
    "pass": "Conforme",
    "partial": "Partiel",
    "fail": "Non conforme",
    "no_evidence": "Sans preuve",
    "stale": "Preuve périmée",
    "na": "Non applicable",
    "risk_accepted": "Risque accepté",
    "compensated": "Compensé",
}


@dataclass(frozen=True)
class ControlResult:
    control: Control
    status: str
    score: float  # 0..1; 0 when not applicable (it then weighs nothing)
    basis: str | None  # automatic | declared | proven | None (no evidence, na)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    explanation: str = ""
    contradiction: bool = False

    @property
    def applicable(self) -> bool:
        return self.status != "na"


@dataclass(frozen=True)
class Fix:
    control: str
    gain: float  # overall points
    unlocks_level: int | None
    effort: int
    remediation: str
    evidence_link: str | None


@dataclass(frozen=True)
class Result:
    score: float
    level: int
    coverage: float
    proof_ratio: float
    domains: list[dict[str, Any]]
    controls: list[ControlResult]
    fixes: list[Fix]


def evaluate(framework: Framework, inputs: Inputs, held: Collection[date] = ()) -> Result:
    """Score `inputs`; `held`: earlier days on which the establishment was at level 4."""
    results = [control_result(c, inputs) for c in framework.controls]
    return assemble(framework, results, inputs.as_of, held)


def assemble(
    framework: Framework, results: list[ControlResult], as_of: date, held: Collection[date] = ()
) -> Result:
    weights = effective_weights(framework, results)
    scores = {r.control.id: r.score for r in results}
    domains = domain_scores(framework, results)
    level = level_of(framework, results, scores, weights, domains, as_of, held)
    applicable = sum(weights.values())
    by_id = {r.control.id: r for r in results}
    covered = sum(
        w for cid, w in weights.items() if by_id[cid].status not in ("no_evidence", "stale")
    )
    proven = sum(w for cid, w in weights.items() if by_id[cid].basis in ("automatic", "proven"))
    overall = (
        100 * sum(w * scores[cid] for cid, w in weights.items()) / applicable if applicable else 0.0
    )
    fixes = _fixes(framework, results, scores, weights, domains, as_of, held, level)
    return Result(
        score=round(overall, 2),
        level=level,
        coverage=round(covered / applicable, 4) if applicable else 0.0,
        proof_ratio=round(proven / applicable, 4) if applicable else 0.0,
        domains=[
            {
                "id": d.id,
                "title": d.title,
                "score": None if domains[d.id] is None else round(domains[d.id] or 0.0, 2),
                "weight": d.weight,
            }
            for d in framework.domains
        ],
        controls=results,
        fixes=fixes,
    )


def effective_weights(framework: Framework, results: list[ControlResult]) -> dict[str, float]:
    """Each applicable control's share of the overall score (they add up to 1)."""
    per_domain: dict[str, float] = {}
    for r in results:
        if r.applicable:
            per_domain[r.control.domain] = per_domain.get(r.control.domain, 0.0) + r.control.weight
    total = sum(framework.domain(d).weight for d in per_domain)
    return {
        r.control.id: framework.domain(r.control.domain).weight
        / total
        * r.control.weight
        / per_domain[r.control.domain]
        for r in results
        if r.applicable
    }


def domain_scores(framework: Framework, results: list[ControlResult]) -> dict[str, float | None]:
    scores = {r.control.id: r.score for r in results}
    return {d.id: _domain_score(d.id, results, scores) for d in framework.domains}


def _domain_score(
    domain: str, results: list[ControlResult], scores: dict[str, float]
) -> float | None:
    mine = [r.control for r in results if r.control.domain == domain and r.applicable]
    weight = sum(c.weight for c in mine)
    return 100 * sum(c.weight * scores[c.id] for c in mine) / weight if weight else None


@dataclass(frozen=True)
class _Steps:
    """What levels 2 to 4 look at, the same for every fix of one establishment: the
    applicable controls of each level, and the applicable critical ones (level, id)."""

    at: dict[int, list[str]]
    critical: list[tuple[int, str]]


def _steps(results: list[ControlResult]) -> _Steps:
    applicable = [r.control for r in results if r.applicable]
    return _Steps(
        {step: [c.id for c in applicable if c.level == step] for step in (2, 3, 4)},
        [(c.level, c.id) for c in applicable if c.critical],
    )


def level_of(
    framework: Framework,
    results: list[ControlResult],
    scores: dict[str, float],
    weights: dict[str, float],
    domains: dict[str, float | None],
    as_of: date,
    held: Collection[date],
) -> int:
    return _level(framework, _steps(results), scores, weights, domains, as_of, held)


def _level(
    framework: Framework,
    steps: _Steps,
    scores: dict[str, float],
    weights: dict[str, float],
    domains: dict[str, float | None],
    as_of: date,
    held: Collection[date],
) -> int:
    level = 1
    for step in (2, 3, 4):
        definition = framework.level_def(step)
        assert definition is not None
        assert definition.min_ratio is not None
        at = steps.at[step]
        weight = sum(weights[c] for c in at)
        ratio = sum(weights[c] * scores[c] for c in at) / weight if weight else 1.0
        critical_fails = any(lv <= step and scores[c] < 1 for lv, c in steps.critical)
        if ratio + 1e-9 < definition.min_ratio or critical_fails:
            return level
        level = step
    top = framework.level_def(5)
    assert top is not None
    assert top.min_domain_score is not None
    assert top.held_days
    if all(s is None or s + 1e-9 >= top.min_domain_score for s in domains.values()) and all(
        as_of - timedelta(days=d) in held for d in top.held_days
    ):
        return 5
    return level


def _fixes(
    framework: Framework,
    results: list[ControlResult],
    scores: dict[str, float],
    weights: dict[str, float],
    domains: dict[str, float | None],
    as_of: date,
    held: Collection[date],
    level: int,
) -> list[Fix]:
    fixes = []
    # Only the fixed control's score and its domain's change: the rest is computed once.
    steps = _steps(results)
    for r in results:
        cid = r.control.id
        if not r.applicable or scores[cid] >= 1 or r.status == "risk_accepted":
            continue
        fixed = {**scores, cid: 1.0}
        then = {**domains, r.control.domain: _domain_score(r.control.domain, results, fixed)}
        new_level = _level(framework, steps, fixed, weights, then, as_of, held)
        link = next((e.get("link") for e in r.evidence if e.get("link")), None)
        fixes.append(
            Fix(
                control=cid,
                gain=round(100 * weights[cid] * (1 - scores[cid]), 2),
                unlocks_level=new_level if new_level > level else None,
                effort=r.control.effort,
                remediation=r.control.remediation,
                evidence_link=link,
            )
        )
    fixes.sort(key=lambda f: (f.unlocks_level is None, -f.gain / f.effort, -f.gain, f.control))
    return fixes


# --- one control ------------------------------------------------------------------------------


def control_result(control: Control, inputs: Inputs) -> ControlResult:
    if not _applicable(control, inputs):
        flags = ", ".join(control.applicable_if)
        return ControlResult(
            control, "na", 0.0, None, [], f"Non applicable : le profil déclare {flags} faux."
        )
    kind = control.evidence.kind
    outcome = _automatic(control, inputs) if kind != "questionnaire" else None
    answer = inputs.answers.get(control.id) if kind != "automatic" else None
    evidence: list[dict[str, Any]] = []
    if outcome is not None:
        evidence.append(_outcome_evidence(control, outcome))
    if answer is not None:
        evidence.append(_answer_evidence(control, answer, inputs))
    status, score, basis, contradiction = _judge(control, inputs, outcome, answer)
    exception = inputs.exceptions.get(control.id)
    if exception is not None and score < 1:
        until = f"{exception.expires_at:%d/%m/%Y}"
        if exception.kind == "risk_accepted":
            status, score = "risk_accepted", 0.0
            note = f"Risque accepté par {exception.approver} jusqu'au {until}."
        else:
            status, score = "compensated", max(score, control.compensated_score)
            note = f"Mesure compensatoire approuvée par {exception.approver} jusqu'au {until}."
        evidence.append({"kind": "exception", "summary": note, "exception": exception.id})
    return ControlResult(
        control,
        status,
        round(score, 4),
        basis,
        evidence,
        _explain(status, evidence, contradiction),
        contradiction,
    )


def _applicable(control: Control, inputs: Inputs) -> bool:
    """Not applicable only when the profile declares every listed flag false: a flag never
    declared leaves the control applicable."""
    if not control.applicable_if:
        return True
    flags = inputs.profile.flags
    return not all(flags.get(f) is False for f in control.applicable_if)


def _automatic(control: Control, inputs: Inputs) -> Outcome:
    assert control.evidence.check is not None
    spec = REGISTRY[control.evidence.check]
    return spec.run(inputs, spec.params.model_validate(control.evidence.params))


def _fresh(control: Control, inputs: Inputs, moment: Any) -> bool:
    if moment is None:
        return True
    age = inputs.cutoff - moment
    return age <= timedelta(days=control.evidence.validity_days)


def _judge(
    control: Control, inputs: Inputs, outcome: Outcome | None, answer: AnswerFacts | None
) -> tuple[str, float, str | None, bool]:
    """(status, score, basis, contradiction) before exceptions."""
    auto: float | None = None
    stale = False
    if outcome is not None and outcome.score is not None:
        # Old data can only make a pass doubtful (the sensor may have gone quiet since); a
        # failure seen within the check's window stands, however old the last data is.
        if outcome.score < 1 or _fresh(control, inputs, outcome.seen):
            auto = outcome.score
        else:
            stale = True
    declared: float | None = None
    if answer is not None:
        if _fresh(control, inputs, answer.declared_at):
            declared = answer_score(control, answer, inputs.as_of)
        else:
            stale = True
    if auto is not None:
        contradiction = declared is not None and abs(auto - declared) >= 0.5
        return _status(auto), auto, "automatic", contradiction
    if declared is not None:
        assert answer is not None
        return _status(declared), declared, "proven" if answer.proven else "declared", False
    return ("stale" if stale else "no_evidence"), 0.0, None, False


def _status(score: float) -> str:
    return "pass" if score >= 1 else "fail" if score <= 0 else "partial"


def answer_score(control: Control, answer: AnswerFacts, as_of: date) -> float:
    question = control.evidence.question
    assert question is not None
    value = answer.value
    if question.type == "scale":
        return CHOICES.get(str(value.get("choice")), 0.0)
    if question.type == "date":
        assert question.max_age_days is not None
        when = date.fromisoformat(str(value.get("date")))
        return 1.0 if 0 <= (as_of - when).days <= question.max_age_days else 0.0
    assert question.target is not None
    return max(0.0, min(1.0, float(value.get("number", 0)) / question.target))


def _outcome_evidence(control: Control, outcome: Outcome) -> dict[str, Any]:
    return {
        "kind": "automatic",
        "check": control.evidence.check,
        "summary": outcome.summary,
        "counts": dict(sorted(outcome.counts.items())),
        "first_seen": _iso(outcome.first_seen),
        "last_seen": _iso(outcome.last_seen),
        "samples": list(outcome.samples),
        "link": outcome.link,
    }


def _answer_evidence(control: Control, answer: AnswerFacts, inputs: Inputs) -> dict[str, Any]:
    value = answer.value
    if "choice" in value:
        said = CHOICE_FR.get(str(value["choice"]), str(value["choice"]))
    elif "date" in value:
        said = f"le {date.fromisoformat(str(value['date'])):%d/%m/%Y}"
    else:
        question = control.evidence.question
        unit = f" {question.unit}" if question is not None and question.unit else ""
        number = value.get("number")
        # In French: 5 %, 12,5 % (not 5.0 %), as every report and page shows numbers.
        shown = f"{number:g}".replace(".", ",") if isinstance(number, int | float) else number
        said = f"{shown}{unit}"
    proof = " ; preuve jointe" if answer.proof_sha256 else ""
    review = " ; vérifiée par le CERT" if answer.proven else ""
    return {
        "kind": "proven" if answer.proven else "declared",
        "summary": f"Déclaré le {answer.declared_at:%d/%m/%Y} : {said}{proof}{review}.",
        "answer": answer.id,
        "proof_sha256": answer.proof_sha256,
        "link": f"/establishments/{inputs.finess}/maturity/answers/{control.id}",
    }


def _explain(status: str, evidence: list[dict[str, Any]], contradiction: bool) -> str:
    said = " ".join(e["summary"] for e in evidence) or "Aucune preuve fournie ni collectée."
    text = f"{_STATUS_FR[status]} : {said}"
    if contradiction:
        text += " La déclaration contredit ce que Vigie observe."
    return text


def _iso(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def as_json(result: Result) -> dict[str, Any]:
    """The result as stored in a snapshot and answered by the API (controls in file order,
    fixes best first)."""
    return {
        "score": result.score,
        "level": result.level,
        "coverage": result.coverage,
        "proof_ratio": result.proof_ratio,
        "domains": result.domains,
        "controls": [_control_json(r) for r in result.controls],
        "fixes": [
            {
                "control": f.control,
                "gain": f.gain,
                "unlocks_level": f.unlocks_level,
                "effort": f.effort,
                "remediation": f.remediation,
                "evidence_link": f.evidence_link,
            }
            for f in result.fixes
        ],
    }


def _control_json(r: ControlResult) -> dict[str, Any]:
    c = r.control
    return {
        "id": c.id,
        "title": c.title,
        "domain": c.domain,
        "status": r.status,
        "score": r.score,
        "weight": c.weight,
        "level": c.level,
        "critical": c.critical,
        "evidence_kind": c.evidence.kind,
        "basis": r.basis,
        "refs": {"care": c.refs.care, "anssi": c.refs.anssi, "cis": c.refs.cis},
        "evidence": r.evidence,
        "explanation": r.explanation,
        "contradiction": r.contradiction,
        "remediation": c.remediation,
    }


Scorer = Callable[[Framework, Inputs], Result]
