"""Rules set aside by the first bytes they need (detection/yara/heads.py): what is recognised,
what is not, and scans with the cut rule sets find exactly what the whole set finds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yara

from detection.yara import YaraRuleSet, YaraScanner, iter_rule_files, load_yara_rules
from detection.yara.externals import DEFAULT_EXTERNALS, externals_for
from detection.yara.heads import Unlexed, required_head, split_by_head, split_rules, tokens
from tests.conftest import corpus_path


def _head(condition: str) -> bytes | None:
    rules = split_rules(f"rule r {{ condition: {condition} }}")
    return required_head(rules[0].condition)


@pytest.mark.parametrize(
    ("condition", "head"),
    [
        ("uint16(0) == 0x5a4d", b"MZ"),
        ("uint16(0) == 0x5A4D and filesize < 100KB and $a", b"MZ"),
        ("0x5a4d == uint16(0) and $a", b"MZ"),
        ("( uint16(0) == 0x5a4d and ( $a or $b ) )", b"MZ"),
        ("filesize < 10MB and uint32(0) == 0x464c457f", b"\x7fELF"),
        ("uint32be(0) == 0x7f454c46 and all of them", b"\x7fELF"),
        ("uint16(0) == 23117 and $a", b"MZ"),
        ("uint8(0) == 0x4d and $a", b"M"),
        ("( uint16(0) == 0x5A4D and uint32(uint32(0x3C)) == 0x00004550 ) and any of them", b"MZ"),
        ("$a and ( filesize < 1MB and ( uint16(0) == 0x5a4d ) )", b"MZ"),
    ],
)
def test_required_head_recognised(condition: str, head: bytes) -> None:
    assert _head(condition) == head


@pytest.mark.parametrize(
    "condition",
    [
        "uint16(0) == 0x5a4d or $a",  # or at the top: the other side may hold alone
        "$a or uint16(0) == 0x5a4d and $b",
        "not uint16(0) == 0x5a4d and $a",
        "uint16(0) != 0x5a4d and $a",
        "uint16(2) == 0x5a4d and $a",
        "uint16(0) == 0x15a4d and $a",  # more than 16 bits: never true, left alone
        "int16(0) == 0x5a4d and $a",
        "uint16(0) & 0xffff == 0x5a4d and $a",
        "( uint16(0) == 0x5a4d and $a ) or $b",
        "( uint16(0) == 0x5a4d or $a ) and $b",
        "( uint16(0) == 0x5a4d or uint16(0) == 0x457f ) and $b",
        "not ( uint16(0) == 0x5a4d and $a )",
        "( uint16(0) == 0x5a4d and $a ) == false",
        "$a and uint16(0) != 0x5a4d",
        "for any i in (0..1) : ( uint16(i) == 0x5a4d ) and $a",
        "$a",
    ],
)
def test_required_head_not_recognised(condition: str) -> None:
    assert _head(condition) is None


def test_lexer_skips_braces_and_keywords_in_strings_comments_and_hex() -> None:
    text = r"""
import "pe"
/* rule fake { condition: true } */
rule a : tag1 tag2 {
    meta: note = "condition: } {" other = 3
    strings:
        $h = { 4D 5A [2-4] ( 90 | 00 ) ?? // a comment with a } brace
               /* and } another */ 00 }
        $r = /a\/b}[{]/ nocase
        $s = "esc \" } rule" wide
    condition: // uint16(0) == 0 or
        uint16(0) == 0x5a4d and any of them
}
private global rule b { condition: a and filename == "x } or" }
"""
    rules = split_rules(text)
    assert [(r.name, r.is_global) for r in rules] == [("a", False), ("b", True)]
    assert required_head(rules[0].condition) == b"MZ"
    assert text[rules[1].start : rules[1].end].startswith("private global rule b")
    assert text[rules[1].end - 1] == "}"


@pytest.mark.parametrize(
    "text",
    [
        'rule a { strings: $a = "unterminated condition: $a }',
        "rule a { condition: true",
        "rule a { strings: $h = { 4D /* } 5A } condition: $h }",
        "something else",
    ],
)
def test_lexer_refuses_what_it_does_not_know(text: str) -> None:
    with pytest.raises(Unlexed):
        split_rules(text)


def test_deep_nesting_is_not_looked_into() -> None:
    head = "uint16(0) == 0x5a4d"
    assert _head("(" * 7 + head + ")" * 7 + " and $a") == b"MZ"
    deep = "$a and (" * 5000 + head + ")" * 5000
    assert required_head(split_rules(f"rule r {{ condition: {deep} }}")[0].condition) is None
    wrapped = "(" * 20000 + head + ")" * 20000 + " and $a"
    assert required_head(split_rules(f"rule r {{ condition: {wrapped} }}")[0].condition) is None


def test_tokens_keep_numbers_with_units() -> None:
    assert [t.text for t in tokens("filesize < 100KB and #a > 2")] == [
        "filesize",
        "<",
        "100KB",
        "and",
        "#a",
        ">",
        "2",
    ]


def _rules_text(n: int) -> str:
    """n rules for MZ files, n for ELF files, rules for any file, and the cases that must stay
    in the base: a rule another rule uses, one whose condition has `or` at its top."""
    out = ['import "pe"']
    for i in range(n):
        out.append(
            f'rule mz_{i} {{ strings: $a = "tok{i}x" condition: uint16(0) == 0x5a4d and $a }}'
        )
        out.append(
            f'rule elf_{i} {{ strings: $a = "tok{i}x" condition: uint32(0) == 0x464c457f and $a }}'
        )
        out.append(f'rule any_{i} {{ strings: $a = "tok{i}x" condition: $a and filesize > 1 }}')
    out.append('rule used { strings: $a = "used" condition: uint16(0) == 0x5a4d and $a }')
    out.append("rule user { condition: used or filesize == 3 }")
    out.append('rule either { strings: $a = "tok1x" condition: uint16(0) == 0x5a4d or $a }')
    return "\n".join(out) + "\n"


def _files(root: Path) -> list[Path]:
    root.mkdir()
    contents = {
        "a.exe": b"MZ" + b" tok1x tok7x used sm ",
        "b.so": b"\x7fELF" + b" tok2x tok7x used ",
        "c.txt": b"plain tok1x tok3x used sm",
        "d.bin": b"ZM tok4x",
        "m": b"M",
        "empty": b"",
        "three": b"\x7fE\x00",
        "p.dll": b"MZ\x90\x00 tok5x",
    }
    for name, data in contents.items():
        (root / name).write_bytes(data)
    return sorted(root.iterdir())


def _reference(rule_files: list[Path], files: list[Path]) -> set[tuple[str, str]]:
    """What the whole set finds, compiled at once by yara-python."""
    whole = yara.compile(
        sources={str(p): p.read_text() for p in rule_files}, externals=DEFAULT_EXTERNALS
    )
    found = set()
    for path in files:
        head = path.read_bytes()[:16]
        externals = externals_for(str(path), head, path.stat().st_uid)
        for match in whole.match(str(path), externals=externals):
            found.add((path.name, match.rule))
    return found


def _scanned(rules: YaraRuleSet, files: list[Path], workers: int) -> set[tuple[str, str]]:
    scanner = YaraScanner(rules, workers=workers)
    return {(Path(d.file).name, d.rule_id) for d in scanner.scan_paths(files)}


@pytest.mark.parametrize("engine", ["auto", "yara-python"])
def test_cut_rule_sets_find_what_the_whole_set_finds(tmp_path: Path, engine: str) -> None:
    rule_file = tmp_path / "rules.yar"
    rule_file.write_text(_rules_text(60))
    files = _files(tmp_path / "data")
    expected = _reference([rule_file], files)
    assert ("a.exe", "mz_1") in expected
    assert ("b.so", "elf_2") in expected
    assert {("three", "user"), ("a.exe", "user")} <= expected
    assert ("c.txt", "either") in expected
    assert ("c.txt", "user") not in expected

    cache = tmp_path / "cache"
    fresh = load_yara_rules([rule_file], cache_dir=cache, engine=engine)  # type: ignore[arg-type]
    cached = load_yara_rules([rule_file], cache_dir=cache, engine=engine)  # type: ignore[arg-type]
    assert cached.from_cache
    assert not fresh.from_cache
    for rules in (fresh, cached):
        assert sorted(rules.groups) == [b"MZ", b"\x7fE"]
        assert rules.rule_count == 60 * 3 + 3
        assert rules.engine == ("yara-x" if engine == "auto" else "yara-python")
        for workers in (1, 2):
            assert _scanned(rules, files, workers) == expected
        scanner = YaraScanner(rules, workers=1)
        in_memory = {
            (p.name, d.rule_id)
            for p in files
            for d in scanner.scan_bytes(p.read_bytes(), name=p.name)
        }
        assert in_memory == expected


def test_rules_named_elsewhere_and_global_rules_stay_in_the_base(tmp_path: Path) -> None:
    gated = "condition: uint16(0) == 0x5a4d and filesize > 2"
    text = "\n".join(
        [f"rule mz_{i} {{ {gated} }}" for i in range(60)]
        + [
            f"rule member_1 {{ {gated} }}",
            "rule set_user { condition: any of (member_*) }",
            f"rule used {{ {gated} }}",
            "rule user { condition: used }",
            f"global rule gate {{ {gated} }}",
        ]
    )
    path = tmp_path / "r.yar"
    split = split_by_head([(path, text)])
    assert split is not None
    assert split.set_aside() == {(str(path), f"mz_{i}") for i in range(60)}


def test_few_rules_are_not_cut(tmp_path: Path) -> None:
    rule_file = tmp_path / "rules.yar"
    rule_file.write_text(_rules_text(10))
    rules = load_yara_rules([rule_file], engine="yara-python")
    assert rules.groups == {}
    assert split_by_head([(rule_file, rule_file.read_text())]) is None


@pytest.mark.corpus
@pytest.mark.slow
def test_signature_base_cut_finds_what_the_whole_finds(tmp_path: Path) -> None:
    """Real rules on real files of every group: EVTX logs (PowerShell loaders hit), Windows
    launchers (MZ), this interpreter (ELF), and text."""
    rule_root = corpus_path("yara", "signature-base")
    rule_files = list(iter_rule_files([rule_root]))
    rules = load_yara_rules([rule_root], cache_dir=tmp_path / "cache", engine="yara-python")
    assert b"MZ" in rules.groups
    assert len(rules.paths) == len(rule_files)
    venv = Path(sys.executable).parent.parent
    files = sorted(corpus_path("evtx").rglob("*.evtx"))[:40]
    files += sorted(venv.glob("lib/python*/site-packages/*/*.exe"))[:4]
    files += [Path(sys.executable).resolve(), Path(yara.__file__)]
    files += sorted(Path(pytest.__file__).parent.glob("*.py"))[:10]

    expected = _reference(rule_files, files)
    assert _scanned(rules, files, 2) == expected
    assert expected, "signature-base finds something in the EVTX corpus"


@pytest.mark.parametrize("engine", ["auto", "yara-python"])
def test_damaged_group_set_skips_its_files_with_a_reason(tmp_path: Path, engine: str) -> None:
    rule_file = tmp_path / "rules.yar"
    rule_file.write_text(_rules_text(60))
    files = _files(tmp_path / "data")
    cache = tmp_path / "cache"
    load_yara_rules([rule_file], cache_dir=cache, engine=engine)  # type: ignore[arg-type]
    for blob in cache.glob(f"*.{b'MZ'.hex()}.rules"):
        blob.write_bytes(b"\0garbage" * 10)

    rules = load_yara_rules([rule_file], cache_dir=cache, engine=engine)  # type: ignore[arg-type]
    scanner = YaraScanner(rules, workers=2)
    found = {(Path(d.file).name, d.rule_id) for d in scanner.scan_paths(files)}

    mz = {"a.exe", "p.dll"}
    assert found == {hit for hit in _reference([rule_file], files) if hit[0] not in mz}
    assert sorted(Path(s.path).name for s in scanner.stats.skipped) == sorted(mz)
    assert all("do not load" in s.reason for s in scanner.stats.skipped)


def test_cut_sets_reach_workers_started_clean(tmp_path: Path) -> None:
    """Once this process has scanned with yara-x, workers start from a clean process and get
    the rules serialized: every group's set must reach them, loaded or not yet."""
    rule_file = tmp_path / "rules.yar"
    rule_file.write_text(_rules_text(60))
    files = _files(tmp_path / "data") * 5  # enough files for the pool (SMALL_BATCH)
    cache = tmp_path / "cache"
    load_yara_rules([rule_file], cache_dir=cache)
    rules = load_yara_rules([rule_file], cache_dir=cache)
    assert rules.engine == "yara-x"
    assert all(isinstance(g, Path) for g in rules.groups.values())  # not loaded yet
    scanner = YaraScanner(rules, workers=2)
    assert scanner.scan_bytes(b"plain tok3x", name="warm-up")  # starts yara-x's timer here

    assert _scanned(rules, files, 2) == _reference([rule_file], files)
