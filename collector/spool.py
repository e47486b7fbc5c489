"""The agent's durable spool: a SQLite file in the state folder.

- `put` writes events, detections and the sources' checkpoints in one transaction, synced to
  disk (`synchronous=FULL`) before it returns: an event counts as received once it is there,
  and a source never resumes past an event that is not.
- `next_batch` returns the batch to send. The batch's id and item range are written down
  before it is sent, so that after a crash the very same batch (same id, same items) is sent
  again and the service's batch-id dedupe makes it count once. `ack` deletes it. Each item
  also goes with an id of its own, `<spool>-<item>`: the spool's random id (a new spool file,
  a new id: the service never mistakes a new spool's item 1 for the old one's) and the
  item's number, never reused. The service keeps each id once, whatever batch brings it.
- `enforce_budget` drops the oldest items beyond the disk budget, never silently: the count
  is kept and reported with the heartbeat. `put_within` stores and enforces in one
  transaction, so that a batch taken by the delivering thread meanwhile is never one of the
  oldest items about to be dropped.
- One connection serialised by a lock held for one statement group only, never across a
  request to the service: the collecting and the delivering threads share it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

FILE_NAME = "spool.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a pending batch names a range
    kind TEXT NOT NULL,                    -- event | detection
    doc BLOB NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pending (
    batch_id TEXT PRIMARY KEY,
    first_id INTEGER NOT NULL,
    last_id INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (source TEXT PRIMARY KEY, state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Batch:
    """A batch to send. Its items are kept as the JSON the spool stored: the request body is
    spliced from them (byte for byte what encoding the decoded items gives, without decoding
    and encoding every item again on each send); `events` and `detections` decode them."""

    batch_id: str
    first_id: int
    last_id: int
    raw_events: list[bytes]
    raw_detections: list[bytes]
    event_ids: list[str] = field(default_factory=list)
    detection_ids: list[str] = field(default_factory=list)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(doc) for doc in self.raw_events]

    @property
    def detections(self) -> list[dict[str, Any]]:
        return [orjson.loads(doc) for doc in self.raw_detections]

    def body(self, *, item_ids: bool = True) -> bytes:
        """`{"batch_id", "events", "detections"[, "event_ids", "detection_ids"]}` as JSON."""
        parts = [
            b'{"batch_id":',
            orjson.dumps(self.batch_id),
            b',"events":[',
            b",".join(self.raw_events),
            b'],"detections":[',
            b",".join(self.raw_detections),
            b"]",
        ]
        if item_ids and (self.event_ids or self.detection_ids):
            parts += [
                b',"event_ids":',
                orjson.dumps(self.event_ids),
                b',"detection_ids":',
                orjson.dumps(self.detection_ids),
            ]
        parts.append(b"}")
        return b"".join(parts)

    def __len__(self) -> int:
        return len(self.raw_events) + len(self.raw_detections)


class Spool:
    """One connection, serialised by a lock (the agent's loop and its status readers)."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = state_dir / FILE_NAME
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # on disk before it counts as received
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.executescript(_SCHEMA)
        # INSERT OR IGNORE then read: two processes opening a new spool agree on one id.
        self._conn.execute(
            "INSERT OR IGNORE INTO meta (name, value) VALUES ('spool_id', ?)",
            (uuid.uuid4().hex[:16],),
        )
        self.spool_id: str = self._conn.execute(
            "SELECT value FROM meta WHERE name = 'spool_id'"
        ).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # --- in ---------------------------------------------------------------------------------

    def put(
        self,
        events: Iterable[Mapping[str, Any]] = (),
        detections: Iterable[Mapping[str, Any]] = (),
        checkpoints: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> int:
        rows = _rows(events, detections)  # serialised before the lock is taken
        with self._lock, self._transaction():
            return self._insert(rows, checkpoints)

    def put_within(
        self,
        max_bytes: int,
        events: Iterable[Mapping[str, Any]] = (),
        detections: Iterable[Mapping[str, Any]] = (),
        checkpoints: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> int:
        """`put`, then `enforce_budget`, in one transaction: the delivering thread never takes
        a batch of items about to be dropped. Returns how many were dropped."""
        rows = _rows(events, detections)
        with self._lock, self._transaction():
            self._insert(rows, checkpoints)
            return self._drop_beyond(max_bytes)

    def _insert(
        self, rows: list[tuple[str, bytes]], checkpoints: Mapping[str, Mapping[str, Any]] | None
    ) -> int:
        self._conn.executemany(
            "INSERT INTO items (kind, doc, size) VALUES (?, ?, ?)",
            [(kind, doc, len(doc)) for kind, doc in rows],
        )
        for source, state in (checkpoints or {}).items():
            self._conn.execute(
                "INSERT INTO checkpoints (source, state) VALUES (?, ?) "
                "ON CONFLICT (source) DO UPDATE SET state = excluded.state",
                (source, orjson.dumps(state)),
            )
        self._add("received", len(rows))
        return len(rows)

    def checkpoint(self, source: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT state FROM checkpoints WHERE source = ?", (source,)
            ).fetchone()
        return orjson.loads(row[0]) if row else None

    # --- out --------------------------------------------------------------------------------

    def next_batch(self, max_items: int, max_bytes: int = 8 * 2**20) -> Batch | None:
        """The pending batch if there is one (after a crash: the same one), else a new one."""
        with self._lock, self._transaction():
            row = self._conn.execute(
                "SELECT batch_id, first_id, last_id FROM pending ORDER BY created LIMIT 1"
            ).fetchone()
            if row is None:
                picked = self._conn.execute(
                    "SELECT id, size FROM items ORDER BY id LIMIT ?", (max_items,)
                ).fetchall()
                if not picked:
                    return None
                total, last = 0, picked[0][0]
                for item_id, size in picked:
                    if total + size > max_bytes and total > 0:
                        break
                    total += size
                    last = item_id
                row = (f"vigie-{uuid.uuid4().hex}", picked[0][0], last)
                self._conn.execute(
                    "INSERT INTO pending (batch_id, first_id, last_id, created) "
                    "VALUES (?, ?, ?, ?)",
                    (*row, time.time()),
                )
            batch_id, first, last = row
            items = self._conn.execute(
                "SELECT id, kind, doc FROM items WHERE id BETWEEN ? AND ? ORDER BY id",
                (first, last),
            ).fetchall()
        batch = Batch(batch_id, first, last, [], [])
        for item_id, kind, doc in items:
            docs, ids = (
                (batch.raw_events, batch.event_ids)
                if kind == "event"
                else (batch.raw_detections, batch.detection_ids)
            )
            docs.append(doc)
            ids.append(f"{self.spool_id}-{item_id}")
        return batch

    def ack(self, batch: Batch, *, counter: str = "shipped") -> None:
        """The service has the batch (or refused it for good: `counter="refused"`)."""
        with self._lock, self._transaction():
            self._conn.execute(
                "DELETE FROM items WHERE id BETWEEN ? AND ?", (batch.first_id, batch.last_id)
            )
            self._conn.execute("DELETE FROM pending WHERE batch_id = ?", (batch.batch_id,))
            self._add(counter, len(batch))

    def enforce_budget(self, max_bytes: int) -> int:
        """Drop the oldest items not in the pending batch until the spool fits; returns how
        many went (added to the `dropped` counter)."""
        with self._lock, self._transaction():
            return self._drop_beyond(max_bytes)

    def _drop_beyond(self, max_bytes: int) -> int:
        total = self._conn.execute("SELECT coalesce(sum(size), 0) FROM items").fetchone()[0]
        if total <= max_bytes:
            return 0
        rows = self._conn.execute(
            "SELECT id, size FROM items WHERE id > coalesce("
            "(SELECT max(last_id) FROM pending), 0) ORDER BY id"
        ).fetchall()
        cut = dropped = 0
        for item_id, size in rows:
            if total <= max_bytes:
                break
            total -= size
            cut = item_id
            dropped += 1
        if dropped:
            self._conn.execute(
                "DELETE FROM items WHERE id <= ? AND id > coalesce("
                "(SELECT max(last_id) FROM pending), 0)",
                (cut,),
            )
            self._add("dropped", dropped)
        return dropped

    # --- status -----------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        with self._lock:
            queued, size = self._conn.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM items"
            ).fetchone()
            counters = dict(self._conn.execute("SELECT name, value FROM counters").fetchall())
        return {"queued": int(queued), "queued_bytes": int(size), **counters}

    # --- internals --------------------------------------------------------------------------

    def _add(self, name: str, amount: int) -> None:
        if amount:
            self._conn.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                (name, amount),
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)


def _rows(
    events: Iterable[Mapping[str, Any]], detections: Iterable[Mapping[str, Any]]
) -> list[tuple[str, bytes]]:
    rows = [("event", orjson.dumps(e)) for e in events]
    return rows + [("detection", orjson.dumps(d)) for d in detections]


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self._conn.execute("COMMIT" if kind is None else "ROLLBACK")
