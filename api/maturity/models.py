"""Maturity tables: gathered evidence, declarations (profile, answers, proofs, exceptions) and
the daily snapshots. Declarations are never updated in place: each one is a new row, the
latest wins, so the history of what was declared, by whom and when, stays."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.agents.models import utcnow
from api.db import Base

_FINESS = "establishments.finess"


class Evidence(Base):
    """What one signal showed for one establishment on one day (`api.maturity.signals`)."""

    __tablename__ = "maturity_evidence"

    finess: Mapped[str] = mapped_column(String(9), ForeignKey(_FINESS), primary_key=True)
    signal: Mapped[str] = mapped_column(String(20), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    samples: Mapped[list[str]] = mapped_column(JSON)  # a few ids of the events behind it
    subjects: Mapped[list[str]] = mapped_column(JSON)  # hosts, servers, peers (bounded)

    __table_args__ = (
        Index("ix_maturity_evidence_day", "day"),  # retention
        Index("ix_maturity_evidence_window", "finess", "signal", "day"),  # snapshots
    )


class Profile(Base):
    """An establishment's declared context: what makes controls applicable, its sites, the
    sources it should send, its hosts' roles. One row per declaration."""

    __tablename__ = "maturity_profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    finess: Mapped[str] = mapped_column(String(9), ForeignKey(_FINESS), index=True)
    flags: Mapped[dict[str, bool]] = mapped_column(JSON)
    sites: Mapped[list[str]] = mapped_column(JSON)
    expected_sources: Mapped[list[str]] = mapped_column(JSON)
    server_hosts: Mapped[list[str]] = mapped_column(JSON)  # the rest are workstations
    admin_hosts: Mapped[list[str]] = mapped_column(JSON)  # DCs, admin servers
    resolvers: Mapped[list[str]] = mapped_column(JSON)  # its own DNS resolvers
    reason: Mapped[str] = mapped_column(Text)
    declared_by: Mapped[str] = mapped_column(String(120))
    declared_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Proof(Base):
    """A file attached to an answer: kept in the database, with its SHA-256."""

    __tablename__ = "maturity_proofs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    finess: Mapped[str] = mapped_column(String(9), ForeignKey(_FINESS), index=True)
    control_id: Mapped[str] = mapped_column(String(10))
    filename: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(80))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by: Mapped[str] = mapped_column(String(120))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Answer(Base):
    """One answer to a control's question; a CERT review marks it proven."""

    __tablename__ = "maturity_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    finess: Mapped[str] = mapped_column(String(9), ForeignKey(_FINESS))
    control_id: Mapped[str] = mapped_column(String(10))
    value: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"choice"|"date"|"number": ...}
    comment: Mapped[str] = mapped_column(Text, default="")
    proof_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("maturity_proofs.id"))
    declared_by: Mapped[str] = mapped_column(String(120))
    declared_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reviewed_by: Mapped[str | None] = mapped_column(String(120))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    review: Mapped[str | None] = mapped_column(String(20))  # proven | rejected

    __table_args__ = (Index("ix_maturity_answers_finess_control", "finess", "control_id"),)


class Exception_(Base):
    """A control's failure accepted as a risk, or compensated, until it expires."""

    __tablename__ = "maturity_exceptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    finess: Mapped[str] = mapped_column(String(9), ForeignKey(_FINESS), index=True)
    control_id: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(20))  # risk_accepted | compensated
    reason: Mapped[str] = mapped_column(Text)
    approver: Mapped[str] = mapped_column(String(200))  # who signed it (the director, ...)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(120))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Snapshot(Base):
    """One establishment's scores as of one day: written once, never updated."""

    __tablename__ = "maturity_snapshots"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    finess: Mapped[str] = mapped_column(String(9), ForeignKey(_FINESS))
    as_of: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(20))  # the establishment's, on that day (peers)
    region: Mapped[str] = mapped_column(String(60))
    framework_id: Mapped[str] = mapped_column(String(40))
    framework_version: Mapped[str] = mapped_column(String(20))
    framework_digest: Mapped[str] = mapped_column(String(64))
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    score: Mapped[float] = mapped_column(Float)
    level: Mapped[int] = mapped_column(Integer)
    coverage: Mapped[float] = mapped_column(Float)
    proof_ratio: Mapped[float] = mapped_column(Float)
    inputs_digest: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any]] = mapped_column(JSON)  # domains, controls, fixes

    # A recompute writes a new row; a read takes the latest computed for the day.
    __table_args__ = (
        Index("ix_maturity_snapshots_finess_as_of", "finess", "as_of"),
        Index("ix_maturity_snapshots_as_of", "as_of"),
        # Peers and national statistics read a week of every establishment's scores
        # (`peers._latest_scores`) from this index alone, in their order: the rows hold
        # result documents of about 40 kB, which SQLite would step over row by row.
        Index(
            "ix_maturity_snapshots_scores",
            "framework_version",
            "as_of",
            "computed_at",
            "id",
            "finess",
            "score",
            "level",
            "kind",
            "region",
        ),
    )
