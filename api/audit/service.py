from __future__ import annotations

from sqlalchemy.orm import Session

from api.audit.models import AuditEntry
from api.deps import Principal


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
