"""What routes depend on: a database session, the caller, and the roles a route admits.

Every route states its roles with `allow(...)`: the dependency refuses everyone else, and the
roles are written into the OpenAPI document (`x-roles`), so that `/openapi.json` says who may
call what.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.errors import NotYours, VigieServiceError
from api.roles import Role
from api.settings import Settings

PUBLIC = "public"
MAX_OFFSET = 10**9
# Where a page starts in a list: bounded, as a 64-bit overflow in the database answered 500.
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows skipped")]
# An establishment's region as registered (the 18 of `api.establishments.finess.Region`, or
# what was given at registration): a filter of the lists and counts.
RegionQuery = Annotated[
    str | None, Query(max_length=60, description="the establishment's region, as registered")
]
_bearer = HTTPBearer(auto_error=False)


class PasswordChangeRequired(VigieServiceError):
    status = 403
    code = "password_change_required"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    username: str
    role: str
    establishment: str | None  # FINESS of the establishment an `establishment`/`agent` acts for
    # A user whose password must change first may only change it, read /auth/me, log out.
    must_change_password: bool = False

    @property
    def scope(self) -> str | None:
        """The one establishment this caller is limited to (None: national roles)."""
        if self.role in (Role.ESTABLISHMENT, Role.AGENT):
            return self.establishment or "-"  # no establishment: sees nothing
        return None

    @property
    def agent_id(self) -> str | None:
        """The id of the agent this caller is (None: a human)."""
        if self.role == Role.AGENT:
            return self.username.removeprefix("agent:")
        return None

    def sees(self, finess: str) -> bool:
        """Whether this caller may see an establishment's data."""
        return self.scope is None or self.scope == finess

    def not_yours(self, detail: str, *, kind: str, target: str) -> NotYours:
        """The error for another establishment's object: the answer of an absent one
        (`detail`), audited as a refused read."""
        return NotYours(detail, actor=self.username, role=self.role, kind=kind, target=target)


def get_session(request: Request) -> Iterator[Session]:
    # Used with scope="function" (SessionDep): the transaction commits before the response
    # goes out, so a client that acts on a 201 finds what it created.
    with request.app.state.sessions() as session:
        try:
            with session.begin():
                yield session
        except NotYours as exc:
            # The request's transaction is rolled back; the refusal is audited in its own.
            from api.audit.service import record_denied

            record_denied(request.app.state.sessions, exc, client_of(request))
            raise


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    session: SessionDep,
) -> Principal:
    """A human from a login token (JWT), an agent from its key (`vga_...`), or a script from
    an API key (`vgk_...`, with the role and establishment it was given)."""
    from api.agents.service import AGENT_KEY_PREFIX, principal_from_agent_key
    from api.apikeys.service import KEY_PREFIX, principal_from_api_key
    from api.auth.tokens import principal_from_token

    if credentials is None:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    if credentials.credentials.startswith(AGENT_KEY_PREFIX):
        return principal_from_agent_key(session=session, key=credentials.credentials)
    if credentials.credentials.startswith(KEY_PREFIX):
        return principal_from_api_key(session=session, key=credentials.credentials)
    return principal_from_token(
        session=session, token=credentials.credentials, settings=request.app.state.settings
    )


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


CurrentSettings = Annotated[Settings, Depends(get_settings)]
CurrentUser = Annotated[Principal, Depends(current_principal)]


def allow(*roles: Role | str, password_pending: bool = False) -> dict[str, Any]:
    """Route keyword arguments admitting only `roles` (PUBLIC: anyone, unauthenticated).

    `password_pending`: also admit a user who must change their password first (the password
    change itself, /auth/me, logout); every other route refuses them."""
    names = [str(r) for r in roles]
    extra = {"x-roles": names}
    if PUBLIC in names:
        return {"openapi_extra": extra}

    def check(who: CurrentUser) -> None:
        if who.role not in names:
            raise HTTPException(403, f"role {who.role} may not call this")
        if who.must_change_password and not password_pending:
            raise PasswordChangeRequired(
                "change your password first: POST /auth/password with the current one"
            )

    return {"dependencies": [Depends(check)], "openapi_extra": extra}


def client_of(request: Request) -> str | None:
    return request.client.host if request.client else None
