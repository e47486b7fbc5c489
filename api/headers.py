"""Headers every answer carries: not cached, not sniffed, not framed, no referrer.

Answers hold login tokens and health-sector data: `Cache-Control: no-store` unless a route
says otherwise. JSON answers get a Content-Security-Policy that allows nothing; the API
documentation pages (served in development only, see `create_app`) load Swagger UI and ReDoc
from their CDN with an inline start-up script, and get a policy that allows just that.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
    "https://cdn.redoc.ly; connect-src 'self'; worker-src blob:; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
# The dashboard: its own scripts, styles and images only; no inline script or style, no eval.
WEB_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
WEB_PREFIXES = ("/ui", "/login", "/logout", "/password", "/static/")


def is_web(path: str) -> bool:
    """A path of the dashboard (HTML for people), not of the JSON API."""
    return path == "/" or path.startswith(WEB_PREFIXES)


_ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class SecurityHeaders:
    """Pure ASGI middleware adding the headers above to every HTTP answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        policy = DOCS_CSP if path in DOCS_PATHS else WEB_CSP if is_web(path) else API_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _ALWAYS.items():
                    headers[name] = value
                headers["Content-Security-Policy"] = policy
                if policy is WEB_CSP:
                    # With no-referrer, browsers send `Origin: null` on the dashboard's own
                    # form posts, and the CSRF check compares that origin to ours.
                    headers["Referrer-Policy"] = "same-origin"
                    if scope.get("scheme") == "https":
                        headers["Strict-Transport-Security"] = "max-age=31536000"
                headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)
