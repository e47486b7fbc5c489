from __future__ import annotations

from fastapi import Request
from sqlalchemy.orm import Session

from api.audit.models import AuditEntry
from api.deps import Principal, client_of


def record(
    *, session: Session, who: Principal, action: str, kind: str, target: str, client: str | None
) -> None:
    """Log a human's access; agents' machine traffic is not audited here."""
    if who.role == "agent":
        return
    session.add(
        AuditEntry(
            actor=who.username,
            role=who.role,
            action=action,
            target_kind=kind,
            target_id=target,
            client=client,
        )
    )


def record_request(
    request: Request, session: Session, who: Principal, action: str, kind: str, target: str
) -> None:
    """`record` for a route: the client's address taken from the request."""
    record(
        session=session, who=who, action=action, kind=kind, target=target, client=client_of(request)
    )
