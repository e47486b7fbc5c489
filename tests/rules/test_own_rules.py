"""Vigie's own rules (`rules/`), tested as code.

1. Every rule file loads with no error and carries the metadata Vigie requires; every rule has
   a positive and a negative case, and every case belongs to a rule.
2. Sigma: each positive case fires its rule (by the rule's exact id), each negative does not.
   A case file holds one event, or a JSON array of events in time order for correlation rules.
3. YARA: each positive sample matches its rule, each negative sample does not.

Parts 2 and 3 run through Vigie's engines (`detection.sigma`, `detection.yara`); the loading
and metadata checks of part 1 use pySigma and yara-python directly, so that a rule is checked
against the reference libraries whatever the engines do.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
import yara
from sigma.collection import SigmaCollection
from sigma.types import SigmaRuleLocation
from sigma.validation import SigmaValidator
from sigma.validators.core import validators

REPO = Path(__file__).resolve().parents[2]
SIGMA_DIR = REPO / "rules" / "sigma"
YARA_DIR = REPO / "rules" / "yara"
SIGMA_CASES = Path(__file__).resolve().parent / "sigma"
YARA_CASES = Path(__file__).resolve().parent / "yara"

SIGMA_FILES = sorted(SIGMA_DIR.rglob("*.yml"))
YARA_FILES = sorted(YARA_DIR.glob("*.yar"))

STATUSES = {"stable", "test", "experimental"}
LEVELS = {"informational", "low", "medium", "high", "critical"}
ATTACK_TACTICS = {
    "reconnaissance",
    "resource_development",
    "initial_access",
    "execution",
    "persistence",
    "privilege_escalation",
    "defense_evasion",
    "credential_access",
    "discovery",
    "lateral_movement",
    "collection",
    "command_and_control",
    "exfiltration",
    "impact",
}
ATTACK_TAG = re.compile(r"attack\.(t\d{4}(\.\d{3})?|[sg]\d{4}|[a-z_]+)")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
YARA_RULE_NAME = re.compile(r"^\s*(?:(?:private|global)\s+)*rule\s+(\w+)", re.MULTILINE)
YARA_META = {"description", "author", "date", "severity"}
# pySigma validators left out: those that download MITRE/D3FEND data (no network in tests).
SKIPPED_VALIDATORS = {
    "attacktag",
    "cartag",
    "cvetag",
    "d3_fendtag",
    "detection_tag",
    "stptag",
    "tlptag",
    "tlpv1_tag",
    "tlpv2_tag",
}

# Cases the engine cannot pass yet ("<rule stem>.<positive|negative>"), each with the engine
# gap that stops it. Strict xfail: the test turns red once the engine is fixed, so that the
# entry gets removed.
ENGINE_GAPS: dict[str, str] = {}


# --- helpers ----------------------------------------------------------------------------------


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def primary_doc(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The rule a file is about: its only rule, or the correlation no other one refers to."""
    correlations = [d for d in docs if "correlation" in d]
    if not correlations:
        assert len(docs) == 1, "a file without correlation holds exactly one rule"
        return docs[0]
    referenced = {str(r) for d in correlations for r in d["correlation"].get("rules", [])}
    top = [
        d for d in correlations if d.get("id") not in referenced and d.get("name") not in referenced
    ]
    assert len(top) == 1, f"expected one outermost correlation, found {len(top)}"
    return top[0]


@cache
def sigma_rule_id(path: Path) -> str:
    return str(primary_doc(_docs(path))["id"])


def yara_rule_names(path: Path) -> list[str]:
    return YARA_RULE_NAME.findall(path.read_text(encoding="utf-8"))


YARA_RULES = [(path, name) for path in YARA_FILES for name in yara_rule_names(path)]


def _as_iso(value: Any) -> str:
    """YAML reads an unquoted YYYY-MM-DD as a date: accept both spellings."""
    return value.isoformat() if isinstance(value, date) else str(value)


def _case_id(path: Path) -> str:
    return path.relative_to(SIGMA_DIR).with_suffix("").as_posix()


def _yara_id(item: tuple[Path, str]) -> str:
    return item[1]


def _with_gaps(files: list[Path], kind: str) -> Iterator[Any]:
    for path in files:
        reason = ENGINE_GAPS.get(f"{path.stem}.{kind}")
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        yield pytest.param(path, id=_case_id(path), marks=marks)


# --- 1. loading, metadata, case files -----------------------------------------------------------


def test_rule_sets_are_not_empty() -> None:
    assert len(SIGMA_FILES) >= 22
    assert sum(1 for docs in map(_docs, SIGMA_FILES) if any("correlation" in d for d in docs))
    assert len(YARA_RULES) >= 12


@pytest.mark.parametrize("path", SIGMA_FILES, ids=_case_id)
def test_sigma_rule_loads_with_pysigma(path: Path) -> None:
    collection = SigmaCollection.from_yaml(
        path.read_text(encoding="utf-8"), collect_errors=True, source=SigmaRuleLocation(path)
    )
    assert collection.errors == []
    assert collection.rules, "no rule in the file"
    for rule in collection.rules:
        assert rule.errors == [], f"{rule.title}: {rule.errors}"
    collection.resolve_rule_references()  # correlations refer to rules of the same file


@pytest.mark.parametrize("path", SIGMA_FILES, ids=_case_id)
def test_sigma_rule_metadata(path: Path) -> None:
    docs = _docs(path)
    main = primary_doc(docs)
    for doc in docs:
        assert isinstance(doc.get("title"), str)
        assert 0 < len(doc["title"]) <= 256
        assert uuid.UUID(doc["id"]).version == 4, "id must be a UUIDv4"
        assert str(uuid.UUID(doc["id"])) == doc["id"], "id must be a canonical lower-case UUID"
        assert doc.get("author") == "Vigie"
        assert ISO_DATE.fullmatch(_as_iso(doc.get("date"))), "date must be YYYY-MM-DD"
        assert doc.get("status") in STATUSES
        assert doc.get("description")
        if "correlation" not in doc:
            assert doc.get("logsource"), "a detection rule needs a logsource"
            assert "condition" in doc.get("detection", {}), "a detection rule needs a condition"
    assert ISO_DATE.fullmatch(_as_iso(main.get("modified"))), "modified must be YYYY-MM-DD"
    assert _as_iso(main["modified"]) >= _as_iso(main["date"])
    assert main.get("level") in LEVELS
    assert isinstance(main.get("falsepositives"), list)
    assert main["falsepositives"]
    assert all(isinstance(fp, str) and fp for fp in main["falsepositives"])
    for ref in main.get("references", []):
        assert ref.startswith("https://"), ref
    tags = main.get("tags", [])
    assert tags, "ATT&CK tags are required"
    assert all(ATTACK_TAG.fullmatch(t) for t in tags), tags
    assert any(t.startswith("attack.t") for t in tags), "at least one ATT&CK technique"
    tactic = path.parent.name
    assert path.parent.parent == SIGMA_DIR, "rules live in rules/sigma/<tactic>/<what>.yml"
    assert tactic in ATTACK_TACTICS, f"folder {tactic!r} is not an ATT&CK tactic"
    assert f"attack.{tactic}" in tags, f"the folder's tactic attack.{tactic} must be tagged"
    assert re.fullmatch(r"[a-z0-9_]{10,70}", path.stem), "file name: 10-70 chars of [a-z0-9_]"


def test_sigma_ids_and_names_are_unique() -> None:
    docs = [d for path in SIGMA_FILES for d in _docs(path)]
    ids = Counter(d["id"] for d in docs)
    names = Counter(d["name"] for d in docs if "name" in d)
    stems = Counter(p.stem for p in SIGMA_FILES)
    assert [i for i, n in ids.items() if n > 1] == []
    assert [i for i, n in names.items() if n > 1] == []
    assert [s for s, n in stems.items() if n > 1] == [], "case files are named by the rule's stem"


def test_sigma_rules_pass_pysigma_validators() -> None:
    collection = SigmaCollection.merge(
        [
            SigmaCollection.from_yaml(p.read_text(encoding="utf-8"), source=SigmaRuleLocation(p))
            for p in SIGMA_FILES
        ]
    )
    validator = SigmaValidator(
        v for name, v in validators.items() if name not in SKIPPED_VALIDATORS
    )
    issues = validator.validate_rules(collection)
    assert [f"{type(i).__name__}: {[r.title for r in i.rules]}" for i in issues] == []


def test_every_sigma_rule_has_its_cases_and_every_case_its_rule() -> None:
    stems = {p.stem for p in SIGMA_FILES}
    expected = {f"{s}.{kind}.json" for s in stems for kind in ("positive", "negative")}
    present = {p.name for p in SIGMA_CASES.iterdir() if p.is_file()}
    assert sorted(expected - present) == [], "rules without a case file"
    assert sorted(present - expected) == [], "case files without a rule"


@pytest.mark.parametrize("path", YARA_FILES, ids=lambda p: p.name)
def test_yara_file_compiles_with_metadata(path: Path) -> None:
    rules = yara.compile(filepath=str(path))
    compiled = {r.identifier: r for r in rules}
    assert sorted(compiled) == sorted(yara_rule_names(path))
    for name, rule in compiled.items():
        assert name.startswith("Vigie_"), name
        missing = YARA_META - set(rule.meta)
        assert not missing, f"{name}: meta missing {sorted(missing)}"
        assert rule.meta["author"] == "Vigie"
        assert rule.meta["severity"] in LEVELS, rule.meta["severity"]
        assert ISO_DATE.fullmatch(rule.meta["date"])
        assert rule.meta["description"]


def test_yara_names_are_unique() -> None:
    names = Counter(name for _, name in YARA_RULES)
    assert [n for n, c in names.items() if c > 1] == []


def test_every_yara_rule_has_its_samples_and_every_sample_its_rule() -> None:
    expected = {f"{name}.{kind}" for _, name in YARA_RULES for kind in ("positive", "negative")}
    present = {p.name for p in YARA_CASES.iterdir() if p.is_file()}
    assert sorted(expected - present) == [], "rules without a sample"
    assert sorted(present - expected) == [], "samples without a rule"


@pytest.mark.parametrize("item", YARA_RULES, ids=_yara_id)
def test_yara_samples_with_libyara(item: tuple[Path, str]) -> None:
    """The rule itself, through libyara: positive matches, negative does not."""
    path, name = item
    rules = yara.compile(filepath=str(path))
    assert name in {m.rule for m in rules.match(str(YARA_CASES / f"{name}.positive"))}
    assert name not in {m.rule for m in rules.match(str(YARA_CASES / f"{name}.negative"))}


# --- 2. Sigma cases through Vigie's engine -------------------------------------------------------


@pytest.fixture(scope="module")
def sigma_engine() -> Any:
    from detection.sigma import SigmaEngine, load_sigma_rules

    ruleset = load_sigma_rules([SIGMA_DIR])
    return SigmaEngine(ruleset)


def test_engine_loads_every_sigma_rule(sigma_engine: Any) -> None:
    known = {key.split(".")[0] for key in ENGINE_GAPS}
    errors = [
        f"{e.path}: {e.reason}"
        for e in sigma_engine.ruleset.errors
        if Path(e.path).stem not in known
    ]
    assert errors == []


def _events(case: Path) -> list[Any]:
    from detection.sources.jsonlog import event_from_object

    doc = json.loads(case.read_text(encoding="utf-8"))
    docs = doc if isinstance(doc, list) else [doc]
    assert docs, f"{case.name}: no event"
    assert all(isinstance(d, Mapping) for d in docs), f"{case.name}: objects expected"
    return [event_from_object(dict(d), str(case)) for d in docs]


def _fired(engine: Any, case: Path) -> set[str]:
    events = _events(case)
    if len(events) == 1:
        return {d.rule_id for d in engine.match(events[0])}
    return {d.rule_id for d in engine.match_stream(events)}


def _loaded_ids(engine: Any) -> set[str]:
    ruleset = engine.ruleset
    return {r.id for r in ruleset.rules} | {c.id for c in ruleset.correlations}


@pytest.mark.parametrize("path", list(_with_gaps(SIGMA_FILES, "positive")))
def test_sigma_positive_fires(sigma_engine: Any, path: Path) -> None:
    rule_id = sigma_rule_id(path)
    fired = _fired(sigma_engine, SIGMA_CASES / f"{path.stem}.positive.json")
    assert rule_id in fired, f"{rule_id} did not fire; fired: {sorted(fired)}"


@pytest.mark.parametrize("path", list(_with_gaps(SIGMA_FILES, "negative")))
def test_sigma_negative_is_quiet(sigma_engine: Any, path: Path) -> None:
    rule_id = sigma_rule_id(path)
    assert rule_id in _loaded_ids(sigma_engine), "the rule did not load: the case proves nothing"
    fired = _fired(sigma_engine, SIGMA_CASES / f"{path.stem}.negative.json")
    assert rule_id not in fired


# --- 3. YARA samples through Vigie's scanner -----------------------------------------------------


@pytest.fixture(scope="module")
def yara_scanner() -> Any:
    from detection.yara import YaraScanner, load_yara_rules

    ruleset = load_yara_rules([YARA_DIR])
    assert ruleset.errors == []
    return YaraScanner(ruleset)


@pytest.mark.parametrize("item", YARA_RULES, ids=_yara_id)
def test_yara_positive_matches(yara_scanner: Any, item: tuple[Path, str]) -> None:
    _, name = item
    hits = {d.rule_id for d in yara_scanner.scan_paths([YARA_CASES / f"{name}.positive"])}
    assert name in hits, f"{name} did not match; matched: {sorted(hits)}"


@pytest.mark.parametrize("item", YARA_RULES, ids=_yara_id)
def test_yara_negative_does_not_match(yara_scanner: Any, item: tuple[Path, str]) -> None:
    _, name = item
    hits = {d.rule_id for d in yara_scanner.scan_paths([YARA_CASES / f"{name}.negative"])}
    assert name not in hits
