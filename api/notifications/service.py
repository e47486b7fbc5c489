"""Raising, resolving and reading notifications."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.deps import Principal
from api.notifications.models import Notification


def open_for(*, session: Session, kind: str) -> dict[str, Notification]:
    """The open notifications of one kind, by subject."""
    query = select(Notification).where(
        Notification.kind == kind, Notification.resolved_at.is_(None)
    )
    return {n.subject: n for n in session.scalars(query)}


def raise_(
    *, session: Session, kind: str, subject: str, finess: str, message: str, at: datetime
) -> Notification:
    item = Notification(
        id=str(uuid.uuid4()),
        establishment_finess=finess,
        kind=kind,
        subject=subject,
        message=message,
        created_at=at,
    )
    session.add(item)
    return item


def page(
    *,
    session: Session,
    who: Principal,
    open_only: bool | None,
    kind: str | None,
    offset: int,
    limit: int,
) -> tuple[list[Notification], int]:
    query = select(Notification)
    if who.scope is not None:
        query = query.where(Notification.establishment_finess == who.scope)
    if open_only is not None:
        resolved = Notification.resolved_at
        query = query.where(resolved.is_(None) if open_only else resolved.is_not(None))
    if kind is not None:
        query = query.where(Notification.kind == kind)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(
        query.order_by(Notification.created_at.desc(), Notification.id).offset(offset).limit(limit)
    )
    return list(items), total
