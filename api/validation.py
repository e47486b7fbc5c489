"""The answer to a request that fails validation: short, and never an echo of the input.

FastAPI's default answer repeats each error's `input` (a 120 MB body came back whole, and a
password with it) and its `ctx`, and fails with a 500 on values JSON cannot carry (NaN, lone
surrogates). This one keeps `type`, `loc` and `msg`, cut short and made printable, for the
first `MAX_ERRORS` errors, and says how many more there were.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

MAX_ERRORS = 20
_MAX_LOC = 8  # parts of a location
_MAX_PART = 64  # characters of one part (a key of the caller's dict may be anything)
_MAX_MSG = 200


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    content: dict[str, Any] = {
        "code": "invalid",
        "detail": [_short(e) for e in errors[:MAX_ERRORS]],
    }
    if len(errors) > MAX_ERRORS:
        content["more_errors"] = len(errors) - MAX_ERRORS
    return JSONResponse(content, status_code=422)


def _short(error: Mapping[str, Any]) -> dict[str, Any]:
    loc = [_part(p) for p in list(error.get("loc", ()))[:_MAX_LOC]]
    return {
        "type": _text(error.get("type", "invalid"), _MAX_PART),
        "loc": loc,
        "msg": _text(error.get("msg", ""), _MAX_MSG),
    }


def _part(part: Any) -> int | str:
    if isinstance(part, int) and not isinstance(part, bool):
        return part
    return _text(part, _MAX_PART)


def _text(value: Any, limit: int) -> str:
    """At most `limit` characters, lone surrogates and NULs written as escapes."""
    text = str(value)[:limit].replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
