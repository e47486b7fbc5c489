"""The compiled-rules cache: keyed by the rule files' contents and the libraries' versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from detection.yara import YaraScanner, load_yara_rules
from detection.yara import cache as yara_cache

RULE_V1 = 'rule marker { meta: score = 80 strings: $a = "first" condition: $a }'
RULE_V2 = 'rule marker { meta: score = 80 strings: $a = "second" condition: $a }'


def _hits(rules_path: Path, cache_dir: Path, data: bytes) -> tuple[bool, list[str]]:
    rules = load_yara_rules([rules_path], cache_dir=cache_dir)
    found = YaraScanner(rules).scan_bytes(data, name="buffer")
    return rules.from_cache, [d.rule_id for d in found]


@pytest.mark.parametrize("engine", ["auto", "yara-python"])
def test_second_load_comes_from_cache_and_scans_the_same(tmp_path: Path, engine: str) -> None:
    rules_path = tmp_path / "r.yar"
    rules_path.write_text(RULE_V1 + "\nrule bad { condition: $nope }")
    (tmp_path / "ok.yar").write_text("rule always { condition: true }")
    cache_dir = tmp_path / "cache"

    first = load_yara_rules([tmp_path], cache_dir=cache_dir, engine=engine)  # type: ignore[arg-type]
    second = load_yara_rules([tmp_path], cache_dir=cache_dir, engine=engine)  # type: ignore[arg-type]

    assert (first.from_cache, second.from_cache) == (False, True)
    assert second.engine == first.engine
    assert second.paths == first.paths == [tmp_path / "ok.yar"]
    assert second.rule_count == first.rule_count == 1
    assert [(e.path, e.line, e.reason) for e in second.errors] == [
        (e.path, e.line, e.reason) for e in first.errors
    ]
    assert [d.rule_id for d in YaraScanner(second).scan_bytes(b"x", name="b")] == ["always"]


def test_changed_rule_file_rebuilds(tmp_path: Path) -> None:
    rules_path = tmp_path / "r.yar"
    cache_dir = tmp_path / "cache"
    rules_path.write_text(RULE_V1)
    assert _hits(rules_path, cache_dir, b"the second one") == (False, [])
    assert _hits(rules_path, cache_dir, b"the first one") == (True, ["marker"])

    rules_path.write_text(RULE_V2)

    assert _hits(rules_path, cache_dir, b"the second one") == (False, ["marker"])
    assert _hits(rules_path, cache_dir, b"the first one") == (True, [])


def test_other_library_version_rebuilds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules_path = tmp_path / "r.yar"
    rules_path.write_text(RULE_V1)
    cache_dir = tmp_path / "cache"
    assert _hits(rules_path, cache_dir, b"first")[0] is False
    assert _hits(rules_path, cache_dir, b"first")[0] is True

    real = yara_cache.library_versions()
    monkeypatch.setattr(yara_cache, "library_versions", lambda: {**real, "yara-x": "99.0.0"})

    assert _hits(rules_path, cache_dir, b"first") == (False, ["marker"])


def test_corrupt_entry_is_rebuilt_not_fatal(tmp_path: Path) -> None:
    rules_path = tmp_path / "r.yar"
    rules_path.write_text(RULE_V1)
    cache_dir = tmp_path / "cache"
    _hits(rules_path, cache_dir, b"first")
    for blob in cache_dir.glob("*.rules"):
        blob.write_bytes(b"\0garbage" * 10)

    assert _hits(rules_path, cache_dir, b"first") == (False, ["marker"])
    assert _hits(rules_path, cache_dir, b"first") == (True, ["marker"])


def test_unwritable_cache_only_costs_a_recompile(tmp_path: Path) -> None:
    rules_path = tmp_path / "r.yar"
    rules_path.write_text(RULE_V1)
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")

    assert _hits(rules_path, blocker, b"first") == (False, ["marker"])


def test_old_entries_are_pruned(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    rules_path = tmp_path / "r.yar"
    for i in range(yara_cache.MAX_ENTRIES + 3):
        rules_path.write_text(f"rule r{i} {{ condition: filesize == {i} }}")
        load_yara_rules([rules_path], cache_dir=cache_dir)
    assert len(list(cache_dir.glob("*.json"))) == yara_cache.MAX_ENTRIES
    assert len(list(cache_dir.glob("*.rules"))) == yara_cache.MAX_ENTRIES
