from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.audit.service import record_list
from api.deps import CurrentUser, Offset, SessionDep, allow
from api.notifications import service
from api.notifications.schemas import NotificationPage, NotificationRead
from api.roles import Role

router = APIRouter(prefix="/notifications", tags=["notifications"])


@router.get("", **allow(Role.ESTABLISHMENT, Role.CERT, Role.AUDITOR, Role.ADMIN))
def list_notifications(
    request: Request,
    session: SessionDep,
    who: CurrentUser,
    open_only: Annotated[
        bool | None, Query(alias="open", description="true: unresolved only; false: resolved")
    ] = None,
    kind: Annotated[str | None, Query(max_length=40, description="e.g. agent_silent")] = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> NotificationPage:
    """An establishment sees its own; the national roles see every establishment's."""
    items, total = service.page(
        session=session, who=who, open_only=open_only, kind=kind, offset=offset, limit=limit
    )
    record_list(request, session, who, "notification", kind or "*", (n.id for n in items))
    return NotificationPage(items=[NotificationRead.model_validate(n) for n in items], total=total)
