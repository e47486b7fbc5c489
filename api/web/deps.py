"""Who is looking at a page: the person of a live cookie session, admitted by the page's roles.

A page states its roles as a JSON route does (`viewer(...)`); the principal it gets is the one
the API would get for the same user, so the service functions it calls scope and refuse the
same way. Unsafe requests carry the session's CSRF token in their form (`csrf` field) or in the
`X-CSRF-Token` header (htmx), and come from this origin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from api.agents.models import utcnow
from api.deps import Principal, SessionDep
from api.errors import VigieServiceError
from api.roles import Role
from api.web import sessions

CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class LoginRequired(Exception):
    """No live session: the browser is sent to the login page (handled in `api.web.routes`)."""


class PasswordFirst(Exception):
    """The user must change the password given to them before anything else."""


class CsrfRefused(VigieServiceError):
    status = 403
    code = "csrf"


class NotForYou(VigieServiceError):
    status = 403
    code = "forbidden"


@dataclass(frozen=True)
class Viewer:
    who: Principal
    csrf: str
    session_id: str


def _session_id(request: Request) -> str | None:
    return request.cookies.get(sessions.SECURE_COOKIE) or request.cookies.get(sessions.COOKIE)


async def _check_csrf(request: Request, expected: str) -> None:
    """Same origin, and the session's token, on every unsafe method."""
    if request.method not in UNSAFE:
        return
    origin = request.headers.get("origin")
    fetch_site = request.headers.get("sec-fetch-site")
    own = f"{request.url.scheme}://{request.url.netloc}"
    if origin is not None and origin != own:
        raise CsrfRefused(f"request from another origin ({origin[:100]})")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise CsrfRefused(f"request from another site ({fetch_site[:30]})")
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if given is None:
        raise CsrfRefused("missing CSRF token: reload the page and try again")
    import hmac

    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise CsrfRefused("wrong CSRF token: reload the page and try again")


async def current_viewer(request: Request, session: SessionDep) -> Viewer:
    session_id = _session_id(request)
    found = sessions.find(session, session_id, utcnow())
    if found is None or session_id is None:
        raise LoginRequired()
    row, user = found
    await _check_csrf(request, row.csrf)
    return Viewer(sessions.principal(user), row.csrf, session_id)


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]


def viewer(*roles: Role, password_pending: bool = False) -> Callable[..., Any]:
    """A dependency giving the viewer when their role is one of `roles` (403 otherwise)."""
    names = {str(r) for r in roles}

    async def check(v: CurrentViewer) -> Viewer:
        if v.who.must_change_password and not password_pending:
            raise PasswordFirst()
        if v.who.role not in names:
            raise NotForYou(f"cette page n'est pas ouverte au rôle {v.who.role}")
        return v

    check.roles = sorted(names)  # type: ignore[attr-defined]  # read by the access test
    return check
