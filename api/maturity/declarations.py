"""What an establishment declares for its scores: its profile, its answers (with proof
files), its exceptions; and the CERT's review of answers. Every declaration is a new row,
so the history stays; routes audit each read and write.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.agents.models import as_utc, utcnow
from api.errors import Invalid, NotFound
from api.maturity.framework import PROFILE_FLAGS, Control, default
from api.maturity.models import Answer, Exception_, Profile, Proof
from api.maturity.scoring import CHOICES

MAX_PROOF = 10 * 1024 * 1024
# What proof files may be, told by their first bytes rather than by what the client says.
PROOF_TYPES = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": (b"PK\x03\x04",),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (b"PK\x03\x04",),
    "text/plain": (),
    "text/csv": (),
}
MAX_EXCEPTION_DAYS = 366


def control(control_id: str) -> Control:
    found = default().control(control_id)
    if found is None:
        raise NotFound(f"no control {control_id} in framework {default().version}")
    return found


# --- profile --------------------------------------------------------------------------------


def current_profile(session: Session, finess: str) -> Profile | None:
    query = (
        select(Profile)
        .where(Profile.finess == finess)
        .order_by(Profile.declared_at.desc(), Profile.id.desc())
    )
    return session.scalars(query.limit(1)).first()


def profile_history(session: Session, finess: str) -> list[Profile]:
    query = select(Profile).where(Profile.finess == finess)
    return list(session.scalars(query.order_by(Profile.declared_at, Profile.id)))


def declare_profile(
    session: Session, finess: str, who: str, data: dict[str, Any]
) -> tuple[Profile, dict[str, tuple[Any, Any]]]:
    """A new declaration; returns it and what changed (field: (before, after))."""
    unknown = set(data["flags"]) - set(PROFILE_FLAGS)
    if unknown:
        known = ", ".join(PROFILE_FLAGS)
        raise Invalid(f"unknown profile flag(s) {', '.join(sorted(unknown))}; known: {known}")
    before = current_profile(session, finess)
    row = Profile(
        finess=finess,
        flags=dict(sorted(data["flags"].items())),
        sites=sorted(set(data["sites"])),
        expected_sources=sorted(set(data["expected_sources"])),
        server_hosts=sorted(set(data["server_hosts"])),
        admin_hosts=sorted(set(data["admin_hosts"])),
        resolvers=sorted(set(data["resolvers"])),
        reason=data["reason"],
        declared_by=who,
        declared_at=utcnow(),
    )
    session.add(row)
    session.flush()
    changes = {}
    for name in ("flags", "sites", "expected_sources", "server_hosts", "admin_hosts", "resolvers"):
        old = getattr(before, name) if before is not None else None
        if old != getattr(row, name):
            changes[name] = (old, getattr(row, name))
    return row, changes


# --- proofs ---------------------------------------------------------------------------------


def add_proof(
    session: Session,
    finess: str,
    control_id: str,
    who: str,
    *,
    filename: str,
    media_type: str,
    content: bytes,
) -> Proof:
    control(control_id)
    media_type = media_type.split(";")[0].strip().lower()
    if media_type not in PROOF_TYPES:
        raise Invalid(f"proof type {media_type!r} refused; accepted: {', '.join(PROOF_TYPES)}")
    if not content:
        raise Invalid("the proof file is empty")
    if len(content) > MAX_PROOF:
        raise Invalid(f"the proof file is {len(content)} bytes; at most {MAX_PROOF}")
    magic = PROOF_TYPES[media_type]
    if magic and not content.startswith(magic):
        raise Invalid(f"the file does not start as a {media_type} file does")
    if not magic:
        try:
            content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Invalid(f"a {media_type} proof is UTF-8 text: {exc}") from exc
    name = filename.strip().replace("/", "_").replace("\\", "_")[:200]
    if not name:
        raise Invalid("the proof needs a file name")
    proof = Proof(
        id=str(uuid.uuid4()),
        finess=finess,
        control_id=control_id,
        filename=name,
        media_type=media_type,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
        uploaded_by=who,
        uploaded_at=utcnow(),
    )
    session.add(proof)
    session.flush()
    return proof


def get_proof(session: Session, finess: str, proof_id: str) -> Proof:
    proof = session.get(Proof, proof_id)
    if proof is None or proof.finess != finess:  # another's proof answers as an absent one
        raise NotFound(f"no proof {proof_id}")
    return proof


# --- answers --------------------------------------------------------------------------------


def answer(
    session: Session, finess: str, control_id: str, who: str, data: dict[str, Any], today: date
) -> Answer:
    found = control(control_id)
    question = found.evidence.question
    if question is None:
        raise Invalid(f"{control_id} is scored from collected evidence only: it asks nothing")
    value = _value(question.type, data, today)
    proof_id = data.get("proof_id")
    if proof_id is not None:
        proof = get_proof(session, finess, proof_id)
        if proof.control_id != control_id:
            raise Invalid(f"proof {proof_id} was attached to {proof.control_id}, not {control_id}")
    row = Answer(
        finess=finess,
        control_id=control_id,
        value=value,
        comment=data.get("comment") or "",
        proof_id=proof_id,
        declared_by=who,
        declared_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def _value(kind: str, data: dict[str, Any], today: date) -> dict[str, Any]:
    given = [k for k in ("choice", "date", "number") if data.get(k) is not None]
    if given != [{"scale": "choice"}.get(kind, kind)]:
        expected = {
            "scale": "choice (" + ", ".join(CHOICES) + ")",
            "date": "date",
            "number": "number",
        }[kind]
        raise Invalid(f"this question is answered with {expected} only")
    if kind == "scale":
        if data["choice"] not in CHOICES:
            raise Invalid(f"choice is one of {', '.join(CHOICES)}")
        return {"choice": data["choice"]}
    if kind == "date":
        when = data["date"]
        if when > today:
            raise Invalid(f"date {when} is in the future")
        return {"date": when.isoformat()}
    return {"number": float(data["number"])}


def answers(session: Session, finess: str, control_id: str) -> list[Answer]:
    control(control_id)
    query = select(Answer).where(Answer.finess == finess, Answer.control_id == control_id)
    return list(session.scalars(query.order_by(Answer.declared_at, Answer.id)))


def review(session: Session, finess: str, control_id: str, who: str, verdict: str) -> Answer:
    """The CERT's review of the establishment's current answer (proven or rejected)."""
    history = answers(session, finess, control_id)
    if not history:
        raise NotFound(f"{finess} has not answered {control_id}")
    current = history[-1]
    if current.reviewed_at is not None:
        raise Invalid(
            f"answer {current.id} was reviewed already ({current.review}): "
            "a new answer can be reviewed"
        )
    current.review = verdict
    current.reviewed_by = who
    current.reviewed_at = utcnow()
    session.flush()
    return current


# --- exceptions -----------------------------------------------------------------------------


def add_exception(
    session: Session, finess: str, who: str, data: dict[str, Any], now: datetime
) -> Exception_:
    control(data["control"])
    expires = as_utc(data["expires_at"])
    if expires <= now:
        raise Invalid("expires_at is in the past")
    if expires > now + timedelta(days=MAX_EXCEPTION_DAYS):
        raise Invalid(f"an exception lasts at most {MAX_EXCEPTION_DAYS} days: review it yearly")
    row = Exception_(
        id=str(uuid.uuid4()),
        finess=finess,
        control_id=data["control"],
        kind=data["kind"],
        reason=data["reason"],
        approver=data["approver"],
        created_by=who,
        created_at=utcnow(),
        expires_at=expires,
    )
    session.add(row)
    session.flush()
    return row


def exceptions(session: Session, finess: str) -> list[Exception_]:
    query = select(Exception_).where(Exception_.finess == finess)
    return list(session.scalars(query.order_by(Exception_.created_at, Exception_.id)))


def revoke_exception(session: Session, finess: str, exception_id: str, who: str) -> Exception_:
    row = session.get(Exception_, exception_id)
    if row is None or row.finess != finess:
        raise NotFound(f"no exception {exception_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        row.revoked_by = who
        session.flush()
    return row
