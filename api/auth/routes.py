"""Logins, the caller's own account (/auth/...), and the admin's account management (/users)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from api.agents.models import utcnow
from api.audit.service import record_list, record_login, record_request
from api.auth import service, tokens
from api.auth.passwords import HashingBusy
from api.auth.schemas import (
    Login,
    Me,
    PasswordChange,
    PasswordReset,
    Token,
    UserCreate,
    UserPage,
    UserRead,
    UserUpdate,
)
from api.auth.throttle import TooManyAttempts
from api.deps import PUBLIC, CurrentSettings, CurrentUser, Offset, SessionDep, allow, client_of
from api.errors import VigieServiceError
from api.roles import HUMANS, Role

router = APIRouter(tags=["auth"])
users = APIRouter(prefix="/users", tags=["users"])


def _refusal(exc: VigieServiceError) -> JSONResponse:
    """A refused login answered (not raised): the failure counted in the session is kept."""
    headers = {"Cache-Control": "no-store"}
    if isinstance(exc, TooManyAttempts):
        headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, HashingBusy):
        headers["Retry-After"] = "1"
    elif exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"code": exc.code, "detail": exc.detail}, exc.status, headers=headers)


@router.post(
    "/auth/token",
    response_model=Token,
    responses={429: {"description": "too many failures: wait Retry-After seconds"}},
    **allow(PUBLIC),
)
def login(
    body: Login,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: CurrentSettings,
) -> Token | JSONResponse:
    response.headers["Cache-Control"] = "no-store"  # a token is kept by no cache
    address = client_of(request)
    try:
        user = service.login(
            session=session,
            username=body.username,
            password=body.password,
            address=address,
            now=utcnow(),
        )
    except service.LoginFailed as exc:
        record_login(
            session=session, username=body.username, role="-", succeeded=False, client=address
        )
        return _refusal(exc)
    except (TooManyAttempts, HashingBusy) as exc:
        return _refusal(exc)
    record_login(
        session=session, username=user.username, role=user.role, succeeded=True, client=address
    )
    token, lifetime = tokens.issue(user, settings)
    return Token(
        access_token=token, expires_in=lifetime, must_change_password=user.must_change_password
    )


@router.get("/auth/me", **allow(*HUMANS, password_pending=True))
def me(who: CurrentUser) -> Me:
    return Me(
        username=who.username,
        role=who.role,
        establishment=who.establishment,
        must_change_password=who.must_change_password,
    )


@router.post("/auth/password", response_model=Token, **allow(*HUMANS, password_pending=True))
def change_password(
    body: PasswordChange,
    request: Request,
    response: Response,
    session: SessionDep,
    who: CurrentUser,
    settings: CurrentSettings,
) -> Token | JSONResponse:
    """Change one's own password (the current one is asked for). Every token of the user is
    revoked, this one included: the answer carries a new one."""
    response.headers["Cache-Control"] = "no-store"
    try:
        user = service.change_password(
            session=session,
            username=who.username,
            current=body.current_password,
            new=body.new_password,
            address=client_of(request),
            now=utcnow(),
        )
    except (service.WrongPassword, TooManyAttempts, HashingBusy) as exc:
        return _refusal(exc)  # a wrong current password is counted: keep the count
    record_request(request, session, who, "update", "user", who.username, "password")
    token, lifetime = tokens.issue(user, settings)
    return Token(access_token=token, expires_in=lifetime)


@router.post("/auth/logout", status_code=204, **allow(*HUMANS, password_pending=True))
def logout(request: Request, session: SessionDep, who: CurrentUser) -> Response:
    """Revoke every login token of the caller (on every device)."""
    service.logout(session=session, username=who.username)
    record_request(request, session, who, "logout", "user", who.username)
    return Response(status_code=204)


@users.post("", status_code=201, **allow(Role.ADMIN))
def create_user(
    body: UserCreate, request: Request, session: SessionDep, who: CurrentUser
) -> UserRead:
    user = service.create_user(
        session=session,
        username=body.username,
        password=body.password,
        role=body.role,
        establishment=body.establishment,
    )
    record_request(request, session, who, "create", "user", user.username, f"role={user.role}")
    return UserRead.model_validate(user)


@users.get("", **allow(Role.ADMIN))
def list_users(
    request: Request,
    session: SessionDep,
    who: CurrentUser,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> UserPage:
    items, total = service.listing(session=session, offset=offset, limit=limit)
    record_list(request, session, who, "user", "*", (u.username for u in items))
    return UserPage(items=[UserRead.model_validate(u) for u in items], total=total)


@users.get("/{username}", **allow(Role.ADMIN))
def read_user(username: str, request: Request, session: SessionDep, who: CurrentUser) -> UserRead:
    user = service.get_user(session=session, username=username)
    record_request(request, session, who, "read", "user", user.username)
    return UserRead.model_validate(user)


@users.patch("/{username}", **allow(Role.ADMIN))
def update_user(
    username: str, body: UserUpdate, request: Request, session: SessionDep, who: CurrentUser
) -> UserRead:
    """Change the role, the establishment, or disable/enable. The last active admin can be
    neither demoted nor disabled (409 `last_admin`)."""
    user, changed = service.update_user(
        session=session,
        username=username,
        by=who.username,
        role=body.role,
        establishment=body.establishment,
        establishment_given="establishment" in body.model_fields_set,
        active=body.active,
    )
    now = {"role": user.role, "establishment": user.establishment_finess, "active": user.active}
    detail = ",".join(f"{name}={now[name]}" for name in changed)
    record_request(request, session, who, "update", "user", user.username, detail)
    return UserRead.model_validate(user)


@users.post("/{username}/password", **allow(Role.ADMIN))
def reset_password(
    username: str, body: PasswordReset, request: Request, session: SessionDep, who: CurrentUser
) -> UserRead:
    """Set a temporary password: the user's tokens are revoked, and they must change it at
    their next login."""
    user = service.reset_password(session=session, username=username, password=body.password)
    record_request(request, session, who, "update", "user", user.username, "password reset")
    return UserRead.model_validate(user)


@users.post("/{username}/logout", status_code=204, **allow(Role.ADMIN))
def end_sessions(
    username: str, request: Request, session: SessionDep, who: CurrentUser
) -> Response:
    """End every login token and dashboard session of a user (a stolen laptop, a departure),
    without disabling the account."""
    user = service.get_user(session=session, username=username)
    service.logout(session=session, username=user.username)
    record_request(request, session, who, "logout", "user", user.username, "by an admin")
    return Response(status_code=204)


router.include_router(users)
