from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.audit.service import record, record_list
from api.deps import CurrentUser, Offset, RegionQuery, SessionDep, allow, client_of
from api.establishments import service
from api.establishments.schemas import (
    EstablishmentCreate,
    EstablishmentPage,
    EstablishmentRead,
    EstablishmentUpdate,
    Kind,
)
from api.roles import Role

router = APIRouter(prefix="/establishments", tags=["establishments"])
READERS = (Role.ESTABLISHMENT, Role.CERT, Role.AUDITOR, Role.ADMIN)
WRITERS = (Role.CERT, Role.ADMIN)


@router.get("", **allow(*READERS))
def list_establishments(
    request: Request,
    session: SessionDep,
    who: CurrentUser,
    region: RegionQuery = None,
    kind: Kind | None = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EstablishmentPage:
    items, total = service.page(
        session=session, who=who, offset=offset, limit=limit, region=region, kind=kind
    )
    record_list(request, session, who, "establishment", "*", (i.finess for i in items))
    return EstablishmentPage(
        items=[EstablishmentRead.model_validate(i) for i in items], total=total
    )


@router.get("/{finess}", **allow(*READERS))
def get_establishment(
    finess: str, request: Request, session: SessionDep, who: CurrentUser
) -> EstablishmentRead:
    item = service.get(session=session, who=who, finess=finess)
    record(
        session=session,
        who=who,
        action="read",
        kind="establishment",
        target=item.finess,
        client=client_of(request),
    )
    return EstablishmentRead.model_validate(item)


@router.post("", status_code=201, **allow(*WRITERS))
def create_establishment(
    body: EstablishmentCreate, request: Request, session: SessionDep, who: CurrentUser
) -> EstablishmentRead:
    item = service.create(session=session, data=body)
    record(
        session=session,
        who=who,
        action="create",
        kind="establishment",
        target=item.finess,
        client=client_of(request),
    )
    return EstablishmentRead.model_validate(item)


@router.patch("/{finess}", **allow(*WRITERS))
def update_establishment(
    finess: str, body: EstablishmentUpdate, request: Request, session: SessionDep, who: CurrentUser
) -> EstablishmentRead:
    item = service.update(session=session, who=who, finess=finess, data=body)
    record(
        session=session,
        who=who,
        action="update",
        kind="establishment",
        target=item.finess,
        client=client_of(request),
    )
    return EstablishmentRead.model_validate(item)
