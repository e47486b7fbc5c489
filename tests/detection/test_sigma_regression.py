"""SigmaHQ's regression samples, pinned: each of the 142 cases gives exactly its match count.

A case's rule alone on its sample gives SigmaHQ's `match_count` (1 where the case gives none), or
the count listed with its reason in sigmahq_extra_hits.OWN_COUNTS. All 142 rules together on every
sample fire exactly those own hits plus the cross hits listed in sigmahq_extra_hits.CROSS_HITS:
an unlisted extra hit fails, and so does a listed one that no longer occurs.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from detection.event import Event
from detection.sigma import SigmaEngine, load_sigma_rules
from detection.sources.read import read_events
from detection.sources.sniff import InputKind
from detection.sources.stats import ReadStats
from tests.conftest import corpus_path
from tests.detection.sigmahq_extra_hits import CROSS_HITS, OWN_COUNTS

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

# The corpus in ../shared is a fixed snapshot; a different count means the pins need a new look.
CASE_COUNT = 142

_ID_LINE = re.compile(r"^id:\s*['\"]?([0-9a-fA-F-]{36})", re.MULTILINE)


@dataclass
class Case:
    info: Path
    rule_id: str
    expected: int
    sample: Path

    @property
    def name(self) -> str:
        return self.info.parent.name


def _cases(regression: Path) -> list[Case]:
    cases = []
    for info in sorted(regression.rglob("info.yml")):
        doc = yaml.safe_load(info.read_text(encoding="utf-8"))
        rule_id = doc["rule_metadata"][0]["id"]
        tests = doc.get("regression_tests_info") or [{}]
        # Cases that leave match_count out (or comment it out) expect at least one match.
        expected = int(tests[0].get("match_count") or 1)
        # The .evtx sample when there is one; else the raw log (read as syslog text).
        samples = sorted(info.parent.glob(f"{rule_id}.*"))
        evtx = [p for p in samples if p.suffix == ".evtx"]
        sample = evtx[0] if evtx else next((p for p in samples if p.suffix != ".json"), info)
        cases.append(Case(info, rule_id, expected, sample))
    return cases


def _rule_files(corpus: Path) -> dict[str, Path]:
    by_id: dict[str, Path] = {}
    for folder in corpus.glob("rules*"):
        for path in folder.rglob("*.yml"):
            found = _ID_LINE.search(path.read_text(encoding="utf-8", errors="replace"))
            if found:
                by_id[found.group(1).lower()] = path
    return by_id


@dataclass
class Loaded:
    case: Case
    rule_file: Path
    events: list[Event]


@pytest.fixture(scope="module")
def loaded() -> list[Loaded]:
    """Every case with its rule file and its sample's events, read once for both tests."""
    corpus = corpus_path("sigma")
    cases = _cases(corpus / "regression")
    assert len(cases) == CASE_COUNT
    by_id = _rule_files(corpus)
    out = []
    for case in cases:
        rule_file = by_id.get(case.rule_id.lower())
        assert rule_file is not None, f"{case.name}: rule {case.rule_id} not in the corpus"
        assert case.sample != case.info, f"{case.name}: no sample"
        stats = ReadStats()
        kind: InputKind = "evtx" if case.sample.suffix == ".evtx" else "syslog"
        events = list(read_events(case.sample, stats, kind))
        assert stats.records_skipped == 0, f"{case.name}: {stats.records_skipped} records skipped"
        out.append(Loaded(case, rule_file, events))
    return out


def _own_count(case: Case) -> int:
    listed = OWN_COUNTS.get(case.name)
    return listed[0] if listed else case.expected


def test_each_rule_alone_gives_its_count(loaded: list[Loaded]) -> None:
    # An OWN_COUNTS entry naming no case, or pinning SigmaHQ's own count, is stale.
    names = {item.case.name: item.case.expected for item in loaded}
    failures = [
        f"{name}: stale OWN_COUNTS entry"
        for name, (count, _) in OWN_COUNTS.items()
        if names.get(name, count) == count
    ]
    for item in loaded:
        case = item.case
        ruleset = load_sigma_rules([item.rule_file])
        if ruleset.errors or [r.id for r in ruleset.rules] != [case.rule_id]:
            failures.append(f"{case.name}: rule not loaded alone: {ruleset.errors[:1]}")
            continue
        hits = sum(1 for _ in SigmaEngine(ruleset).match_stream(item.events))
        if hits != _own_count(case):
            views = [e.sigma_view() for e in item.events]
            seen = sorted({(v.get("Channel"), v.get("EventID")) for v in views})
            failures.append(
                f"{case.name}: {hits} matches, pinned {_own_count(case)}; "
                f"{len(item.events)} events {seen[:3]}"
            )
    print(f"\nSigmaHQ regression: {len(loaded) - len(failures)}/{len(loaded)} cases as pinned")
    assert not failures, "\n".join(failures)


def test_all_rules_together_hit_only_what_is_listed(loaded: list[Loaded]) -> None:
    ruleset = load_sigma_rules([item.rule_file for item in loaded])
    assert not ruleset.errors
    assert len(ruleset.rules) == CASE_COUNT
    engine = SigmaEngine(ruleset)
    names = {item.case.rule_id: item.rule_file.stem for item in loaded}
    wrong_own = []
    cross: set[tuple[str, str]] = set()
    for item in loaded:
        case = item.case
        hits = Counter(d.rule_id for d in engine.match_stream(item.events))
        # Sharing an engine (and its prefilter) with 141 other rules changes no rule's count.
        if hits.pop(case.rule_id, 0) != _own_count(case):
            wrong_own.append(case.name)
        cross.update((case.name, names[rule_id]) for rule_id in hits)
    unlisted = sorted(cross - CROSS_HITS.keys())
    gone = sorted(CROSS_HITS.keys() - cross)
    problems = [f"  {name}: own count differs from its pin" for name in wrong_own]
    problems += [f"  {case} <- {rule}: extra hit not in CROSS_HITS" for case, rule in unlisted]
    problems += [f"  {case} <- {rule}: in CROSS_HITS, no longer hit" for case, rule in gone]
    assert not problems, "\n" + "\n".join(problems)
