"""Passwords: what is strong enough, and argon2 hashing under a bound.

Strength follows ANSSI's guidance on passwords (length and diversity of characters), and
refuses what a guesser tries first: common passwords, names and keyboard walks, as estimated by
zxcvbn (Dropbox's estimator; its 30,000 most common passwords ship with it).

argon2 uses 64 MiB for each hash or check. At most `CONCURRENT_HASHES` run at once in a process;
a caller that cannot get a slot within `_SLOT_WAIT` seconds gets `HashingBusy` (503) rather than
a place in an unbounded queue: the service's memory under a login flood stays near
idle + CONCURRENT_HASHES x 64 MiB. The bound belongs to the process, whatever app runs in it,
hence one semaphore for the module.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import zxcvbn
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from api.errors import Invalid, VigieServiceError

MIN_LENGTH = 12  # with three of the four kinds of characters
LONG_LENGTH = 16  # long enough to need no diversity
MIN_DISTINCT = 6  # "aaaaaaaaaaaaaaaa" is long and worthless
MIN_SCORE = 3  # zxcvbn: 3 = "safely unguessable" (about 10^8 guesses or more)
CONCURRENT_HASHES = 2
_SLOT_WAIT = 1.0
_SCORED_LENGTH = 72  # zxcvbn refuses longer inputs; the first 72 characters say enough

_hasher = PasswordHasher()
_slots = threading.BoundedSemaphore(CONCURRENT_HASHES)


class WeakPassword(Invalid):
    code = "weak_password"


class HashingBusy(VigieServiceError):
    status = 503
    code = "busy"


def check_strength(password: str, *, username: str = "") -> None:
    """`WeakPassword` with the reason, or nothing."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password has at least {MIN_LENGTH} characters")
    kinds = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if len(password) < LONG_LENGTH and kinds < 3:
        raise WeakPassword(
            f"a password of fewer than {LONG_LENGTH} characters mixes at least three of: "
            "lower case, upper case, digits, other characters"
        )
    if len(set(password)) < MIN_DISTINCT:
        raise WeakPassword(f"a password has at least {MIN_DISTINCT} different characters")
    if username and username.casefold() in password.casefold():
        raise WeakPassword("a password does not contain the user name")
    estimate = zxcvbn.zxcvbn(password[:_SCORED_LENGTH], user_inputs=[username, "vigie"])
    if estimate["score"] < MIN_SCORE:
        warning = estimate["feedback"]["warning"] or "it is too easy to guess"
        raise WeakPassword(f"this password is too easy to guess: {warning.rstrip('.')}")


@contextmanager
def _slot() -> Iterator[None]:
    if not _slots.acquire(timeout=_SLOT_WAIT):
        raise HashingBusy("too many logins at once: try again in a moment")
    try:
        yield
    finally:
        _slots.release()


def hash_password(password: str) -> str:
    with _slot():
        return _hasher.hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches; with no hash (unknown user), a check of the same cost
    against a dummy hash, so that a user name's existence does not show in the answer time."""
    with _slot():
        try:
            return _hasher.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False


@cache
def _dummy_hash() -> str:
    return _hasher.hash("no user has this password: it only costs the same time")
