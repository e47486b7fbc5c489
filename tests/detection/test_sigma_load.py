"""Loading: parallel parsing and the IR cache give the same rules as a plain load."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from detection.event import Event
from detection.sigma import SigmaEngine, load_sigma_rules
from detection.sigma import load as load_module
from detection.sigma.load import pysigma_rule

RULE = """title: rule {n}
id: 00000000-0000-4000-8000-{n:012d}
status: test
logsource: {{product: linux}}
detection:
  sel: {{F|contains: 'needle{n}'}}
  condition: sel
level: low
"""


def write_rules(folder: Path, count: int) -> None:
    folder.mkdir(exist_ok=True)
    for n in range(count):
        (folder / f"r{n}.yml").write_text(RULE.format(n=n), encoding="utf-8")
    (folder / "broken.yml").write_text("title: [oops\n", encoding="utf-8")


def fired(engine: SigmaEngine, text: str) -> list[str]:
    event = Event(datetime(2026, 1, 1, tzinfo=UTC), {"F": text})
    return [d.rule_title for d in engine.match(event)]


def test_parallel_load_equals_serial(tmp_path: Path, monkeypatch) -> None:
    write_rules(tmp_path / "rules", 40)
    monkeypatch.setattr(load_module, "PARALLEL_FROM", 10)
    serial = load_sigma_rules([tmp_path / "rules"], workers=1)
    parallel = load_sigma_rules([tmp_path / "rules"], workers=2)
    assert [r.id for r in parallel.rules] == [r.id for r in serial.rules]
    assert [(e.path, e.reason) for e in parallel.errors] == [
        (e.path, e.reason) for e in serial.errors
    ]
    assert parallel.rules[0].rule is None  # parsed in another process
    for rule in parallel.rules:
        assert pysigma_rule(rule).title == rule.title
    assert fired(SigmaEngine(parallel), "xx needle7 yy") == ["rule 7"]


def test_cache_is_used_and_follows_changes(tmp_path: Path, monkeypatch) -> None:
    rules, cache = tmp_path / "rules", tmp_path / "cache"
    write_rules(rules, 5)
    first = load_sigma_rules([rules], cache_dir=cache)
    assert len(first.rules) == 5
    assert len(first.errors) == 1
    (cache_file,) = cache.iterdir()

    parsed: list[Path] = []
    real = load_module._outcome

    def spy(path: Path, *, keep: bool):
        parsed.append(path)
        return real(path, keep=keep)

    monkeypatch.setattr(load_module, "_outcome", spy)
    again = load_sigma_rules([rules], cache_dir=cache)
    assert parsed == []
    assert [r.id for r in again.rules] == [r.id for r in first.rules]
    assert [e.reason for e in again.errors] == [e.reason for e in first.errors]

    (rules / "r2.yml").write_text(RULE.format(n=2).replace("needle2", "changed"), encoding="utf-8")
    changed = load_sigma_rules([rules], cache_dir=cache)
    assert parsed == [rules / "r2.yml"]
    assert fired(SigmaEngine(changed), "changed") == ["rule 2"]

    cache_file.write_bytes(b"not a pickle")
    parsed.clear()
    recovered = load_sigma_rules([rules], cache_dir=cache)
    assert len(parsed) == 6
    assert len(recovered.rules) == 5
