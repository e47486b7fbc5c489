from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from api.text import NulFree


class Kind(StrEnum):
    CHU = "CHU"  # university hospital
    CH = "CH"  # general hospital
    CLINIC = "clinic"
    EHPAD = "EHPAD"  # nursing home
    PSYCHIATRY = "psychiatry"
    SSR = "SSR"  # follow-up care and rehabilitation
    OTHER = "other"


class LegalStatus(StrEnum):
    """FINESS's three families of legal status (statistics are cut by them)."""

    PUBLIC = "public"
    PRIVATE_NONPROFIT = "private_nonprofit"  # ESPIC, associations, mutual societies
    PRIVATE_COMMERCIAL = "private_commercial"


class EstablishmentCreate(NulFree):
    finess: str = Field(min_length=9, max_length=11, description="FINESS géographique (site)")
    name: str = Field(min_length=2, max_length=200)
    kind: Kind
    region: str | None = Field(
        default=None, max_length=60, description="derived from the FINESS when absent"
    )
    beds: int | None = Field(default=None, ge=0, le=20_000)
    legal_entity_finess: str | None = Field(default=None, min_length=9, max_length=11)
    legal_status: LegalStatus | None = None


class EstablishmentUpdate(NulFree):
    name: str | None = Field(default=None, min_length=2, max_length=200)
    kind: Kind | None = None
    beds: int | None = Field(default=None, ge=0, le=20_000)
    legal_entity_finess: str | None = Field(default=None, min_length=9, max_length=11)
    legal_status: LegalStatus | None = None


class EstablishmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    finess: str
    name: str
    kind: str
    region: str
    beds: int | None
    legal_entity_finess: str | None
    legal_status: str | None


class EstablishmentPage(BaseModel):
    items: list[EstablishmentRead]
    total: int
