"""Sigma values (after pySigma applied their modifiers) compiled to Python predicates.

pySigma has already turned `contains`, `startswith`, `endswith`, `windash`, `base64`,
`base64offset`, `utf16*`/`wide`, `all`, `expand` and the like into plain `SigmaString`s
(with wildcards or placeholders), `SigmaExpansion`s (alternatives) and condition trees.
What remains is matching one value against an event's field, as the Sigma specification says:
strings case-insensitively unless `cased`, `*` and `?` wildcards, regular expressions
case-sensitively unless flagged `i`, numbers by value, CIDR ranges, comparisons, field
references, `exists` and `null`.

Each value also gives its *anchors*: lowercase literals at least one of which must occur in
the event's text for the value to match. The engine uses them to skip rules that cannot match.
"""

from __future__ import annotations

import functools
import ipaddress
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ahocorasick
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
)

from detection.event import parse_timestamp
from detection.sigma.context import MatchContext

# The regular-expression parser of the standard library (private, stable across 3.11-3.13).
_sre_parser: Any = re._parser  # type: ignore[attr-defined]
_constants: Any = re._constants  # type: ignore[attr-defined]
_LITERAL = _constants.LITERAL
_SUBPATTERN = _constants.SUBPATTERN
_MAX_REPEAT = _constants.MAX_REPEAT
_MIN_REPEAT = _constants.MIN_REPEAT
_BRANCH = _constants.BRANCH

Predicate = Callable[[MatchContext], bool]
# None: the value can match without any literal in the event (no anchor possible).
Anchors = frozenset[str] | None


class UnsupportedValue(Exception):
    """A value this engine cannot evaluate (the rule is reported, not loaded)."""


@dataclass(frozen=True, slots=True)
class CompiledValue:
    predicate: Predicate
    anchors: Anchors


def compile_value(field: str | None, value: Any) -> CompiledValue:
    """Compile `field = value` (`field` None: a keyword, matched against every value)."""
    if isinstance(value, SigmaExpansion):
        parts = [compile_value(field, v) for v in value.values]
        return CompiledValue(_any_of([p.predicate for p in parts]), union_anchors(parts))
    if isinstance(value, SigmaString):
        return _compile_string(field, value)
    if isinstance(value, SigmaRegularExpression):
        return CompiledValue(
            _on_strings(field, _regex_test(value)), regex_anchors(str(value.regexp))
        )
    if isinstance(value, SigmaTimestampPart):  # before SigmaNumber, its base class
        return CompiledValue(_timestamp_test(_need_field(field, value), value), None)
    if isinstance(value, SigmaNumber):
        return CompiledValue(_on_values(field, _number_test(value.number)), None)
    if isinstance(value, SigmaBool):
        return CompiledValue(_on_values(field, _bool_test(value.boolean)), None)
    if isinstance(value, SigmaNull):
        return CompiledValue(_null_test(_need_field(field, value)), None)
    if isinstance(value, SigmaExists):
        return CompiledValue(_exists_test(_need_field(field, value), value.exists), None)
    if isinstance(value, SigmaCIDRExpression):
        return CompiledValue(_on_strings(field, _cidr_test(value)), None)
    if isinstance(value, SigmaCompareExpression):
        return CompiledValue(_on_values(field, _compare_test(value)), None)
    if isinstance(value, SigmaFieldReference):
        return CompiledValue(_fieldref_test(_need_field(field, value), value), None)
    raise UnsupportedValue(f"value type {type(value).__name__} is not supported")


def union_anchors(parts: Sequence[CompiledValue]) -> Anchors:
    """Anchors of an OR: every alternative must be anchored, else none is useful."""
    out: set[str] = set()
    for part in parts:
        if part.anchors is None:
            return None
        out |= part.anchors
    return frozenset(out)


def best_anchors(parts: Sequence[CompiledValue]) -> Anchors:
    """Anchors of an AND: any one child's anchors suffice; take the most selective."""
    best: Anchors = None
    for part in parts:
        if part.anchors is not None and (best is None or _score(part.anchors) > _score(best)):
            best = part.anchors
    return best


def _score(anchors: frozenset[str]) -> tuple[int, int]:
    # The shortest literal bounds how often a set fires; fewer literals break ties.
    return (min((len(a) for a in anchors), default=0), -len(anchors))


def _need_field(field: str | None, value: Any) -> str:
    if field is None:
        raise UnsupportedValue(f"{type(value).__name__} needs a field name")
    return field


# --- strings --------------------------------------------------------------------------------


def _compile_string(field: str | None, value: SigmaString) -> CompiledValue:
    cased = isinstance(value, SigmaCasedString)
    parts: list[str | SpecialChars] = []
    for part in value.s:
        if isinstance(part, Placeholder):
            # An `expand` placeholder nobody gave a value for matches anything, as pySigma's
            # wildcard placeholder transformation does.
            parts.append(SpecialChars.WILDCARD_MULTI)
        elif isinstance(part, str):
            parts.append(part if cased else part.lower())
        else:
            parts.append(part)
    if field is None:
        # Keywords are searched within the event's values, not compared whole.
        parts = [SpecialChars.WILDCARD_MULTI, *parts, SpecialChars.WILDCARD_MULTI]
    # `**` is `*`; collapsing keeps the fast paths below reachable.
    star = SpecialChars.WILDCARD_MULTI
    collapsed: list[str | SpecialChars] = []
    for part in parts:
        if not (part is star and collapsed and collapsed[-1] is star):
            collapsed.append(part)
    parts = collapsed
    literals = [p for p in parts if isinstance(p, str) and p]
    anchors: Anchors = frozenset({max(literals, key=len).lower()}) if literals else None
    test = _string_test(parts, cased)
    if field is None:
        return CompiledValue(_keyword(test, cased), anchors)
    if cased:
        return CompiledValue(_on_strings(field, test), anchors)
    return CompiledValue(_on_lower_strings(field, test), anchors)


def _string_test(parts: list[str | SpecialChars], cased: bool) -> Callable[[str], bool]:
    """A test on one (already lowercased unless `cased`) string."""
    if SpecialChars.WILDCARD_SINGLE in parts:
        pattern = "".join(
            ".*"
            if p is SpecialChars.WILDCARD_MULTI
            else "."
            if p is SpecialChars.WILDCARD_SINGLE
            else re.escape(str(p))
            for p in parts
        )
        regex = re.compile(pattern, re.DOTALL)
        return lambda s: regex.fullmatch(s) is not None
    segments = _segments(parts)
    if len(segments) == 1:
        exact = segments[0]
        return lambda s: s == exact
    if len(segments) == 2:
        head, tail = segments
        if not head:
            return (lambda s: True) if not tail else (lambda s: s.endswith(tail))
        if not tail:
            return lambda s: s.startswith(head)
        return lambda s: len(s) >= len(head) + len(tail) and s.startswith(head) and s.endswith(tail)
    if len(segments) == 3 and not segments[0] and not segments[2]:
        needle = segments[1]
        return lambda s: needle in s
    return lambda s: _glob(segments, s)


def _segments(parts: list[str | SpecialChars]) -> list[str]:
    """Literal text between `*` wildcards: `*a*b` -> ['', 'a', 'b']."""
    segments = [""]
    for part in parts:
        if part is SpecialChars.WILDCARD_MULTI:
            segments.append("")
        else:
            segments[-1] += str(part)
    return segments


def _glob(segments: list[str], s: str) -> bool:
    head, *middle, tail = segments
    if not s.startswith(head) or len(s) < len(head) + len(tail):
        return False
    pos = len(head)
    end = len(s) - len(tail)
    for seg in middle:
        pos = s.find(seg, pos, end)
        if pos < 0:
            return False
        pos += len(seg)
    return s.endswith(tail)


def _keyword(test: Callable[[str], bool], cased: bool) -> Predicate:
    if cased:
        return lambda ctx: any(test(s) for s in ctx.all_strings())
    return lambda ctx: any(test(s) for s in ctx.all_lower_strings())


def _on_strings(field: str | None, test: Callable[[str], bool]) -> Predicate:
    if field is None:
        return lambda ctx: any(test(s) for s in ctx.all_strings())

    def check(ctx: MatchContext) -> bool:
        for s in ctx.strings(field):
            if test(s):
                return True
        return False

    return check


def _on_lower_strings(field: str, test: Callable[[str], bool]) -> Predicate:
    def check(ctx: MatchContext) -> bool:
        for s in ctx.lower_strings(field):
            if test(s):
                return True
        return False

    return check


def _on_values(field: str | None, test: Callable[[Any], bool]) -> Predicate:
    if field is None:
        return lambda ctx: any(test(v) for v in ctx.all_values())
    return lambda ctx: any(test(v) for v in ctx.values(field))


def _any_of(predicates: list[Predicate]) -> Predicate:
    def test(ctx: MatchContext) -> bool:
        return any(p(ctx) for p in predicates)

    return test


def _regex_test(value: SigmaRegularExpression) -> Callable[[str], bool]:
    flags = 0
    for flag, re_flag in (
        (SigmaRegularExpressionFlag.IGNORECASE, re.IGNORECASE),
        (SigmaRegularExpressionFlag.MULTILINE, re.MULTILINE),
        (SigmaRegularExpressionFlag.DOTALL, re.DOTALL),
    ):
        if flag in value.flags:
            flags |= re_flag
    regex = re.compile(str(value.regexp), flags)
    return lambda s: regex.search(s) is not None


def regex_anchors(pattern: str) -> Anchors:
    """Literals one of which any match of `pattern` contains (lowercased), if they can be read.

    Reads the pattern's parse tree: runs of plain characters in the top-level sequence, groups
    and repeats that must occur at least once, alternatives when each has its own literal.
    """
    try:
        tree = _sre_parser.parse(pattern)
    except Exception:  # noqa: BLE001 - any surprise from a private parser: no anchor, still correct
        return None
    return _sequence_anchors(list(tree))


def _sequence_anchors(items: list[tuple[Any, Any]]) -> Anchors:
    candidates: list[frozenset[str]] = []
    run: list[str] = []
    for op, av in [*items, (None, None)]:
        if op is _LITERAL:
            run.append(chr(av))
            continue
        if run:
            candidates.append(frozenset({"".join(run).lower()}))
            run = []
        found: Anchors = None
        if op is _SUBPATTERN:
            found = _sequence_anchors(list(av[-1]))
        elif op in (_MAX_REPEAT, _MIN_REPEAT) and av[0] >= 1:
            found = _sequence_anchors(list(av[2]))
        elif op is _BRANCH:
            branches = [_sequence_anchors(list(b)) for b in av[1]]
            if branches and all(b is not None for b in branches):
                found = frozenset().union(*branches)  # type: ignore[arg-type]
        if found:
            candidates.append(found)
    best: Anchors = None
    for anchors in candidates:
        if best is None or _score(anchors) > _score(best):
            best = anchors
    return best


# --- lists of plain strings on one field ----------------------------------------------------


def string_shape(value: Any) -> tuple[str, str] | None:
    """(kind, lowercase literal) for a plain case-insensitive string: `exact`, `startswith`,
    `endswith` or `contains`. None for anything else (cased, `?`, placeholders, globs)."""
    if type(value) is not SigmaString or value.contains_placeholder():
        return None
    parts = value.s
    if any(p is SpecialChars.WILDCARD_SINGLE for p in parts):
        return None
    lead = bool(parts) and parts[0] is SpecialChars.WILDCARD_MULTI
    trail = len(parts) > 1 and parts[-1] is SpecialChars.WILDCARD_MULTI
    middle = parts[int(lead) : len(parts) - int(trail)]
    if len(middle) != 1 or not isinstance(middle[0], str) or not middle[0]:
        return None
    kind = {(False, False): "exact", (False, True): "startswith", (True, False): "endswith"}
    return kind.get((lead, trail), "contains"), middle[0].lower()


def compile_string_set(field: str, shapes: Sequence[tuple[str, str]]) -> CompiledValue:
    """`field` equal to any of many plain strings (a YAML list): one test instead of many."""
    exact = frozenset(lit for kind, lit in shapes if kind == "exact")
    starts = tuple(lit for kind, lit in shapes if kind == "startswith")
    ends = tuple(lit for kind, lit in shapes if kind == "endswith")
    contains = _contains_any(tuple(lit for kind, lit in shapes if kind == "contains"))

    def check(ctx: MatchContext) -> bool:
        for s in ctx.lower_strings(field):
            if (
                s in exact
                or (starts and s.startswith(starts))
                or (ends and s.endswith(ends))
                or (contains is not None and contains(s))
            ):
                return True
        return False

    return CompiledValue(check, frozenset(lit for _, lit in shapes))


def _contains_any(needles: tuple[str, ...]) -> Callable[[str], bool] | None:
    if not needles:
        return None
    if len(needles) <= 8:
        return lambda s: any(n in s for n in needles)
    # Many needles: one automaton (a regex alternation of hundreds of literals compiles slowly).
    automaton = ahocorasick.Automaton()
    for needle in needles:
        automaton.add_word(needle, needle)
    automaton.make_automaton()

    def found(s: str) -> bool:
        for _ in automaton.iter(s):
            return True
        return False

    return found


# --- other types ----------------------------------------------------------------------------


def as_number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text, 0) if text[:2].lower() == "0x" else int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                return None
    return None


def _number_test(number: int | float) -> Callable[[Any], bool]:
    text = str(number)

    def test(v: Any) -> bool:
        if isinstance(v, str):
            return v == text or as_number(v) == number
        return as_number(v) == number

    return test


def _bool_test(expected: bool) -> Callable[[Any], bool]:
    text = str(expected).lower()
    return lambda v: v is expected or (isinstance(v, str) and v.lower() == text)


def _null_test(field: str) -> Predicate:
    return lambda ctx: all(v is None for v in ctx.values(field))


def _exists_test(field: str, exists: bool) -> Predicate:
    return lambda ctx: any(v is not None for v in ctx.values(field)) == exists


def _cidr_test(value: SigmaCIDRExpression) -> Callable[[str], bool]:
    network = value.network

    def test(s: str) -> bool:
        address = _ip(s)
        return address is not None and address in network

    return test


@functools.lru_cache(maxsize=4096)
def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # Longer strings cannot be addresses; the parser is slow to say so on long text.
    if len(text) > 45:
        return None
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


_COMPARE: dict[CompareOperators, Callable[[Any, Any], bool]] = {
    CompareOperators.LT: operator.lt,
    CompareOperators.LTE: operator.le,
    CompareOperators.GT: operator.gt,
    CompareOperators.GTE: operator.ge,
    CompareOperators.NEQ: operator.ne,
}


def _compare_test(value: SigmaCompareExpression) -> Callable[[Any], bool]:
    op = _COMPARE[value.op]
    bound = value.number.number

    def test(v: Any) -> bool:
        number = as_number(v)
        return number is not None and op(number, bound)

    return test


def _fieldref_test(field: str, value: SigmaFieldReference) -> Predicate:
    other = value.field

    def test(ctx: MatchContext) -> bool:
        theirs = ctx.lower_strings(other)
        for mine in ctx.lower_strings(field):
            for ref in theirs:
                if value.starts_with and mine.startswith(ref):
                    return True
                if value.ends_with and mine.endswith(ref):
                    return True
                if not (value.starts_with or value.ends_with) and mine == ref:
                    return True
        return False

    return test


def _timestamp_test(field: str, value: SigmaTimestampPart) -> Predicate:
    """A part (minute ... year) of the date held by `field` (not the event's own time)."""
    part = value.timestamp_part.name.lower()
    number = value.number

    def test(ctx: MatchContext) -> bool:
        for raw in ctx.values(field):
            ts = parse_timestamp(raw)
            if ts is None:
                continue
            got = ts.isocalendar().week if part == "week" else getattr(ts, part)
            if got == number:
                return True
        return False

    return test
