"""Scores on synthetic establishments, worked out by hand on a five-control framework.

The small framework (below) keeps every number checkable on paper: domains EXP (60) and HYG
(40); EXP-01 (w 5, level 2, critical, automatic), EXP-02 (w 3, level 3, scale question, only
with HL7), HYG-01 (w 2, level 2, share of SMB servers on SMBv1), HYG-02 (w 2, level 3, date),
HYG-03 (w 4, level 4, number, target 10).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from api.maturity.framework import Framework, default, parse
from api.maturity.inputs import AgentFacts, AnswerFacts, ExceptionFacts, Inputs, ProfileFacts, Row
from api.maturity.scoring import evaluate

AS_OF = date(2026, 11, 30)
CUTOFF = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)

SMALL = """
framework: {id: test-small, version: "2026.1", title: "Petit référentiel de test"}
levels:
  - {level: 1, name: Exposé}
  - {level: 2, name: Socle, min_ratio: 0.7}
  - {level: 3, name: Hygiène, min_ratio: 0.7}
  - {level: 4, name: Maîtrisé, min_ratio: 0.7}
  - {level: 5, name: Piloté, min_domain_score: 90, held_days: [90]}
domains:
  - {id: EXP, title: Exposition, care: "axe 4 / D1", weight: 60}
  - {id: HYG, title: Hygiène, care: "axe 4", weight: 40}
controls:
  - id: EXP-01
    title: Rien d'exposé
    domain: EXP
    weight: 5
    level: 2
    critical: true
    effort: 1
    refs: {care: [D1], anssi: ["23"], cis: ["4.4"]}
    evidence: {kind: automatic, check: network.exposed_services,
               params: {window_days: 30, services: [rdp, smb]}, validity_days: 2}
    remediation: "Fermer les ports au pare-feu."
  - id: EXP-02
    title: Flux HL7 chiffrés
    domain: EXP
    weight: 3
    level: 3
    effort: 2
    applicable_if: [has_hl7]
    refs: {care: [D1], anssi: ["18"], cis: ["—"]}
    evidence:
      kind: questionnaire
      question: {text: "Les flux HL7 sont-ils chiffrés ?", type: scale}
      validity_days: 365
    remediation: "Chiffrer les flux HL7."
  - id: HYG-01
    title: SMBv1 absent
    domain: HYG
    weight: 2
    level: 2
    effort: 1
    refs: {care: ["—"], anssi: ["21"], cis: ["4.1"]}
    evidence: {kind: automatic, check: network.smbv1, params: {window_days: 30},
               validity_days: 7}
    remediation: "Désinstaller SMBv1."
  - id: HYG-02
    title: Test de restauration
    domain: HYG
    weight: 2
    level: 3
    effort: 2
    refs: {care: [D2.O4], anssi: ["37"], cis: ["11.1"]}
    evidence:
      kind: questionnaire
      question: {text: "Date du dernier test", type: date, max_age_days: 365}
      validity_days: 365
    remediation: "Tester une restauration."
  - id: HYG-03
    title: Budget sécurité
    domain: HYG
    weight: 4
    level: 4
    effort: 3
    refs: {care: ["axe 2"], anssi: ["39"], cis: ["17.1"]}
    evidence:
      kind: questionnaire
      question: {text: "Part du budget", type: number, target: 10}
      validity_days: 365
    remediation: "Augmenter la part du budget consacrée à la sécurité."
"""


@pytest.fixture(scope="module")
def small() -> Framework:
    return parse(SMALL, "small")


def at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def row(key: str, day: date, subjects: tuple[str, ...], count: int = 1) -> Row:
    return Row(key, day, count, at(day), at(day, 11), (f"agent:a/e{day.day}{key}",), subjects)


def network_source(days: range = range(30)) -> list[Row]:
    return [row("network", AS_OF - timedelta(days=d), ("a",), 100) for d in days]


def answer(value: dict[str, Any], days_ago: int = 10, proven: bool = False) -> AnswerFacts:
    return AnswerFacts(1, value, CUTOFF - timedelta(days=days_ago), proven, None)


def inputs(
    evidence: dict[str, list[Row]] | None = None,
    answers: dict[str, AnswerFacts] | None = None,
    flags: dict[str, bool] | None = None,
    **more: Any,
) -> Inputs:
    return Inputs(
        finess="350000014",
        kind="clinique",
        region="Bretagne",
        as_of=AS_OF,
        cutoff=CUTOFF,
        retention_days=180,
        profile=ProfileFacts(flags=flags or {}),
        evidence=evidence or {},
        answers=answers or {},
        **more,
    )


SMB_ONE_IN_FOUR = [
    row("v1", AS_OF - timedelta(days=3), ("10.0.0.9",)),
    row("v2", AS_OF - timedelta(days=2), ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.9")),
]
GOOD_ANSWERS = {
    "EXP-02": answer({"choice": "largement"}),
    "HYG-02": answer({"date": (AS_OF - timedelta(days=100)).isoformat()}),
    "HYG-03": answer({"number": 5}),
}


def by_id(result: Any) -> dict[str, Any]:
    return {r.control.id: r for r in result.controls}


def test_a_clinic_scores_as_worked_out_by_hand(small: Framework) -> None:
    result = evaluate(
        small, inputs({"source": network_source(), "net.smb": SMB_ONE_IN_FOUR}, GOOD_ANSWERS)
    )
    controls = by_id(result)
    assert {c: (r.status, r.score) for c, r in controls.items()} == {
        "EXP-01": ("pass", 1.0),
        "EXP-02": ("partial", 0.6667),
        "HYG-01": ("partial", 0.75),  # 1 SMB server of 4 on SMBv1
        "HYG-02": ("pass", 1.0),
        "HYG-03": ("partial", 0.5),  # 5 % of a 10 % target
    }
    # EXP: (5 x 1 + 3 x 2/3) / 8 = 87.5; HYG: (2 x 0.75 + 2 x 1 + 4 x 0.5) / 8 = 68.75
    assert [(d["id"], d["score"]) for d in result.domains] == [("EXP", 87.5), ("HYG", 68.75)]
    assert result.score == 80.0  # 0.6 x 87.5 + 0.4 x 68.75
    # Level 2: (0.375 + 0.1 x 0.75) / 0.475 = 0.95; level 3: (0.225 x 2/3 + 0.1) / 0.325 =
    # 0.77; level 4: HYG-03 alone at 0.5 < 0.7.
    assert result.level == 3
    assert result.coverage == 1.0
    assert result.proof_ratio == 0.475  # EXP-01 and HYG-01 are collected; answers declared
    assert [(f.control, f.gain, f.unlocks_level) for f in result.fixes] == [
        ("HYG-03", 10.0, 4),  # 100 x 0.2 x 0.5, and level 4 with it
        ("EXP-02", 7.5, None),  # 100 x 0.225 x 1/3, effort 2: 3.75 a unit of effort
        ("HYG-01", 2.5, None),  # 100 x 0.1 x 0.25, effort 1: 2.5
    ]
    assert "1 serveur(s) SMB sur 4 parlent SMBv1" in controls["HYG-01"].explanation


def test_one_failing_critical_control_keeps_the_level_at_1(small: Framework) -> None:
    exposed = [row("rdp", AS_OF - timedelta(days=4), ("81.2.69.160", "81.2.69.161"), 3)]
    perfect = {
        **GOOD_ANSWERS,
        "EXP-02": answer({"choice": "oui"}),
        "HYG-03": answer({"number": 12}),
    }
    evidence = {"source": network_source(), "net.exposed": exposed, "net.smb": SMB_ONE_IN_FOUR}
    result = evaluate(small, inputs(evidence, perfect))
    controls = by_id(result)
    assert controls["EXP-01"].status == "fail"
    summary = controls["EXP-01"].evidence[0]["summary"]
    assert "3 connexions RDP entrantes établies depuis Internet (2 adresses publiques)" in summary
    assert (
        controls["EXP-01"].evidence[0]["link"].startswith("/establishments/350000014/events?ids=")
    )
    # Every other level-2..4 ratio is met, and still: level 1.
    assert result.level == 1
    assert result.score == 60.0  # 0.6 x 37.5 + 0.4 x 93.75
    first = result.fixes[0]
    assert (first.control, first.gain, first.unlocks_level) == ("EXP-01", 37.5, 4)


def test_a_silent_sensor_lowers_coverage_and_never_raises_the_score(small: Framework) -> None:
    exposed = [row("rdp", AS_OF - timedelta(days=20), ("81.2.69.160",))]
    failing = inputs(
        {"source": network_source(), "net.exposed": exposed, "net.smb": SMB_ONE_IN_FOUR},
        GOOD_ANSWERS,
    )
    clean = inputs({"source": network_source(), "net.smb": SMB_ONE_IN_FOUR}, GOOD_ANSWERS)
    # The sensor stopped 10 days ago: its older rows are still in the window.
    stopped = inputs(
        {"source": network_source(range(10, 30)), "net.smb": SMB_ONE_IN_FOUR}, GOOD_ANSWERS
    )
    silent = inputs({}, GOOD_ANSWERS)  # it never sent anything
    results = {
        n: evaluate(small, i)
        for n, i in [
            ("failing", failing),
            ("clean", clean),
            ("stopped", stopped),
            ("silent", silent),
        ]
    }
    assert by_id(results["stopped"])["EXP-01"].status == "stale"
    assert by_id(results["silent"])["EXP-01"].status == "no_evidence"
    assert by_id(results["silent"])["HYG-01"].status == "no_evidence"
    for quiet in ("stopped", "silent"):
        assert results[quiet].score <= results["failing"].score < results["clean"].score
        assert results[quiet].coverage < results["clean"].coverage
    assert results["silent"].coverage == 0.525  # only the three answers: 0.225 + 0.1 + 0.2


def test_applicability_comes_only_from_a_declared_false_flag(small: Framework) -> None:
    evidence = {"source": network_source(), "net.smb": SMB_ONE_IN_FOUR}
    undeclared = by_id(evaluate(small, inputs(evidence, {})))["EXP-02"]
    assert undeclared.status == "no_evidence"  # never declared: still applicable, scores 0
    declared = evaluate(small, inputs(evidence, {}, flags={"has_hl7": False}))
    assert by_id(declared)["EXP-02"].status == "na"
    assert declared.domains[0]["score"] == 100.0  # EXP-01 alone
    assert "EXP-02" not in [f.control for f in declared.fixes]
    has_it = by_id(evaluate(small, inputs(evidence, {}, flags={"has_hl7": True})))["EXP-02"]
    assert has_it.status == "no_evidence"


def test_answers_score_on_their_scale_and_go_stale(small: Framework) -> None:
    evidence = {"source": network_source(), "net.smb": SMB_ONE_IN_FOUR}

    def score_of(control: str, value: dict[str, Any], days_ago: int = 10) -> tuple[str, float]:
        r = by_id(evaluate(small, inputs(evidence, {control: answer(value, days_ago)})))[control]
        return r.status, r.score

    assert score_of("EXP-02", {"choice": "non"}) == ("fail", 0.0)
    assert score_of("EXP-02", {"choice": "partiel"}) == ("partial", 0.3333)
    assert score_of("EXP-02", {"choice": "ne_sait_pas"}) == ("fail", 0.0)
    assert score_of("EXP-02", {"choice": "oui"}, days_ago=400) == ("stale", 0.0)
    old_test = (AS_OF - timedelta(days=400)).isoformat()
    assert score_of("HYG-02", {"date": old_test}) == ("fail", 0.0)
    assert score_of("HYG-03", {"number": 25}) == ("pass", 1.0)


def test_exceptions_accept_or_compensate(small: Framework) -> None:
    exposed = [row("rdp", AS_OF - timedelta(days=4), ("81.2.69.160",))]
    evidence = {"source": network_source(), "net.exposed": exposed, "net.smb": SMB_ONE_IN_FOUR}
    until = CUTOFF + timedelta(days=90)
    accepted = {"EXP-01": ExceptionFacts("x1", "risk_accepted", "la directrice", until)}
    compensated = {"HYG-01": ExceptionFacts("x2", "compensated", "le DSI", until)}
    a = evaluate(small, inputs(evidence, GOOD_ANSWERS, exceptions=accepted))
    assert by_id(a)["EXP-01"].status == "risk_accepted"
    assert by_id(a)["EXP-01"].score == 0.0
    assert a.level == 1  # an accepted risk on a critical control still caps the level
    assert "EXP-01" not in [f.control for f in a.fixes]
    c = by_id(evaluate(small, inputs(evidence, GOOD_ANSWERS, exceptions=compensated)))
    assert (c["HYG-01"].status, c["HYG-01"].score) == ("compensated", 0.75)  # max(0.75, 0.5)


def test_the_same_inputs_give_the_same_digest_and_any_change_another() -> None:
    framework = default()
    one = inputs({"source": network_source(), "net.smb": SMB_ONE_IN_FOUR}, GOOD_ANSWERS)
    again = inputs({"source": network_source(), "net.smb": SMB_ONE_IN_FOUR}, dict(GOOD_ANSWERS))
    assert one.digest(framework.digest) == again.digest(framework.digest)
    assert evaluate(framework, one) == evaluate(framework, again)
    other = inputs({"source": network_source(), "net.smb": SMB_ONE_IN_FOUR[1:]}, GOOD_ANSWERS)
    assert other.digest(framework.digest) != one.digest(framework.digest)
    assert one.digest(framework.digest) != one.digest("another framework")


def test_level_5_is_held_over_time(small: Framework) -> None:
    perfect = {
        "EXP-02": answer({"choice": "oui"}),
        "HYG-02": answer({"date": (AS_OF - timedelta(days=30)).isoformat()}),
        "HYG-03": answer({"number": 10}),
    }
    evidence = {"source": network_source(), "net.smb": [SMB_ONE_IN_FOUR[1]]}
    assert evaluate(small, inputs(evidence, perfect)).level == 4
    assert evaluate(small, inputs(evidence, perfect), held={AS_OF - timedelta(days=90)}).level == 5


def test_the_shipped_framework_scores_a_silent_establishment_at_level_1_without_evidence() -> None:
    agent = AgentFacts("a1", "srv-1", None, CUTOFF - timedelta(days=60), None, None, (), 0)
    result = evaluate(default(), inputs(agents=[agent]))
    statuses = {r.status for r in result.controls}
    assert statuses <= {"no_evidence", "fail"}  # a silent agent earns nothing anywhere
    assert result.score == 0.0
    assert result.level == 1
    assert result.coverage < 0.1
