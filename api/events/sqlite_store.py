# ruff: noqa: S608 - statements name constant tables and columns and bind every value; the
# hunting statements are pySigma's SQLite backend's (values escaped there), run read-only.
"""The embedded event store: one SQLite file in the data directory (`events.db`), apart from
the relational database, in WAL mode.

Tables:
- `events`: `_id`, `_ts` (microseconds since the epoch, UTC), `_establishment` (FINESS),
  `_agent`, `_doc` (the ECS document as JSON, as stored and as returned), `_view` (the
  event's Sigma view as JSON, see below), `_uid` (the event's stable id from ingestion,
  UNIQUE: a row already there is ignored, `ON CONFLICT DO NOTHING`, and not counted), and one
  column per Sigma field that a hunted rule has asked for. Indexes: (`_establishment`, `_ts`)
  and (`_ts`) for the CERT's and the retention's range scans; the unique index on `_uid`
  serves reads by id as well (`events_by_ids`: a lookup per id, then the establishment
  checked on the row). The store's own columns start with `_`: Sigma field names do not.
- `detections`: `_id`, `_ts`, `_establishment`, `rule_id`, `level`, `_doc`, `_uid` (as for
  events). Files made before `_uid` existed get the column and its index when opened.

Retro-hunts run the statements of `detection.sigma.convert.to_sqlite` as they are, over a
common table expression named after the table they select from:

    WITH logs AS (SELECT * FROM events WHERE _establishment = ? AND _ts >= ? AND _ts < ?)
    SELECT _id FROM (<the rule's statement>)

so a rule can only ever see the rows of the establishment and the time range asked for;
SQLite flattens the expression, and the (`_establishment`, `_ts`) index does the scoping.

The Sigma-view columns are *virtual generated columns* over `_view`:
`"Image" NUMERIC COLLATE NOCASE GENERATED ALWAYS AS (json_extract(_view, '$."image"'))`.
Why: the table Zircolite builds (one column per field, `benchmarks/sqlite_approach.py`) is
what the backend's statements expect, but Windows alone has hundreds of EventData names and
JSON logs bring any number more, past SQLite's 2,000-column limit; and a plain column added
later would be NULL for the rows stored before it. A generated column costs no storage,
reads every row ever stored, and is added only when a rule names a field the table lacks
(`no such column` -> `ALTER TABLE ADD COLUMN`, then the statement runs again). `_view` holds
the view as the engine reads it and as the benchmark loads it: keys folded (`column_name`,
lower case: SQLite's case-insensitive names are the engine's loose lookup, the first of two
colliding fields wins), booleans as 'true'/'false', a multi-valued field as its values one
per line; the NUMERIC affinity and NOCASE collation of the column then compare numbers by
value and text without case, as Sigma does. The cost: the view is stored next to the
document (about twice the bytes), and a hunt evaluates `json_extract` per row and column.

Hunting statements run on a read-only connection of their own (`mode=ro`, `PRAGMA
query_only`): a rule's SQL never writes, and ingestion, on the store's one writing connection,
never waits behind a hunt (WAL: readers and the writer do not block each other). Their
`REGEXP` is the engine's, on RE2 (`detection.sigma.regex`): linear in the text.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from api.events.store import (
    DEFAULT_HUNT_LIMIT,
    InvalidDocument,
    Kind,
    RetroHunt,
    check_ids,
    check_range,
    document_time,
    hit,
    stamped_event,
    wanted_ids,
)
from detection.event import sigma_view
from detection.sigma import CompiledRule
from detection.sigma.context import as_text
from detection.sigma.convert import column_name, to_sqlite
from detection.sigma.regex import regexp

FILE_NAME = "events.db"
_TABLE_IN_QUERIES = "logs"  # the name `to_sqlite` selects from, bound to a scoped CTE
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_INT64 = range(-(2**63), 2**63)
_NO_COLUMN = re.compile(r"no such column: (\S+)$")
_MAX_ADDED_COLUMNS = 50  # per statement: a runaway would mean a bug, not a rule
_IDS_PER_STATEMENT = 500  # bound parameters per statement, well under SQLite's limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    _id INTEGER PRIMARY KEY,
    _ts INTEGER NOT NULL,
    _establishment TEXT NOT NULL,
    _agent TEXT NOT NULL,
    _doc TEXT NOT NULL,
    _view TEXT NOT NULL,
    _uid TEXT
);
CREATE INDEX IF NOT EXISTS ix_events_establishment_ts ON events (_establishment, _ts);
CREATE INDEX IF NOT EXISTS ix_events_ts ON events (_ts);
CREATE TABLE IF NOT EXISTS detections (
    _id INTEGER PRIMARY KEY,
    _ts INTEGER NOT NULL,
    _establishment TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    level TEXT NOT NULL,
    _doc TEXT NOT NULL,
    _uid TEXT
);
CREATE INDEX IF NOT EXISTS ix_detections_establishment_ts ON detections (_establishment, _ts);
CREATE INDEX IF NOT EXISTS ix_detections_ts ON detections (_ts);
"""
# After the tables, so that a file made before `_uid` existed gets the column first.
_UIDS = """
CREATE UNIQUE INDEX IF NOT EXISTS ux_events_uid ON events (_uid);
CREATE UNIQUE INDEX IF NOT EXISTS ux_detections_uid ON detections (_uid);
"""


class SQLiteEventStore:
    """`EventStore` on a SQLite file. One writing connection, serialised by a lock; each hunt
    reads on a connection of its own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.create_function("regexp", 2, regexp, deterministic=True)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=10000")
        # Events arrive in no time order across agents: index pages are touched all over.
        # A 64 MiB page cache (default: 2 MiB) keeps them in memory as the file grows.
        self._conn.execute("PRAGMA cache_size=-65536")
        self._conn.executescript(_SCHEMA)
        for table in ("events", "detections"):
            columns = {row[1] for row in self._conn.execute(f"PRAGMA table_info({table})")}
            if "_uid" not in columns:
                self._conn.execute(f"ALTER TABLE {table} ADD COLUMN _uid TEXT")
        self._conn.executescript(_UIDS)
        # Every Windows rule's statement restricts Channel and EventID (detection.logsource).
        # Indexed, a hunt reads the rows of its channels only, instead of extracting both from
        # the JSON view of every row: SigmaHQ's Windows rules over the EVTX corpus hunt in 33 s
        # instead of 47 (storing costs 5% more: 1.49 s instead of 1.42 s for 20,115 events).
        for name in ("Channel", "EventID"):
            self._add_view_column(name)
        self._conn.execute(
            'CREATE INDEX IF NOT EXISTS ix_events_channel_eventid ON events ("Channel", "EventID")'
        )

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> SQLiteEventStore:
        return cls(data_dir / FILE_NAME)

    # --- writes -----------------------------------------------------------------------------

    def add_events(
        self,
        establishment: str,
        agent: str,
        events: list[dict[str, Any]],
        views: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        if views is not None and len(views) != len(events):
            raise ValueError(f"{len(views)} views for {len(events)} events")
        check_ids(ids, events)
        rows = []
        for index, doc in enumerate(events):
            ts = document_time(doc, index)
            stored = stamped_event(doc, establishment, agent)
            view = views[index] if views is not None else None
            rows.append(
                (
                    _micros(ts),
                    establishment,
                    agent,
                    orjson.dumps(stored).decode(),
                    orjson.dumps(stored_view(stored, view)).decode(),
                    ids[index] if ids is not None else None,
                )
            )
        return self._insert(
            "INSERT INTO events (_ts, _establishment, _agent, _doc, _view, _uid) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (_uid) DO NOTHING",
            rows,
        )

    def add_detections(
        self,
        establishment: str,
        detections: list[dict[str, Any]],
        ids: Sequence[str] | None = None,
    ) -> int:
        check_ids(ids, detections)
        rows = []
        for index, doc in enumerate(detections):
            ts = document_time(doc, index, key="timestamp")
            if not isinstance(doc.get("rule_id"), str) or not doc["rule_id"]:
                raise InvalidDocument(index, "no rule_id")
            stored = {**doc, "establishment": establishment}
            level = str(doc.get("level") or "medium")
            uid = ids[index] if ids is not None else None
            text = orjson.dumps(stored).decode()
            rows.append((_micros(ts), establishment, doc["rule_id"], level, text, uid))
        return self._insert(
            "INSERT INTO detections (_ts, _establishment, rule_id, level, _doc, _uid) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (_uid) DO NOTHING",
            rows,
        )

    def _insert(self, sql: str, rows: list[tuple[Any, ...]]) -> int:
        """Insert the rows; how many went in (a row whose `_uid` is there already does not)."""
        if not rows:
            return 0
        with self._lock, self._transaction():
            before = self._conn.total_changes
            self._conn.executemany(sql, rows)
            return self._conn.total_changes - before

    def purge(self, before: datetime) -> int:
        check_range(before, None)
        removed = 0
        with self._lock, self._transaction():
            for table in ("events", "detections"):
                cursor = self._conn.execute(
                    f"DELETE FROM {table} WHERE _ts < ?", (_micros(before),)
                )
                removed += cursor.rowcount
        return removed

    # --- reads ------------------------------------------------------------------------------

    def search_events(
        self,
        *,
        establishment: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        return self._search("events", establishment, since, until, limit)

    def search_detections(
        self,
        *,
        establishment: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        return self._search("detections", establishment, since, until, limit)

    def events_by_ids(self, establishment: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        return self._by_ids("events", establishment, ids)

    def detections_by_ids(self, establishment: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        return self._by_ids("detections", establishment, ids)

    def count(
        self,
        kind: Kind = "events",
        *,
        establishment: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        where, params = _scope(establishment, since, until)
        with self._lock:
            row = self._conn.execute(f"SELECT count(*) FROM {_table(kind)} {where}", params)
            return int(row.fetchone()[0])

    def retro_hunt(
        self,
        rule: CompiledRule,
        *,
        since: datetime | None,
        until: datetime | None,
        establishment: str | None = None,
        limit: int = DEFAULT_HUNT_LIMIT,
    ) -> RetroHunt:
        (converted,) = to_sqlite([rule], table=_TABLE_IN_QUERIES)
        if not converted.ok:
            return RetroHunt(rule.id, rule.title, error=f"no SQLite query: {converted.error}")
        where, params = _scope(establishment, since, until)
        scoped = f"WITH {_TABLE_IN_QUERIES} AS (SELECT * FROM events {where}) "
        ids: set[int] = set()
        # A connection of the hunt's own, read-only: WAL lets it read while ingestion writes,
        # so that agents never wait behind a hunt (only adding a column takes the lock).
        with contextlib.closing(self._reader()) as reader:
            for statement in converted.queries:
                if not statement.lstrip().upper().startswith("SELECT"):
                    return RetroHunt(rule.id, rule.title, converted.query, error="not a SELECT")
                sql = scoped + f"SELECT _id FROM ({statement})"
                found = self._select_ids(reader, sql, params)
                if isinstance(found, str):
                    return RetroHunt(rule.id, rule.title, converted.query, error=found)
                ids.update(found)
            chosen = sorted(ids)  # _id follows insertion; sorted by time below
            rows = _rows_by_id(reader, chosen)
        rows.sort(key=lambda r: (r[0], r[1]))
        hits = [
            hit(rule.id, rule.title, rule.level, orjson.loads(doc), est)
            for _, _, est, doc in rows[:limit]
        ]
        return RetroHunt(rule.id, rule.title, converted.query, hits, truncated=len(rows) > limit)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # --- internals --------------------------------------------------------------------------

    def _search(
        self,
        table: str,
        establishment: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        where, params = _scope(establishment, since, until)
        sql = f"SELECT _doc FROM {table} {where} ORDER BY _ts DESC, _id DESC LIMIT ?"
        with self._lock:
            rows = self._conn.execute(sql, [*params, max(0, limit)]).fetchall()
        return [orjson.loads(doc) for (doc,) in rows]

    def _by_ids(self, table: Kind, establishment: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        wanted = wanted_ids(ids)
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(wanted), _IDS_PER_STATEMENT):
                chunk = wanted[start : start + _IDS_PER_STATEMENT]
                marks = ", ".join("?" * len(chunk))
                sql = (
                    f"SELECT _uid, _doc FROM {_table(table)} "
                    f"WHERE _uid IN ({marks}) AND _establishment = ?"
                )
                found.update(self._conn.execute(sql, [*chunk, establishment]).fetchall())
        return [{"id": uid, "document": orjson.loads(found[uid])} for uid in wanted if uid in found]

    def _reader(self) -> sqlite3.Connection:
        """A read-only connection to the store (rule statements never write through it)."""
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        conn.create_function("regexp", 2, regexp, deterministic=True)
        conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def _select_ids(
        self, reader: sqlite3.Connection, sql: str, params: Sequence[Any]
    ) -> list[int] | str:
        """The ids a hunting statement selects, or SQLite's error; adds missing columns."""
        added = 0
        while True:
            try:
                return [row[0] for row in reader.execute(sql, params)]
            except sqlite3.Error as exc:
                missing = _NO_COLUMN.search(str(exc))
                if missing is None or added >= _MAX_ADDED_COLUMNS:
                    return f"{type(exc).__name__}: {exc}"
                with self._lock:  # a schema change: briefly, on the writing connection
                    self._add_view_column(missing.group(1))
                added += 1

    def _add_view_column(self, name: str) -> None:
        """A Sigma field as a virtual column over `_view` (reads every stored row)."""
        key = column_name(name).lower()
        if '"' in name or '"' in key or "'" in key or "\\" in key:
            raise sqlite3.OperationalError(f"unsupported field name {name!r}")
        try:
            self._conn.execute(
                f'ALTER TABLE events ADD COLUMN "{name}" NUMERIC COLLATE NOCASE '
                f"GENERATED ALWAYS AS (json_extract(_view, '$.\"{key}\"')) VIRTUAL"
            )
        except sqlite3.OperationalError as exc:
            if "duplicate column" not in str(exc):  # another process added it meanwhile
                raise

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)


def _rows_by_id(conn: sqlite3.Connection, ids: list[int]) -> list[tuple[int, int, str, str]]:
    rows: list[tuple[int, int, str, str]] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        rows.extend(
            conn.execute(
                f"SELECT _ts, _id, _establishment, _doc FROM events WHERE _id IN ({marks})",
                chunk,
            )
        )
    return rows


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self._conn.execute("COMMIT" if kind is None else "ROLLBACK")


# --- the Sigma view as stored -----------------------------------------------------------------


def stored_view(
    doc: Mapping[str, Any], engine_view: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The Sigma view of a stored document, folded and valued for SQLite (module docstring).

    The view is the engine's (`detection.event.sigma_view`) of the document without the
    `@timestamp` that `Event.to_ecs()` adds; `engine_view` is that view when the caller has
    computed it already.
    """
    view: dict[str, Any] = {}
    winlog = doc.get("winlog")
    if isinstance(winlog, Mapping):
        # The conversion restricts rules by `Channel` and `EventID`, where the engine
        # dispatches on the System values: those win over EventData/UserData fields of the
        # same name (the Security 1102 / System 104 "log cleared" events carry a `Channel`).
        for key, name in (("channel", "channel"), ("event_id", "eventid")):
            if winlog.get(key) is not None:
                view[name] = sql_value(winlog[key])
    if engine_view is None:
        engine_view = sigma_view({k: v for k, v in doc.items() if k != "@timestamp"})
    for key, value in engine_view.items():
        # Most values are text: they are kept as they are, without sql_value's checks.
        view.setdefault(_folded(key), value if type(value) is str else sql_value(value))
    return view


@functools.lru_cache(maxsize=8192)
def _folded(key: str) -> str:
    """A view key as a column name (field names repeat from event to event: cached)."""
    return column_name(key).lower()


def sql_value(value: Any) -> Any:
    """A Sigma-view value as the SQLite backend's statements compare it."""
    if value is None or isinstance(value, str | float):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value if value in _INT64 else str(value)
    return "\n".join(t for t in map(as_text, _leaves(value)) if t is not None)


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _micros(ts: datetime) -> int:
    return (ts - _EPOCH) // _MICROSECOND


def _table(kind: Kind) -> str:
    if kind not in ("events", "detections"):
        raise ValueError(f"unknown kind {kind!r}")
    return kind


def _scope(
    establishment: str | None, since: datetime | None, until: datetime | None
) -> tuple[str, list[Any]]:
    check_range(since, until)
    clauses: list[str] = []
    params: list[Any] = []
    if establishment is not None:
        clauses.append("_establishment = ?")
        params.append(establishment)
    if since is not None:
        clauses.append("_ts >= ?")
        params.append(_micros(since))
    if until is not None:
        clauses.append("_ts < ?")
        params.append(_micros(until))
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params
