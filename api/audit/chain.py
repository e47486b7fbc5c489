"""The audit log as a hash chain: each row holds the hash of the row before it (`prev_hash`)
and its own (`row_hash`), so that a row removed or edited in the database is found.

`row_hash` is the SHA-256 (hex) of `canonical(row, prev_hash)`: the JSON array, UTF-8 and
without spaces, of the row's fields as text in this order: id, at, actor, role, action,
target_kind, target_id, client, detail, prev_hash. `at` is in UTC as
`YYYY-MM-DDTHH:MM:SS.ffffffZ`; an empty field (no client, no detail) is "". The first row's
`prev_hash` is `GENESIS`. The CSV extracts carry the same texts, so that anyone can recompute
the hashes from them (api/reports/auditlog.py, cli/report.py).

Rows are chained as they are written (`append`), under a lock that orders concurrent writers:
SQLite lets one writer at a time once a row is inserted; PostgreSQL takes a transaction-level
advisory lock before the insert, so that ids are also given in chain order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from api.audit.models import AuditEntry

GENESIS = "0" * 64
# pg_advisory_xact_lock's key for the audit log's writers ("VIGIEAUD" as an integer).
_PG_LOCK = 0x5649474945415544

FIELDS = (
    "id",
    "at",
    "actor",
    "role",
    "action",
    "target_kind",
    "target_id",
    "client",
    "detail",
)


def at_text(at: datetime) -> str:
    """A time as the chain hashes it: UTC, microseconds (a time without zone is UTC, as SQLite
    gives them back)."""
    moment = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def texts(entry: AuditEntry) -> list[str]:
    """The row's fields as the chain and the extracts write them, in `FIELDS` order."""
    return [
        str(entry.id),
        at_text(entry.at),
        entry.actor,
        entry.role,
        entry.action,
        entry.target_kind,
        entry.target_id,
        entry.client or "",
        entry.detail or "",
    ]


def canonical(fields: Iterable[str], prev_hash: str) -> bytes:
    return json.dumps([*fields, prev_hash], ensure_ascii=False, separators=(",", ":")).encode()


def row_hash(fields: Iterable[str], prev_hash: str) -> str:
    return hashlib.sha256(canonical(fields, prev_hash)).hexdigest()


def append(session: Session, entry: AuditEntry) -> None:
    """Write `entry` as the chain's newest row, in the session's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        # Held until the transaction ends; taken again by the same transaction at once.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
    entry.at = datetime.now(UTC)
    entry.prev_hash = entry.row_hash = ""
    session.add(entry)
    session.flush()  # the id; on SQLite, from here on no other transaction writes
    before = select(AuditEntry.row_hash).where(AuditEntry.id < entry.id)
    previous = session.scalar(before.order_by(AuditEntry.id.desc()).limit(1))
    entry.prev_hash = previous or GENESIS
    entry.row_hash = row_hash(texts(entry), entry.prev_hash)
    session.flush()


@dataclass(frozen=True)
class Break:
    """Where the chain does not hold: a row id (or a CSV line) and why."""

    row_id: int
    reason: str


def check(rows: Iterable[tuple[list[str], str, str]], anchor: str | None) -> Iterator[Break]:
    """The breaks of a run of consecutive rows, given as (fields, prev_hash, row_hash) in id
    order; `anchor`: the hash the first row must follow (None: not checked)."""
    expected = anchor
    previous_id: int | None = None
    for fields, prev, own in rows:
        row_id = int(fields[0])
        if row_hash(fields, prev) != own:
            yield Break(row_id, "row edited: its hash does not match its content")
        if expected is not None and prev != expected:
            where = f"after row {previous_id}" if previous_id is not None else "at the start"
            yield Break(
                row_id,
                f"chain broken {where}: prev_hash does not match the previous row's hash "
                "(a row was removed, or the previous one changed)",
            )
        expected, previous_id = own, row_id


def check_table(session: Session) -> Iterator[Break]:
    """The breaks of the live audit log, read in id order without holding it all."""
    query = select(AuditEntry).order_by(AuditEntry.id).execution_options(yield_per=1000)
    rows = ((texts(e), e.prev_hash, e.row_hash) for e in session.scalars(query))
    return check(rows, GENESIS)
