"""Passwords (argon2), login tokens (signed JWT with a short life), the first admin."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth.models import User
from api.deps import Principal
from api.errors import AuthError, Conflict, Invalid
from api.establishments.models import Establishment
from api.roles import Role
from api.settings import Settings

_hasher = PasswordHasher()
_ALGORITHM = "HS256"


def create_user(
    *, session: Session, username: str, password: str, role: Role, establishment: str | None = None
) -> User:
    if role is Role.AGENT:
        raise Invalid("agents get their credentials by enrolling, not as users")
    if role is Role.ESTABLISHMENT and not establishment:
        raise Invalid("an establishment user needs the FINESS of its establishment")
    if role is Role.ESTABLISHMENT and establishment is not None:
        if session.get(Establishment, establishment.strip().upper()) is None:
            raise Invalid(f"no establishment {establishment!r} in the registry")
        establishment = establishment.strip().upper()
    if len(password) < 12:
        raise Invalid("passwords have at least 12 characters")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise Conflict(f"user {username} already exists")
    user = User(
        username=username,
        password_hash=_hasher.hash(password),
        role=str(role),
        establishment_finess=establishment if role is Role.ESTABLISHMENT else None,
    )
    session.add(user)
    session.flush()
    return user


def authenticate(*, session: Session, username: str, password: str) -> User:
    user = session.scalar(select(User).where(User.username == username, User.active.is_(True)))
    try:
        if user is None or not _hasher.verify(user.password_hash, password):
            raise AuthError("wrong user name or password")
    except (VerificationError, InvalidHashError) as exc:
        raise AuthError("wrong user name or password") from exc
    return user


def issue_token(user: User, settings: Settings) -> tuple[str, int]:
    lifetime = settings.token_minutes * 60
    claims = {
        "sub": user.username,
        "role": user.role,
        "est": user.establishment_finess,
        "exp": datetime.now(UTC) + timedelta(seconds=lifetime),
    }
    return jwt.encode(claims, settings.secret_key, algorithm=_ALGORITHM), lifetime


def principal_from_token(token: str, settings: Settings) -> Principal:
    try:
        claims = jwt.decode(token, settings.secret_key, algorithms=[_ALGORITHM])
    except jwt.PyJWTError as exc:
        raise HTTPException(
            401, f"invalid token: {exc}", headers={"WWW-Authenticate": "Bearer"}
        ) from exc
    return Principal(claims["sub"], claims["role"], claims.get("est"))


def ensure_admin(*, session: Session) -> str | None:
    """On first start, create `admin` with a random password and return that password."""
    if session.scalar(select(User).where(User.role == str(Role.ADMIN))) is not None:
        return None
    password = secrets.token_urlsafe(18)
    create_user(session=session, username="admin", password=password, role=Role.ADMIN)
    return password
