"""A pySigma condition tree as plain tuples: what a rule means, without pySigma's objects.

pySigma parses the rule, applies its modifiers and resolves `1 of`, `all of them` and the
like; `condition_ir` writes the result down as nested tuples of strings and numbers. They are
cheap to send between processes (rules are parsed on every core) and are what `values.build`
turns into predicates.

    ("and", (node, ...))  ("or", (node, ...))  ("not", node)
    ("str", field, cased, parts)      parts: literal strings and STAR / ONE wildcards
    ("strset", field, ((kind, literal), ...))   kind: exact|startswith|endswith|contains
    ("re", field, pattern, flags)     ("num", field, n)      ("bool", field, b)
    ("null", field)   ("exists", field, b)   ("cidr", field, network)
    ("cmp", field, op, n)   ("fieldref", field, other, startswith, endswith)
    ("ts", field, part, n)

`field` is None for keywords (matched against every value). Case-insensitive literals are
stored lowercased.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
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

Node = tuple[Any, ...]
STAR = 1  # `*` in a string's parts
ONE = 2  # `?`

_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
}


class UnsupportedValue(Exception):
    """A value this engine cannot evaluate (the rule is reported, not loaded)."""


def condition_ir(node: object) -> Node:
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return value_ir(node.field, node.value)
    if isinstance(node, ConditionValueExpression):
        return value_ir(None, node.value)
    if isinstance(node, ConditionAND):
        return _flat("and", [condition_ir(a) for a in node.args])
    if isinstance(node, ConditionOR):
        return _flat("or", _alternatives(node.args))
    if isinstance(node, ConditionNOT):
        return ("not", condition_ir(node.args[0]))
    raise UnsupportedValue(f"condition element {type(node).__name__} is not supported")


def _flat(op: str, children: list[Node]) -> Node:
    return children[0] if len(children) == 1 else (op, tuple(children))


def _alternatives(args: Sequence[object]) -> list[Node]:
    """OR'ed children; plain strings on the same field (YAML lists) become one set test."""
    plain: dict[str, list[tuple[tuple[str, str], object]]] = {}
    parts: list[Node] = []
    for arg in args:
        if isinstance(arg, ConditionFieldEqualsValueExpression) and arg.field:
            shape = string_shape(arg.value)
            if shape is not None:
                plain.setdefault(arg.field, []).append((shape, arg))
                continue
        parts.append(condition_ir(arg))
    for field, entries in plain.items():
        if len(entries) == 1:
            parts.append(condition_ir(entries[0][1]))
        else:
            parts.append(("strset", field, tuple(shape for shape, _ in entries)))
    return parts


def value_ir(field: str | None, value: Any) -> Node:
    """`field = value` (`field` None: a keyword)."""
    if isinstance(value, SigmaExpansion):
        return _flat("or", [value_ir(field, v) for v in value.values])
    if isinstance(value, SigmaString):
        return _string_ir(field, value)
    if isinstance(value, SigmaRegularExpression):
        flags = 0
        for flag in value.flags:
            flags |= _FLAGS[flag]
        return ("re", field, str(value.regexp), flags)
    if isinstance(value, SigmaTimestampPart):  # before SigmaNumber, its base class
        part = value.timestamp_part.name.lower()
        return ("ts", _need_field(field, value), part, value.number)
    if isinstance(value, SigmaNumber):
        return ("num", field, value.number)
    if isinstance(value, SigmaBool):
        return ("bool", field, value.boolean)
    if isinstance(value, SigmaNull):
        return ("null", _need_field(field, value))
    if isinstance(value, SigmaExists):
        return ("exists", _need_field(field, value), value.exists)
    if isinstance(value, SigmaCIDRExpression):
        return ("cidr", field, str(value.network))
    if isinstance(value, SigmaCompareExpression):
        return ("cmp", field, value.op.name, value.number.number)
    if isinstance(value, SigmaFieldReference):
        return (
            "fieldref",
            _need_field(field, value),
            value.field,
            value.starts_with,
            value.ends_with,
        )
    raise UnsupportedValue(f"value type {type(value).__name__} is not supported")


def _need_field(field: str | None, value: Any) -> str:
    if field is None:
        raise UnsupportedValue(f"{type(value).__name__} needs a field name")
    return field


def _string_ir(field: str | None, value: SigmaString) -> Node:
    cased = isinstance(value, SigmaCasedString)
    parts: list[str | int] = []
    for part in value.s:
        if isinstance(part, Placeholder):
            # An `expand` placeholder nobody gave a value for matches anything, as pySigma's
            # wildcard placeholder transformation does.
            parts.append(STAR)
        elif isinstance(part, str):
            parts.append(part if cased else part.lower())
        else:
            parts.append(ONE if part is SpecialChars.WILDCARD_SINGLE else STAR)
    if field is None:
        # Keywords are searched within the event's values, not compared whole.
        parts = [STAR, *parts, STAR]
    collapsed: list[str | int] = []
    for item in parts:  # `**` is `*`
        if not (item == STAR and collapsed and collapsed[-1] == STAR):
            collapsed.append(item)
    return ("str", field, cased, tuple(collapsed))


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


def event_ids(node: Node) -> frozenset[int] | None:
    """The EventIDs a condition can only match, from its `EventID` equalities (None: any)."""
    op = node[0]
    if op in ("num", "str") and node[1] == "EventID":
        if op == "num" and isinstance(node[2], int):
            return frozenset({node[2]})
        if op == "str" and len(node[3]) == 1 and isinstance(node[3][0], str):
            text = node[3][0]
            return frozenset({int(text)}) if text.isdigit() else None
        return None
    if op == "and":
        known = [ids for ids in map(event_ids, node[1]) if ids is not None]
        return frozenset.intersection(*known) if known else None
    if op == "or":
        return any_ids([event_ids(child) for child in node[1]])
    return None  # NOT, keywords, other fields: no constraint can be read off


def any_ids(alternatives: list[frozenset[int] | None]) -> frozenset[int] | None:
    if not alternatives or any(ids is None for ids in alternatives):
        return None
    out: frozenset[int] = frozenset()
    for ids in alternatives:
        out |= ids or frozenset()
    return out
