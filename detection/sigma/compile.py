"""A pySigma rule compiled to one predicate over a `MatchContext`, with its anchors.

Two steps: `rule_ir` reads what pySigma parsed into plain data (`RuleIR`, see `ir.py`), which
can cross process boundaries; `build_rule` turns that into nested closures, so evaluating a
rule costs a few Python calls, not a tree interpretation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from detection.sigma.context import MatchContext
from detection.sigma.ir import Node, UnsupportedValue, any_ids, condition_ir, event_ids
from detection.sigma.values import Anchors, Predicate, build


@dataclass(frozen=True, slots=True)
class Logsource:
    product: str | None = None
    category: str | None = None
    service: str | None = None


@dataclass(frozen=True, slots=True)
class RuleIR:
    """What a detection rule means, as plain data."""

    id: str
    title: str
    level: str
    tags: tuple[str, ...]
    logsource: Logsource
    name: str | None
    conditions: tuple[Node, ...]  # alternatives
    path: str | None


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A detection rule ready to evaluate."""

    id: str
    title: str
    level: str
    tags: tuple[str, ...]
    logsource: Logsource
    predicate: Predicate
    anchors: Anchors  # None: the rule must be evaluated on every event
    path: Path | None
    name: str | None = None  # the rule's `name`, which correlation rules may refer to
    event_ids: frozenset[int] | None = None  # the only EventIDs it can match (None: any)
    # The pySigma rule, when it was parsed in this process (conversion re-reads it otherwise).
    rule: SigmaRule | None = field(default=None, repr=False, compare=False)
    # This rule's queries for other stores, by backend (`detection.sigma.convert`): a rule is
    # hunted again and again, and pySigma takes tens of milliseconds to convert one.
    conversions: dict[tuple[str, str], Any] = field(
        default_factory=dict, repr=False, compare=False, hash=False
    )

    def matches(self, ctx: MatchContext) -> bool:
        return self.predicate(ctx)


class CompileError(Exception):
    """The rule is valid Sigma but uses something this engine cannot evaluate."""


def compile_rule(rule: SigmaRule, path: Path | None = None) -> CompiledRule:
    return build_rule(rule_ir(rule, path), rule)


def rule_ir(rule: SigmaRule, path: Path | None = None) -> RuleIR:
    try:
        conditions = tuple(condition_ir(c.parsed) for c in rule.detection.parsed_condition)
    except (UnsupportedValue, SigmaError) as exc:
        raise CompileError(str(exc)) from exc
    if not conditions:
        raise CompileError("the rule has no condition")
    ls = rule.logsource
    return RuleIR(
        id=rule_id(rule),
        title=rule.title or "",
        level=rule.level.name.lower() if rule.level else "medium",
        tags=tuple(f"{t.namespace}.{t.name}" for t in rule.tags),
        logsource=Logsource(_lower(ls.product), _lower(ls.category), _lower(ls.service)),
        name=rule.name,
        conditions=conditions,
        path=str(path) if path else None,
    )


def build_rule(ir: RuleIR, rule: SigmaRule | None = None) -> CompiledRule:
    try:
        # Several conditions in one rule are alternatives.
        node = ir.conditions[0] if len(ir.conditions) == 1 else ("or", ir.conditions)
        compiled = build(node)
    except (UnsupportedValue, re.error) as exc:
        raise CompileError(str(exc)) from exc
    return CompiledRule(
        id=ir.id,
        title=ir.title,
        level=ir.level,
        tags=ir.tags,
        logsource=ir.logsource,
        predicate=compiled.predicate,
        anchors=compiled.anchors,
        path=Path(ir.path) if ir.path else None,
        name=ir.name,
        event_ids=any_ids([event_ids(c) for c in ir.conditions]),
        rule=rule,
    )


def rule_id(rule: SigmaRule) -> str:
    return str(rule.id) if rule.id else (rule.name or rule.title or "")


def _lower(value: str | None) -> str | None:
    return value.lower() if value else None
