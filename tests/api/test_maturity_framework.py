"""The maturity framework file: the shipped one loads, and each kind of mistake is refused with
its reason and its place (keys and line), every mistake of a file at once.

Bad files are the shipped file with one piece of text replaced, so that each case reads as the
mistake it makes; the line expected is found in the edited text, not counted by hand."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import yaml

from api.maturity.checks import REGISTRY
from api.maturity.framework import (
    DEFAULT,
    FrameworkError,
    FrameworkUnreadable,
    Problem,
    load,
    parse,
)

SHIPPED = DEFAULT.read_text(encoding="utf-8")
CONTROL_IDS = [c["id"] for c in yaml.safe_load(SHIPPED)["controls"]]


def ctl(control_id: str) -> str:
    """The place of a shipped control: `controls[35]`."""
    return f"controls[{CONTROL_IDS.index(control_id)}]"


def edit(old: str, new: str) -> str:
    """The shipped file with its one `old` replaced by `new`."""
    assert SHIPPED.count(old) == 1, old
    return SHIPPED.replace(old, new)


def line_of(text: str, marker: str) -> int:
    assert text.count(marker) == 1, marker
    return text[: text.index(marker)].count("\n") + 1


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(FrameworkError) as caught:
        parse(text, "bad.yaml")
    return caught.value.problems


def test_the_shipped_framework_loads_whole() -> None:
    framework = load(DEFAULT)
    assert (framework.id, framework.version) == ("vigie-care", "2026.1")
    assert len(framework.controls) == 40
    assert len({c.id for c in framework.controls}) == 40
    assert sum(d.weight for d in framework.domains) == 100
    assert sorted(x.level for x in framework.levels) == [1, 2, 3, 4, 5]
    assert {c.domain for c in framework.controls} == {d.id for d in framework.domains}
    automatic = 0
    for control in framework.controls:
        refs = (control.refs.care, control.refs.anssi, control.refs.cis)
        assert all(refs), control.id  # each of the three is written, "—" where none exists
        assert any(r != ["—"] for r in refs), control.id
        evidence = control.evidence
        if evidence.kind == "questionnaire":
            assert evidence.check is None, control.id
            assert evidence.question is not None, control.id
            continue
        assert evidence.check in REGISTRY, control.id
        REGISTRY[evidence.check].params.model_validate(evidence.params)
        automatic += 1
    assert automatic >= 20
    # Every critical control is at level 2: the "socle" a failure caps the level below.
    assert {c.id for c in framework.controls if c.critical} == {
        "EXP-01",
        "EXP-02",
        "BAK-04",
        "HYG-02",
    }
    assert framework.digest == hashlib.sha256(DEFAULT.read_bytes()).hexdigest()


HYG02_LEVEL = '    level: 2\n    critical: true\n    effort: 2\n    refs: {care: ["—"]'

# (old text, new text, a marker on the line expected, place without the line, reason part)
BAD = [
    pytest.param(
        "check: network.smbv1",
        "check: network.smbv9",
        "network.smbv9",
        f"{ctl('HYG-02')}.evidence.check",
        "unknown check 'network.smbv9' (did you mean 'network.smbv1'?)",
        id="unknown-check",
    ),
    pytest.param(
        "params: {min_days: 180}",
        "params: {min_days: 180, max_days: 400}",
        "max_days",
        f"{ctl('DET-03')}.evidence.params.max_days",
        "unknown key",
        id="param-unknown-key",
    ),
    pytest.param(
        "critical_hours: 24,",
        "critical_hours: a day,",
        "a day",
        f"{ctl('RES-02')}.evidence.params.critical_hours",
        "Input should be a valid number",
        id="param-wrong-type",
    ),
    pytest.param(
        "services: [telnet, ftp]",
        "services: telnet",
        "services: telnet",
        f"{ctl('HYG-04')}.evidence.params.services",
        "Input should be a valid list",
        id="param-not-a-list",
    ),
    pytest.param(
        '"7600": 2013-04-09',
        "7600: 2013-04-09",
        "7600: 2013",
        f"{ctl('HYG-01')}.evidence.params.builds[7600]",
        "bad key: Input should be a valid string",
        id="param-bad-key",
    ),
    pytest.param(
        "    domain: HYG\n    weight: 5\n",
        "    domain: HYX\n    weight: 5\n",
        "HYX",
        f"{ctl('HYG-02')}.domain",
        "unknown domain HYX",
        id="unknown-domain",
    ),
    pytest.param(
        'care: "axe 1", weight: 15}',
        'care: "axe 1", weight: 20}',
        "{id: GOV,",
        "domains",
        "domain weights add up to 105, not 100",
        id="domain-weights",
    ),
    pytest.param(
        'refs: {care: ["—"], anssi: ["14"], cis: ["10.1", "10.2"]}',
        'refs: {care: ["—"], anssi: ["—"], cis: ["—"]}',
        'anssi: ["—"], cis: ["—"]',
        f"{ctl('HYG-06')}.refs",
        "a control without references: give at least one",
        id="no-references",
    ),
    pytest.param(
        'anssi: ["41.R"]',
        'anssi: ["43"]',
        '["43"]',
        f"{ctl('GOV-01')}.refs.anssi[0]",
        "'43' is not an ANSSI measure (1 to 42, .R)",
        id="anssi-43",
    ),
    pytest.param(
        'cis: ["15.1"]',
        'cis: ["19.1"]',
        '["19.1"]',
        f"{ctl('RES-01')}.refs.cis[0]",
        "'19.1' is not a CIS v8 safeguard",
        id="cis-19.1",
    ),
    pytest.param(
        'care: ["D2.O4"]',
        'care: ["D12"]',
        '["D12"]',
        f"{ctl('BAK-02')}.refs.care[0]",
        "'D12' is not a CaRE reference",
        id="care-D12",
    ),
    pytest.param(
        "id: HYG-06",
        "id: HYG-05  # twice",
        "# twice",
        f"{ctl('HYG-06')}.id",
        "HYG-05 appears twice",
        id="duplicate-control",
    ),
    pytest.param(
        "applicable_if: [has_dicom, has_hl7]",
        "applicable_if: [has_dicom, has_pacs]",
        "has_pacs",
        f"{ctl('EXP-02')}.applicable_if[1]",
        "unknown profile flag 'has_pacs'",
        id="unknown-profile-flag",
    ),
    pytest.param(
        HYG02_LEVEL,
        HYG02_LEVEL.replace("level: 2\n    critical: true", "level: 3\n    critical: true  # <-"),
        "# <-",
        f"{ctl('HYG-02')}.critical",
        "only level-2 controls are critical",
        id="critical-above-level-2",
    ),
    pytest.param(
        '      kind: questionnaire\n      question: {text: "Date du dernier test de restauration',
        "      kind: questionnaire\n      check: network.smbv1  # <-\n"
        '      question: {text: "Date du dernier test de restauration',
        "# <-",
        f"{ctl('BAK-02')}.evidence.check",
        "questionnaire evidence runs no check",
        id="questionnaire-with-check",
    ),
    pytest.param(
        "type: date, max_age_days: 731}",
        "type: date}",
        "formation sécurité de l'équipe informatique",
        f"{ctl('SENS-02')}.evidence.question.max_age_days",
        "a date question needs max_age_days",
        id="date-without-max-age",
    ),
    pytest.param(
        'type: number, target: 10, unit: "%"}',
        'type: number, unit: "%"}',
        "Part du budget SI",
        f"{ctl('RES-03')}.evidence.question.target",
        "a number question needs a target",
        id="number-without-target",
    ),
    pytest.param(
        '  - {level: 3, name: "Hygiène", min_ratio: 0.70}\n',
        "",
        "{level: 1,",
        "levels",
        "levels 1 to 5, each once (found [1, 2, 4, 5])",
        id="level-missing",
    ),
    pytest.param(
        '{level: 4, name: "Maîtrisé", min_ratio: 0.70}',
        '{level: 4, name: "Maîtrisé"}',
        '"Maîtrisé"',
        "levels[3]",
        "level 4 needs min_ratio",
        id="level-without-ratio",
    ),
    pytest.param(
        '    weight: 3\n    level: 4\n    effort: 1\n    refs: {care: ["—"], anssi: ["36"',
        '    weight: 3\n    effort: 1\n    refs: {care: ["—"], anssi: ["36"',
        "id: DET-03",
        f"{ctl('DET-03')}.level",
        "missing",
        id="control-level-missing",
    ),
    pytest.param(
        '    weight: 2\n    level: 3\n    effort: 1\n    refs: {care: ["—"], anssi: ["22"]',
        "    weight: 2\n    level: 3\n    level: 4  # <-\n    effort: 1\n"
        '    refs: {care: ["—"], anssi: ["22"]',
        "# <-",
        f"{ctl('HYG-05')}.level",
        "key given twice (only the last would count)",
        id="duplicate-key",
    ),
]


@pytest.mark.parametrize(("old", "new", "marker", "place", "reason"), BAD)
def test_a_bad_file_is_refused_with_reason_and_place(
    old: str, new: str, marker: str, place: str, reason: str
) -> None:
    text = edit(old, new)
    problems = problems_of(text)
    line = line_of(text, marker)
    assert [(p.place, p.line) for p in problems] == [(f"{place} (line {line})", line)]
    assert reason in problems[0].reason


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        pytest.param(
            'framework: {id: x, version: "2026.1", title: [unclosed}\nlevels: []\n',
            1,
            "expected ',' or ']', but got '}'",
            id="unclosed-sequence",
        ),
        pytest.param("framework:\n\tid: x\n", 2, "found character '\\t'", id="tab"),
        pytest.param(
            SHIPPED + "\n---\nmore: 1\n",
            SHIPPED.count("\n") + 2,
            "another document",
            id="two-documents",
        ),
    ],
)
def test_not_yaml_is_one_problem_on_one_line(text: str, line: int, reason: str) -> None:
    (problem,) = problems_of(text)
    assert (problem.place, problem.line) == (f"(line {line})", line)
    assert problem.reason.startswith("not YAML: ")
    assert reason in problem.reason
    assert "\n" not in problem.reason  # the CLI prints one problem per line


@pytest.mark.parametrize("text", ["", "- framework\n- controls\n", "just words\n"])
def test_not_a_mapping(text: str) -> None:
    assert [str(p) for p in problems_of(text)] == ["(file): a mapping with framework, levels, ..."]


def test_a_typo_in_a_control_names_the_key_and_what_it_lacks() -> None:
    text = edit('    remediation: "Remplacer Telnet', '    remediaton: "Remplacer Telnet')
    problems = problems_of(text)
    assert [(p.place, p.reason) for p in problems] == [
        (f"{ctl('HYG-04')}.remediation (line {line_of(text, 'id: HYG-04')})", "missing"),
        (f"{ctl('HYG-04')}.remediaton (line {line_of(text, 'remediaton')})", "unknown key"),
    ]


def test_every_problem_of_a_file_is_reported_in_file_order() -> None:
    """Schema errors (a typo, a bad weight) do not hide the problems found beyond the schema
    (a check, a reference, a sum) in the parts that are valid."""
    text = SHIPPED
    for old, new in [
        ("weight: 10}\n\ncontrols:", "weight: 15}\n\ncontrols:"),  # HYG: the sum is 105
        ('anssi: ["41.R"]', 'anssi: ["43"]'),
        ("check: network.smbv1", "check: network.smbv9"),
        ('    remediation: "Remplacer Telnet', '    remediaton: "Remplacer Telnet'),
        (
            '    weight: 2\n    level: 3\n    effort: 1\n    refs: {care: ["—"], anssi: ["22"]',
            '    weight: heavy\n    level: 3\n    effort: 1\n    refs: {care: ["—"], anssi: ["22"]',
        ),
    ]:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    with pytest.raises(FrameworkError) as caught:
        parse(text, "bad.yaml")  # raises: nothing is half-loaded
    reported = [(p.place.split(" (line")[0], p.line) for p in caught.value.problems]
    assert reported == [
        ("domains", line_of(text, "{id: GOV,")),
        (f"{ctl('GOV-01')}.refs.anssi[0]", line_of(text, '["43"]')),
        (f"{ctl('HYG-02')}.evidence.check", line_of(text, "smbv9")),
        (f"{ctl('HYG-04')}.remediation", line_of(text, "id: HYG-04")),
        (f"{ctl('HYG-04')}.remediaton", line_of(text, "remediaton")),
        (f"{ctl('HYG-05')}.weight", line_of(text, "heavy")),
    ]
    assert str(caught.value).startswith("bad.yaml: 6 problem(s): domains (line ")


def test_a_domain_refused_by_the_schema_is_still_known_to_its_controls() -> None:
    """Its weight is wrong, its id is not: its controls get no "unknown domain" besides."""
    text = edit('care: "axe 1", weight: 15}', 'care: "axe 1", weight: -15}')
    assert [(p.place, p.reason) for p in problems_of(text)] == [
        (f"domains[0].weight (line {line_of(text, '-15')})", "Input should be greater than 0")
    ]


def test_an_unreadable_file_is_its_own_error(tmp_path: Path) -> None:
    with pytest.raises(FrameworkUnreadable) as missing:
        load(tmp_path / "none.yaml")
    assert "cannot read" in missing.value.problems[0].reason
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(SHIPPED.encode("utf-8").replace("é".encode(), b"\xe9"))
    with pytest.raises(FrameworkUnreadable):
        load(latin1)


def test_the_digest_is_the_files_sha256_whatever_its_line_ends(tmp_path: Path) -> None:
    """A CRLF copy is another file: its digest must be what sha256sum says of it, not the
    digest of the text after newline translation."""
    crlf = tmp_path / "crlf.yaml"
    crlf.write_bytes(SHIPPED.encode().replace(b"\n", b"\r\n"))
    framework = load(crlf)
    assert framework.digest == hashlib.sha256(crlf.read_bytes()).hexdigest()
    assert framework.digest != load(DEFAULT).digest
    assert len(framework.controls) == 40


def test_sources_lists_the_end_of_support_dates_the_file_uses() -> None:
    """frameworks/SOURCES.md says where each date comes from: it must name the same ones."""
    sources = (DEFAULT.parent / "SOURCES.md").read_text(encoding="utf-8")
    listed = dict(re.findall(r"^\| (\d{4,5}) \|[^|]*\| (\d{4}-\d\d-\d\d) \|", sources, re.M))
    control = load(DEFAULT).control("HYG-01")
    assert control is not None
    used = {build: day.isoformat() for build, day in control.evidence.params["builds"].items()}
    assert listed == used
