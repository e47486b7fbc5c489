from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from api.incidents.models import CareImpact, Category, Severity, Status
from api.text import NulFree

System = Annotated[str, Field(min_length=1, max_length=200)]  # a host or system name


class IncidentDeclare(NulFree):
    """The fields a national health-incident report asks for."""

    establishment: str | None = Field(
        default=None,
        description="FINESS; an establishment user declares for its own and may leave it out",
    )
    title: str = Field(min_length=3, max_length=300)
    category: Category
    care_impact: CareImpact = Field(description="impact on patient care")
    personal_data: bool = Field(description="personal (health) data involved")
    started_at: AwareDatetime | None = Field(default=None, description="when it began, if known")
    aware_at: AwareDatetime = Field(description="when the establishment became aware (NIS2 clock)")
    affected_systems: list[System] = Field(default_factory=list, max_length=200)
    description: str = Field(default="", max_length=20_000)
    severity: Severity = Severity.MEDIUM
    notifiable: bool = Field(default=True, description="significant incident: NIS2 deadlines apply")


class IncidentUpdate(NulFree):
    title: str | None = Field(default=None, min_length=3, max_length=300)
    category: Category | None = None
    care_impact: CareImpact | None = None
    personal_data: bool | None = None
    started_at: AwareDatetime | None = None
    aware_at: AwareDatetime | None = None
    affected_systems: list[System] | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=20_000)
    severity: Severity | None = None
    notifiable: bool | None = None


class StatusChange(NulFree):
    status: Status
    comment: str = Field(default="", max_length=5_000)


class Comment(NulFree):
    text: str = Field(min_length=1, max_length=5_000)


class ReportSent(NulFree):
    # cnil: the notification of a personal-data breach to the CNIL (GDPR art. 33), recorded
    # for the registry; NIS2's deadlines do not count it.
    kind: Literal["early_warning", "notification", "final_report", "cnil"]
    sent_at: AwareDatetime | None = Field(default=None, description="absent: now")
    comment: str = Field(default="", max_length=5_000)


class DeadlineRead(BaseModel):
    kind: str
    due: datetime
    done_at: datetime | None
    overdue: bool
    met: bool | None


class TimelineRead(BaseModel):
    at: datetime
    actor: str
    kind: str
    text: str
    from_status: str | None = None
    to_status: str | None = None


class IncidentRead(BaseModel):
    id: str
    establishment: str
    origin: str
    title: str
    category: str
    severity: str
    status: str
    care_impact: str
    personal_data: bool | None
    description: str
    affected_systems: list[str]
    started_at: datetime | None
    aware_at: datetime
    cnil_notified_at: datetime | None = None
    created_by: str
    created_at: datetime
    updated_at: datetime
    rule_id: str | None
    host: str | None
    first_seen: datetime | None
    last_seen: datetime | None
    detection_count: int
    notifiable: bool
    deadlines: list[DeadlineRead]
    overdue: list[str] = Field(description="NIS2 deadlines passed without the report sent")
    campaign_id: str | None = Field(default=None, description="national campaign (CERT only)")


class IncidentDetail(IncidentRead):
    timeline: list[TimelineRead]
    sample: dict[str, Any] | None = Field(description="the first detection that opened it")


class IncidentPage(BaseModel):
    items: list[IncidentRead]
    total: int


class CampaignRead(BaseModel):
    id: str
    rule_id: str
    title: str
    status: str
    first_seen: datetime
    last_seen: datetime
    created_at: datetime
    establishments: list[str]
    incidents: list[str]


class CampaignUpdate(NulFree):
    title: str | None = Field(default=None, min_length=3, max_length=300)
    status: Literal["open", "closed"] | None = None


DeadlineKind = Literal["early_warning", "notification", "final_report"]
DeadlineState = Literal["pending", "late", "met"]


class DeadlineItem(BaseModel):
    """One NIS2 report of one notifiable incident."""

    incident_id: str
    title: str
    status: str = Field(description="the incident's")
    severity: str = Field(description="the incident's")
    establishment: str = Field(description="FINESS")
    establishment_name: str
    region: str
    kind: str = Field(description="the establishment's kind (CHU, CH, clinic, ...)")
    deadline: DeadlineKind = Field(
        description="early_warning (24 h), notification (72 h), final_report (one month)"
    )
    due: datetime
    done_at: datetime | None = Field(description="when the report was sent (null: not yet)")
    state: DeadlineState = Field(
        description="pending: not sent, not yet due; late: not sent and due, or sent after "
        "it was due; met: sent in time"
    )
    overdue: bool = Field(description="late and still not sent")


class DeadlinePage(BaseModel):
    items: list[DeadlineItem]
    total: int
