"""Rule regular expressions run in time linear in the text (RE2), in the engine and in the
function SQLite's REGEXP calls; what RE2 cannot run is refused with the feature named.
The retro-hunt's and the service's side: tests/api/test_hunt_redos.py; the agent's:
tests/collector/test_agent_redos.py.

The timing bounds are generous (RE2 takes about a millisecond where the bound allows 500) and
show a security property: a log line an attacker writes costs milliseconds, not hours. Each
measurement runs in a forked child that is killed past its deadline, so that a backtracking
engine fails these tests instead of hanging them.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from detection.sigma import SigmaEngine, load_sigma_rules
from detection.sigma.regex import UnsupportedRegex, compile_regex, regexp
from tests.detection.redos_cases import (
    BOUND_SECONDS,
    CASES,
    LENGTHS,
    Case,
    bounded,
    rule_text,
)
from tests.detection.sigma_helpers import event

CHILD_DEADLINE = 60  # seconds for a whole case in the child; a backtracking run never ends


def _engine(tmp_path: Path, case: Case) -> SigmaEngine:
    ruleset = load_sigma_rules([_rule_file(tmp_path, case)])
    assert not ruleset.errors, ruleset.errors
    return SigmaEngine(ruleset)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_catastrophic_patterns_cost_milliseconds_in_the_engine(tmp_path: Path, case: Case) -> None:
    engine = _engine(tmp_path, case)
    assert engine.match(event({"message": case.hit})), "the rule is live"

    def timings() -> dict[int, float]:
        spent = {}
        for n in LENGTHS:
            probe = event({"message": case.evil(n)})
            start = time.perf_counter()
            found = engine.match(probe)
            spent[n] = time.perf_counter() - start
            assert not found
            # Stop at the first overrun: the old engine would take hours on the next length.
            assert spent[n] < BOUND_SECONDS, spent
        return spent

    spent = bounded(timings, CHILD_DEADLINE)
    assert max(spent.values()) < BOUND_SECONDS, spent


def _rule_file(tmp_path: Path, case: Case) -> Path:
    path = tmp_path / "rule.yml"
    path.write_text(rule_text(case), encoding="utf-8")
    return path


# --- what RE2 cannot run is refused, with the feature named --------------------------------

REFUSED = [
    ("(?=evil)x", "lookahead"),
    ("(?!good)x", "negative lookahead"),
    ("(?<=a)b", "lookbehind"),
    ("(?<!a)b", "negative lookahead or lookbehind"),
    (r"(a)\1", "backreference"),
    ("(?P<q>['\"]).*(?P=q)", "backreference"),
    ("(a)?(?(1)b|c)", "conditional group"),
    ("(?>a+)b", "atomic group"),
    ("a++b", "possessive quantifier"),
    ("a*+b", "possessive quantifier"),
    ("(?x) a b # comment", "verbose flag"),
    ("a{1001}", "invalid repetition size"),
]


@pytest.mark.parametrize(("pattern", "named"), REFUSED)
def test_patterns_re2_cannot_run_are_refused_with_the_reason(
    tmp_path: Path, pattern: str, named: str
) -> None:
    with pytest.raises(UnsupportedRegex, match=re.escape(named)):
        compile_regex(pattern)
    # A rule set loads what it can and reports the rule, with the pattern and the feature.
    path = tmp_path / "rule.yml"
    quoted = pattern.replace("'", "''")
    path.write_text(rule_text(Case("refused", f"message|re: '{quoted}'", str, "")), "utf-8")
    (tmp_path / "good.yml").write_text(
        rule_text(CASES[0], rule_id="0b5e3d1c-9f7a-4e2b-8c6d-1a2b3c4d5e6f"), "utf-8"
    )
    ruleset = load_sigma_rules([tmp_path])
    assert [r.id for r in ruleset.rules] == ["0b5e3d1c-9f7a-4e2b-8c6d-1a2b3c4d5e6f"]
    (error,) = ruleset.errors
    assert error.path == str(path)
    assert named in error.reason
    assert "RE2" in error.reason


# --- Python's meaning kept where RE2 spells it otherwise ----------------------------------


@pytest.mark.parametrize(
    ("pattern", "flags", "text", "expected"),
    [
        # `$` also matches before a final newline, as in Python and PCRE.
        (r"\.exe$", 0, "c:\\evil.exe\n", True),
        (r"\.exe$", 0, "c:\\evil.exe\nmore", False),
        (r"\.exe$", re.MULTILINE, "c:\\evil.exe\nmore", True),
        (r"[$]", 0, "cost: 5$", True),
        (r"\$$", 0, "5$", True),
        # `\Z` is the very end (RE2 spells it `\z`); an escaped backslash before Z is literal.
        (r"\.exe\Z", 0, "evil.exe\n", False),
        (r"\.exe\Z", 0, "evil.exe", True),
        (r"\\Z", 0, "a\\Z", True),
        # `\u` escapes (RE2: `\x{...}`), inside and outside classes.
        (r"m\u00e9decin", 0, "médecin", True),
        (r"[\u00e0-\u00ff]", 0, "Médecin", True),
        # Flags as pySigma hands them over.
        ("abc", re.IGNORECASE, "xABCx", True),
        ("a.c", 0, "a\nc", False),
        ("a.c", re.DOTALL, "a\nc", True),
        ("^b", 0, "a\nb", False),
        ("^b", re.MULTILINE, "a\nb", True),
        # A lone surrogate in a value (a badly decoded log): one character, as in Python.
        ("ab", 0, "a\ud800ab", True),
        ("a.b", 0, "a\ud800b", True),
        (r"a\wb", 0, "a\ud800b", False),
    ],
)
def test_python_meanings_kept(pattern: str, flags: int, text: str, expected: bool) -> None:
    assert compile_regex(pattern, flags).search(text) is expected


@pytest.mark.parametrize(
    ("pattern", "text", "python", "re2"),
    [
        # Written down, not translated: RE2's classes are ASCII, as PCRE's are by default.
        (r"^\w+$", "médecin", True, False),
        (r"^\d$", "\u0663", True, False),  # ARABIC-INDIC DIGIT THREE
        (r"a\sb", "a\x0bb", True, False),  # vertical tab
        (r"\bcmd\b", "écmd", False, True),
    ],
)
def test_differences_from_python_that_stay(
    pattern: str, text: str, python: bool, re2: bool
) -> None:
    assert (re.search(pattern, text) is not None) is python
    assert compile_regex(pattern).search(text) is re2


def test_sqlite_regexp_is_the_engines_search() -> None:
    # The SQLite backend writes flags as an inline prefix; the function takes them so.
    assert regexp("(?i)powershell.*-enc$", "PowerShell.exe -ENC\n") is True
    assert regexp(r"(a+)+$", "a" * 100_000 + "!") is False
    assert regexp("x", None) is None
    assert regexp("é", "médecin".encode()) is True
    with pytest.raises(UnsupportedRegex):
        regexp("(?=a)", "a")


def test_an_engine_shared_by_threads_gives_each_what_it_gives_alone(tmp_path: Path) -> None:
    """The service matches batches on one engine from several threads, without a lock (a slow
    batch must not hold up the others): `match` without a correlator keeps no state."""
    for n, case in enumerate(CASES):
        rule_id = f"7e1c2b90-0000-4000-8000-{n:012d}"
        (tmp_path / f"{n}.yml").write_text(rule_text(case, rule_id), encoding="utf-8")
    ruleset = load_sigma_rules([tmp_path])
    assert not ruleset.errors

    def lines(seed: int) -> list[str]:
        return [c.hit if (i + seed) % 3 else c.evil(40) for i, c in enumerate(CASES * 20)]

    def detections(engine: SigmaEngine, seed: int) -> list[list[str]]:
        return [[d.rule_id for d in engine.match(event({"message": m}))] for m in lines(seed)]

    alone = [detections(SigmaEngine(ruleset), seed) for seed in range(8)]
    shared = SigmaEngine(ruleset)  # buckets built lazily, by whichever thread comes first
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda seed: detections(shared, seed), range(8)))
    assert together == alone
