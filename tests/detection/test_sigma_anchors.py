"""The anchor prefilter never changes what matches: engine == brute-force evaluation."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from detection.sigma.context import MatchContext
from tests.detection.sigma_helpers import engine_for, event

pattern = st.text(alphabet="abAB*?\\", min_size=1, max_size=6)
value = st.text(alphabet="abAB*?\\ ", max_size=10)
modifier = st.sampled_from(["", "|contains", "|startswith", "|endswith", "|cased", "|contains|all"])


@settings(max_examples=300, deadline=None)
@given(
    patterns=st.lists(pattern, min_size=1, max_size=3),
    mod=modifier,
    negate=st.booleans(),
    values=st.lists(value, min_size=1, max_size=3),
)
def test_prefilter_agrees_with_brute_force(
    patterns: list[str], mod: str, negate: bool, values: list[str]
) -> None:
    quoted = ", ".join("'" + p.replace("'", "''") + "'" for p in patterns)
    condition = "not sel" if negate else "sel"
    block = (
        f"detection:\n  sel:\n    F{mod}: [{quoted}]\n  keep: {{G: x}}\n"
        f"  condition: {condition} and keep\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        engine = engine_for(Path(tmp), block)
    for text in values:
        fields = {"F": text, "G": "X"}
        (rule,) = engine.ruleset.rules
        expected = rule.predicate(MatchContext(fields, event(fields).timestamp))
        assert bool(engine.match(event(fields))) is expected


regex = st.text(alphabet="abAB|()+*?.", min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    pattern=regex, flag=st.sampled_from(["", "|i"]), values=st.lists(value, min_size=1, max_size=3)
)
def test_regex_anchors_never_hide_a_match(pattern: str, flag: str, values: list[str]) -> None:
    import re

    try:
        re.compile(pattern)
    except re.error:
        return
    quoted = "'" + pattern.replace("'", "''") + "'"
    block = f"detection:\n  sel:\n    F|re{flag}: {quoted}\n  condition: sel\n"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            engine = engine_for(Path(tmp), block)
        except AssertionError:
            return  # pySigma refused the pattern
    (rule,) = engine.ruleset.rules
    for text in values:
        fields = {"F": text}
        expected = rule.predicate(MatchContext(fields, event(fields).timestamp))
        assert bool(engine.match(event(fields))) is expected
