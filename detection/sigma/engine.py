"""The in-process Sigma engine: route each event to the rules that can apply, then evaluate.

Two filters keep the work per event small:
1. log source: a Windows event goes only to the rules whose log source maps to its channel
   and EventID (see `detection.logsource`); other events go to the non-Windows rules;
2. anchors: per log-source bucket, one Aho-Corasick automaton per field holds the literals
   rules need in that field (and one more for keywords, over all values); a rule is evaluated
   only when one of its anchors occurs where it must.
Rules without anchors (`not`-only conditions, numbers, regular expressions...) are always
evaluated within their bucket.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import ahocorasick

from detection.detection import Detection
from detection.event import Event
from detection.logsource import WindowsWhere, windows_where
from detection.sigma.compile import CompiledRule
from detection.sigma.context import MatchContext
from detection.sigma.correlate import CorrelationHit, CorrelationState, group_label
from detection.sigma.load import SigmaRuleSet
from detection.sigma.values import as_number
from detection.sources.sniff import ZEEK_LOGS

# ("windows", channel, EventID), ("zeek", log path or None: a log not named), or None: any
# other event.
BucketKey = tuple[str, str | None, int | None] | tuple[str, str | None] | None


@dataclass
class _Bucket:
    rules: list[CompiledRule]
    always: list[int]  # indexes of rules without anchors
    by_field: dict[str, ahocorasick.Automaton]  # folded field name -> its literals' automaton
    anywhere: ahocorasick.Automaton | None  # literals that may occur in any value (keywords)


@dataclass
class EngineStats:
    events: int = 0
    rules_evaluated: int = 0
    hits: Counter[str] = field(default_factory=Counter)


class SigmaEngine:
    """Evaluates a `SigmaRuleSet` on events.

    `match` without a correlator may be called from several threads at once: per-stream
    state lives in the caller's `Correlator` (one per thread or stream); the engine itself
    only builds its buckets lazily (the same whichever thread does) and counts `stats`
    (which concurrent calls may undercount).
    """

    def __init__(self, ruleset: SigmaRuleSet) -> None:
        self.ruleset = ruleset
        # Windows rules by the channel they can apply to (None: any channel), in rule order,
        # with the EventIDs they can match there (None: any).
        self._windows: dict[str | None, list[tuple[int, CompiledRule, frozenset[int] | None]]]
        self._windows = {}
        self._other: list[CompiledRule] = []
        for order, rule in enumerate(ruleset.rules):
            if rule.logsource.product != "windows":
                self._other.append(rule)
                continue
            places = windows_where(rule.logsource.category, rule.logsource.service)
            for channel, ids in _channel_ids(places).items():
                if ids is not None and rule.event_ids is not None:
                    ids = ids & rule.event_ids
                elif ids is None:
                    ids = rule.event_ids
                if ids != frozenset():
                    self._windows.setdefault(channel, []).append((order, rule, ids))
        self._buckets: dict[BucketKey, _Bucket] = {}
        self.stats = EngineStats()
        # Rules that correlations consume, and whether their own hits are reported too.
        self._correlated: set[str] = set()
        self._silent: set[str] = set()
        generated: set[str] = set()
        for corr in ruleset.correlations:
            self._correlated.update(corr.rule_ids)
            (generated if corr.generate else self._silent).update(corr.rule_ids)
        self._silent -= generated

    # --- matching ---------------------------------------------------------------------------

    def matching_rules(self, event: Event) -> tuple[MatchContext, list[CompiledRule]]:
        """The rules that match `event` (no correlation), with the context they used."""
        ctx = MatchContext(event.sigma_view(), event.timestamp)
        bucket = self._bucket(_bucket_key(event, ctx))
        self.stats.events += 1
        if not bucket.rules:
            return ctx, []
        candidates = set(bucket.always)
        by_field = bucket.by_field
        for folded, key in ctx.folded_keys().items():
            automaton = by_field.get(folded)
            if automaton is not None:
                for text in ctx.lower_strings(key):
                    candidates.update(*[indexes for _, indexes in automaton.iter(text)])
        if bucket.anywhere is not None:
            candidates.update(*[indexes for _, indexes in bucket.anywhere.iter(ctx.text())])
        self.stats.rules_evaluated += len(candidates)
        rules = bucket.rules
        matched = [rules[i] for i in sorted(candidates) if rules[i].predicate(ctx)]
        for rule in matched:
            self.stats.hits[rule.id] += 1
        return ctx, matched

    def match(self, event: Event, correlator: Correlator | None = None) -> list[Detection]:
        """Detections of one event: its single-event rules (those whose hits are reported),
        then what it completes in `correlator`, the state of a stream kept by the caller
        across calls (events in time order); without one, correlations are not looked at."""
        ctx, matched = self.matching_rules(event)
        found = [self.detection(rule, event) for rule in matched if rule.id not in self._silent]
        if correlator is not None:
            found.extend(correlator.feed(event, ctx, [r.id for r in matched]))
        return found

    def match_stream(self, events: Iterable[Event]) -> Iterator[Detection]:
        """Detections over events in time order, correlation rules included."""
        correlator = Correlator(self)
        for event in events:
            yield from self.match(event, correlator)
        yield from correlator.flush()

    def reports(self, rule_id: str) -> bool:
        """Whether a rule's own hits are reported (not when only correlations consume it)."""
        return rule_id not in self._silent

    @property
    def correlated_rule_ids(self) -> set[str]:
        return self._correlated

    def detection(self, rule: CompiledRule, event: Event) -> Detection:
        return Detection(
            engine="sigma",
            rule_id=rule.id,
            rule_title=rule.title,
            level=rule.level,
            source=event.source,
            timestamp=event.timestamp,
            event=event,
            tags=rule.tags,
        )

    # --- buckets ----------------------------------------------------------------------------

    def _bucket(self, key: BucketKey) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if key is None:
                # Not a Zeek record: a `product: zeek` rule written as `not <condition>` (SigmaHQ's
                # RDP one) would otherwise fire on every syslog line, which has no Zeek field.
                rules = [r for r in self._other if r.logsource.product != "zeek"]
            elif key[0] == "zeek":
                # A Zeek record: rules for Zeek (this log, or any: its log is not named) and rules
                # naming no product.
                rules = [
                    r
                    for r in self._other
                    if r.logsource.product is None
                    or (
                        r.logsource.product == "zeek"
                        and (key[1] is None or r.logsource.service in (None, key[1]))
                    )
                ]
            else:
                _, channel, event_id = key  # type: ignore[misc]
                entries = sorted(
                    self._windows.get(channel, []) + self._windows.get(None, []),
                    key=lambda entry: entry[0],
                )
                rules = [r for _, r, ids in entries if ids is None or event_id in ids]
            bucket = _build_bucket(rules)
            self._buckets[key] = bucket
        return bucket


class Correlator:
    """Feeds base-rule matches, in time order, to every correlation rule.

    A correlation's hit is itself a match for correlations that refer to it (chains), with
    the hit's group-by values as its fields.
    """

    def __init__(self, engine: SigmaEngine) -> None:
        self.engine = engine
        correlations = {c.id: c for c in engine.ruleset.correlations}

        def depth(cid: str, seen: frozenset[str] = frozenset()) -> int:
            refs = [r for r in correlations[cid].rule_ids if r in correlations and r not in seen]
            return 1 + max((depth(r, seen | {cid}) for r in refs), default=0)

        # Referenced correlations first, so that flushing them feeds the ones that use them.
        ordered = sorted(correlations.values(), key=lambda c: depth(c.id))
        self.states = [CorrelationState(c) for c in ordered]
        self._wanted = engine.correlated_rule_ids

    def feed(self, event: Event, ctx: MatchContext, rule_ids: Iterable[str]) -> Iterator[Detection]:
        for rule_id in rule_ids:
            if rule_id in self._wanted:
                for state in self.states:
                    for hit in state.feed(rule_id, event, ctx):
                        yield from self._emit(hit)

    def flush(self) -> Iterator[Detection]:
        for state in self.states:
            for hit in state.flush():
                yield from self._emit(hit)

    def _emit(self, hit: CorrelationHit) -> Iterator[Detection]:
        rule_id = hit.correlation.id
        if self.engine.reports(rule_id):
            yield correlation_detection(hit)
        if rule_id in self._wanted and hit.events:
            last = hit.events[-1]
            view = {**last.sigma_view(), **{k: v for k, v in hit.group if v is not None}}
            yield from self.feed(last, MatchContext(view, last.timestamp), [rule_id])


def correlation_detection(hit: CorrelationHit) -> Detection:
    rule = hit.correlation
    return Detection(
        engine="sigma",
        rule_id=rule.id,
        rule_title=rule.title,
        level=rule.level,
        source=hit.events[-1].source if hit.events else "",
        timestamp=hit.timestamp,
        events=hit.events,
        tags=rule.tags,
        meta={"correlation": rule.kind.name.lower(), "group": group_label(hit), "count": hit.count},
    )


def _channel_ids(places: list[WindowsWhere] | None) -> dict[str | None, frozenset[int] | None]:
    """Channel -> the EventIDs a rule's log source allows there (None: any)."""
    if places is None:
        return {None: None}
    out: dict[str | None, frozenset[int] | None] = {}
    for place in places:
        for channel in place.channels:
            if not place.event_ids or (channel in out and out[channel] is None):
                out[channel] = None
            else:
                out[channel] = (out.get(channel) or frozenset()) | frozenset(place.event_ids)
    return out


def _bucket_key(event: Event, ctx: MatchContext) -> BucketKey:
    winlog = event.fields.get("winlog")
    if not isinstance(winlog, dict):
        path = event.fields.get("_path")  # Zeek's own name for the log a record belongs to
        # Logs without endpoints (x509, files, notice...) are Zeek's too when named as Zeek's.
        if isinstance(path, str) and ("id.orig_h" in ctx.view or path in ZEEK_LOGS):
            return ("zeek", path)
        if path is None and "id.orig_h" in ctx.view:
            return ("zeek", None)  # Zeek's own field names, its log not named (a JSON export)
        return None
    # From the System part: EventData/UserData may hold a `Channel` of their own (event 104).
    channel = winlog.get("channel")
    event_id = as_number(winlog.get("event_id"))
    return (
        "windows",
        channel if isinstance(channel, str) else None,
        int(event_id) if event_id is not None else None,
    )


def _build_bucket(rules: list[CompiledRule]) -> _Bucket:
    always: list[int] = []
    literals: dict[str | None, dict[str, list[int]]] = {}
    for index, rule in enumerate(rules):
        if rule.anchors is None:
            always.append(index)
        else:
            for field_key, literal in rule.anchors:
                literals.setdefault(field_key, {}).setdefault(literal, []).append(index)
    automata = {key: _automaton(words) for key, words in literals.items()}
    anywhere = automata.pop(None, None)
    return _Bucket(rules, always, automata, anywhere)  # type: ignore[arg-type]


def _automaton(words: dict[str, list[int]]) -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton()
    for literal, indexes in words.items():
        automaton.add_word(literal, tuple(indexes))
    automaton.make_automaton()
    return automaton
