"""The SQLite approach to Sigma, as Zircolite runs it: events flattened into one SQLite table,
each rule converted by pySigma's SQLite backend, every rule a query over every event.

The table (`logs`): `row_id INTEGER PRIMARY KEY` (the event's number in its input), then one
column per field of the events' Sigma view (`Event.sigma_view()`: `EventID`, `Channel`,
`Provider_Name`, `Computer`, ... and every EventData field), so that the columns are the names
rules use. Choices, each the engine's semantics where SQLite allows it:
- names: a column is the field's name without spaces (`Threat Name` -> `ThreatName`, see
  `detection.sigma.convert.column_name`); SQLite compares identifiers case-insensitively, so
  `ProcessID` finds `ProcessId`: together, the engine's loose lookup. Two fields of one event
  that fold to the same column keep the first value (counted in `TableStats.collisions`).
- types: columns are `NUMERIC COLLATE NOCASE`. NOCASE makes `=` ignore case as Sigma says
  (ASCII letters only, as LIKE does: `É` never equals `é`); NUMERIC stores numbers and
  numeric-looking text as numbers, so `EventID=4688`, `'4688'` and `|gt` compare by value
  (Zircolite types a column INTEGER or TEXT from its first value; the difference is only in
  comparisons such as `|gt`, which TEXT would compare as strings).
- values: None is NULL (Sigma's null, and an absent field, are NULL); booleans are the text
  'true'/'false' (Zircolite's choice; the backend accepts both); a multi-valued field (a list,
  such as the unnamed `Data` elements) is its values joined by newlines: `contains` then tests
  each value as the engine does, but equality, `startswith`/`endswith` and anchored regular
  expressions see one text where the engine tests each value.
- regular expressions: the backend writes `field REGEXP '(?i)...'`; SQLite has no REGEXP, it
  is registered here with Python's `re` (search semantics, as the engine).
- a rule naming a field no event has: the column is added, empty (NULL), and the query run
  again, so that `not` over an absent field is true as in the engine (a table without the
  column would reject the whole query).
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sigma.conditions import ConditionFieldEqualsValueExpression
from sigma.rule import SigmaRule
from sigma.types import (
    SigmaCIDRExpression,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaRegularExpression,
    SigmaString,
)

from api.events.sqlite_store import _leaves as leaves
from api.events.sqlite_store import sql_value
from detection.sigma.context import as_text
from detection.sigma.convert import ConversionResult, column_name

TABLE = "logs"
_NO_COLUMN = re.compile(r"no such column: (.+)$")


@dataclass
class TableStats:
    rows: int = 0
    columns: int = 0
    collisions: int = 0  # fields dropped because another field of the event folds the same


@dataclass
class QueryOutcome:
    """Per rule: the row ids its query selected, or the error SQLite gave."""

    rows: dict[str, list[int]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    added_columns: list[str] = field(default_factory=list)


def connect(path: str = ":memory:") -> sqlite3.Connection:
    """A connection with the functions the SQLite backend's queries call."""
    conn = sqlite3.connect(path)
    # REGEXP: `X REGEXP Y` calls regexp(Y, X).
    conn.create_function("regexp", 2, _regexp, deterministic=True)
    return conn


@functools.lru_cache(maxsize=8192)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regexp(pattern: str | None, value: Any) -> bool | None:
    if value is None or pattern is None:
        return None  # as SQL comparisons with NULL
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return _compiled(pattern).search(str(value)) is not None


_INT64 = range(-(2**63), 2**63)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class EventTable:
    """One table of events, created from the rows' fields once they are all known."""

    def __init__(self, conn: sqlite3.Connection, table: str = TABLE) -> None:
        self.conn = conn
        self.table = table
        self.stats = TableStats()
        self._columns: dict[str, str] = {}  # folded name -> column name

    def load(self, views: Iterable[tuple[int, Mapping[str, Any]]]) -> TableStats:
        """Create the table and insert (row id, Sigma view) pairs; index Channel and EventID."""
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = defaultdict(list)
        for row_id, view in views:
            names: list[str] = []
            values: list[Any] = [row_id]
            seen: set[str] = set()
            for key, value in view.items():
                column = self._column(key)
                folded = column.lower()
                if folded in seen:
                    self.stats.collisions += 1
                    continue
                seen.add(folded)
                names.append(column)
                values.append(sql_value(value))
            groups[tuple(names)].append(tuple(values))
            self.stats.rows += 1
        columns = ", ".join(f"{quote(c)} NUMERIC COLLATE NOCASE" for c in self._columns.values())
        self.conn.execute(
            f"CREATE TABLE {quote(self.table)} (row_id INTEGER PRIMARY KEY"
            + (f", {columns})" if columns else ")")
        )
        for group, rows in groups.items():
            cols = ", ".join(["row_id", *map(quote, group)])
            marks = ", ".join("?" * (len(group) + 1))
            self.conn.executemany(
                f"INSERT INTO {quote(self.table)} ({cols}) VALUES ({marks})", rows
            )
        for col in ("Channel", "EventID"):
            if col.lower() in self._columns:
                self.conn.execute(
                    f"CREATE INDEX {quote(f'ix_{self.table}_{col}')} "
                    f"ON {quote(self.table)} ({quote(col)})"
                )
        self.conn.commit()
        self.stats.columns = len(self._columns)
        return self.stats

    def add_column(self, name: str) -> None:
        self.conn.execute(
            f"ALTER TABLE {quote(self.table)} ADD COLUMN {quote(name)} NUMERIC COLLATE NOCASE"
        )
        self._columns[name.lower()] = name

    def _column(self, key: str) -> str:
        column = column_name(key)
        return self._columns.setdefault(column.lower(), column)


def run_queries(
    table: EventTable, results: Sequence[ConversionResult], fetch: bool = False
) -> tuple[QueryOutcome, list[tuple[str, dict[str, Any]]]]:
    """Run every converted rule over the table.

    Returns the row ids per rule id and, with `fetch`, the matched rows as detections would
    carry them (rule id, non-null columns), as Zircolite outputs them.
    """
    outcome = QueryOutcome()
    detections: list[tuple[str, dict[str, Any]]] = []
    for result in results:
        if not result.ok:
            continue
        for query in result.queries:
            rows = _execute(table, query, outcome)
            if isinstance(rows, str):
                outcome.errors[result.rule_id] = rows
                break
            ids = outcome.rows.setdefault(result.rule_id, [])
            names = [d[0] for d in rows.description or ()] if fetch else []
            for row in rows:
                ids.append(row[0])
                if fetch:
                    doc = {n: v for n, v in zip(names, row, strict=True) if v is not None}
                    detections.append((result.rule_id, doc))
        if result.rule_id in outcome.rows:
            outcome.rows[result.rule_id] = sorted(set(outcome.rows[result.rule_id]))
    return outcome, detections


def _execute(table: EventTable, query: str, outcome: QueryOutcome) -> sqlite3.Cursor | str:
    """The cursor over the selected rows (row_id first: `SELECT *`), or SQLite's error."""
    while True:
        try:
            return table.conn.execute(query)
        except sqlite3.OperationalError as exc:
            missing = _NO_COLUMN.search(str(exc))
            if missing is None or missing.group(1) in outcome.added_columns:
                return str(exc)
            table.add_column(missing.group(1))
            outcome.added_columns.append(missing.group(1))


# --- why the engine and a query may disagree ------------------------------------------------

CAUSES = {
    "multi-valued field": "a list field is one text in SQLite, each value in the engine",
    "non-ASCII case": "SQLite's NOCASE and LIKE fold ASCII letters only",
    "numeric text": "SQLite stores numeric-looking text as a number ('8.00' -> 8.0)",
    "name collision": "two fields of the event fold to one column",
    "Channel/EventID in event data": "the engine dispatches on the System channel and EventID",
    "CIDR as prefixes": "the backend writes CIDR ranges as LIKE prefixes",
}


def explain(rule: SigmaRule, view: Mapping[str, Any], system: Mapping[str, Any]) -> str | None:
    """A known cause (a `CAUSES` key) for the engine and the query disagreeing on an event.

    `system` is the event's `winlog` object. None: no known cause, a bug on one side.
    """
    fields, strings, cidr = _rule_parts(rule)
    folded: dict[str, list[str]] = defaultdict(list)
    for key in view:
        folded[column_name(key).lower()].append(key)
    values = [_lookup(view, folded, f) for f in fields]
    if any(isinstance(v, list | tuple | Mapping) for v in values):
        return "multi-valued field"
    texts = [*strings, *(t for v in values for t in map(as_text, leaves(v)) if t)]
    if any(not t.isascii() and t.lower() != _ascii_lower(t) for t in texts):
        return "non-ASCII case"
    if any(_numeric_text_changes(v) for v in values):
        return "numeric text"
    if any(len(folded.get(column_name(f).lower(), ())) > 1 for f in fields):
        return "name collision"
    if view.get("Channel") != system.get("channel") or view.get("EventID") != system.get(
        "event_id"
    ):
        return "Channel/EventID in event data"
    if cidr:
        return "CIDR as prefixes"
    return None


def _rule_parts(rule: SigmaRule) -> tuple[set[str], list[str], bool]:
    """The fields a rule reads, its string values, whether it uses CIDR ranges."""
    fields: set[str] = set()
    strings: list[str] = []
    cidr = False

    def value(v: Any) -> None:
        nonlocal cidr
        if isinstance(v, SigmaExpansion):
            for item in v.values:
                value(item)
        elif isinstance(v, SigmaString):
            strings.append(str(v))
        elif isinstance(v, SigmaRegularExpression):
            strings.append(str(v.regexp))
        elif isinstance(v, SigmaFieldReference):
            fields.add(v.field)
        elif isinstance(v, SigmaCIDRExpression):
            cidr = True

    def walk(node: Any) -> None:
        if isinstance(node, ConditionFieldEqualsValueExpression):
            if node.field:
                fields.add(node.field)
            value(node.value)
        for arg in getattr(node, "args", None) or ():
            walk(arg)

    for condition in rule.detection.parsed_condition:
        walk(condition.parsed)
    return fields, strings, cidr


def _lookup(view: Mapping[str, Any], folded: Mapping[str, list[str]], name: str) -> Any:
    if name in view:
        return view[name]
    keys = folded.get(column_name(name).lower())
    return view[keys[-1]] if keys else None


def _ascii_lower(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)


def _numeric_text_changes(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return value not in _INT64
    if not isinstance(value, str):
        return False
    if value[:2].lower() == "0x":
        return True  # the engine reads hexadecimal as a number, SQLite as text
    try:
        number = float(value.replace("_", "!"))  # SQLite reads no `_` digit separators
    except ValueError:
        return False
    # What SQLite gives back for it: an integer if it is one, else the shortest real.
    stored = str(int(number)) if number.is_integer() and abs(number) < 2**63 else repr(number)
    return stored != value
