"""The in-process engine and the SQLite conversion select the same events.

The corpus test runs every SigmaHQ Windows rule that converts to SQLite over every event of
the EVTX corpus, both ways: `SigmaEngine` and the rule's SQLite query over the events loaded
as Zircolite loads them (`benchmarks/sqlite_approach.py`). Each difference is listed with its
cause (`sqlite_approach.CAUSES`); a difference with no known cause fails the test. The small
tests pin how each value form is rendered in SQL and that SQLite reads it as the engine does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.sqlite_approach import EventTable, QueryOutcome, connect, explain, run_queries
from detection.event import Event
from detection.logsource import SYSMON
from detection.sigma import CompiledRule, SigmaEngine, SigmaRuleSet, load_sigma_rules
from detection.sigma.convert import ConversionResult, to_sqlite
from detection.sigma.load import pysigma_rule
from detection.sources.windows import event_from_rendering
from tests import sigmahq


@dataclass(frozen=True)
class Difference:
    rule: CompiledRule
    event: Event
    side: str  # which side selected the event: "engine only" or "sqlite only"
    cause: str | None

    def __str__(self) -> str:
        record = self.event.fields["winlog"].get("record_id")
        return (
            f"{self.cause or 'UNEXPLAINED'}: {self.side}: rule {self.rule.id} "
            f"({self.rule.title}) on {Path(self.event.source).name} record {record}"
        )


@dataclass
class Comparison:
    converted: list[ConversionResult]
    outcome: QueryOutcome
    engine_hits: int
    differences: list[Difference]


def compare(
    ruleset: SigmaRuleSet,
    events: Sequence[Event],
    converted: Sequence[ConversionResult] | None = None,
    matches: Mapping[str, Iterable[int]] | None = None,
) -> Comparison:
    """Both selections for every rule that converts; the differences with their causes.
    `converted` and `matches` (rule id -> indexes of the events the engine matches) are what
    this computes when not given."""
    converted = list(converted if converted is not None else to_sqlite(ruleset.rules))
    if matches is None:
        engine = SigmaEngine(ruleset)
        found: dict[str, set[int]] = {}
        for index, event in enumerate(events):
            for rule in engine.matching_rules(event)[1]:
                found.setdefault(rule.id, set()).add(index)
        matches = found
    by_engine = {rule_id: set(indexes) for rule_id, indexes in matches.items()}
    table = EventTable(connect())
    table.load((index, event.sigma_view()) for index, event in enumerate(events))
    outcome, _ = run_queries(table, converted)
    rules = {rule.id: rule for rule in ruleset.rules}
    differences: list[Difference] = []
    for result in converted:
        if not result.ok or result.rule_id in outcome.errors:
            continue
        mine = by_engine.get(result.rule_id, set())
        theirs = set(outcome.rows.get(result.rule_id, ()))
        for side, indexes in (("engine only", mine - theirs), ("sqlite only", theirs - mine)):
            for index in sorted(indexes):
                rule, event = rules[result.rule_id], events[index]
                sigma = pysigma_rule(rule)
                assert sigma is not None
                cause = explain(sigma, event.sigma_view(), event.fields["winlog"])
                differences.append(Difference(rule, event, side, cause))
    hits = sum(len(v) for k, v in by_engine.items() if k in {r.rule_id for r in converted})
    return Comparison(converted, outcome, hits, differences)


# --- the corpus -----------------------------------------------------------------------------


@sigmahq.sqlite_side
def test_engine_and_sqlite_select_the_same_events_on_the_evtx_corpus() -> None:
    ruleset = sigmahq.windows_rules()
    ids = Counter(rule.id for rule in ruleset.rules)
    assert not [i for i, n in ids.items() if n > 1], "rule ids must be unique to compare"
    events = sigmahq.evtx_events()
    assert len(events) > 3000

    result = compare(ruleset, events, sigmahq.sqlite_queries(), sigmahq.engine_matches())

    compared = [r for r in result.converted if r.ok]
    refused = Counter((r.error or "").split(":")[0] for r in result.converted if not r.ok)
    by_cause = Counter(d.cause or "UNEXPLAINED" for d in result.differences)
    print(  # the figures, shown with `pytest -s`
        f"\n{len(compared)} rules compared over {len(events)} events "
        f"({sum(refused.values())} not convertible: {dict(refused)}); "
        f"{result.engine_hits} engine matches; differences by cause: {dict(by_cause)}"
    )
    for difference in result.differences:
        print(f"  {difference}")
    assert not result.outcome.errors, result.outcome.errors
    # Keyword rules and ETW-only log sources are the only ones refused.
    assert len(compared) >= 0.98 * len(ruleset.rules)
    assert result.engine_hits > 500  # the comparison is not over empty selections
    unexplained = [str(d) for d in result.differences if d.cause is None]
    assert not unexplained, "\n".join(unexplained)


# --- value forms, one at a time -------------------------------------------------------------

HEADER = """
title: {title}
id: 00000000-0000-4000-8000-{number:012d}
status: test
logsource:
  product: windows
  category: process_creation
detection:
"""


def _rules(tmp_path: Path, detections: list[str]) -> SigmaRuleSet:
    for number, detection in enumerate(detections):
        text = HEADER.format(title=f"case {number}", number=number) + detection
        (tmp_path / f"rule{number:03d}.yml").write_text(text, encoding="utf-8")
    ruleset = load_sigma_rules([tmp_path])
    assert not ruleset.errors, ruleset.errors
    return ruleset


def _event(data: dict[str, Any], channel: str = SYSMON, event_id: int = 1) -> Event:
    system = {"Channel": channel, "EventID": event_id, "EventRecordID": 1}
    return event_from_rendering({"Event": {"System": system, "EventData": data}}, "test")


EVENTS = [
    _event({"Image": "C:\\Windows\\System32\\cmd.exe", "CommandLine": "cmd /c WHOAMI /all"}),
    _event({"Image": "C:\\Temp\\a.exe", "CommandLine": "a.exe 50% done_x", "ParentImage": "-"}),
    _event({"Image": "C:\\Temp\\b.exe", "SourceIp": "10.1.2.3", "DestinationPort": 445}),
    _event({"Image": "C:\\Temp\\c.exe", "SourceIp": "100.1.2.3", "DestinationPort": "3389"}),
    _event({"Image": "C:\\Temp\\c.exe", "User": None, "ParentImage": "C:\\Temp\\c.exe"}),
    _event({"Image": "C:\\Windows\\cmd.exe", "Flag": True, "Data": ["one", "two\\x"]}),
    # Not a process creation: no rule below may select it, whatever its fields.
    _event({"Image": "C:\\Windows\\System32\\cmd.exe"}, event_id=3),
    # Security 4688: the engine reads NewProcessName as Image; the table holds the same view.
    _event({"NewProcessName": "C:\\Windows\\cmd.exe"}, channel="Security", event_id=4688),
]

# (detection, the events it selects): SQL escaping of LIKE's `%` and `_`, regular expressions
# with and without flags, CIDR, numbers stored as text, comparisons, null, exists, field
# references, booleans, lists, absent columns, `cased`, and the log-source restriction.
CASES = [
    ("sel: {Image|endswith: '\\cmd.exe'}", [0, 5, 7]),
    ("sel: {CommandLine|contains: 'whoami'}", [0]),
    ("sel: {CommandLine|contains: '50%'}", [1]),
    ("sel: {CommandLine|contains: 'e_x'}", [1]),
    ("sel: {CommandLine|re: 'whoami\\s+/ALL'}", []),
    ("sel: {CommandLine|re|i: 'whoami\\s+/ALL'}", [0]),
    ("sel: {SourceIp|cidr: '10.0.0.0/8'}", [2]),
    ("sel: {DestinationPort: 445}", [2]),
    ("sel: {DestinationPort: 3389}", [3]),
    ("sel: {DestinationPort|gt: 1000}", [3]),
    ("sel: {User: null}", [0, 1, 2, 3, 4, 5, 7]),
    ("sel: {ParentImage|exists: true}", [1, 4]),
    ("sel: {ParentImage|exists: false}", [0, 2, 3, 5, 7]),
    ("sel: {Image|fieldref: ParentImage}", [4]),
    ("sel: {Flag: true}", [5]),
    ("sel: {Data|contains: 'two\\'}", [5]),
    ("sel: {Image|startswith: 'C:\\Temp\\'}\n  flt: {NoSuchField: 'x'}", [1, 2, 3, 4]),
    ("sel: {Image|contains|cased: 'Temp'}", [1, 2, 3, 4]),
    ("sel: {Image: 'c:\\windows\\cmd.exe'}", [5, 7]),
]


def test_sqlite_reads_every_value_form_as_the_engine(tmp_path: Path) -> None:
    detections = [
        f"  {block}\n  condition: sel" + (" and not flt" if "flt:" in block else "")
        for block, _ in CASES
    ]
    result = compare(_rules(tmp_path, detections), EVENTS)
    assert all(r.ok for r in result.converted), [r.error for r in result.converted]
    assert not result.outcome.errors
    assert not result.differences, "\n".join(map(str, result.differences))
    selected = [result.outcome.rows.get(r.rule_id, []) for r in result.converted]
    assert selected == [rows for _, rows in CASES]


def test_non_ascii_case_is_a_named_difference(tmp_path: Path) -> None:
    ruleset = _rules(tmp_path, ["  sel: {CommandLine|contains: 'école'}\n  condition: sel"])
    events = [_event({"CommandLine": "copy ÉCOLE.doc"}), _event({"CommandLine": "école"})]
    result = compare(ruleset, events)
    assert [(d.side, d.cause, d.event is events[0]) for d in result.differences] == [
        ("engine only", "non-ASCII case", True)
    ]


def test_a_rule_sqlite_cannot_express_is_refused_not_compared(tmp_path: Path) -> None:
    ruleset = _rules(tmp_path, ["  keywords: ['mimikatz']\n  condition: keywords"])
    result = compare(ruleset, [_event({"CommandLine": "mimikatz"})])
    assert not result.converted[0].ok
    assert "keywords" in (result.converted[0].error or "")
    assert result.differences == []
