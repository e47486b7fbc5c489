from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

By = Literal["region", "kind", "severity", "status"]
Interval = Literal["day", "week"]


class IncidentCounts(BaseModel):
    open: int = Field(
        description="incidents not resolved nor closed (new, acknowledged, contained)"
    )
    open_by_severity: dict[str, int] = Field(
        description="open incidents per severity; every severity present (low, medium, high, "
        "critical), 0 when none"
    )
    notifiable_open: int = Field(description="open incidents to which NIS2 deadlines apply")
    overdue_deadlines: int = Field(
        description="NIS2 reports (early warning, notification, final report) past due and not "
        "sent, one per report, of notifiable incidents whatever their status"
    )
    overdue_incidents: int = Field(
        description="notifiable incidents with at least one report past due and not sent"
    )


class AlertCounts(BaseModel):
    last_30_days: int = Field(
        description="published alerts (withdrawn ones not counted) created in the last 30 "
        "days; for an establishment, those meant for it"
    )
    targets: int | None = Field(
        description="national roles: the establishments those alerts are meant for, one per "
        "alert and establishment; null for an establishment"
    )
    acknowledged: int | None = Field(
        description="national roles: how many of `targets` acknowledged; null for an establishment"
    )
    acknowledgement_rate: float | None = Field(
        description="acknowledged / targets, 0 to 1; null when there is no target, and for an "
        "establishment"
    )
    pending: int | None = Field(
        description="an establishment: the published alerts meant for it, of any date, that "
        "it has not acknowledged (GET /alerts?pending_for=FINESS lists them); null for "
        "national roles"
    )


class AgentCounts(BaseModel):
    active: int = Field(description="not revoked, a heartbeat within `silent_after_minutes`")
    silent: int = Field(
        description="not revoked, heard from, but no heartbeat for longer than "
        "`silent_after_minutes`"
    )
    never: int = Field(description="not revoked, no heartbeat since enrolling")
    revoked: int = Field(description="revoked: their key is refused")
    silent_after_minutes: int = Field(
        description="the service's silence threshold (VIGIE_AGENT_SILENT_MINUTES)"
    )


class Overview(BaseModel):
    scope: str | None = Field(
        description="the FINESS every count is limited to (an establishment's account); "
        "null: national"
    )
    at: datetime = Field(description="the time the counts were taken (UTC)")
    incidents: IncidentCounts
    campaigns_open: int | None = Field(
        description="open national campaigns; null for an establishment (campaigns are the "
        "national view)"
    )
    alerts: AlertCounts
    agents: AgentCounts
    establishments: int = Field(
        description="registered establishments (for an establishment: itself, 1)"
    )


class Group(BaseModel):
    key: str = Field(description="the region, kind, severity or status")
    incidents: int = Field(description="incidents of the group matching the filters")
    establishments: int | None = Field(
        default=None,
        description="by region or kind: establishments registered in the group, so that "
        "0 incidents among 0 establishments (no data) differs from 0 among many; "
        "null by severity or status",
    )


class IncidentGroups(BaseModel):
    by: By
    groups: list[Group] = Field(
        description="every region (the 18), kind, severity or status present, 0 when none, "
        "in their usual order; regions or kinds registered outside those lists follow"
    )
    total: int = Field(description="incidents matching the filters, all groups together")


class Bucket(BaseModel):
    start: date = Field(description="the bucket's first day, in Europe/Paris")
    since: datetime = Field(description="the bucket's start: local midnight, in UTC")
    until: datetime = Field(description="the next bucket's start (excluded), in UTC")
    incidents: dict[str, int] = Field(
        description="incidents opened (created_at) in the bucket per severity; every severity "
        "present, 0 when none"
    )
    total: int = Field(description="incidents opened in the bucket")
    detections: int = Field(
        description="detections received in the bucket: those agents sent and those the "
        "service found, in the batches received then (by arrival, not by detection time)"
    )


class IncidentSeries(BaseModel):
    interval: Interval
    timezone: str = Field(description="the buckets are days or ISO weeks of this time zone")
    days: int
    end: date = Field(description="the last day covered (in the last bucket)")
    buckets: list[Bucket] = Field(description="oldest first, every bucket present")
