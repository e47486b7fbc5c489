"""The anchor prefilter never changes what matches: engine == brute-force evaluation.

Every generated example reaches the engine: regular expressions are built valid, and values are
drawn both at random and around a match of the pattern itself. `hypothesis.event` labels each
example with the outcome (and whether the rule has anchors); `--hypothesis-show-statistics`
shows the split.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hypothesis import event as label
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
    other=st.sampled_from(["X", "x", "y"]),
)
def test_prefilter_agrees_with_brute_force(
    patterns: list[str], mod: str, negate: bool, values: list[str], other: str
) -> None:
    quoted = ", ".join("'" + p.replace("'", "''") + "'" for p in patterns)
    condition = "not sel" if negate else "sel"
    block = (
        f"detection:\n  sel:\n    F{mod}: [{quoted}]\n  keep: {{G: x}}\n"
        f"  condition: {condition} and keep\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        engine = engine_for(Path(tmp), block)
    (rule,) = engine.ruleset.rules
    for text in values:
        # G is "y" at times: the `keep` anchor then rules the event out before evaluation.
        fields = {"F": text, "G": other}
        expected = rule.predicate(MatchContext(fields, event(fields).timestamp))
        label(f"matched: {expected}")
        assert bool(engine.match(event(fields))) is expected


def _valid_regex(text: str) -> str:
    """`text` with what would make it invalid dropped: a quantifier with nothing (or a quantifier
    other than one lazy `?`) before it, and a `)` with no `(` open; open groups are closed."""
    out: list[str] = []
    depth = 0
    last = "open"  # what came before: an atom to repeat, a quantifier, a lazy `?`, or neither
    for char in text:
        if char in "+*?":
            if last == "atom":
                last = "quantifier"
            elif last == "quantifier" and char == "?":
                last = "lazy"
            else:
                continue
        elif char == ")":
            if not depth:
                continue
            depth -= 1
            last = "atom"
        elif char in "(|":
            depth += char == "("
            last = "open"
        else:
            last = "atom"
        out.append(char)
    return "".join(out) + ")" * depth


# Valid by construction, so no example is thrown away before it reaches the engine.
regex = st.text(alphabet="abAB|()+*?.", min_size=1, max_size=8).map(_valid_regex)


@settings(max_examples=300, deadline=None)
@given(pattern=regex, flag=st.sampled_from(["", "|i"]), data=st.data())
def test_regex_anchors_never_hide_a_match(pattern: str, flag: str, data: st.DataObject) -> None:
    quoted = "'" + pattern.replace("'", "''") + "'"
    block = f"detection:\n  sel:\n    F|re{flag}: {quoted}\n  condition: sel\n"
    with tempfile.TemporaryDirectory() as tmp:
        engine = engine_for(Path(tmp), block)
    (rule,) = engine.ruleset.rules
    # Texts built around a match of the pattern, and random ones.
    holding = st.tuples(value, st.from_regex(pattern, fullmatch=True, alphabet="abAB ."), value)
    texts = st.one_of(holding.map("".join), value)
    compiled = re.compile(pattern, re.IGNORECASE if flag else 0)
    for text in data.draw(st.lists(texts, min_size=1, max_size=3), label="values"):
        fields = {"F": text}
        expected = compiled.search(text) is not None
        label(f"anchored: {rule.anchors is not None}, matched: {expected}")
        # Python's re is the independent oracle; the rule's predicate skips the prefilter.
        assert rule.predicate(MatchContext(fields, event(fields).timestamp)) is expected
        assert bool(engine.match(event(fields))) is expected
