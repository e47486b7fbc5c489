"""Text a caller writes, on its way to PostgreSQL, which holds no NUL character in text: a NUL
in a title, a comment or a name made the write fail with a 500 (SQLite kept it). Refused up
front with 422 instead, in bodies (`NulFree`, the base of every input schema) and in paths and
query strings (`RefuseNulInURL`, as ids and filters reach queries too).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, field_validator
from starlette.types import ASGIApp, Receive, Scope, Send

NUL_MESSAGE = "NUL characters (\\u0000) are not allowed in text"


def has_nul(value: Any) -> bool:
    """Whether a NUL is in `value`: a string, or one within lists and dicts (keys included)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, list | tuple | set | frozenset):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
    return False


class NulFree(BaseModel):
    """An input schema: every field, whatever its type, is refused when it holds a NUL."""

    @field_validator("*", mode="after")
    @classmethod
    def _refuse_nul(cls, value: Any) -> Any:
        if has_nul(value):
            raise ValueError(NUL_MESSAGE)
        return value


class RefuseNulInURL:
    """Pure ASGI middleware: a path or query string holding a NUL (`%00`) answers 422."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")
        ):
            error = {"type": "value_error", "loc": ["url"], "msg": NUL_MESSAGE}
            answer = JSONResponse({"code": "invalid", "detail": [error]}, status_code=422)
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)
