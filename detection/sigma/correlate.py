"""Sigma correlation rules over a time-ordered stream of base-rule matches.

Supported: `event_count`, `value_count`, `temporal`, `temporal_ordered`, with `group-by`,
`timespan`, field `aliases` and `generate`. State is kept per (correlation, group) and only
for the last `timespan`; at most `MAX_GROUPS` groups per correlation are kept (the least
recently seen is dropped and counted), so memory does not grow with the stream.

Windows: "at least" conditions (gt, gte, eq reached) fire as soon as the last `timespan`
holds enough, then the group starts afresh; "at most" conditions (lt, lte, neq) can only be
judged once a window is over, so those windows are tumbling: they start at a group's first
match and are judged at the first match after their end, or when the stream ends.
"""

from __future__ import annotations

import operator
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)

from detection.event import Event
from detection.sigma.compile import CompiledRule, CompileError, rule_id
from detection.sigma.context import MatchContext, as_text

MAX_GROUPS = 100_000
MAX_EVENTS_KEPT = 50  # events reported with a correlation hit (the count is exact regardless)

_OPS: dict[SigmaCorrelationConditionOperator, Callable[[int, int], bool]] = {
    SigmaCorrelationConditionOperator.LT: operator.lt,
    SigmaCorrelationConditionOperator.LTE: operator.le,
    SigmaCorrelationConditionOperator.GT: operator.gt,
    SigmaCorrelationConditionOperator.GTE: operator.ge,
    SigmaCorrelationConditionOperator.EQ: operator.eq,
    SigmaCorrelationConditionOperator.NEQ: operator.ne,
}
_AT_MOST = {
    SigmaCorrelationConditionOperator.LT,
    SigmaCorrelationConditionOperator.LTE,
    SigmaCorrelationConditionOperator.NEQ,
}


@dataclass(frozen=True, slots=True)
class CompiledCorrelation:
    id: str
    title: str
    level: str
    tags: tuple[str, ...]
    kind: SigmaCorrelationType
    rule_ids: tuple[str, ...]  # referenced base rules, in the rule's order
    group_by: tuple[str, ...]
    aliases: Mapping[str, Mapping[str, str]]  # alias -> base rule id -> field
    window: timedelta
    op: SigmaCorrelationConditionOperator
    count: int
    value_field: str | None
    generate: bool
    path: Path | None


@dataclass(frozen=True, slots=True)
class CorrelationHit:
    correlation: CompiledCorrelation
    timestamp: datetime
    events: tuple[Event, ...]
    group: tuple[tuple[str, str | None], ...]
    count: int


def compile_correlation(
    rule: SigmaCorrelationRule,
    known: Mapping[str, CompiledRule | CompiledCorrelation],
    path: Path | None,
) -> CompiledCorrelation:
    if rule.type not in (
        SigmaCorrelationType.EVENT_COUNT,
        SigmaCorrelationType.VALUE_COUNT,
        SigmaCorrelationType.TEMPORAL,
        SigmaCorrelationType.TEMPORAL_ORDERED,
    ):
        raise CompileError(f"correlation type {rule.type.name.lower()} is not supported")
    ids: list[str] = []
    for ref in rule.rules or []:
        target = known.get(str(ref.reference))
        if target is None:
            raise CompileError(f"refers to unknown or unusable rule '{ref.reference}'")
        ids.append(target.id)
    if not ids:
        raise CompileError("the correlation refers to no rule")
    condition = rule.condition
    if isinstance(condition, SigmaCorrelationCondition):
        op, count = condition.op, condition.count
        fieldref = condition.fieldref
        if isinstance(fieldref, list):
            if len(fieldref) > 1:
                raise CompileError("value_count over several fields is not supported")
            fieldref = fieldref[0] if fieldref else None
        value_field = fieldref
    elif rule.type in (SigmaCorrelationType.TEMPORAL, SigmaCorrelationType.TEMPORAL_ORDERED):
        # Temporal rules need no count: every referenced rule must have matched.
        op, count, value_field = SigmaCorrelationConditionOperator.GTE, len(ids), None
    else:
        raise CompileError("boolean correlation conditions are not supported")
    if rule.type is SigmaCorrelationType.VALUE_COUNT and not value_field:
        raise CompileError("value_count needs a condition field")
    aliases: dict[str, dict[str, str]] = {}
    for name, alias in rule.aliases.aliases.items():
        aliases[name] = {
            known[str(ref.reference)].id: target
            for ref, target in alias.mapping.items()
            if str(ref.reference) in known
        }
    return CompiledCorrelation(
        id=rule_id(rule),  # type: ignore[arg-type]
        title=rule.title or "",
        level=rule.level.name.lower() if rule.level else "medium",
        tags=tuple(f"{t.namespace}.{t.name}" for t in rule.tags),
        kind=rule.type,
        rule_ids=tuple(ids),
        group_by=tuple(rule.group_by or ()),
        aliases=aliases,
        window=timedelta(seconds=rule.timespan.seconds),
        op=op,
        count=count,
        value_field=value_field,
        generate=rule.generate,
        path=path,
    )


@dataclass
class _Group:
    start: datetime
    # (timestamp, base rule index, value for value_count) for every match in the window.
    marks: deque[tuple[datetime, int, str | None]] = field(default_factory=deque)
    events: deque[Event] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS_KEPT))


class CorrelationState:
    """Streaming evaluation of one correlation rule."""

    def __init__(self, correlation: CompiledCorrelation) -> None:
        self.rule = correlation
        self.groups: OrderedDict[tuple[tuple[str, str | None], ...], _Group] = OrderedDict()
        self.groups_dropped = 0
        self._index = {rid: i for i, rid in enumerate(correlation.rule_ids)}
        self._tumbling = correlation.op in _AT_MOST

    def feed(self, base_id: str, event: Event, ctx: MatchContext) -> Iterator[CorrelationHit]:
        """One match of a referenced rule, in time order."""
        index = self._index.get(base_id)
        if index is None:
            return
        key = tuple((f, self._field(f, base_id, ctx)) for f in self.rule.group_by)
        ts = event.timestamp
        group = self.groups.get(key)
        if group is not None and self._tumbling and ts > group.start + self.rule.window:
            yield from self._judge(key, group)
            group = None
        if group is None:
            group = _Group(ts)
            self.groups[key] = group
            if len(self.groups) > MAX_GROUPS:
                self.groups.popitem(last=False)
                self.groups_dropped += 1
        self.groups.move_to_end(key)
        value = self._field(self.rule.value_field, base_id, ctx) if self.rule.value_field else None
        group.marks.append((ts, index, value))
        group.events.append(event)
        if self._tumbling:
            return
        horizon = ts - self.rule.window
        while group.marks and group.marks[0][0] < horizon:
            group.marks.popleft()
        while group.events and group.events[0].timestamp < horizon:
            group.events.popleft()
        measured = self._measure(group)
        if _OPS[self.rule.op](measured, self.rule.count):
            yield self._hit(key, group, measured, ts)
            del self.groups[key]

    def flush(self) -> Iterator[CorrelationHit]:
        """End of stream: judge the windows still open ("at most" conditions)."""
        if self._tumbling:
            for key, group in list(self.groups.items()):
                yield from self._judge(key, group)
        self.groups.clear()

    def _judge(
        self, key: tuple[tuple[str, str | None], ...], group: _Group
    ) -> Iterator[CorrelationHit]:
        measured = self._measure(group)
        if _OPS[self.rule.op](measured, self.rule.count):
            yield self._hit(key, group, measured, group.marks[-1][0])
        self.groups.pop(key, None)

    def _measure(self, group: _Group) -> int:
        kind = self.rule.kind
        if kind is SigmaCorrelationType.EVENT_COUNT:
            return len(group.marks)
        if kind is SigmaCorrelationType.VALUE_COUNT:
            return len({v for _, _, v in group.marks if v is not None})
        if kind is SigmaCorrelationType.TEMPORAL:
            return len({i for _, i, _ in group.marks})
        # temporal_ordered: how far the rules' order can be followed through the window.
        wanted = 0
        for _, i, _ in group.marks:
            if i == wanted:
                wanted += 1
                if wanted == len(self.rule.rule_ids):
                    break
        return wanted

    def _field(self, name: str | None, base_id: str, ctx: MatchContext) -> str | None:
        if name is None:
            return None
        actual = self.rule.aliases.get(name, {}).get(base_id, name)
        texts = [as_text(v) for v in ctx.values(actual)]
        found = [t for t in texts if t is not None]
        return found[0] if found else None

    def _hit(
        self, key: tuple[tuple[str, str | None], ...], group: _Group, measured: int, ts: datetime
    ) -> CorrelationHit:
        return CorrelationHit(self.rule, ts, tuple(group.events), key, measured)


def group_label(hit: CorrelationHit) -> dict[str, Any]:
    return {name: value for name, value in hit.group}
