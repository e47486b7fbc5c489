"""Request bodies: how large they may be, and how strict their JSON must be.

The byte limits are FastAPI's own `max_body_size`: a default for the whole application
(`MAX_JSON_BODY`), raised on the routes that need more (/ingest). FastAPI refuses a body with
413 by its Content-Length and by the bytes counted as they stream in (chunked transfer
included), before anything is buffered whole, and before authentication: the body is read
before a route's dependencies run.

`StrictJSON` refuses what Python's json module takes but no stored value may hold: NaN and
Infinity (an answer holding one cannot be serialised back) and lone surrogates such as
`\\ud800` (they have no UTF-8 form: SQLite and PostgreSQL refuse them). It checks the body
with orjson as the route reads it, so each route's byte limit still applies first.
"""

from __future__ import annotations

import orjson
from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_JSON_BODY = 2**20  # bytes: the default for every route


class StrictJSON:
    """Pure ASGI middleware: a JSON body that orjson refuses answers 422, with orjson's reason
    and position (never the body itself)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _plain_json(Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def checked() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body = b"".join(chunks)
                    chunks.clear()
                    if body.strip():
                        _check(body)
            return message

        await self.app(scope, checked, send)


def _plain_json(headers: Headers) -> bool:
    """A body FastAPI would parse as JSON (a compressed one is the route's business)."""
    if headers.get("content-encoding", "identity").lower() != "identity":
        return False
    kind = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def _check(body: bytes) -> None:
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        error = {
            "type": "json_invalid",
            "loc": ["body", exc.pos],
            "msg": f"not valid JSON (NaN, Infinity and lone surrogates are refused): {exc.msg}",
        }
        raise HTTPException(422, detail=[error]) from None
