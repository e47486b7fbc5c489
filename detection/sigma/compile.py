"""A pySigma rule compiled to one predicate over a `MatchContext`, with its anchors.

pySigma parses the condition (`1 of sel*`, `all of them`, `not`, parentheses) and applies
the value modifiers; its parsed tree has AND/OR/NOT nodes over `field = value` and keyword
leaves. We walk that tree once and build nested closures, so evaluating a rule costs a few
Python calls, not a tree interpretation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule
from sigma.types import SigmaNumber, SigmaString

from detection.sigma.context import MatchContext
from detection.sigma.values import (
    CompiledValue,
    Predicate,
    UnsupportedValue,
    best_anchors,
    compile_string_set,
    compile_value,
    string_shape,
    union_anchors,
)


@dataclass(frozen=True, slots=True)
class Logsource:
    product: str | None = None
    category: str | None = None
    service: str | None = None


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A detection rule ready to evaluate."""

    id: str
    title: str
    level: str
    tags: tuple[str, ...]
    logsource: Logsource
    predicate: Predicate
    anchors: frozenset[str] | None  # None: the rule must be evaluated on every event
    path: Path | None
    name: str | None = None  # the rule's `name`, which correlation rules may refer to
    event_ids: frozenset[int] | None = None  # the only EventIDs it can match (None: any)
    rule: SigmaRule | None = field(default=None, repr=False, compare=False)

    def matches(self, ctx: MatchContext) -> bool:
        return self.predicate(ctx)


class CompileError(Exception):
    """The rule is valid Sigma but uses something this engine cannot evaluate."""


def compile_rule(rule: SigmaRule, path: Path | None = None) -> CompiledRule:
    try:
        trees = [c.parsed for c in rule.detection.parsed_condition]
        conditions = [_compile_node(tree) for tree in trees]
    except (UnsupportedValue, SigmaError, re.error) as exc:
        raise CompileError(str(exc)) from exc
    if not conditions:
        raise CompileError("the rule has no condition")
    # Several conditions in one rule are alternatives.
    compiled = conditions[0] if len(conditions) == 1 else _or(conditions)
    ls = rule.logsource
    return CompiledRule(
        id=rule_id(rule),
        title=rule.title or "",
        level=rule.level.name.lower() if rule.level else "medium",
        tags=tuple(f"{t.namespace}.{t.name}" for t in rule.tags),
        logsource=Logsource(_lower(ls.product), _lower(ls.category), _lower(ls.service)),
        predicate=compiled.predicate,
        anchors=compiled.anchors,
        path=path,
        name=rule.name,
        event_ids=_any_ids([_event_ids(tree) for tree in trees]),
        rule=rule,
    )


def rule_id(rule: SigmaRule) -> str:
    return str(rule.id) if rule.id else (rule.name or rule.title or "")


def _lower(value: str | None) -> str | None:
    return value.lower() if value else None


def _compile_node(node: object) -> CompiledValue:
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return compile_value(node.field, node.value)
    if isinstance(node, ConditionValueExpression):
        return compile_value(None, node.value)
    if isinstance(node, ConditionAND):
        return _and([_compile_node(a) for a in node.args])
    if isinstance(node, ConditionOR):
        return _or(_compile_alternatives(node.args))
    if isinstance(node, ConditionNOT):
        inner = _compile_node(node.args[0]).predicate
        return CompiledValue(lambda ctx: not inner(ctx), None)
    raise UnsupportedValue(f"condition element {type(node).__name__} is not supported")


def _compile_alternatives(args: Sequence[object]) -> list[CompiledValue]:
    """OR'ed children; plain strings on the same field (YAML lists) become one set test."""
    plain: dict[str, list[tuple[tuple[str, str], object]]] = {}
    parts: list[CompiledValue] = []
    for arg in args:
        if isinstance(arg, ConditionFieldEqualsValueExpression) and arg.field:
            shape = string_shape(arg.value)
            if shape is not None:
                plain.setdefault(arg.field, []).append((shape, arg))
                continue
        parts.append(_compile_node(arg))
    for field_name, entries in plain.items():
        if len(entries) == 1:
            parts.append(_compile_node(entries[0][1]))
        else:
            parts.append(compile_string_set(field_name, [shape for shape, _ in entries]))
    return parts


def _event_ids(node: object) -> frozenset[int] | None:
    """The EventIDs a condition can only match, from its `EventID` equalities (None: any)."""
    if isinstance(node, ConditionFieldEqualsValueExpression):
        if node.field != "EventID":
            return None
        value = node.value
        if isinstance(value, SigmaNumber) and isinstance(value.number, int):
            return frozenset({value.number})
        if isinstance(value, SigmaString) and not value.contains_special():
            text = str(value)
            return frozenset({int(text)}) if text.isdigit() else None
        return None
    if isinstance(node, ConditionAND):
        known = [ids for ids in map(_event_ids, node.args) if ids is not None]
        return frozenset.intersection(*known) if known else None
    if isinstance(node, ConditionOR):
        return _any_ids([_event_ids(a) for a in node.args])
    return None  # NOT, keywords: no constraint can be read off


def _any_ids(alternatives: list[frozenset[int] | None]) -> frozenset[int] | None:
    if not alternatives or any(ids is None for ids in alternatives):
        return None
    return frozenset().union(*alternatives)  # type: ignore[arg-type]


def _and(parts: list[CompiledValue]) -> CompiledValue:
    predicates = tuple(p.predicate for p in parts)
    if len(predicates) == 1:
        return parts[0]

    def test(ctx: MatchContext) -> bool:
        for predicate in predicates:
            if not predicate(ctx):
                return False
        return True

    return CompiledValue(test, best_anchors(parts))


def _or(parts: list[CompiledValue]) -> CompiledValue:
    predicates = tuple(p.predicate for p in parts)
    if len(predicates) == 1:
        return parts[0]

    def test(ctx: MatchContext) -> bool:
        for predicate in predicates:
            if predicate(ctx):
                return True
        return False

    return CompiledValue(test, union_anchors(parts))
