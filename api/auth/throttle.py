"""Login back-off, per account name and per client address, kept in the database.

After `threshold` failures the key is blocked for `_BASE` seconds, doubling with each further
failure up to `_CAP`; an attempt while blocked is refused (429 with Retry-After) before any
password check, and is not counted (a guesser cannot make the block last for ever by knocking).
Failures older than `_WINDOW` are forgotten. A success clears the account's count, not the
address's (a guesser with one good account must not reset its address by logging in).

Names are counted whether the account exists or not, so that blocking says nothing about
which names exist. An address gets more failures than an account: a hospital's users may all
come through one address.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.agents.models import as_utc
from api.auth.models import LoginFailure
from api.errors import VigieServiceError

ACCOUNT_THRESHOLD = 5
ADDRESS_THRESHOLD = 20
_BASE = timedelta(seconds=30)
_CAP = timedelta(minutes=15)
_WINDOW = timedelta(minutes=30)
_MAX_DOUBLINGS = 8  # 30 s x 2^8 is past the cap already


class TooManyAttempts(VigieServiceError):
    status = 429
    code = "too_many_attempts"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


def keys(username: str, address: str | None) -> list[tuple[str, int]]:
    """The counters a login attempt meets, with their thresholds."""
    found = [(f"user:{username.casefold()}", ACCOUNT_THRESHOLD)]
    if address:
        found.append((f"addr:{address}", ADDRESS_THRESHOLD))
    return found


def check(*, session: Session, username: str, address: str | None, now: datetime) -> None:
    """`TooManyAttempts` while the account name or the address is blocked."""
    wait = timedelta(0)
    for key, _ in keys(username, address):
        row = session.get(LoginFailure, key)
        if row is not None and row.blocked_until is not None:
            wait = max(wait, as_utc(row.blocked_until) - now)
    if wait > timedelta(0):
        seconds = int(wait.total_seconds()) + 1
        raise TooManyAttempts(
            f"too many failed logins: try again in {seconds} seconds", retry_after=seconds
        )


def failed(*, session: Session, username: str, address: str | None, now: datetime) -> None:
    """Count one failure on the account name and the address."""
    session.execute(
        delete(LoginFailure)
        .where(
            LoginFailure.last_failure_at < now - _WINDOW,
            or_(LoginFailure.blocked_until.is_(None), LoginFailure.blocked_until < now),
        )
        # Rows read by `check` leave the session too (SQLite's naive datetimes cannot be
        # compared in Python with aware ones, hence no in-session evaluation).
        .execution_options(synchronize_session="fetch")
    )
    for key, threshold in keys(username, address):
        for _ in range(2):  # a concurrent first failure on the same key: count on its row
            try:
                with session.begin_nested():
                    _count(session, key, threshold, now)
                break
            except IntegrityError:
                continue


def _count(session: Session, key: str, threshold: int, now: datetime) -> None:
    row = session.get(LoginFailure, key, with_for_update=True, populate_existing=True)
    if row is None:
        row = LoginFailure(key=key, failures=0, last_failure_at=now)
        session.add(row)
    elif as_utc(row.last_failure_at) < now - _WINDOW:
        row.failures = 0
    row.failures += 1
    row.last_failure_at = now
    if row.failures >= threshold:
        doublings = min(row.failures - threshold, _MAX_DOUBLINGS)
        row.blocked_until = now + min(_BASE * 2**doublings, _CAP)
    session.flush()


def succeeded(*, session: Session, username: str) -> None:
    key = f"user:{username.casefold()}"
    session.execute(
        delete(LoginFailure)
        .where(LoginFailure.key == key)
        .execution_options(synchronize_session="fetch")
    )
