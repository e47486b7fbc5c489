"""How the dashboard joins the service: its routers, its assets, and what a person sees when
a page cannot be shown (the login page, or an error page instead of JSON)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from api.headers import is_web
from api.validation import validation_error
from api.web.actions import router as actions_router
from api.web.auth import router as auth_router
from api.web.deps import LoginRequired, PasswordFirst
from api.web.national import router as national_router
from api.web.pages import router as pages_router
from api.web.render import STATIC, page
from api.web.reports import router as reports_router

__all__ = [
    "actions_router",
    "auth_router",
    "error_page",
    "install",
    "national_router",
    "pages_router",
    "reports_router",
]

TITLES = {
    400: "Requête refusée",
    401: "Connexion requise",
    403: "Accès refusé",
    404: "Introuvable",
    409: "Conflit",
    422: "Données invalides",
    429: "Trop de tentatives",
}


def error_page(request: Request, status: int, detail: object) -> HTMLResponse:
    text = detail if isinstance(detail, str) else "La demande n'a pas pu être traitée."
    title = TITLES.get(status, "Erreur")
    return page(request, "error.html", {"title": title, "detail": text}, status)


class EmptyFiltersDropped:
    """Pure ASGI middleware: on the dashboard's pages, a query parameter left empty is absent.
    A filter form sends its 'all' choice as an empty value, which a route reading a kind, a
    status or a number would refuse (422) and a text filter would take as "equal to ''"."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"") if scope["type"] == "http" else b""
        if query and is_web(scope["path"]):
            parts = query.split(b"&")
            kept = [p for p in parts if p.partition(b"=")[2]]
            if len(kept) != len(parts):
                scope = {**scope, "query_string": b"&".join(kept)}
        await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(EmptyFiltersDropped)

    @app.get("/", include_in_schema=False, openapi_extra={"x-roles": ["public"]})
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=303)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = f"/login?next={quote(target)}" if request.method == "GET" else "/login"
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": login})
        return RedirectResponse(login, status_code=303)

    @app.exception_handler(PasswordFirst)
    async def password_first(_request: Request, _exc: PasswordFirst) -> Response:
        return RedirectResponse("/password", status_code=303)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if is_web(request.url.path):
            return error_page(request, 422, "Paramètres invalides : " + "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ()))} : {e.get('msg', '')}"
                for e in exc.errors()[:5]
            )[:500])  # fmt: skip
        return await validation_error(request, exc)
