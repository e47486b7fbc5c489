from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from api.audit.models import AuditEntry
from api.deps import Offset, SessionDep, allow
from api.roles import Role

router = APIRouter(prefix="/audit", tags=["audit"])


class AuditRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor: str
    role: str
    action: str
    target_kind: str
    target_id: str
    client: str | None


@router.get("", **allow(Role.AUDITOR, Role.ADMIN))
def audit_log(
    session: SessionDep,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AuditRead]:
    rows = session.scalars(
        select(AuditEntry).order_by(AuditEntry.id.desc()).offset(offset).limit(limit)
    )
    return [AuditRead.model_validate(r) for r in rows]
