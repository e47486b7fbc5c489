"""Accounts: creation, login, password changes and resets, role and establishment changes,
disable/enable, logout, and the first admin.

Errors (under `api.errors`; codes are stable):

    AuthError (401)
    └── LoginFailed          unauthorized: wrong name or password (the same words for both)
    WrongPassword (403)      wrong_password: the current password given to change it is wrong
    LastAdmin (409)          last_admin: the change would leave no active admin
    WeakPassword (422)       weak_password (api.auth.passwords)
    HashingBusy (503)        busy (api.auth.passwords)
    TooManyAttempts (429)    too_many_attempts (api.auth.throttle)

Every change that takes rights away raises the user's `token_version` (api.auth.tokens), which
revokes their login tokens at once. Disabling a user, or changing their role or establishment,
also revokes the API keys they created: they saw those keys in clear, and a key must not keep
the rights its creator lost (the automation behind a key gets a new one from an admin).
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.agents.models import utcnow
from api.apikeys import service as apikeys
from api.auth import passwords, throttle
from api.auth.models import User
from api.auth.passwords import check_strength
from api.errors import AuthError, Conflict, Invalid, NotFound, VigieServiceError
from api.establishments.models import Establishment
from api.roles import Role

FIRST_ADMIN = "admin"


class LoginFailed(AuthError):
    pass


class WrongPassword(VigieServiceError):
    status = 403
    code = "wrong_password"


class LastAdmin(Conflict):
    code = "last_admin"


def _establishment(session: Session, role: Role, establishment: str | None) -> str | None:
    """The FINESS an account of `role` belongs to (None for national roles)."""
    if role is not Role.ESTABLISHMENT:
        if establishment:
            raise Invalid(f"a {role} account is national: it takes no establishment")
        return None
    if not establishment:
        raise Invalid("an establishment user needs the FINESS of its establishment")
    finess = establishment.replace(" ", "").strip().upper()
    if session.get(Establishment, finess) is None:
        raise Invalid(f"no establishment {establishment!r} in the registry")
    return finess


def create_user(
    *,
    session: Session,
    username: str,
    password: str,
    role: Role,
    establishment: str | None = None,
    must_change_password: bool = False,
) -> User:
    if role is Role.AGENT:
        raise Invalid("agents get their credentials by enrolling, not as users")
    finess = _establishment(session, role, establishment)
    check_strength(password, username=username)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username} already exists")
    user = User(
        username=username,
        password_hash=passwords.hash_password(password),
        role=str(role),
        establishment_finess=finess,
        must_change_password=must_change_password,
        token_version=0,
        active=True,
    )
    try:  # two creations of one name at once: the loser gets 409, the transaction goes on
        with session.begin_nested():
            session.add(user)
            session.flush()
    except IntegrityError as exc:
        raise Conflict(f"user {username} already exists") from exc
    return user


def login(
    *, session: Session, username: str, password: str, address: str | None, now: datetime
) -> User:
    """The user, or an error. A failure is counted (and blocks after a few) in `session`: the
    caller commits it even though the login is refused."""
    throttle.check(session=session, username=username, address=address, now=now)
    user = session.scalar(select(User).where(User.username == username))
    # Unknown users are checked against a dummy hash: the same time as a known one.
    matches = passwords.verify(user.password_hash if user else None, password)
    if user is None or not matches or not user.active:
        throttle.failed(session=session, username=username, address=address, now=now)
        raise LoginFailed("wrong user name or password")
    throttle.succeeded(session=session, username=username)
    return user


def get_user(*, session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username}")
    return user


def listing(*, session: Session, offset: int, limit: int) -> tuple[list[User], int]:
    total = session.scalar(select(func.count()).select_from(User)) or 0
    users = session.scalars(select(User).order_by(User.username).offset(offset).limit(limit))
    return list(users), total


def revoke_tokens(user: User) -> None:
    """Every login token (and session) of `user` is refused from now on."""
    user.token_version += 1


def _set_password(user: User, password: str, *, must_change: bool) -> None:
    user.password_hash = passwords.hash_password(password)
    user.must_change_password = must_change
    user.password_changed_at = utcnow()
    revoke_tokens(user)


def change_password(
    *,
    session: Session,
    username: str,
    current: str,
    new: str,
    address: str | None,
    now: datetime,
) -> User:
    """Self-service: the current password, then a strong new one. Wrong current passwords
    count as failed logins (a stolen token must not become a password oracle)."""
    throttle.check(session=session, username=username, address=address, now=now)
    user = session.scalar(select(User).where(User.username == username, User.active.is_(True)))
    if user is None:
        raise WrongPassword("an API key has no password: log in as a person")
    if not passwords.verify(user.password_hash, current):
        throttle.failed(session=session, username=username, address=address, now=now)
        raise WrongPassword("the current password is wrong")
    if new == current:
        raise passwords.WeakPassword("the new password is the current one")
    check_strength(new, username=username)
    _set_password(user, new, must_change=False)
    session.flush()
    return user


def reset_password(*, session: Session, username: str, password: str) -> User:
    """An admin sets a temporary password; the user must change it at their next login."""
    user = get_user(session=session, username=username)
    check_strength(password, username=username)
    _set_password(user, password, must_change=True)
    session.flush()
    return user


def logout(*, session: Session, username: str) -> None:
    user = session.scalar(select(User).where(User.username == username))
    if user is not None:
        revoke_tokens(user)
        session.flush()


def _other_active_admins(session: Session, user: User) -> int:
    # Locked on PostgreSQL: two admins demoting each other at once cannot both pass the check.
    others = session.scalars(
        select(User.id)
        .where(User.role == str(Role.ADMIN), User.active.is_(True), User.id != user.id)
        .with_for_update()
    )
    return len(list(others))


def update_user(
    *,
    session: Session,
    username: str,
    by: str,
    role: Role | None = None,
    establishment: str | None = None,
    establishment_given: bool = False,
    active: bool | None = None,
) -> tuple[User, list[str]]:
    """Change role, establishment or state; returns the user and what changed."""
    user = get_user(session=session, username=username)
    new_role = role or Role(user.role)
    if new_role is Role.AGENT:
        raise Invalid("agents get their credentials by enrolling, not as users")
    wanted = establishment if establishment_given else user.establishment_finess
    if new_role is not Role.ESTABLISHMENT and not establishment_given:
        wanted = None
    finess = _establishment(session, new_role, wanted)
    new_active = user.active if active is None else active
    changed = [
        name
        for name, before, after in (
            ("role", user.role, str(new_role)),
            ("establishment", user.establishment_finess, finess),
            ("active", user.active, new_active),
        )
        if before != after
    ]
    if not changed:
        return user, []
    loses_admin = (
        user.role == Role.ADMIN and user.active and (new_role is not Role.ADMIN or not new_active)
    )
    if loses_admin and _other_active_admins(session, user) == 0:
        raise LastAdmin(f"{username} is the last active admin: make another admin first")
    user.role, user.establishment_finess, user.active = str(new_role), finess, new_active
    if changed != ["active"] or not new_active:  # enabling takes nothing away
        revoke_tokens(user)
        apikeys.revoke_created_by(session=session, username=username, by=by)
    session.flush()
    return user, changed


def ensure_admin(*, session: Session) -> str | None:
    """On first start, create `admin` with a random password and return that password. It
    must be changed at the first login."""
    if session.scalar(select(User).where(User.role == str(Role.ADMIN))) is not None:
        return None
    password = secrets.token_urlsafe(18)
    create_user(
        session=session,
        username=FIRST_ADMIN,
        password=password,
        role=Role.ADMIN,
        must_change_password=True,
    )
    return password
