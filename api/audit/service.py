"""Writing the audit log: who read or changed what, from which address.

List routes record what they answered (`detail`: the ids returned), not only the filter asked
for; a refused read of another establishment's object is recorded as `denied` in a transaction
of its own (the request's is rolled back).
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from api.audit import chain
from api.audit.models import AuditEntry
from api.deps import Principal, client_of
from api.errors import NotYours

_TARGET_LENGTH = 80


def record(
    *,
    session: Session,
    who: Principal,
    action: str,
    kind: str,
    target: str,
    client: str | None,
    detail: str | None = None,
) -> None:
    """Log a human's access; agents' machine traffic is not audited here."""
    if who.role == "agent":
        return
    _add(session, who.username, who.role, action, kind, target, client, detail)


def _add(
    session: Session,
    actor: str,
    role: str,
    action: str,
    kind: str,
    target: str,
    client: str | None,
    detail: str | None,
) -> None:
    chain.append(
        session,
        AuditEntry(
            actor=actor[:120],
            role=role[:20],
            action=action,
            target_kind=kind,
            target_id=target[:_TARGET_LENGTH],
            client=client,
            detail=detail,
        ),
    )


def record_request(
    request: Request,
    session: Session,
    who: Principal,
    action: str,
    kind: str,
    target: str,
    detail: str | None = None,
) -> None:
    """`record` for a route: the client's address taken from the request."""
    record(
        session=session,
        who=who,
        action=action,
        kind=kind,
        target=target,
        client=client_of(request),
        detail=detail,
    )


def returned(ids: Iterable[object]) -> str:
    """`detail` for a list: the ids it answered with ("" for none)."""
    return ",".join(str(i) for i in ids)


def record_list(
    request: Request, session: Session, who: Principal, kind: str, query: str, ids: Iterable[object]
) -> None:
    """A list read: the filter asked for as the target, what was returned as the detail."""
    record_request(request, session, who, "read", kind, query, returned(ids))


def record_login(
    *,
    session: Session,
    username: str,
    role: str,
    succeeded: bool,
    client: str | None,
    detail: str | None = None,
) -> None:
    """A login attempt (the name as typed when it failed: it may name nobody)."""
    action = "login" if succeeded else "login_failed"
    _add(session, username, role, action, "user", username, client, detail)


def record_denied(sessions: sessionmaker[Session], refused: NotYours, client: str | None) -> None:
    """A refused read of another establishment's object, agents' included."""
    with sessions() as session, session.begin():
        _add(
            session,
            refused.actor,
            refused.role,
            "denied",
            refused.kind,
            refused.target,
            client,
            None,
        )
