from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from api.agents.models import as_utc
from api.alerts.models import AlertStatus, Severity, Tlp
from api.establishments.finess import Region
from api.establishments.schemas import Kind
from detection.indicators import IndicatorError, normalise
from detection.sigma.yaml_guard import MAX_RULE_BYTES

CVE = re.compile(r"^CVE-\d{4}-\d{4,7}$")
# SQLite hands back naive datetimes (written in UTC): answers say UTC either way.
Utc = Annotated[datetime, AfterValidator(as_utc)]
IndicatorKind = Literal["ip", "domain", "url", "md5", "sha1", "sha256"]


def _no_nul(value: Any) -> Any:
    """PostgreSQL text holds no NUL character: refused here rather than failing at the write."""
    texts = value if isinstance(value, list) else [value]
    if any(isinstance(t, str) and "\x00" in t for t in texts):
        raise ValueError("text with a NUL character")
    return value


class Indicator(BaseModel):
    type: IndicatorKind
    value: str = Field(min_length=1, max_length=2048)

    _texts = field_validator("value")(_no_nul)

    @model_validator(mode="after")
    def _normalised(self) -> Indicator:
        try:
            self.value = normalise(self.type, self.value)
        except IndicatorError as exc:
            raise ValueError(str(exc)) from exc
        return self


class Target(BaseModel):
    """Everyone, or the establishments of these regions and/or kinds (both: in both)."""

    all: bool = False
    regions: list[Region] = Field(default_factory=list, max_length=18)
    kinds: list[Kind] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _someone(self) -> Target:
        if not self.all and not self.regions and not self.kinds:
            raise ValueError("a target is everyone (all: true), regions, kinds, or both")
        if self.all and (self.regions or self.kinds):
            raise ValueError("a target is everyone, or regions/kinds, not both")
        return self


_TEXTS = ("title", "description", "products", "sigma_rules", "yara_rules")
# Bounds of an alert's lists and texts: a huge one answers 422 at once, not after minutes of
# compiling (a rule text's YAML has its own limits, `yaml_guard`).
MAX_RULES = 100  # Sigma rules, and YARA rules, per alert
MAX_RULES_BYTES = 1024 * 1024  # all the rule texts of one alert (UTF-8)
Product = Annotated[str, Field(max_length=200)]
CveText = Annotated[str, Field(max_length=40)]
RuleText = Annotated[str, Field(min_length=1, max_length=MAX_RULE_BYTES)]


def rules_size(sigma: list[str] | None, yara: list[str] | None) -> None:
    size = sum(len(t.encode("utf-8", "surrogatepass")) for t in (*(sigma or ()), *(yara or ())))
    if size > MAX_RULES_BYTES:
        raise ValueError(f"rule texts of {size} bytes: at most {MAX_RULES_BYTES} per alert")


def _cves(values: list[str]) -> list[str]:
    out = []
    for value in values:
        cve = value.strip().upper()
        if not CVE.match(cve):
            raise ValueError(f"{value!r} is not a CVE id (CVE-YYYY-NNNN)")
        out.append(cve)
    return list(dict.fromkeys(out))


class AlertCreate(BaseModel):
    title: str = Field(min_length=3, max_length=300)
    description: str = Field(default="", max_length=20_000)
    severity: Severity
    tlp: Tlp
    products: list[Product] = Field(default_factory=list, max_length=100)
    cves: list[CveText] = Field(default_factory=list, max_length=200)
    indicators: list[Indicator] = Field(default_factory=list, max_length=10_000)
    sigma_rules: list[RuleText] = Field(default_factory=list, max_length=MAX_RULES)
    yara_rules: list[RuleText] = Field(default_factory=list, max_length=MAX_RULES)
    target: Target
    retro_hunt_days: int | None = Field(
        default=None, ge=0, le=365, description="days of stored events hunted (0: no hunt)"
    )

    _cves = field_validator("cves")(_cves)
    _texts = field_validator(*_TEXTS)(_no_nul)

    @model_validator(mode="after")
    def _bounded(self) -> AlertCreate:
        rules_size(self.sigma_rules, self.yara_rules)
        return self


class AlertUpdate(BaseModel):
    """Fields absent are left as they are; a change of content bumps the bundle version."""

    title: str | None = Field(default=None, min_length=3, max_length=300)
    description: str | None = Field(default=None, max_length=20_000)
    severity: Severity | None = None
    tlp: Tlp | None = None
    products: list[Product] | None = Field(default=None, max_length=100)
    cves: list[CveText] | None = Field(default=None, max_length=200)
    indicators: list[Indicator] | None = Field(default=None, max_length=10_000)
    sigma_rules: list[RuleText] | None = Field(default=None, max_length=MAX_RULES)
    yara_rules: list[RuleText] | None = Field(default=None, max_length=MAX_RULES)
    target: Target | None = None

    _texts = field_validator(*_TEXTS)(_no_nul)

    @field_validator("cves")
    @classmethod
    def _check_cves(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else _cves(values)

    @model_validator(mode="after")
    def _bounded(self) -> AlertUpdate:
        rules_size(self.sigma_rules, self.yara_rules)
        return self


class Acknowledge(BaseModel):
    comment: str | None = Field(default=None, max_length=1000)

    _texts = field_validator("comment")(_no_nul)


class AcknowledgementRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, validate_by_name=True)

    establishment: str = Field(validation_alias="establishment_finess")
    acknowledged_by: str
    acknowledged_at: Utc
    comment: str | None


class AlertRead(BaseModel):
    """An alert as every reader sees it."""

    id: str
    title: str
    description: str
    severity: Severity
    tlp: Tlp
    status: AlertStatus
    products: list[str]
    cves: list[str]
    indicators: list[Indicator]
    sigma_rules: list[str]
    yara_rules: list[str]
    target: Target
    created_by: str
    created_at: Utc
    updated_at: Utc
    # National readers only: the national version in which the alert last changed (an
    # establishment would learn from it when alerts it cannot see change).
    bundle_version: int | None = None
    # An establishment's own acknowledgement (None: not yet, or a national reader).
    acknowledgement: AcknowledgementRead | None = None
    # National readers only: the last retro-hunt's outcome, how many have acknowledged.
    retro_hunt: dict[str, Any] | None = None
    acknowledged: int | None = None


class AlertPage(BaseModel):
    items: list[AlertRead]
    total: int


class PendingEstablishment(BaseModel):
    finess: str
    name: str
    region: str
    kind: str


class AcknowledgementReport(BaseModel):
    """Who among the targets has acknowledged, and who has not."""

    alert_id: str
    targets: int
    acknowledged: list[AcknowledgementRead]
    pending: list[PendingEstablishment]


class RetroHuntRequest(BaseModel):
    days: int | None = Field(default=None, ge=1, le=365)


class PublicKey(BaseModel):
    algorithm: str
    key_id: str
    public_key: str = Field(description="the 32 raw bytes of the Ed25519 key, base64")
    pem: str
