from __future__ import annotations

import datetime as dt
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.text import NulFree

_HOSTS: Any = Field(default_factory=list, max_length=2000)


class FrameworkRef(BaseModel):
    id: str
    version: str
    digest: str


class DomainScore(BaseModel):
    id: str
    title: str
    score: float | None = Field(description="0-100; null: no applicable control")
    weight: float


class Refs(BaseModel):
    care: list[str]
    anssi: list[str]
    cis: list[str]


class ControlRead(BaseModel):
    id: str
    title: str
    domain: str
    status: Literal[
        "pass", "partial", "fail", "no_evidence", "stale", "na", "risk_accepted", "compensated"
    ]
    score: float = Field(ge=0, le=1)
    weight: float
    level: int
    critical: bool
    evidence_kind: Literal["automatic", "questionnaire", "both"]
    basis: str | None = Field(description="automatic | declared | proven | null")
    refs: Refs
    evidence: list[dict[str, Any]] = Field(
        description="what was seen: each item has a human `summary`, and a `link` to the "
        "records behind it where there are any"
    )
    explanation: str
    contradiction: bool = Field(description="a declaration contradicts what Vigie observes")
    remediation: str


class FixRead(BaseModel):
    control: str
    gain: float = Field(description="overall points gained if the control were fully met")
    unlocks_level: int | None
    effort: int
    remediation: str
    evidence_link: str | None


class PercentileRead(BaseModel):
    group: Literal["kind_region", "kind", "national", "none"]
    label: str
    value: float | None
    peers: int
    quartiles: list[float] | None


class MaturityRead(BaseModel):
    finess: str
    snapshot: str
    framework: FrameworkRef
    as_of: date
    computed_at: datetime
    score: float = Field(ge=0, le=100)
    level: int = Field(ge=1, le=5)
    level_name: str
    coverage: float = Field(ge=0, le=1, description="weight with current evidence / applicable")
    proof_ratio: float = Field(ge=0, le=1, description="weight collected or CERT-reviewed")
    inputs_digest: str
    domains: list[DomainScore]
    controls: list[ControlRead]
    percentile: PercentileRead
    fixes: list[FixRead]


class HistoryPoint(BaseModel):
    as_of: date
    snapshot: str
    score: float
    level: int
    coverage: float
    framework_version: str


class Recompute(BaseModel):
    identical: bool
    inputs_digest: str | None = None
    stored_digest: str | None = None
    score: float | None = None
    level: int | None = None
    reason: str | None = None


class ProfileWrite(NulFree):
    flags: dict[str, bool] = Field(default_factory=dict)
    sites: list[str] = Field(default_factory=list, max_length=200)
    expected_sources: list[Literal["network", "windows", "logs"]] = Field(default_factory=list)
    server_hosts: list[str] = _HOSTS
    admin_hosts: list[str] = _HOSTS
    resolvers: list[str] = _HOSTS
    reason: str = Field(min_length=3, max_length=1000, description="why it changes (audited)")


class ProfileRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    flags: dict[str, bool]
    sites: list[str]
    expected_sources: list[str]
    server_hosts: list[str]
    admin_hosts: list[str]
    resolvers: list[str]
    reason: str
    declared_by: str
    declared_at: datetime


class AnswerWrite(NulFree):
    choice: str | None = Field(
        default=None, description="non, partiel, largement, oui, ne_sait_pas"
    )
    date: dt.date | None = None
    number: float | None = Field(default=None, ge=0, le=1e9)
    comment: str | None = Field(default=None, max_length=4000)
    proof_id: str | None = Field(default=None, max_length=36)


class AnswerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    control_id: str
    value: dict[str, Any]
    comment: str
    proof_id: str | None
    declared_by: str
    declared_at: datetime
    review: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None


class ReviewWrite(NulFree):
    review: Literal["proven", "rejected"]


class ProofRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    control_id: str
    filename: str
    media_type: str
    size: int
    sha256: str
    uploaded_by: str
    uploaded_at: datetime


class ExceptionWrite(NulFree):
    control: str = Field(pattern=r"^[A-Z]{2,5}-[0-9]{2}$")
    kind: Literal["risk_accepted", "compensated"]
    reason: str = Field(min_length=10, max_length=4000)
    approver: str = Field(min_length=3, max_length=200, description="who signed it")
    expires_at: datetime


class ExceptionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    control_id: str
    kind: str
    reason: str
    approver: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    revoked_by: str | None
    revoked_at: datetime | None
