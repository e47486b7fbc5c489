"""The maturity framework: one versioned YAML file of domains, levels and controls.

`load(path)` returns a `Framework` or raises `FrameworkError` with every problem found, each
with its place in the file (the path of keys and the line) and its reason: a file is used
whole or not at all. Automatic evidence names a check of the registry (`api.maturity.checks`)
and gives its parameters, validated by the check's own model; the file holds no query.

Errors:

MaturityError            root of the package's errors
└── FrameworkError       a framework file that cannot be used (`problems`: every reason)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

FRAMEWORKS = Path(__file__).resolve().parent / "frameworks"
DEFAULT = FRAMEWORKS / "vigie-care.yaml"

# The profile flags a control may depend on: "not applicable" comes from these only.
PROFILE_FLAGS = (
    "has_active_directory",
    "has_dicom",
    "has_hl7",
    "publishes_internet_services",
    "has_remote_access",
    "ght_member",
    "has_backup_infrastructure",
)
_ANSSI = re.compile(r"^(?:[1-9]|[1-3][0-9]|4[0-2])(?:\.R)?$")  # the 42 measures, R: renforcé
_CIS = re.compile(r"^(?:[1-9]|1[0-8])\.(?:[1-9]|1[0-4])(?: \(IG[23]\))?$")  # 18 controls
_CARE = re.compile(r"^(?:D[12](?:\.(?:P[12]|O[1-4](?:\.[a-d](?:–[a-d])?)?))?|axe [1-4]|HOP'EN2)")
_NONE = "—"  # a reference that does not exist for this control, said so rather than left out
_ID = r"^[A-Z]{2,5}-[0-9]{2}$"


class MaturityError(Exception):
    """Root of the maturity package's errors."""


@dataclass(frozen=True)
class Problem:
    place: str  # keys from the top of the file, with the line: "controls[3].weight (line 57)"
    reason: str

    def __str__(self) -> str:
        return f"{self.place}: {self.reason}"


class FrameworkError(MaturityError):
    def __init__(self, path: str, problems: list[Problem]) -> None:
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{path}: {len(problems)} problem(s): {shown}{more}")
        self.path = path
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Meta(_Strict):
    id: str = Field(pattern=r"^[a-z0-9-]{2,40}$")
    version: str = Field(pattern=r"^[0-9]{4}\.[0-9]+$")
    title: str


class LevelDef(_Strict):
    level: int = Field(ge=1, le=5)
    name: str
    # Reached when the weighted score of the applicable controls *at* this level is at least
    # this share (INFRAM's 70 % rule); level 1 is the floor and has none.
    min_ratio: float | None = Field(default=None, gt=0, le=1)
    # Level 5 only: every domain at least this score, and level 4 held at each of these
    # earlier days (C2M2's "reviewed and improved": held over time, not reached once).
    min_domain_score: float | None = Field(default=None, gt=0, le=100)
    held_days: list[int] | None = None


class Domain(_Strict):
    id: str = Field(pattern=r"^[A-Z]{2,5}$")
    title: str
    care: str  # the CaRE axis or domain it falls under
    weight: float = Field(gt=0)


class Refs(_Strict):
    care: list[str] = Field(min_length=1)
    anssi: list[str] = Field(min_length=1)
    cis: list[str] = Field(min_length=1)


class Question(_Strict):
    text: str
    # scale: non / partiel / largement / oui / ne sait pas; date: of the last time it was done;
    # number: a value scored against `target`.
    type: Literal["scale", "date", "number"]
    max_age_days: int | None = Field(default=None, gt=0)  # date: older scores 0
    target: float | None = Field(default=None, gt=0)  # number: value/target, at most 1
    unit: str | None = None
    proof: bool = False  # a proof file is expected


class Evidence(_Strict):
    kind: Literal["automatic", "questionnaire", "both"]
    check: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    question: Question | None = None
    validity_days: int = Field(gt=0)  # older evidence is `stale` and scores 0


class Control(_Strict):
    id: str = Field(pattern=_ID)
    title: str
    domain: str
    weight: float = Field(gt=0)
    level: int = Field(ge=2, le=4)  # level 1 is the floor; level 5 is held over time
    critical: bool = False
    effort: int = Field(ge=1, le=3)  # 1 small .. 3 large
    refs: Refs
    applicable_if: list[str] = Field(default_factory=list)  # any of these profile flags
    evidence: Evidence
    remediation: str = Field(min_length=10)
    compensated_score: float = Field(default=0.5, ge=0, le=1)


class Framework(_Strict):
    framework: Meta
    levels: list[LevelDef]
    domains: list[Domain]
    controls: list[Control]
    digest: str = ""  # sha256 of the file: written in snapshots and reports

    @property
    def id(self) -> str:
        return self.framework.id

    @property
    def version(self) -> str:
        return self.framework.version

    def domain(self, domain_id: str) -> Domain:
        return next(d for d in self.domains if d.id == domain_id)

    def control(self, control_id: str) -> Control | None:
        return next((c for c in self.controls if c.id == control_id), None)

    def level_def(self, level: int) -> LevelDef | None:
        return next((x for x in self.levels if x.level == level), None)


def load(path: str | Path) -> Framework:
    """The framework in `path`, or FrameworkError with every problem and its place."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FrameworkError(str(path), [Problem("(file)", f"cannot read: {exc}")]) from exc
    return parse(text, str(path))


@cache
def default() -> Framework:
    """The framework shipped with Vigie (checked by the tests: it never fails here)."""
    return load(DEFAULT)


def parse(text: str, name: str = "<framework>") -> Framework:
    try:
        tree = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f"(line {mark.line + 1})" if mark is not None else "(file)"
        raise FrameworkError(name, [Problem(place, f"not YAML: {exc}")]) from exc
    if not isinstance(doc, dict):
        raise FrameworkError(name, [Problem("(file)", "a mapping with framework, levels, ...")])
    try:
        framework = Framework.model_validate(doc)
    except ValidationError as exc:
        problems = [Problem(_place(tree, tuple(e["loc"])), _reason(e)) for e in exc.errors()]
        raise FrameworkError(name, problems) from exc
    problems = [Problem(_place(tree, loc), reason) for loc, reason in _coherence(framework)]
    if problems:
        raise FrameworkError(name, problems)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return framework.model_copy(update={"digest": digest})


def _reason(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "missing"
    return str(error["msg"])


def _coherence(fw: Framework) -> list[tuple[tuple[Any, ...], str]]:
    """What the schema alone cannot see: references, sums, duplicates, the checks."""
    out: list[tuple[tuple[Any, ...], str]] = []
    total = sum(d.weight for d in fw.domains)
    if abs(total - 100) > 1e-9:
        out.append((("domains",), f"domain weights add up to {total:g}, not 100"))
    levels = sorted(x.level for x in fw.levels)
    if levels != [1, 2, 3, 4, 5]:
        out.append((("levels",), f"levels 1 to 5, each once (found {levels})"))
    for i, level in enumerate(fw.levels):
        if level.level in (2, 3, 4) and level.min_ratio is None:
            out.append((("levels", i), f"level {level.level} needs min_ratio"))
        if level.level == 5 and (level.min_domain_score is None or not level.held_days):
            out.append((("levels", i), "level 5 needs min_domain_score and held_days"))
    _duplicates(out, "domains", [d.id for d in fw.domains])
    _duplicates(out, "controls", [c.id for c in fw.controls])
    domains = {d.id for d in fw.domains}
    used = {c.domain for c in fw.controls}
    for i, domain in enumerate(fw.domains):
        if domain.id not in used:
            out.append((("domains", i), f"domain {domain.id} has no control"))
    for i, control in enumerate(fw.controls):
        out.extend((("controls", i, *loc), why) for loc, why in _control(control, domains))
        if control.critical and control.level > 2:
            # A critical control caps the level at 1; at a higher level its failure would
            # cap a level it does not belong to.
            out.append((("controls", i, "critical"), "only level-2 controls are critical"))
    return out


def _duplicates(out: list[tuple[tuple[Any, ...], str]], key: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i, item in enumerate(ids):
        if item in seen:
            out.append(((key, i, "id"), f"{item} appears twice"))
        seen.add(item)


def _control(control: Control, domains: set[str]) -> list[tuple[tuple[Any, ...], str]]:
    from api.maturity.checks import REGISTRY

    out: list[tuple[tuple[Any, ...], str]] = []
    if control.domain not in domains:
        out.append((("domain",), f"unknown domain {control.domain}"))
    elif not control.id.startswith(control.domain + "-"):
        out.append((("id",), f"a {control.domain} control's id starts with {control.domain}-"))
    refs = control.refs
    if all(r == [_NONE] for r in (refs.care, refs.anssi, refs.cis)):
        out.append((("refs",), "a control without references: give at least one"))
    for j, ref in enumerate(refs.anssi):
        if ref != _NONE and not _ANSSI.match(ref):
            out.append((("refs", "anssi", j), f"{ref!r} is not an ANSSI measure (1 to 42, .R)"))
    for j, ref in enumerate(refs.cis):
        if ref != _NONE and not _CIS.match(ref):
            out.append((("refs", "cis", j), f"{ref!r} is not a CIS v8 safeguard (e.g. 4.1)"))
    for j, ref in enumerate(refs.care):
        if ref != _NONE and not _CARE.match(ref):
            out.append((("refs", "care", j), f"{ref!r} is not a CaRE reference (D1, D2.O3.a)"))
    for j, flag in enumerate(control.applicable_if):
        if flag not in PROFILE_FLAGS:
            known = ", ".join(PROFILE_FLAGS)
            out.append((("applicable_if", j), f"unknown profile flag {flag!r} ({known})"))
    evidence = control.evidence
    if evidence.kind in ("automatic", "both"):
        if evidence.check is None:
            out.append((("evidence", "check"), f"{evidence.kind} evidence names a check"))
        elif evidence.check not in REGISTRY:
            out.append((("evidence", "check"), f"unknown check {evidence.check!r}"))
        else:
            spec = REGISTRY[evidence.check]
            try:
                spec.params.model_validate(evidence.params)
            except ValidationError as exc:
                for e in exc.errors():
                    out.append((("evidence", "params", *e["loc"]), _reason(e)))
    elif evidence.check is not None or evidence.params:
        out.append((("evidence", "check"), "questionnaire evidence runs no check"))
    if evidence.kind in ("questionnaire", "both"):
        question = evidence.question
        if question is None:
            out.append((("evidence", "question"), f"{evidence.kind} evidence asks a question"))
        elif question.type == "date" and question.max_age_days is None:
            out.append((("evidence", "question", "max_age_days"), "a date question needs it"))
        elif question.type == "number" and question.target is None:
            out.append((("evidence", "question", "target"), "a number question needs it"))
    elif evidence.question is not None:
        out.append((("evidence", "question"), "automatic evidence asks no question"))
    return out


def _place(tree: yaml.Node | None, loc: tuple[Any, ...]) -> str:
    """`controls[3].weight (line 57)`: the keys, and the line of the deepest node found."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    node, line = tree, None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        node = _child(node, part)
    if node is not None:
        line = node.start_mark.line + 1
    return f"{text or '(file)'} (line {line})" if line is not None else text or "(file)"


def _child(node: yaml.Node, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                return value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None
