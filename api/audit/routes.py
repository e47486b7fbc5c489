from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from api.audit.models import AuditEntry
from api.audit.service import record_request
from api.deps import CurrentUser, Offset, SessionDep, allow
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
    detail: str | None = None


@router.get("", **allow(Role.AUDITOR, Role.ADMIN))
def audit_log(
    request: Request,
    session: SessionDep,
    who: CurrentUser,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AuditRead]:
    rows = list(
        session.scalars(
            select(AuditEntry).order_by(AuditEntry.id.desc()).offset(offset).limit(limit)
        )
    )
    # Reading the trail is itself recorded (after the page is read: it is not in it).
    span = f"{rows[-1].id}-{rows[0].id}" if rows else ""
    record_request(request, session, who, "read", "audit", f"offset={offset}", span)
    return [AuditRead.model_validate(r) for r in rows]
