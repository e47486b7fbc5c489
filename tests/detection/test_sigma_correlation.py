"""Sigma correlation rules over time-ordered streams."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from detection.sigma import SigmaEngine, correlate, load_sigma_rules
from tests.detection.sigma_helpers import TS, event

BASE = """title: failed logon
id: 0a000000-0000-4000-8000-000000000001
name: failed_logon
status: test
logsource: {product: linux}
detection:
  sel: {action: failed}
  condition: sel
level: low
---
title: successful logon
id: 0a000000-0000-4000-8000-000000000002
name: good_logon
status: test
logsource: {product: linux}
detection:
  sel: {action: ok}
  condition: sel
level: low
"""


def correlation(body: str) -> str:
    return (
        "---\ntitle: corr\nid: 0b000000-0000-4000-8000-000000000001\nstatus: test\nlevel: high\n"
        + body
    )


def run(tmp_path: Path, body: str, stream: list[tuple[int, dict]]) -> list:
    path = tmp_path / "rules.yml"
    path.write_text(BASE + correlation(body), encoding="utf-8")
    ruleset = load_sigma_rules([path])
    assert not ruleset.errors, ruleset.errors
    engine = SigmaEngine(ruleset)
    events = [event(fields, TS + timedelta(seconds=s)) for s, fields in stream]
    return [d for d in engine.match_stream(events) if d.rule_id.startswith("0b")]


def failed(src: str, user: str = "root") -> dict:
    return {"action": "failed", "src": src, "user": user}


def test_event_count_per_group_within_timespan(tmp_path: Path) -> None:
    body = """correlation:
  type: event_count
  rules: [failed_logon]
  group-by: [src]
  timespan: 1m
  condition: {gte: 3}
"""
    stream = [
        (0, failed("a")),
        (10, failed("b")),
        (20, failed("a")),
        (100, failed("a")),
        (110, failed("a")),
        (115, failed("a")),
        (116, failed("b")),
    ]
    hits = run(tmp_path, body, stream)
    # a: 0,20 then a gap over 1m; 100,110,115 makes three. b never reaches three.
    assert len(hits) == 1
    assert hits[0].meta["group"] == {"src": "a"}
    assert [e.fields["src"] for e in hits[0].events] == ["a", "a", "a"]
    assert hits[0].timestamp == TS + timedelta(seconds=115)


def test_value_count(tmp_path: Path) -> None:
    body = """correlation:
  type: value_count
  rules: [failed_logon]
  group-by: [src]
  timespan: 5m
  condition: {field: user, gte: 3}
"""
    same_user = [(i, failed("a", "root")) for i in range(10)]
    assert run(tmp_path, body, same_user) == []
    spray = [
        (1, failed("a", "u1")),
        (2, failed("a", "u2")),
        (3, failed("a", "u2")),
        (4, failed("a", "u3")),
    ]
    (hit,) = run(tmp_path, body, spray)
    assert hit.meta["count"] == 3


def test_temporal_and_ordered(tmp_path: Path) -> None:
    unordered = """correlation:
  type: temporal
  rules: [failed_logon, good_logon]
  group-by: [src]
  timespan: 1m
"""
    ordered = unordered.replace("type: temporal", "type: temporal_ordered")
    ok = {"action": "ok", "src": "a"}
    success_first = [(0, ok), (5, failed("a"))]
    assert len(run(tmp_path, unordered, success_first)) == 1
    assert run(tmp_path, ordered, success_first) == []
    assert len(run(tmp_path, ordered, [(0, failed("a")), (5, ok)])) == 1
    # Too far apart, or in another group.
    assert run(tmp_path, ordered, [(0, failed("a")), (61 + 5, ok)]) == []
    assert run(tmp_path, ordered, [(0, failed("b")), (5, ok)]) == []


def test_at_most_condition_is_judged_when_the_window_closes(tmp_path: Path) -> None:
    body = """correlation:
  type: event_count
  rules: [failed_logon]
  group-by: [src]
  timespan: 1m
  condition: {lt: 2}
"""
    stream = [(0, failed("a")), (10, failed("b")), (20, failed("b")), (200, failed("c"))]
    groups = sorted(h.meta["group"]["src"] for h in run(tmp_path, body, stream))
    assert groups == ["a", "c"]


def test_generate_false_hides_base_rule_hits(tmp_path: Path) -> None:
    body = """correlation:
  type: event_count
  rules: [failed_logon]
  group-by: [src]
  timespan: 1m
  condition: {gte: 2}
"""
    path = tmp_path / "rules.yml"
    path.write_text(BASE + correlation(body), encoding="utf-8")
    engine = SigmaEngine(load_sigma_rules([path]))
    found = list(engine.match_stream([event(failed("a"), TS), event(failed("a"), TS)]))
    assert [d.rule_id for d in found] == ["0b000000-0000-4000-8000-000000000001"]
    with_generate = tmp_path / "gen.yml"
    with_generate.write_text(BASE + correlation(body + "  generate: true\n"), encoding="utf-8")
    engine = SigmaEngine(load_sigma_rules([with_generate]))
    found = list(engine.match_stream([event(failed("a"), TS), event(failed("a"), TS)]))
    assert len(found) == 3


def test_memory_is_bounded(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(correlate, "MAX_GROUPS", 50)
    body = """correlation:
  type: event_count
  rules: [failed_logon]
  group-by: [src]
  timespan: 1h
  condition: {gte: 1000}
"""
    path = tmp_path / "rules.yml"
    path.write_text(BASE + correlation(body), encoding="utf-8")
    engine = SigmaEngine(load_sigma_rules([path]))
    from detection.sigma.context import MatchContext
    from detection.sigma.engine import Correlator

    correlator = Correlator(engine)
    for i in range(5000):
        e = event(failed(f"10.0.{i // 250}.{i % 250}"), TS + timedelta(seconds=i))
        list(
            correlator.feed(
                e,
                MatchContext(e.sigma_view(), e.timestamp),
                ["0a000000-0000-4000-8000-000000000001"],
            )
        )
    (state,) = correlator.states
    assert len(state.groups) == 50
    assert state.groups_dropped == 5000 - 50


def test_unknown_reference_is_a_rule_error(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(
        BASE
        + correlation("""correlation:
  type: event_count
  rules: [no_such_rule]
  timespan: 1m
  condition: {gte: 2}
"""),
        encoding="utf-8",
    )
    ruleset = load_sigma_rules([path])
    assert len(ruleset.rules) == 2
    assert ruleset.correlations == []
    assert "no_such_rule" in ruleset.errors[0].reason
