"""Alerts the CERT publishes, the establishments' acknowledgements, and the bundle version."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.agents.models import utcnow
from api.db import Base


class Severity(StrEnum):
    """Also the level of the detections an alert's indicators and rules raise."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Tlp(StrEnum):
    """Traffic Light Protocol 2.0."""

    CLEAR = "clear"
    GREEN = "green"
    AMBER = "amber"
    AMBER_STRICT = "amber+strict"
    RED = "red"


class AlertStatus(StrEnum):
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"  # out of bundles and server-side detection, still readable


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(10))
    tlp: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(12), default=AlertStatus.PUBLISHED, index=True)
    products: Mapped[list[str]] = mapped_column(JSON, default=list)
    cves: Mapped[list[str]] = mapped_column(JSON, default=list)
    # [{"type": "ip"|"domain"|"url"|"md5"|"sha1"|"sha256", "value": ...}, ...], normalised
    indicators: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    sigma_rules: Mapped[list[str]] = mapped_column(JSON, default=list)  # rule texts (YAML)
    yara_rules: Mapped[list[str]] = mapped_column(JSON, default=list)  # rule texts
    # Target: everyone, or the establishments of these regions and/or of these kinds.
    target_all: Mapped[bool] = mapped_column(Boolean, default=False)
    target_regions: Mapped[list[str]] = mapped_column(JSON, default=list)
    target_kinds: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The bundle version in which this alert last changed.
    bundle_version: Mapped[int] = mapped_column(Integer, default=0)
    retro_hunt_days: Mapped[int] = mapped_column(Integer, default=30)
    retro_hunt: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the last hunt's outcome


class Acknowledgement(Base):
    """An establishment has read an alert (one per alert and establishment)."""

    __tablename__ = "alert_acknowledgements"
    __table_args__ = (
        UniqueConstraint("alert_id", "establishment_finess", name="uq_alert_ack_establishment"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(36), ForeignKey("alerts.id"), index=True)
    establishment_finess: Mapped[str] = mapped_column(
        String(9), ForeignKey("establishments.finess")
    )
    acknowledged_by: Mapped[str] = mapped_column(String(120))
    acknowledged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    comment: Mapped[str | None] = mapped_column(String(1000))


class BundleState(Base):
    """One row: the version of the rules and indicators published (bumped by every change).

    Kept in the database so that every service process sees the same number.
    """

    __tablename__ = "alert_bundle_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AlertRuleId(Base):
    """A Sigma rule id and the alert that first published it, kept for good (an edit that
    drops the rule, or a withdrawal, does not free it): detections and incidents name rules
    by id, so an id in two alerts would lend one alert's title and scope to the other's."""

    __tablename__ = "alert_rule_ids"

    rule_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    alert_id: Mapped[str] = mapped_column(String(36), ForeignKey("alerts.id"), index=True)


class EstablishmentBundle(Base):
    """The bundle version an establishment's agents see: one up each time the content of
    its own bundle changes, never when alerts it cannot see do (the national counter would
    tell it). Only grows: agents refuse a version older than one they had."""

    __tablename__ = "alert_bundle_versions"

    finess: Mapped[str] = mapped_column(
        String(9), ForeignKey("establishments.finess"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of the content at `version`
    # What the content was last computed from (national version, region, kind): while it
    # is the same, the content is too and a poll costs one read.
    basis: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
