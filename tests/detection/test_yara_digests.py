"""The rule files' digest index: a warm load reads no rule file, and any change is still seen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from detection.yara import YaraScanner, load_yara_rules
from detection.yara import digests as yara_digests
from detection.yara.digests import INDEX_NAME, DigestIndex

RULE_V1 = 'rule marker { strings: $a = "first" condition: $a }'
RULE_V2 = 'rule marker { strings: $a = "other" condition: $a }'  # same size as V1


@pytest.fixture
def settled_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as settled as soon as written (else a test would wait two seconds)."""
    monkeypatch.setattr(yara_digests, "SETTLED_NS", -(10**12))


def _hits(rules_dir: Path, cache_dir: Path, data: bytes) -> tuple[bool, list[str]]:
    rules = load_yara_rules([rules_dir], cache_dir=cache_dir, engine="yara-python")
    return rules.from_cache, [d.rule_id for d in YaraScanner(rules).scan_bytes(data, name="b")]


@pytest.mark.usefixtures("settled_at_once")
def test_unchanged_files_are_not_read_again(tmp_path: Path) -> None:
    files = []
    for i in range(3):
        files.append(tmp_path / f"r{i}.yar")
        files[-1].write_text(f"rule r{i} {{ condition: true }}")
    cache_dir = tmp_path / "cache"
    index = DigestIndex(cache_dir)
    first = index.digests(files)
    index.save()

    second = DigestIndex(cache_dir).digests(files)

    assert set(first.contents) == set(files)
    assert second.contents == {}  # every digest came from the index
    assert second.digests == first.digests


@pytest.mark.usefixtures("settled_at_once")
def test_same_size_same_mtime_other_content_is_seen(tmp_path: Path) -> None:
    """mtime can be set back (`cp -p`, `touch -d`, archives); ctime cannot: the change shows."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    rule = rules_dir / "r.yar"
    cache_dir = tmp_path / "cache"
    rule.write_text(RULE_V1)
    before = rule.stat()
    assert _hits(rules_dir, cache_dir, b"first") == (False, ["marker"])
    assert _hits(rules_dir, cache_dir, b"first") == (True, ["marker"])

    rule.write_text(RULE_V2)
    os.utime(rule, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (rule.stat().st_size, rule.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    assert _hits(rules_dir, cache_dir, b"first") == (False, [])
    assert _hits(rules_dir, cache_dir, b"other") == (True, ["marker"])


def test_file_changed_just_now_is_not_trusted_to_its_metadata(tmp_path: Path) -> None:
    """Timestamps have a coarse grain: a file written within the last two seconds may change
    again without its metadata moving, so it is hashed again at the next load."""
    rule = tmp_path / "r.yar"
    rule.write_text(RULE_V1)
    index = DigestIndex(tmp_path / "cache")
    index.digests([rule])
    index.save()

    again = DigestIndex(tmp_path / "cache").digests([rule])

    assert again.contents == {rule: RULE_V1.encode()}


@pytest.mark.usefixtures("settled_at_once")
def test_replaced_file_and_new_and_removed_files_are_seen(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    cache_dir = tmp_path / "cache"
    (rules_dir / "a.yar").write_text(RULE_V1)
    assert _hits(rules_dir, cache_dir, b"first other") == (False, ["marker"])

    # A new file under the old name (an editor's save, `git checkout`): another inode.
    staged = tmp_path / "staged.yar"
    staged.write_text(RULE_V2)
    staged.replace(rules_dir / "a.yar")
    assert _hits(rules_dir, cache_dir, b"first") == (False, [])

    (rules_dir / "b.yar").write_text('rule extra { strings: $a = "first" condition: $a }')
    assert _hits(rules_dir, cache_dir, b"first") == (False, ["extra"])

    (rules_dir / "b.yar").unlink()
    assert _hits(rules_dir, cache_dir, b"first") == (True, [])  # the entry of before


@pytest.mark.usefixtures("settled_at_once")
def test_rule_file_that_turns_bad_is_reported_others_kept(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    cache_dir = tmp_path / "cache"
    (rules_dir / "good.yar").write_text(RULE_V1)
    (rules_dir / "turns_bad.yar").write_text("rule fine { condition: true }")
    assert load_yara_rules([rules_dir], cache_dir=cache_dir).errors == []

    (rules_dir / "turns_bad.yar").write_text("rule fine { condition: $missing }")
    for _ in range(2):  # compiled, then from the cache: the same report
        rules = load_yara_rules([rules_dir], cache_dir=cache_dir)
        assert [(Path(e.path).name, e.line) for e in rules.errors] == [("turns_bad.yar", 1)]
        assert "$missing" in rules.errors[0].reason
        assert rules.paths == [rules_dir / "good.yar"]
        found = YaraScanner(rules).scan_bytes(b"first", name="b")
        assert [d.rule_id for d in found] == ["marker"]


@pytest.mark.usefixtures("settled_at_once")
def test_damaged_or_unwritable_index_only_costs_reading_the_files(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "r.yar").write_text(RULE_V1)
    cache_dir = tmp_path / "cache"
    assert _hits(rules_dir, cache_dir, b"first") == (False, ["marker"])

    (cache_dir / INDEX_NAME).write_text('{"truncated": [1, 2')
    assert _hits(rules_dir, cache_dir, b"first") == (True, ["marker"])

    (cache_dir / INDEX_NAME).write_text('{"' + str(rules_dir / "r.yar") + '": ["junk"]}')
    assert _hits(rules_dir, cache_dir, b"first") == (True, ["marker"])

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    assert _hits(rules_dir, blocker, b"first") == (False, ["marker"])


@pytest.mark.usefixtures("settled_at_once")
def test_index_not_trusted_where_ctime_is_the_creation_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rule = tmp_path / "r.yar"
    rule.write_text(RULE_V1)
    index = DigestIndex(tmp_path / "cache")
    index.digests([rule])
    index.save()
    monkeypatch.setattr(yara_digests, "TRUST_METADATA", False)  # as on Windows

    again = DigestIndex(tmp_path / "cache").digests([rule])

    assert again.contents == {rule: RULE_V1.encode()}
