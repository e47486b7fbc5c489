"""Every Lucene query Vigie produces, read back with luqum's grammar of Elasticsearch's
`query_string` (no server can run here): it parses, and what the parse tree says is what the
rule says, field by field and value by value, so that no escaping slip turns a value into an
operator, a second term or another field.

What only a server could tell is left out: how Elasticsearch's own parser and the index's
normalizer treat each term, and what the queries find (tests/api/test_event_store.py runs
them when `VIGIE_ELASTICSEARCH_URL` is set).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from luqum import tree
from luqum.exceptions import ParseError
from luqum.parser import parser
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import (
    Placeholder,
    SigmaBool,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SpecialChars,
)

from detection.logsource import windows_where
from detection.sigma import CompiledRule, load_sigma_rules
from detection.sigma.convert import (
    _VIGIE_SYSTEM_FIELDS,
    NUMERIC_SUBFIELD,
    ConversionResult,
    to_elasticsearch,
)
from detection.sigma.load import pysigma_rule
from tests import sigmahq
from tests.conftest import REPO

MULTI, SINGLE = "\x00*", "\x00?"
_RE_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}  # wildcards, apart from any literal character

# One leaf of a query: (field or None for free text, kind, what it holds).
Leaf = tuple[str | None, str, Any]


@dataclass(frozen=True)
class Converted:
    rule: SigmaRule
    result: ConversionResult


@pytest.fixture(
    scope="module",
    params=[
        "vigie",
        pytest.param("sigmahq", marks=sigmahq.LUCENE),
    ],
)
def converted(request: pytest.FixtureRequest) -> list[Converted]:
    """Vigie's rules, or SigmaHQ's Windows rules, converted once for the module: the one
    place this file calls the converter."""
    if request.param == "sigmahq":  # converted once for the whole suite (tests/sigmahq.py)
        ruleset = sigmahq.windows_rules()
        assert not ruleset.errors
        return _with_sigma(ruleset.rules, list(sigmahq.lucene_queries()))
    ruleset = load_sigma_rules([REPO / "rules" / "sigma"])
    assert not ruleset.errors
    return _with_sigma(ruleset.rules, to_elasticsearch(ruleset.rules))


def _with_sigma(rules: list[CompiledRule], results: list[ConversionResult]) -> list[Converted]:
    out = []
    for rule, result in zip(rules, results, strict=True):
        sigma = pysigma_rule(rule)
        assert sigma is not None
        out.append(Converted(sigma, result))
    return out


# --- what the parse tree says ---------------------------------------------------------------


def _unescape(text: str, wildcards: bool) -> tuple[str, ...]:
    """A term as Lucene reads it: `\\x` is the character x; `*` and `?` unescaped are
    wildcards (outside phrases). Runs of literal characters are joined."""
    out: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            out.append(next(chars))
        elif wildcards and char in "*?":
            out.append(MULTI if char == "*" else SINGLE)
        else:
            out.append(char)
    return _joined(out)


def _joined(parts: list[str]) -> tuple[str, ...]:
    joined: list[str] = []
    for part in parts:
        if part == MULTI and joined and joined[-1] == MULTI:
            continue  # `**` is `*`
        if part in (MULTI, SINGLE) or not joined or joined[-1] in (MULTI, SINGLE):
            joined.append(part)
        else:
            joined[-1] += part
    return tuple(joined)


def _leaves(node: tree.Item, field: str | None = None) -> Iterator[Leaf]:
    if isinstance(node, tree.UnknownOperation):
        # Two terms side by side: a value the converter failed to escape, cut in two.
        raise AssertionError(f"implicit operator in {node}")
    if isinstance(node, tree.SearchField):
        assert field is None, f"field {node.name} inside field {field}"
        name = "".join(_unescape(node.name, wildcards=False))
        if name == "_exists_":
            assert isinstance(node.expr, tree.Word)
            yield ("".join(_unescape(node.expr.value, False)), "exists", None)
            return
        yield from _leaves(node.expr, name)
    elif isinstance(node, tree.Word):
        yield (field, "term", _unescape(node.value, wildcards=True))
    elif isinstance(node, tree.Phrase):
        yield (field, "term", _unescape(node.value[1:-1], wildcards=False))
    elif isinstance(node, tree.Regex):
        yield (field, "regex", node.value[1:-1].replace("\\/", "/"))
    elif isinstance(node, tree.From | tree.To):
        op = (">" if isinstance(node, tree.From) else "<") + ("=" if node.include else "")
        yield (field, "compare", (op, node.a.value))
    else:
        assert isinstance(
            node, tree.BaseOperation | tree.BaseGroup | tree.Not | tree.Prohibit | tree.Plus
        ), f"unexpected {type(node).__name__}: {node}"
        for child in node.children:
            yield from _leaves(child, field)


# --- what the rule says ---------------------------------------------------------------------


def _stored_field(rule: SigmaRule, name: str | None) -> str | None:
    """Where Vigie's documents hold a rule's field (the converter's "vigie" layout)."""
    if name is None or rule.logsource.product != "windows":
        return name
    mapped = _VIGIE_SYSTEM_FIELDS.get(name)
    if isinstance(mapped, str):
        return mapped
    return name if re.match(r"\w+\.", name) else f"winlog.event_data.{name}"


def _string(value: SigmaString) -> tuple[str, ...]:
    parts: list[str] = []
    for part in value.s:
        if part is SpecialChars.WILDCARD_MULTI or isinstance(part, Placeholder):
            parts.append(MULTI)  # unresolved placeholders are wildcards
        elif part is SpecialChars.WILDCARD_SINGLE:
            parts.append(SINGLE)
        else:
            parts.extend(str(part))
    return _joined(parts)


def _expected_leaves(field: str | None, value: Any) -> Iterator[Leaf]:
    if isinstance(value, SigmaExpansion):
        for one in value.values:
            yield from _expected_leaves(field, one)
    elif isinstance(value, SigmaString):
        text = _string(value)
        yield (field, "term", _joined([MULTI, *text, MULTI]) if field is None else text)
    elif isinstance(value, SigmaNumber | SigmaBool):
        shown = str(value).lower() if isinstance(value, SigmaBool) else str(value.number)
        yield (field, "term", (shown,))
    elif isinstance(value, SigmaNull | SigmaExists):
        yield (field, "exists", None)
    elif isinstance(value, SigmaRegularExpression):
        # Its flags as an inline group, as pySigma writes them (see the README on what
        # Lucene's regular expressions do with it).
        flags = "".join(sorted(_RE_FLAGS[f] for f in value.flags))
        yield (field, "regex", (f"(?{flags})" if flags else "") + str(value.regexp))
    elif isinstance(value, SigmaCIDRExpression):
        # A keyword holds the address as text: the network is its prefixes as wildcards.
        for prefix in value.expand():
            yield (field, "term", _string(SigmaString(prefix)))
    elif isinstance(value, SigmaCompareExpression):
        op = {"LT": "<", "LTE": "<=", "GT": ">", "GTE": ">="}[value.op.name]
        yield (f"{field}.{NUMERIC_SUBFIELD}", "compare", (op, str(value.number.number)))
    else:
        raise AssertionError(f"a value this test does not know: {value!r}")


def _rule_leaves(rule: SigmaRule) -> set[Leaf]:
    leaves: set[Leaf] = set()

    def walk(item: SigmaDetection | SigmaDetectionItem) -> None:
        if isinstance(item, SigmaDetection):
            for sub in item.detection_items:
                walk(sub)
            return
        for value in item.value:
            leaves.update(_expected_leaves(_stored_field(rule, item.field), value))

    for detection in rule.detection.detections.values():
        walk(detection)
    ls = rule.logsource
    if ls.product == "windows":  # the converter's restriction to the log source's events
        for name, places in (
            (ls.category, windows_where(ls.category, None)),
            (ls.service, windows_where(None, ls.service)),
        ):
            for place in (places or []) if name else []:
                leaves.update(("winlog.channel", "term", (c,)) for c in place.channels)
                leaves.update(("winlog.event_id", "term", (str(i),)) for i in place.event_ids)
    return leaves


def _check(converted: Converted) -> list[str]:
    """What is wrong with one converted rule's query, as lines (none: all is well)."""
    query = converted.result.query
    assert query is not None
    try:
        got = set(_leaves(parser.parse(query)))
    except (ParseError, AssertionError) as exc:
        return [f"unreadable: {exc}"]
    want = _rule_leaves(converted.rule)
    problems = [f"not in the rule: {leaf}" for leaf in sorted(got - want, key=repr)]
    # A detection the condition never names is left out of the query, and only then.
    unused = _unused_leaves(converted.rule)
    problems += [f"lost: {leaf}" for leaf in sorted(want - got - unused, key=repr)]
    return problems


def _unused_leaves(rule: SigmaRule) -> set[Leaf]:
    conditions = " ".join(rule.detection.condition)
    used = {
        name
        for name in rule.detection.detections
        if re.search(rf"(?<![\w*]){re.escape(name)}(?![\w*])", conditions)
        or any(
            re.fullmatch(pattern.replace("*", ".*"), name)
            for pattern in re.findall(r"[\w*]*\*[\w*]*", conditions)
        )
    }
    others = SigmaRule.from_dict(rule.to_dict())
    others.detection.detections = {
        name: d for name, d in others.detection.detections.items() if name not in used
    }
    return _rule_leaves(others) if others.detection.detections else set()


# --- the tests ------------------------------------------------------------------------------


def test_every_query_parses_to_exactly_the_fields_and_values_of_its_rule(
    converted: list[Converted],
) -> None:
    done = [c for c in converted if c.result.ok]
    assert len(done) >= 0.98 * len(converted)
    failures = [
        f"{c.result.path}: {problem}\n  query: {c.result.query}"
        for c in done
        for problem in _check(c)
    ]
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} in all)"


def test_the_comparison_is_sensitive_to_a_misread_value(converted: list[Converted]) -> None:
    """The check above would see an escaping slip: the same query with one escape removed
    reads as something else."""
    first = next(c for c in converted if c.result.ok and "\\ " in (c.result.query or ""))
    assert not _check(first)
    broken = Converted(
        first.rule,
        ConversionResult(first.result.rule_id, "", query=first.result.query.replace("\\ ", " ", 1)),  # type: ignore[union-attr]
    )
    (problem,) = _check(broken)
    assert problem.startswith("unreadable: implicit operator")


TRICKY_VALUES = [
    "two words",
    "C:\\Windows\\System32\\",
    "a:b",
    'say "hi"',
    "AND",
    "OR",
    "NOT",
    "x AND y",
    "(group)",
    "[range TO x]",
    "{curly}",
    "+plus -minus",
    "a&&b || !c",
    "^caret~tilde",
    "slash/",
    "back\\\\slash",
    "literal \\* star and \\? mark",
    "trailing \\",
    "tab\there",
    "no\xa0break",
    "ideographic\u3000space",
    "–unicode dash—",
    "_exists_:x",
]


def test_reserved_characters_and_words_stay_values(tmp_path: Path) -> None:
    """Values holding what Lucene reserves come back, from the parse tree, as the very
    characters the rule meant, under the field the rule named."""
    values = "\n".join(f"      - '{v.replace(chr(39), chr(39) * 2)}'" for v in TRICKY_VALUES)
    (tmp_path / "tricky.yml").write_text(
        "title: reserved characters\nid: 7b3f0c4e-5d6a-4b7c-8d9e-0f1a2b3c4d5e\nstatus: test\n"
        "logsource: {product: windows, category: process_creation}\n"
        "detection:\n"
        f"  exact:\n    CommandLine:\n{values}\n"
        f"  inside:\n    ParentCommandLine|contains:\n{values}\n"
        "  keyword:\n    - 'free text: AND *'\n"
        "  condition: exact or inside or keyword\n",
        encoding="utf-8",
    )
    ruleset = load_sigma_rules([tmp_path])
    assert not ruleset.errors, ruleset.errors
    (one,) = _with_sigma(ruleset.rules, to_elasticsearch(ruleset.rules))
    assert one.result.ok, one.result.error
    got = set(_leaves(parser.parse(one.result.query or "")))
    for value in TRICKY_VALUES:
        meant = _string(SigmaString(value))
        assert MULTI not in meant  # every `*` above is escaped: a literal, in Sigma too
        assert ("winlog.event_data.CommandLine", "term", meant) in got
        inside = ("winlog.event_data.ParentCommandLine", "term", _joined([MULTI, *meant, MULTI]))
        assert inside in got
    assert (None, "term", (MULTI, "free text: AND ", MULTI)) in got
    assert not _check(one)
