"""Domain errors, mapped to HTTP answers with a stable `code` by one handler in `app.py`.

VigieServiceError        root
├── NotFound             404: absent, or not yours (the two are not told apart)
│   └── NotYours         404 too: another establishment's (audited as `denied`)
├── Forbidden            403: a role may call the route, not ask this of it
├── Conflict             409: already exists
├── Invalid              422: a value the domain refuses (bad FINESS, ...)
└── AuthError            401: bad credentials or token
"""

from __future__ import annotations


class VigieServiceError(Exception):
    status = 400
    code = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(VigieServiceError):
    status = 404
    code = "not_found"


class NotYours(NotFound):
    """Another establishment's object: answered like an absent one, but the refusal is
    recorded in the audit log (`denied`) with who asked for what."""

    def __init__(self, detail: str, *, actor: str, role: str, kind: str, target: str) -> None:
        super().__init__(detail)
        self.actor, self.role, self.kind, self.target = actor, role, kind, target


class Forbidden(VigieServiceError):
    """A question the caller's role may not ask (an establishment comparing establishments)."""

    status = 403
    code = "forbidden"


class Conflict(VigieServiceError):
    status = 409
    code = "conflict"


class Invalid(VigieServiceError):
    status = 422
    code = "invalid"


class AuthError(VigieServiceError):
    status = 401
    code = "unauthorized"
