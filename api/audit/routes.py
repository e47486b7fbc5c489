from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from api.audit import chain
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
    actor: Annotated[str | None, Query(max_length=120, description="exact account name")] = None,
    action: Annotated[
        str | None, Query(max_length=20, description="read, update, login...")
    ] = None,
    kind: Annotated[
        str | None, Query(max_length=40, description="incident, alert, user...")
    ] = None,
    since: Annotated[datetime | None, Query(description="from this time (included)")] = None,
    until: Annotated[datetime | None, Query(description="until this time (excluded)")] = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AuditRead]:
    """The trail, newest first, filtered."""
    found = AuditFilter(actor=actor, action=action, kind=kind, since=since, until=until)
    rows = entries(session, found, offset, limit)
    # Reading the trail is itself recorded (after the page is read: it is not in it).
    span = f"{rows[-1].id}-{rows[0].id}" if rows else ""
    record_request(request, session, who, "read", "audit", f"offset={offset} {found}", span)
    return [AuditRead.model_validate(r) for r in rows]


class ChainBreak(BaseModel):
    row_id: int
    reason: str


class ChainCheck(BaseModel):
    ok: bool
    rows: int
    breaks: list[ChainBreak]  # the first 100


@router.get("/verify", **allow(Role.AUDITOR, Role.ADMIN))
def verify_chain(request: Request, session: SessionDep, who: CurrentUser) -> ChainCheck:
    """The whole trail's hash chain checked: each row's hash, each link (api/audit/chain.py)."""
    breaks = [ChainBreak(row_id=b.row_id, reason=b.reason) for b in chain.check_table(session)]
    rows = int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)
    record_request(request, session, who, "read", "audit", "verify", f"breaks={len(breaks)}")
    return ChainCheck(ok=not breaks, rows=rows, breaks=breaks[:100])


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __str__(self) -> str:
        return " ".join(f"{k}={v}" for k, v in vars(self).items() if v)[:200]

    def conditions(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.actor:
            out.append(AuditEntry.actor == self.actor)
        if self.action:
            out.append(AuditEntry.action == self.action)
        if self.kind:
            out.append(AuditEntry.target_kind == self.kind)
        if self.since is not None:
            out.append(AuditEntry.at >= self.since)
        if self.until is not None:
            out.append(AuditEntry.at < self.until)
        return out


def entries(session: Session, found: AuditFilter, offset: int, limit: int) -> list[AuditEntry]:
    """A page of the trail, newest first (the dashboard reads it the same way)."""
    query = select(AuditEntry).where(*found.conditions())
    return list(session.scalars(query.order_by(AuditEntry.id.desc()).offset(offset).limit(limit)))


def count(session: Session, found: AuditFilter) -> int:
    query = select(func.count()).select_from(AuditEntry).where(*found.conditions())
    return int(session.scalar(query) or 0)
