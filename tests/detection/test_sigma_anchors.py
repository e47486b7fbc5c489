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
@given(patterns=st.lists(pattern, min_size=1, max_size=3), mod=modifier, negate=st.booleans(),
       values=st.lists(value, min_size=1, max_size=3))
def test_prefilter_agrees_with_brute_force(patterns: list[str], mod: str, negate: bool,
                                           values: list[str]) -> None:
    quoted = ", ".join("'" + p.replace("'", "''") + "'" for p in patterns)
    condition = "not sel" if negate else "sel"
    block = f"detection:\n  sel:\n    F{mod}: [{quoted}]\n  keep: {{G: x}}\n  condition: {condition} and keep\n"
    with tempfile.TemporaryDirectory() as tmp:
        engine = engine_for(Path(tmp), block)
    for text in values:
        fields = {"F": text, "G": "X"}
        (rule,) = engine.ruleset.rules
        expected = rule.predicate(MatchContext(fields, event(fields).timestamp))
        assert bool(engine.match(event(fields))) is expected
