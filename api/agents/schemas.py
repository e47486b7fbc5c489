from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.agents.models import TokenState
from api.text import NulFree

HOSTNAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
VERSION = r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$"


class EnrollmentTokenCreate(NulFree):
    expires_in_days: int = Field(default=7, ge=1, le=90)
    max_uses: int | None = Field(
        default=None, ge=1, le=10_000, description="absent: any number of agents until it expires"
    )
    label: str | None = Field(default=None, max_length=120, description="e.g. 'servers, site B'")
    site: str | None = Field(
        default=None,
        min_length=1,
        max_length=120,
        description="the site (as declared in the maturity profile) of the agents it enrolls",
    )


class EnrollmentTokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, validate_by_name=True)

    id: str
    establishment: str = Field(validation_alias="establishment_finess")
    prefix: str = Field(description="the first characters of the token, to tell tokens apart")
    label: str | None
    site: str | None = None
    created_by: str
    created_at: datetime
    expires_at: datetime
    max_uses: int | None
    uses: int
    revoked_at: datetime | None
    state: TokenState


class EnrollmentTokenCreated(EnrollmentTokenRead):
    token: str = Field(description="shown once: only its hash is kept")


class SourceStatus(NulFree):
    """One source an agent reads, with how far behind it is."""

    name: str = Field(min_length=1, max_length=120, description="e.g. 'syslog-udp-514'")
    kind: str | None = Field(default=None, max_length=40, description="e.g. syslog, evtx, pcap")
    lag_seconds: float | None = Field(
        default=None, ge=0, description="age of the newest record not yet shipped"
    )


def _sources(value: Any) -> Any:
    """A bare source name stands for `{"name": name}`."""
    if isinstance(value, list):
        return [{"name": v} if isinstance(v, str) else v for v in value]
    return value


class AgentEnroll(NulFree):
    token: str = Field(min_length=8, max_length=200)
    hostname: str = Field(min_length=1, max_length=253, pattern=HOSTNAME)
    version: str = Field(min_length=1, max_length=40, pattern=VERSION)
    sources: list[SourceStatus] = Field(default_factory=list, max_length=200)

    _sources = field_validator("sources", mode="before")(_sources)


class AgentHeartbeat(NulFree):
    version: str = Field(min_length=1, max_length=40, pattern=VERSION)
    sources: list[SourceStatus] = Field(default_factory=list, max_length=200)
    counters: dict[str, int] = Field(
        default_factory=dict,
        max_length=50,
        description="the agent's own counts: received, shipped, queued, dropped, refused...",
    )

    @field_validator("counters")
    @classmethod
    def _counter_names(cls, value: dict[str, int]) -> dict[str, int]:
        for name, count in value.items():
            if not 0 < len(name) <= 40 or count < 0:
                raise ValueError(f"counter {name[:40]!r}: a name of 1-40 characters, a count >= 0")
        return value

    _sources = field_validator("sources", mode="before")(_sources)


class AgentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, validate_by_name=True)

    id: str
    establishment: str = Field(validation_alias="establishment_finess")
    hostname: str
    site: str | None = None
    version: str
    sources: list[SourceStatus]
    enrolled_at: datetime
    last_heartbeat: datetime | None
    lag_seconds: float | None
    counters: dict[str, int] = Field(default_factory=dict)
    revoked: bool
    revoked_at: datetime | None


class AgentEnrolled(AgentRead):
    agent_key: str = Field(description="shown once: send it as `Authorization: Bearer <agent key>`")
    # In the answer the enrollment token pays for: the agent pins this key, not one fetched
    # without authentication (optional: older agents ignore it).
    bundle_key: str | None = Field(
        default=None, description="the Ed25519 key that signs bundles (32 raw bytes, base64)"
    )
    bundle_key_id: str | None = Field(
        default=None, description="its id, as `vigie agent enroll --bundle-key-id` takes"
    )


class AgentPage(BaseModel):
    items: list[AgentRead]
    total: int
