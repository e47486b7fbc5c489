from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, true
from sqlalchemy.orm import Mapped, mapped_column, validates

from api.agents.models import utcnow
from api.db import Base
from api.errors import Invalid
from api.incidents import nis2


class Status(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    CONTAINED = "contained"
    RESOLVED = "resolved"
    CLOSED = "closed"


# Still being handled: what "open" means in filters and counts.
OPEN = (Status.NEW, Status.ACKNOWLEDGED, Status.CONTAINED)


class Category(StrEnum):
    """The categories of the national health-incident report."""

    RANSOMWARE = "ransomware"
    PHISHING = "phishing"
    DATA_BREACH = "data_breach"
    DENIAL_OF_SERVICE = "denial_of_service"
    INTRUSION = "intrusion"
    UNAVAILABILITY = "unavailability"
    OTHER = "other"
    # A crisis exercise run as if real (the maturity control GOV-04 counts them); never
    # notifiable.
    EXERCISE = "exercise"


class CareImpact(StrEnum):
    """Impact on patient care."""

    UNKNOWN = "unknown"
    NONE = "none"
    DEGRADED = "degraded"  # care goes on, slower or in degraded mode
    INTERRUPTED = "interrupted"  # some care stopped or patients transferred


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Origin(StrEnum):
    DETECTION = "detection"  # opened from detections on ingestion
    DECLARED = "declared"  # declared by the establishment through the form
    RETRO_HUNT = "retro-hunt"  # found by an alert's retro-hunt over stored events


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (
        # The dashboard's counts, from these indexes alone: open incidents by severity and
        # notifiable, incidents opened per day and severity.
        Index("ix_incidents_status_severity_notifiable", "status", "severity", "notifiable"),
        Index("ix_incidents_created_at_severity", "created_at", "severity"),
        # The list, latest updated first: a page is read from the index, not sorted.
        Index("ix_incidents_updated_at", "updated_at"),
        # NIS2 reports not sent yet, by due date (`deadlines.py`, the overview's counts):
        # a few thousand entries of each index read alone, instead of every incident.
        *(
            Index(f"ix_incidents_{kind}_open", "notifiable", f"{kind}_at", f"{kind}_due", "id")
            for kind in nis2.KINDS
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    establishment_finess: Mapped[str] = mapped_column(
        String(9), ForeignKey("establishments.finess"), index=True
    )
    origin: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(300))
    category: Mapped[str] = mapped_column(String(30))
    severity: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), default=Status.NEW)
    care_impact: Mapped[str] = mapped_column(String(20), default=CareImpact.UNKNOWN)
    personal_data: Mapped[bool | None] = mapped_column(Boolean)  # None: not known yet
    description: Mapped[str] = mapped_column(Text, default="")
    affected_systems: Mapped[list[str]] = mapped_column(JSON, default=list)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    aware_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Grouping of automatic incidents: one per (establishment, rule, host) within a window.
    rule_id: Mapped[str | None] = mapped_column(String(200), index=True)
    host: Mapped[str | None] = mapped_column(String(253))
    first_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    detection_count: Mapped[int] = mapped_column(Integer, default=0)
    sample: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the first detection
    # NIS2: deadlines are tracked for notifiable (significant) incidents only.
    notifiable: Mapped[bool] = mapped_column(Boolean, default=False)
    # NIS2: when each report was sent (None: not yet); which deadlines were flagged overdue.
    early_warning_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    notification_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    final_report_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Personal data breached: when the CNIL was notified (GDPR art. 33, 72 hours).
    cnil_notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    overdue: Mapped[list[str]] = mapped_column(JSON, default=list)
    # NIS2: when each report is due, set from `aware_at` whenever it is (`_aware`). Stored so
    # that deadlines are sorted and counted in SQL: the final report's calendar month has no
    # form SQLite and PostgreSQL share.
    early_warning_due: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    notification_due: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    final_report_due: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    campaign_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("campaigns.id"), index=True
    )
    # Its rule is one the service knows this establishment runs (Vigie's own, an alert's
    # meant for it): only such incidents make national campaigns, not a stolen agent key's
    # made-up rule ids.
    known_rule: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    @validates("aware_at")
    def _aware(self, key: str, value: datetime) -> datetime:
        aware = _utc(key, value)
        try:
            due = nis2.due_dates(aware)
        except OverflowError:
            raise Invalid(f"{key}: too close to the end of the calendar") from None
        for kind, moment in due.items():
            setattr(self, f"{kind}_due", moment)
        return aware

    @validates(
        "started_at", "early_warning_at", "notification_at", "final_report_at", "cnil_notified_at"
    )
    def _moment(self, key: str, value: datetime | None) -> datetime | None:
        return None if value is None else _utc(key, value)


def _utc(key: str, moment: datetime) -> datetime:
    """In UTC: SQLite keeps a time's digits and drops its offset, so that 10:00+02:00 would
    read back as 10:00 UTC (naive: already UTC, as the service writes them)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        raise Invalid(f"{key}: outside the calendar once in UTC") from None


class TimelineEntry(Base):
    """A comment, a status change, new detections, a report sent, a deadline missed."""

    __tablename__ = "incident_timeline"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(String(36), ForeignKey("incidents.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text, default="")
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))


class Campaign(Base):
    """The same rule or indicator firing in several establishments within a window."""

    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(200), index=True)
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | closed
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
