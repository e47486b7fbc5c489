"""SigmaHQ's regression samples: each sample, scanned with its rule, gives its match count.

The test prints the pass rate and every miss with its reason, and fails below 95%.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from detection.sigma import SigmaEngine, load_sigma_rules
from detection.sources.read import read_events
from detection.sources.stats import ReadStats
from tests.conftest import corpus_path

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

_ID_LINE = re.compile(r"^id:\s*['\"]?([0-9a-fA-F-]{36})", re.MULTILINE)


@dataclass
class Case:
    info: Path
    rule_id: str
    expected: int
    sample: Path


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


def _run(case: Case, rule_file: Path | None) -> str | None:
    """None when the case passes, else why it does not."""
    if rule_file is None:
        return "rule not found in the corpus"
    if case.sample == case.info:
        return "no sample"
    ruleset = load_sigma_rules([rule_file])
    if ruleset.errors:
        return f"rule unusable: {ruleset.errors[0].reason}"
    if not any(r.id == case.rule_id for r in ruleset.rules):
        return "rule not loaded"
    engine = SigmaEngine(ruleset)
    stats = ReadStats()
    kind = "evtx" if case.sample.suffix == ".evtx" else "syslog"
    events = list(read_events(case.sample, stats, kind))
    hits = sum(1 for d in engine.match_stream(events) if d.rule_id == case.rule_id)
    if hits >= case.expected:
        return None
    seen = sorted({(e.sigma_view().get("Channel"), e.sigma_view().get("EventID")) for e in events})
    skipped = stats.records_skipped
    return f"{hits} of {case.expected} matches; {len(events)} events {seen[:3]}; skipped {skipped}"


def test_regression_pass_rate() -> None:
    corpus = corpus_path("sigma")
    cases = _cases(corpus / "regression")
    assert len(cases) > 100
    by_id = _rule_files(corpus)
    misses = {}
    for case in cases:
        reason = _run(case, by_id.get(case.rule_id.lower()))
        if reason:
            misses[case.info.parent.relative_to(corpus)] = reason
    rate = 1 - len(misses) / len(cases)
    report = "\n".join(f"  {where}: {why}" for where, why in sorted(misses.items()))
    print(
        f"\nSigmaHQ regression: {len(cases) - len(misses)}/{len(cases)} pass ({rate:.1%})\n{report}"
    )
    assert rate >= 0.95, f"pass rate {rate:.1%} below 95%:\n{report}"
