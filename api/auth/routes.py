from __future__ import annotations

from fastapi import APIRouter

from api.auth import service
from api.auth.schemas import Login, Token, UserCreate, UserRead
from api.deps import PUBLIC, CurrentSettings, CurrentUser, SessionDep, allow
from api.roles import HUMANS, Role

router = APIRouter(tags=["auth"])


@router.post("/auth/token", **allow(PUBLIC))
def login(body: Login, session: SessionDep, request_settings: CurrentSettings) -> Token:
    user = service.authenticate(session=session, username=body.username, password=body.password)
    token, lifetime = service.issue_token(user, request_settings)
    return Token(access_token=token, expires_in=lifetime)


@router.get("/auth/me", **allow(*HUMANS))
def me(who: CurrentUser) -> UserRead:
    return UserRead(username=who.username, role=who.role, establishment=who.establishment)


@router.post("/users", status_code=201, **allow(Role.ADMIN))
def create_user(body: UserCreate, session: SessionDep) -> UserRead:
    user = service.create_user(
        session=session,
        username=body.username,
        password=body.password,
        role=body.role,
        establishment=body.establishment,
    )
    return UserRead(username=user.username, role=user.role, establishment=user.establishment_finess)
