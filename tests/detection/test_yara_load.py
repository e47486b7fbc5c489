"""Compiling YARA rule files: each file on its own first, bad ones reported, good ones kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from detection.errors import InputError, YaraRuleError
from detection.yara import YaraScanner, load_yara_rules

GOOD = """
rule good_one : tag1 {
    meta:
        description = "a good rule"
    strings:
        $a = "needle"
    condition:
        $a
}
rule good_two { condition: filesize == 3 }
"""

BAD = """
rule broken {
    strings:
        $a = "x"
    condition:
        $a and $missing
}
"""

USES_EXTERNALS = """
rule by_name {
    condition: filename == "evil.exe" and extension == ".exe" and filetype == "EXE"
        and filepath contains "/" and owner != "nobody-at-all"
}
"""


@pytest.fixture
def rule_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    (folder / "sub").mkdir(parents=True)
    (folder / "good.yar").write_text(GOOD)
    (folder / "sub" / "bad.yara").write_text(BAD)
    (folder / "sub" / "externals.yar").write_text(USES_EXTERNALS)
    (folder / "notes.txt").write_text("not a rule file")
    return folder


@pytest.mark.parametrize("engine", ["auto", "yara-python"])
def test_bad_file_reported_with_path_line_reason_others_kept(rule_dir: Path, engine: str) -> None:
    rules = load_yara_rules([rule_dir], engine=engine)  # type: ignore[arg-type]

    assert rules.files_compiled == 2
    assert sorted(p.name for p in rules.paths) == ["externals.yar", "good.yar"]
    assert rules.rule_count == 3
    assert len(rules.errors) == 1
    error = rules.errors[0]
    assert isinstance(error, YaraRuleError)
    assert error.path == str(rule_dir / "sub" / "bad.yara")
    assert error.line is not None
    assert 2 <= error.line <= 7
    assert "$missing" in error.reason
    # The good rules still scan.
    found = YaraScanner(rules).scan_bytes(b"a needle here", name="x.txt")
    assert [d.rule_id for d in found] == ["good_one"]


def test_auto_scans_with_yara_x_when_it_compiles_the_same_files(rule_dir: Path) -> None:
    assert load_yara_rules([rule_dir]).engine == "yara-x"
    assert load_yara_rules([rule_dir], engine="yara-python").engine == "yara-python"


def test_same_rule_name_in_two_files_does_not_clash(tmp_path: Path) -> None:
    for name in ("a.yar", "b.yar"):
        (tmp_path / name).write_text('rule same { strings: $a = "zz" condition: $a }')
    rules = load_yara_rules([tmp_path])
    assert rules.errors == []
    assert rules.rule_count == 2
    hits = YaraScanner(rules).scan_bytes(b"zz", name="f")
    assert [d.rule_id for d in hits] == ["same", "same"]


def test_many_bad_files_each_reported(tmp_path: Path) -> None:
    (tmp_path / "ok.yar").write_text("rule ok { condition: true }")
    (tmp_path / "syntax.yar").write_text("rule { condition: true }")
    (tmp_path / "include.yar").write_text('include "ok.yar"\nrule inc { condition: true }')
    (tmp_path / "latin1.yar").write_bytes(b'rule l { strings: $a = "caf\xe9" condition: $a }')
    (tmp_path / "module.yar").write_text('import "no_such_module"\nrule m { condition: true }')

    rules = load_yara_rules([tmp_path])

    reasons = {Path(e.path).name: e.reason for e in rules.errors}
    assert set(reasons) == {"syntax.yar", "include.yar", "latin1.yar", "module.yar"}
    assert "include" in reasons["include.yar"]
    assert "UTF-8" in reasons["latin1.yar"]
    assert "no_such_module" in reasons["module.yar"]
    assert rules.files_compiled == 1
    assert rules.rule_count == 1


def test_externals_declared_so_real_rule_sets_compile(rule_dir: Path) -> None:
    rules = load_yara_rules([rule_dir / "sub" / "externals.yar"])
    assert rules.errors == []
    assert rules.rule_count == 1


def test_named_file_with_other_suffix_is_taken(tmp_path: Path) -> None:
    rule = tmp_path / "custom.rules"
    rule.write_text("rule r { condition: true }")
    assert load_yara_rules([rule]).files_compiled == 1


def test_missing_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such rule file or folder"):
        load_yara_rules([tmp_path / "nope"])


def test_empty_folder_gives_an_empty_usable_set(tmp_path: Path) -> None:
    rules = load_yara_rules([tmp_path])
    assert (rules.files_compiled, rules.rule_count, rules.errors) == (0, 0, [])
    assert YaraScanner(rules).scan_bytes(b"anything", name="f") == []
