"""The maturity framework: one versioned YAML file of domains, levels and controls.

`load(path)` returns a `Framework` or raises `FrameworkError` with every problem found, each
with its place in the file (the path of keys and the line) and its reason: a file is used
whole or not at all. Automatic evidence names a check of the registry (`api.maturity.checks`)
and gives its parameters, validated by the check's own model; the file holds no query.

Errors:

MaturityError                root of the package's errors
└── FrameworkError           a framework file that cannot be used (`problems`: every reason)
    └── FrameworkUnreadable  not even read: missing, a folder, not UTF-8
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar

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
_CARE = re.compile(r"^(?:D[12](?:\.(?:P[12]|O[1-4](?:\.[a-d](?:–[a-d])?)?))?|axe [1-4]|HOP'EN2)$")
_NONE = "—"  # a reference that does not exist for this control, said so rather than left out
_ID = r"^[A-Z]{2,5}-[0-9]{2}$"


class MaturityError(Exception):
    """Root of the maturity package's errors."""


@dataclass(frozen=True)
class Problem:
    place: str  # keys from the top of the file, with the line: "controls[3].weight (line 57)"
    reason: str
    line: int | None = None  # the line in `place`, for tools; None: the file as a whole

    def __str__(self) -> str:
        return f"{self.place}: {self.reason}"


class FrameworkError(MaturityError):
    def __init__(self, path: str, problems: list[Problem]) -> None:
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{path}: {len(problems)} problem(s): {shown}{more}")
        self.path = path
        self.problems = problems


class FrameworkUnreadable(FrameworkError):
    """The file could not be read at all: there is nothing to check in it."""


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


Loc = tuple[Any, ...]  # keys and indexes from the top of the file
_M = TypeVar("_M", bound=BaseModel)


def load(path: str | Path) -> Framework:
    """The framework in `path`, or FrameworkError with every problem and its place."""
    path = Path(path)
    try:
        # Bytes, not read_text(): its newline translation would give a CRLF file a digest
        # other than the file's sha256.
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FrameworkUnreadable(str(path), [Problem("(file)", f"cannot read: {exc}")]) from exc
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
        raise FrameworkError(name, [_yaml_problem(exc)]) from exc
    if not isinstance(doc, dict):
        raise FrameworkError(name, [Problem("(file)", "a mapping with framework, levels, ...")])
    problems = _duplicate_keys(tree, ())
    framework: Framework | None = None
    try:
        framework = Framework.model_validate(doc)
    except ValidationError as exc:
        problems += [_problem(tree, tuple(e["loc"]), _reason(e)) for e in exc.errors()]
    # Also when the schema refused the file: a typo in one control must not hide an unknown
    # check in another. Each part is checked if it validates alone.
    problems += [_problem(tree, loc, reason) for loc, reason in _coherence(doc)]
    if framework is None or problems:
        problems.sort(key=lambda p: p.line or 0)  # in the order of the file
        raise FrameworkError(name, problems)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return framework.model_copy(update={"digest": digest})


def _yaml_problem(exc: yaml.YAMLError) -> Problem:
    """One line: PyYAML's own message spans several, quoting the text under a caret."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        reason = f"not YAML: {exc.problem}"
        if exc.context:
            mark = exc.context_mark
            reason += f" ({exc.context}, line {mark.line + 1})" if mark else f" ({exc.context})"
    else:
        reason = "not YAML: " + " ".join(str(exc).split())
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    return Problem(f"(line {line})" if line else "(file)", reason, line)


def _reason(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "missing"
    if error["loc"] and error["loc"][-1] == "[key]":  # the key itself, not its value
        return f"bad key: {error['msg']}"
    return str(error["msg"])


def _alone(model: type[_M], raw: Any) -> tuple[list[tuple[int, _M]], bool]:
    """The items of a list that validate by themselves, and whether all did. The others'
    errors are reported by the validation of the whole file."""
    if not isinstance(raw, list):
        return [], False
    valid: list[tuple[int, _M]] = []
    for i, item in enumerate(raw):
        try:
            valid.append((i, model.model_validate(item)))
        except ValidationError:
            continue
    return valid, len(valid) == len(raw)


def _ids(raw: Any) -> list[str | None]:
    if not isinstance(raw, list):
        return []
    return [
        item["id"] if isinstance(item, dict) and isinstance(item.get("id"), str) else None
        for item in raw
    ]


def _coherence(doc: dict[str, Any]) -> list[tuple[Loc, str]]:
    """What the schema alone cannot see: references, sums, duplicates, the checks. A sum or
    a set is judged only when every item it needs validated: otherwise its problem would be
    a consequence of another one."""
    out: list[tuple[Loc, str]] = []
    levels, all_levels = _alone(LevelDef, doc.get("levels"))
    if all_levels:
        found = sorted(x.level for _, x in levels)
        if found != [1, 2, 3, 4, 5]:
            out.append((("levels",), f"levels 1 to 5, each once (found {found})"))
    for i, level in levels:
        if level.level in (2, 3, 4) and level.min_ratio is None:
            out.append((("levels", i), f"level {level.level} needs min_ratio"))
        if level.level == 5 and (level.min_domain_score is None or not level.held_days):
            out.append((("levels", i), "level 5 needs min_domain_score and held_days"))
    raw_domains, raw_controls = doc.get("domains"), doc.get("controls")
    domains, all_domains = _alone(Domain, raw_domains)
    if all_domains:
        total = sum(d.weight for _, d in domains)
        if abs(total - 100) > 1e-9:
            out.append((("domains",), f"domain weights add up to {total:g}, not 100"))
    _duplicates(out, "domains", _ids(raw_domains))
    _duplicates(out, "controls", _ids(raw_controls))
    if isinstance(raw_controls, list):
        used = {c.get("domain") for c in raw_controls if isinstance(c, dict)}
        for i, domain in domains:
            if domain.id not in used:
                out.append((("domains", i), f"domain {domain.id} has no control"))
    # Known domains by their written ids: a domain refused for its weight is still known.
    known = {d for d in _ids(raw_domains) if d} if isinstance(raw_domains, list) else None
    for i, control in _alone(Control, raw_controls)[0]:
        out.extend((("controls", i, *loc), why) for loc, why in _control(control, known))
    return out


def _duplicates(out: list[tuple[Loc, str]], key: str, ids: list[str | None]) -> None:
    seen: set[str] = set()
    for i, item in enumerate(ids):
        if item is None:
            continue
        if item in seen:
            out.append(((key, i, "id"), f"{item} appears twice"))
        seen.add(item)


def _control(control: Control, domains: set[str] | None) -> list[tuple[Loc, str]]:
    from api.maturity.checks import REGISTRY

    out: list[tuple[Loc, str]] = []
    if domains is not None and control.domain not in domains:
        out.append((("domain",), f"unknown domain {control.domain}"))
    elif not control.id.startswith(control.domain + "-"):
        out.append((("id",), f"a {control.domain} control's id starts with {control.domain}-"))
    if control.critical and control.level > 2:
        # A critical control caps the level at 1; at a higher level its failure would cap a
        # level it does not belong to.
        out.append((("critical",), "only level-2 controls are critical"))
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
            near = difflib.get_close_matches(evidence.check, REGISTRY, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            out.append((("evidence", "check"), f"unknown check {evidence.check!r}{hint}"))
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
            out.append(
                (("evidence", "question", "max_age_days"), "a date question needs max_age_days")
            )
        elif question.type == "number" and question.target is None:
            out.append((("evidence", "question", "target"), "a number question needs a target"))
    elif evidence.question is not None:
        out.append((("evidence", "question"), "automatic evidence asks no question"))
    return out


def _keys(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _problem(tree: yaml.Node | None, loc: Loc, reason: str) -> Problem:
    """`controls[3].weight (line 57)`: the keys, and the line of the deepest node found."""
    loc = tuple(part for part in loc if part != "[key]")  # pydantic's mark of a bad dict key
    node, line = tree, None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        node = _child(node, part)
    if node is not None:
        line = node.start_mark.line + 1
    text = _keys(loc) or "(file)"
    return Problem(f"{text} (line {line})" if line is not None else text, reason, line)


def _child(node: yaml.Node, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                return value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None


def _duplicate_keys(node: yaml.Node | None, loc: Loc) -> list[Problem]:
    """Keys given twice in one mapping: YAML keeps the last one silently, so a block pasted
    twice could change a weight unseen."""
    out: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    line = key.start_mark.line + 1
                    place = f"{_keys((*loc, key.value))} (line {line})"
                    out.append(Problem(place, "key given twice (only the last would count)", line))
                seen.add(key.value)
            out += _duplicate_keys(value, (*loc, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out += _duplicate_keys(item, (*loc, i))
    return out
