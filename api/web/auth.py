"""Logging in and out of the dashboard, and the first password change.

The login form is public; it carries a token bound to a short-lived cookie (double submit),
as no session exists yet to hold one. Failures are counted and throttled by the same code as
`POST /auth/token` (per account and per address, in the database), and audited the same way.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.agents.models import utcnow
from api.audit.service import record_login, record_request
from api.auth import service
from api.auth.passwords import HashingBusy
from api.auth.throttle import TooManyAttempts
from api.deps import SessionDep, client_of
from api.errors import VigieServiceError
from api.roles import HUMANS
from api.web import sessions
from api.web.deps import CSRF_FIELD, CsrfRefused, Viewer, viewer
from api.web.render import page

router = APIRouter(include_in_schema=False)
LOGIN_CSRF = "vigie_login_csrf"
Field = Annotated[str, Form(max_length=500)]


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _next(target: str | None) -> str:
    """Only a path of this site: never an open redirect to another."""
    if not target:
        return "/ui/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/ui/"
    return target if target.startswith("/ui") else "/ui/"


def _login_form(
    request: Request, error: str | None = None, status: int = 200, username: str = ""
) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = page(
        request,
        "login.html",
        {
            "csrf": token,
            "error": error,
            "username": username,
            "next": _next(request.query_params.get("next")),
        },
        status,
    )
    response.set_cookie(
        LOGIN_CSRF,
        token,
        max_age=1800,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/login",
    )
    return response


@router.get("/login", openapi_extra={"x-roles": ["public"]})
def login_form(request: Request) -> HTMLResponse:
    """Public: the login form."""
    return _login_form(request)


@router.post("/login", openapi_extra={"x-roles": ["public"]})
def login(
    request: Request,
    session: SessionDep,
    username: Field,
    password: Field,
    csrf: Annotated[str, Form(alias=CSRF_FIELD, max_length=100)] = "",
    next_page: Annotated[str, Form(alias="next", max_length=500)] = "/ui/",
) -> Response:
    """Public: opens a session and sends the browser on, or shows the form again."""
    expected = request.cookies.get(LOGIN_CSRF, "")
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.url.netloc}"
    if not expected or not hmac.compare_digest(expected.encode(), csrf.encode()):
        raise CsrfRefused("le formulaire a expiré : rechargez la page de connexion")
    if origin is not None and origin != own:
        raise CsrfRefused(f"request from another origin ({origin[:100]})")
    address = client_of(request)
    try:
        user = service.login(
            session=session, username=username, password=password, address=address, now=utcnow()
        )
    except service.LoginFailed:
        record_login(session=session, username=username, role="-", succeeded=False,
                     client=address, detail="web")  # fmt: skip
        return _login_form(request, "Identifiant ou mot de passe incorrect.", 401, username)
    except TooManyAttempts as exc:
        response = _login_form(
            request,
            f"Trop d'échecs : réessayez dans {exc.retry_after} secondes.",
            429,
            username,
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except HashingBusy:
        return _login_form(request, "Service occupé : réessayez dans un instant.", 503, username)
    if user.role not in {str(r) for r in HUMANS}:
        return _login_form(request, "Ce compte n'a pas accès au tableau de bord.", 403)
    record_login(session=session, username=user.username, role=user.role, succeeded=True,
                 client=address, detail="web")  # fmt: skip
    session_id = sessions.open_session(session, user, utcnow(), address)
    target = "/password" if user.must_change_password else _next(next_page)
    redirect = RedirectResponse(target, status_code=303)
    secure = _secure(request)
    redirect.set_cookie(
        sessions.SECURE_COOKIE if secure else sessions.COOKIE,
        session_id,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    redirect.delete_cookie(LOGIN_CSRF, path="/login")
    return redirect


Anyone = Annotated[Viewer, Depends(viewer(*HUMANS, password_pending=True))]


@router.post("/logout", openapi_extra={"x-roles": [str(r) for r in HUMANS]})
def logout(request: Request, session: SessionDep, v: Anyone) -> Response:
    """Every human: ends this session (this browser only; `POST /auth/logout` ends all)."""
    found = sessions.find(session, v.session_id, utcnow())
    if found is not None:
        sessions.end(session, found[0], utcnow())
    record_request(request, session, v.who, "logout", "user", v.who.username, "web")
    response = RedirectResponse("/login", status_code=303)
    for name in (sessions.COOKIE, sessions.SECURE_COOKIE):
        response.delete_cookie(name, path="/")
    return response


@router.get("/password", openapi_extra={"x-roles": [str(r) for r in HUMANS]})
def password_form(request: Request, v: Anyone) -> HTMLResponse:
    """Every human: the form to change one's password (required after a reset)."""
    return page(request, "password.html", {"v": v, "error": None})


@router.post("/password", openapi_extra={"x-roles": [str(r) for r in HUMANS]})
def change_password(
    request: Request,
    session: SessionDep,
    v: Anyone,
    current_password: Field,
    new_password: Field,
) -> Response:
    """Every human: changes one's password. Every session and token of the user ends with
    it; the browser logs in again."""
    try:
        service.change_password(
            session=session,
            username=v.who.username,
            current=current_password,
            new=new_password,
            address=client_of(request),
            now=utcnow(),
        )
    except (service.WrongPassword, TooManyAttempts, HashingBusy, VigieServiceError) as exc:
        return page(request, "password.html", {"v": v, "error": exc.detail}, exc.status)
    record_request(request, session, v.who, "update", "user", v.who.username, "password (web)")
    response = RedirectResponse("/login", status_code=303)
    for name in (sessions.COOKIE, sessions.SECURE_COOKIE):
        response.delete_cookie(name, path="/")
    return response
