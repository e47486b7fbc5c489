"""Sigma rules as Elasticsearch (Lucene) and SQLite queries, for retro-hunts over stored events.

Both conversions restrict a Windows rule to the channels and EventIDs that its log source maps
to in `detection.logsource`, the table the in-process engine dispatches with, so that a query
selects the events the engine would have tested the rule on, and no others.

Elasticsearch (`to_elasticsearch`), with one of two field layouts:
- `vigie` (default): the ECS documents Vigie stores (`Event.to_ecs()`, see
  `detection.sources.windows`): `winlog.channel`, `winlog.event_id`, `winlog.provider_name`,
  `winlog.computer_name`, `log.level`, and every other field as `winlog.event_data.<Name>`.
  Two things the engine sees that these documents do not hold under those names: UserData
  fields (stored under `winlog.user_data`), and the Sysmon names the engine gives Security
  4688 events (`Image` for `NewProcessName`...); a query finds 4688 events by the fields 4688
  itself has (`CommandLine`, ...).
- `ecs_windows`: pySigma's Winlogbeat pipeline (`process.executable`, `user.name`, ...) for
  indices written by Winlogbeat rather than by Vigie; as pySigma has it, it restricts rules by
  channel for services only, not by category.

SQLite (`to_sqlite`): the table Zircolite builds (and `benchmarks/sqlite_approach.py`), one row
per event, one column per field of `Event.sigma_view()` named as rules name fields
(`EventID`, `Channel`, `Image`, ...), spaces removed (`column_name`).

Unresolved `expand` placeholders become wildcards in both, as the engine reads them. A rule a
backend cannot convert (keyword searches in SQLite, an unknown log source) gets an error in its
`ConversionResult`; the batch never stops on it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from sigma.backends.elasticsearch import LuceneBackend
from sigma.backends.sqlite import sqliteBackend
from sigma.conditions import ConditionFieldEqualsValueExpression
from sigma.conversion.base import Backend, TextQueryBackend
from sigma.conversion.state import ConversionState
from sigma.pipelines.elasticsearch import ecs_windows
from sigma.processing.conditions import (
    FieldNameProcessingItemAppliedCondition,
    IncludeFieldCondition,
    LogsourceCondition,
    RuleProcessingCondition,
)
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import (
    AddConditionTransformation,
    AddFieldnamePrefixTransformation,
    FieldFunctionTransformation,
    FieldMappingTransformation,
    WildcardPlaceholderTransformation,
)
from sigma.rule import SigmaRule

from detection.logsource import WindowsWhere, windows_where
from detection.sigma.compile import CompiledRule, rule_id
from detection.sigma.load import pysigma_rule

EsLayout = Literal["vigie", "ecs_windows"]

# The numeric sub-field of every number in Vigie's index templates (api/events/elastic_store.py).
NUMERIC_SUBFIELD = "num"

# The System fields of the sigma view (detection.event) -> where Vigie's ECS document holds them.
_VIGIE_SYSTEM_FIELDS: dict[str | None, str | list[str]] = {
    "EventID": "winlog.event_id",
    "Channel": "winlog.channel",
    "Provider_Name": "winlog.provider_name",
    "Provider_Guid": "winlog.provider_guid",
    "Computer": "winlog.computer_name",
    "EventRecordID": "winlog.record_id",
    "Task": "winlog.task",
    "Opcode": "winlog.opcode",
    "Keywords": "winlog.keywords",
    "Version": "winlog.version",
    "Level": "log.level",
}


@dataclass(frozen=True, slots=True)
class ConversionResult:
    """One rule converted, or why it could not be.

    `queries` has one query per condition of the rule (almost always one); `query` is the
    rule as one query, its conditions being alternatives (SQL `UNION`, Lucene `OR`).
    """

    rule_id: str
    title: str
    path: Path | None = None
    query: str | None = None
    queries: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


RuleLike = CompiledRule | SigmaRule


def to_elasticsearch(
    rules: Iterable[RuleLike], layout: EsLayout = "vigie", *, copy_rules: bool = True
) -> list[ConversionResult]:
    """Lucene query strings, one result per rule, in order.

    pySigma's pipelines change a rule as they convert it; `copy_rules=False` converts the
    rules themselves (faster, for rules loaded only to be converted).
    """

    def convert(rules: list[RuleLike]) -> list[ConversionResult]:
        if layout == "ecs_windows":
            pipeline = _placeholders() + ecs_windows()
        else:
            pipeline = (
                _placeholders()
                + logsource_pipeline(_sigma_rules(rules), "winlog.channel", "winlog.event_id")
                + _vigie_ecs_fields()
            )
        backend = LuceneBackend(pipeline) if layout == "ecs_windows" else _VigieLucene(pipeline)
        return _convert(rules, backend, copy_rules, "({}) OR ({})")

    return _remembered(list(rules), ("lucene", layout), convert)


class _VigieLucene(LuceneBackend):
    """Lucene for Vigie's templates, where every leaf is a keyword: a CIDR is its address
    prefixes as wildcards (`10.*`), as the SQLite backend has it, since `field:10.0.0.0/8`
    is a network only on an `ip` field, and on a keyword the term "10.0.0.0/8"; a numeric
    comparison goes to the leaf's numeric sub-field, a keyword comparing text ("999" > "1000")."""

    # Quoted: the empty value (as LuceneBackend has it), and values that are Lucene's operators,
    # which unquoted would make the query another one or no query at all.
    str_quote_pattern = re.compile(r"^(|AND|OR|NOT)$")
    # Every white space escaped, not the plain space only: Lucene ends a term on a tab or an
    # ideographic space, other parsers on any Unicode space (SigmaHQ has a no-break space).
    add_escaped = LuceneBackend.add_escaped + "".join(
        c for c in map(chr, range(0x3001)) if c.isspace() and c != " "
    )
    cidr_expression = None  # type: ignore[assignment]  # None is pySigma's "expand CIDRs"
    compare_op_expression = f"{{field}}.{NUMERIC_SUBFIELD}:{{operator}}{{value}}"

    def convert_condition_field_eq_val_cidr(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        # Past LuceneBackend's own, which escapes the colons of an IPv6 network in the text it
        # gets back: expanded prefixes come escaped already, and `\\:` would end the term.
        return TextQueryBackend.convert_condition_field_eq_val_cidr(self, cond, state)


def to_sqlite(
    rules: Iterable[RuleLike], table: str = "logs", *, copy_rules: bool = True
) -> list[ConversionResult]:
    """SQLite `SELECT * FROM <table> WHERE ...` statements, one result per rule, in order."""

    def convert(rules: list[RuleLike]) -> list[ConversionResult]:
        pipeline = (
            _placeholders()
            + logsource_pipeline(_sigma_rules(rules), "Channel", "EventID")
            + _column_names()
        )
        return _convert(rules, sqliteBackend(pipeline, table=table), copy_rules, "{} UNION {}")

    return _remembered(list(rules), ("sqlite", table), convert)


def _remembered(
    rules: list[RuleLike],
    backend: tuple[str, str],
    convert: Callable[[list[RuleLike]], list[ConversionResult]],
) -> list[ConversionResult]:
    """`convert(rules)`, taking a compiled rule's result from an earlier conversion for the
    same backend and keeping the new ones. A rule's query depends on that rule alone: the
    pipeline's log-source items apply each to the rules of its own log source."""
    todo = [r for r in rules if not (isinstance(r, CompiledRule) and backend in r.conversions)]
    fresh = dict(zip(map(id, todo), convert(todo), strict=True)) if todo else {}
    results = []
    for rule in rules:
        if id(rule) in fresh:
            results.append(fresh[id(rule)])
            if isinstance(rule, CompiledRule):
                rule.conversions[backend] = fresh[id(rule)]
        else:
            results.append(cast(CompiledRule, rule).conversions[backend])
    return results


def logsource_pipeline(
    rules: Iterable[SigmaRule], channel_field: str, event_id_field: str
) -> ProcessingPipeline:
    """Channel/EventID conditions for every Windows category and service the rules use.

    One item per category and one per service: a rule naming both gets both conditions ANDed,
    which is the intersection `windows_where(category, service)` computes.
    """
    categories = sorted({r.logsource.category for r in rules if r.logsource.category})
    services = sorted({r.logsource.service for r in rules if r.logsource.service})
    items: list[ProcessingItem] = []
    for kind, name, places in [
        *(("category", c, windows_where(c, None)) for c in categories),
        *(("service", s, windows_where(None, s)) for s in services),
    ]:
        if not places:  # None: no restriction; []: such rules are refused before conversion
            continue
        conditions = [_place_condition(p, channel_field, event_id_field) for p in places]
        items.append(
            ProcessingItem(
                identifier=f"vigie_windows_{kind}_{name}",
                # A list of maps is an OR of them; pySigma types it as one map only.
                transformation=AddConditionTransformation(
                    cast(dict[str, Any], conditions[0] if len(conditions) == 1 else conditions)
                ),
                rule_conditions=[LogsourceCondition(product="windows", **{kind: name})],
            )
        )
    return ProcessingPipeline(name="Vigie Windows log sources", priority=10, items=items)


def _place_condition(
    place: WindowsWhere, channel_field: str, event_id_field: str
) -> dict[str, Any]:
    channels = list(place.channels)
    condition: dict[str, Any] = {channel_field: channels[0] if len(channels) == 1 else channels}
    if place.event_ids:
        ids = list(place.event_ids)
        condition[event_id_field] = ids[0] if len(ids) == 1 else ids
    return condition


def _placeholders() -> ProcessingPipeline:
    return ProcessingPipeline(
        name="expand placeholders as wildcards",
        priority=5,
        items=[
            ProcessingItem(
                identifier="vigie_placeholders", transformation=WildcardPlaceholderTransformation()
            )
        ],
    )


def _column_names() -> ProcessingPipeline:
    # Columns are field names without spaces (`Threat Name` -> `ThreatName`, as rules write
    # it); SQLite already compares names case-insensitively: the engine's loose lookup.
    return ProcessingPipeline(
        name="SQLite column names",
        priority=30,
        items=[
            ProcessingItem(
                identifier="vigie_sqlite_columns",
                transformation=FieldFunctionTransformation(mapping={}, transform_func=column_name),
            )
        ],
    )


def column_name(field: str | None) -> str:
    """The SQLite column of a Sigma field: its name without spaces."""
    return (field or "").replace(" ", "")


def _vigie_ecs_fields() -> ProcessingPipeline:
    def windows() -> list[RuleProcessingCondition]:  # a condition belongs to one item only
        return [LogsourceCondition(product="windows")]

    return ProcessingPipeline(
        name="Vigie ECS Windows documents",
        priority=20,
        items=[
            ProcessingItem(
                identifier="vigie_ecs_system_fields",
                transformation=FieldMappingTransformation(_VIGIE_SYSTEM_FIELDS),
                rule_conditions=windows(),
            ),
            # Every other field is EventData, except those already dotted (the conditions
            # added above, or rules written against ECS names).
            ProcessingItem(
                identifier="vigie_ecs_event_data",
                transformation=AddFieldnamePrefixTransformation("winlog.event_data."),
                field_name_conditions=[
                    FieldNameProcessingItemAppliedCondition("vigie_ecs_system_fields"),
                    IncludeFieldCondition(fields=[r"\w+\."], mode="re"),
                ],
                field_name_condition_negation=True,
                field_name_condition_linking=any,
                rule_conditions=windows(),
            ),
        ],
    )


def _sigma_rules(rules: Sequence[RuleLike]) -> list[SigmaRule]:
    out: list[SigmaRule] = []
    for rule in rules:
        if isinstance(rule, SigmaRule):
            out.append(rule)
        elif (sigma := pysigma_rule(rule)) is not None:
            out.append(sigma)
    return out


def _convert(
    rules: Sequence[RuleLike], backend: Backend, copy_rules: bool, either: str
) -> list[ConversionResult]:
    return [_convert_one(rule, backend, copy_rules, either) for rule in rules]


def _convert_one(
    rule: RuleLike, backend: Backend, copy_rules: bool, either: str
) -> ConversionResult:
    if isinstance(rule, CompiledRule):
        found = pysigma_rule(rule)
        if found is None:
            return ConversionResult(rule.id, rule.title, rule.path, error="no pySigma rule")
        sigma, path = found, rule.path
    else:
        sigma, path = rule, None
    result = ConversionResult(rule_id(sigma), sigma.title or "", path)
    ls = sigma.logsource
    if ls.product == "windows" and windows_where(ls.category, ls.service) == []:
        where = ", ".join(
            f"{k}: {v}" for k, v in (("category", ls.category), ("service", ls.service)) if v
        )
        return _failed(result, f"log source ({where}) maps to no Windows channel")
    try:
        # Conversion applies the pipeline to the rule in place: convert a copy, so that the
        # rule stays as loaded for the engine and for other backends.
        queries = backend.convert_rule(copy.deepcopy(sigma) if copy_rules else sigma)
    except Exception as exc:  # any backend failure is this rule's, reported with it
        return _failed(result, _reason(exc))
    if not queries:
        return _failed(result, "the backend produced no query")
    texts = [str(q) for q in queries]
    query = texts[0]
    for text in texts[1:]:
        query = either.format(query, text)
    return ConversionResult(result.rule_id, result.title, path, query, tuple(texts))


def _failed(result: ConversionResult, error: str) -> ConversionResult:
    return ConversionResult(result.rule_id, result.title, result.path, error=error)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text.splitlines()[0]}"
