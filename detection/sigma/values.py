"""IR leaves (see `detection.sigma.ir`) turned into Python predicates, with their anchors.

pySigma has already turned `contains`, `startswith`, `endswith`, `windash`, `base64`,
`base64offset`, `utf16*`/`wide`, `all`, `expand` and the like into plain strings with
wildcards, alternatives and condition trees. What remains is matching one value against an
event's field, as the Sigma specification says: strings case-insensitively unless `cased`, `*`
and `?` wildcards, regular expressions case-sensitively unless flagged `i`, numbers by value,
CIDR ranges, comparisons, field references, `exists` and `null`.

Each value also gives its *anchors*: (field, lowercase literal) pairs, one of which must
occur for the value to match: the literal within that field's value (field None: within any
value). The engine uses them to skip rules that cannot match.
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

from detection.event import parse_timestamp
from detection.sigma.context import MatchContext, fold_name
from detection.sigma.ir import ONE, STAR, Node, UnsupportedValue
from detection.sigma.regex import compile_regex, literal

# The regular-expression parser of the standard library (private, stable across 3.11-3.13).
_sre_parser: Any = re._parser  # type: ignore[attr-defined]
_constants: Any = re._constants  # type: ignore[attr-defined]
_LITERAL = _constants.LITERAL
_SUBPATTERN = _constants.SUBPATTERN
_MAX_REPEAT = _constants.MAX_REPEAT
_MIN_REPEAT = _constants.MIN_REPEAT
_BRANCH = _constants.BRANCH

Predicate = Callable[[MatchContext], bool]
# (folded field name or None for any field, lowercase literal)
Anchor = tuple[str | None, str]
# None: the value can match without any literal in the event (no anchor possible).
Anchors = frozenset[Anchor] | None
Literals = frozenset[str] | None
Parts = tuple[str | int, ...]

__all__ = ["Anchors", "CompiledValue", "Predicate", "UnsupportedValue", "build"]


@dataclass(frozen=True, slots=True)
class CompiledValue:
    predicate: Predicate
    anchors: Anchors


def build(node: Node) -> CompiledValue:
    """The predicate (and anchors) of one IR node."""
    op = node[0]
    if op == "and":
        return _and([build(child) for child in node[1]])
    if op == "or":
        return _or([build(child) for child in node[1]])
    if op == "not":
        inner = build(node[1]).predicate
        return CompiledValue(lambda ctx: not inner(ctx), None)
    if op == "str":
        return _string(node[1], node[2], node[3])
    if op == "strset":
        return _string_set(node[1], node[2])
    if op == "re":
        test = _regex_test(node[2], node[3])
        return CompiledValue(_on_strings(node[1], test), _tag(node[1], regex_anchors(node[2])))
    if op == "num":
        return CompiledValue(_on_values(node[1], _number_test(node[2])), None)
    if op == "bool":
        return CompiledValue(_on_values(node[1], _bool_test(node[2])), None)
    if op == "null":
        return CompiledValue(_null_test(node[1]), None)
    if op == "exists":
        return CompiledValue(_exists_test(node[1], node[2]), None)
    if op == "cidr":
        return CompiledValue(_on_strings(node[1], _cidr_test(node[2])), None)
    if op == "cmp":
        return CompiledValue(_on_values(node[1], _compare_test(node[2], node[3])), None)
    if op == "fieldref":
        return CompiledValue(_fieldref_test(node[1], node[2], node[3], node[4]), None)
    if op == "ts":
        return CompiledValue(_timestamp_test(node[1], node[2], node[3]), None)
    raise UnsupportedValue(f"unknown condition element {op!r}")


def _and(parts: list[CompiledValue]) -> CompiledValue:
    if len(parts) == 1:
        return parts[0]
    predicates = tuple(p.predicate for p in parts)

    def test(ctx: MatchContext) -> bool:
        for predicate in predicates:
            if not predicate(ctx):
                return False
        return True

    return CompiledValue(test, best_anchors(parts))


def _or(parts: list[CompiledValue]) -> CompiledValue:
    if len(parts) == 1:
        return parts[0]
    predicates = tuple(p.predicate for p in parts)

    def test(ctx: MatchContext) -> bool:
        for predicate in predicates:
            if predicate(ctx):
                return True
        return False

    return CompiledValue(test, union_anchors(parts))


def union_anchors(parts: Sequence[CompiledValue]) -> Anchors:
    """Anchors of an OR: every alternative must be anchored, else none is useful."""
    out: set[Anchor] = set()
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


def _score(anchors: frozenset[Anchor]) -> tuple[int, int, int]:
    # The shortest literal bounds how often a set fires; then anchors on a named field (more
    # selective than anywhere), then fewer literals.
    return (
        min((len(lit) for _, lit in anchors), default=0),
        int(all(f is not None for f, _ in anchors)),
        -len(anchors),
    )


def _tag(field: str | None, literals: Literals) -> Anchors:
    if literals is None:
        return None
    key = fold_name(field) if field is not None else None
    return frozenset((key, lit) for lit in literals)


# --- strings --------------------------------------------------------------------------------


def _string(field: str | None, cased: bool, parts: Parts) -> CompiledValue:
    literals = [p for p in parts if isinstance(p, str) and p]
    anchors = _tag(field, frozenset({max(literals, key=len).lower()}) if literals else None)
    test = _string_test(parts)
    if field is None:
        return CompiledValue(_keyword(test, cased), anchors)
    if cased:
        return CompiledValue(_on_strings(field, test), anchors)
    return CompiledValue(_on_lower_strings(field, test), anchors)


def _string_test(parts: Parts) -> Callable[[str], bool]:
    """A test on one (already lowercased unless cased) string."""
    if ONE in parts:
        # On RE2 too: Python's `re` takes time polynomial in the text, to the power of the
        # number of `*`, for `*a*a*a*?` (an alert's value) on a long line without a match.
        pattern = "".join(
            ".*" if p == STAR else "." if p == ONE else literal(str(p)) for p in parts
        )
        return compile_regex(pattern, re.DOTALL).fullmatch
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


def _segments(parts: Parts) -> list[str]:
    """Literal text between `*` wildcards: `*a*b` -> ['', 'a', 'b']."""
    segments = [""]
    for part in parts:
        if part == STAR:
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


def _regex_test(pattern: str, flags: int) -> Callable[[str], bool]:
    # RE2, not `re`: linear in the text whatever the pattern (`detection.sigma.regex`).
    return compile_regex(pattern, flags).search


def _literal_score(literals: frozenset[str]) -> tuple[int, int]:
    return (min((len(lit) for lit in literals), default=0), -len(literals))


def regex_anchors(pattern: str) -> Literals:
    """Literals one of which any match of `pattern` contains (lowercased), if they can be read.

    Reads the pattern's parse tree: runs of plain characters in the top-level sequence, groups
    and repeats that must occur at least once, alternatives when each has its own literal.
    """
    try:
        tree = _sre_parser.parse(pattern)
    except Exception:  # noqa: BLE001 - any surprise from a private parser: no anchor, still correct
        return None
    return _sequence_anchors(list(tree))


def _sequence_anchors(items: list[tuple[Any, Any]]) -> Literals:
    candidates: list[frozenset[str]] = []
    run: list[str] = []
    for op, av in [*items, (None, None)]:
        if op is _LITERAL:
            run.append(chr(av))
            continue
        if run:
            candidates.append(frozenset({"".join(run).lower()}))
            run = []
        found: Literals = None
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
    best: Literals = None
    for literals in candidates:
        if best is None or _literal_score(literals) > _literal_score(best):
            best = literals
    return best


# --- lists of plain strings on one field ----------------------------------------------------


def _string_set(field: str, shapes: Sequence[tuple[str, str]]) -> CompiledValue:
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

    return CompiledValue(check, _tag(field, frozenset(lit for _, lit in shapes)))


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


def _cidr_test(cidr: str) -> Callable[[str], bool]:
    network = ipaddress.ip_network(cidr, strict=False)

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


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "LT": operator.lt,
    "LTE": operator.le,
    "GT": operator.gt,
    "GTE": operator.ge,
    "NEQ": operator.ne,
}


def _compare_test(op_name: str, bound: int | float) -> Callable[[Any], bool]:
    op = _COMPARE[op_name]

    def test(v: Any) -> bool:
        number = as_number(v)
        return number is not None and op(number, bound)

    return test


def _fieldref_test(field: str, other: str, starts_with: bool, ends_with: bool) -> Predicate:
    def test(ctx: MatchContext) -> bool:
        theirs = ctx.lower_strings(other)
        for mine in ctx.lower_strings(field):
            for ref in theirs:
                if starts_with and mine.startswith(ref):
                    return True
                if ends_with and mine.endswith(ref):
                    return True
                if not (starts_with or ends_with) and mine == ref:
                    return True
        return False

    return test


def _timestamp_test(field: str, part: str, number: int) -> Predicate:
    """A part (minute ... year) of the date held by `field` (not the event's own time)."""

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
