"""Maturity scores. An establishment reads its own and writes its own declarations (profile,
answers, proofs, exceptions); the CERT reviews answers and reads everything; auditors and
admins read. Every read and write is in the audit log."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api.audit.service import record_request
from api.deps import CurrentUser, Principal, SessionDep, allow
from api.errors import Invalid, NotFound
from api.establishments import service as establishments
from api.maturity import declarations, peers, snapshots
from api.maturity.framework import default
from api.maturity.models import Snapshot
from api.maturity.schemas import (
    AnswerRead,
    AnswerWrite,
    ExceptionRead,
    ExceptionWrite,
    FrameworkRef,
    HistoryPoint,
    MaturityRead,
    PercentileRead,
    ProfileRead,
    ProfileWrite,
    ProofRead,
    Recompute,
    ReviewWrite,
)
from api.roles import Role

router = APIRouter(tags=["maturity"])
READERS = (Role.ESTABLISHMENT, Role.CERT, Role.AUDITOR, Role.ADMIN)
NATIONAL = (Role.CERT, Role.AUDITOR, Role.ADMIN)
OWN = "/establishments/{finess}/maturity"


def _mine(session: Any, who: Principal, finess: str) -> str:
    """The establishment's FINESS if the caller may see it (another's answers as absent)."""
    return establishments.get(session=session, who=who, finess=finess).finess


@router.get("/maturity/frameworks", **allow(*READERS))
def get_framework(request: Request, session: SessionDep, who: CurrentUser) -> dict[str, Any]:
    """The framework in force: domains, levels and controls with their references."""
    framework = default()
    record_request(request, session, who, "read", "maturity_framework", framework.version)
    return {**framework.model_dump(mode="json"), "digest": framework.digest}


@router.get(OWN, **allow(*READERS))
def get_maturity(
    finess: str,
    request: Request,
    session: SessionDep,
    who: CurrentUser,
    as_of: Annotated[date | None, Query(description="the day to read (default: latest)")] = None,
) -> MaturityRead:
    finess = _mine(session, who, finess)
    snapshot = snapshots.latest(session, finess, as_of)
    if snapshot is None:
        raise NotFound(
            f"no maturity snapshot for {finess}"
            + (f" on or before {as_of}" if as_of else "")
            + ": the job has not run"
        )
    record_request(request, session, who, "read", "maturity", finess, f"snapshot {snapshot.id}")
    return maturity_read(session, snapshot)


def maturity_read(
    session: Any, snapshot: Snapshot, known_at: datetime | None = None
) -> MaturityRead:
    """A snapshot as the API and the dashboard show it (`known_at`: peers as known then)."""
    doc = snapshot.result
    level = default().level_def(snapshot.level)
    return MaturityRead(
        finess=snapshot.finess,
        snapshot=snapshot.id,
        framework=FrameworkRef(
            id=snapshot.framework_id,
            version=snapshot.framework_version,
            digest=snapshot.framework_digest,
        ),
        as_of=snapshot.as_of,
        computed_at=snapshot.computed_at,
        score=snapshot.score,
        level=snapshot.level,
        level_name=level.name if level else "",
        coverage=snapshot.coverage,
        proof_ratio=snapshot.proof_ratio,
        inputs_digest=snapshot.inputs_digest,
        domains=doc["domains"],
        controls=doc["controls"],
        percentile=PercentileRead(**peers.percentile(session, snapshot, known_at)),
        fixes=doc["fixes"],
    )


@router.get(OWN + "/history", **allow(*READERS))
def get_history(
    finess: str,
    request: Request,
    session: SessionDep,
    who: CurrentUser,
    since: date | None = None,
) -> list[HistoryPoint]:
    """One point per day: the day's latest snapshot."""
    finess = _mine(session, who, finess)
    record_request(request, session, who, "read", "maturity_history", finess)
    return [
        HistoryPoint(
            as_of=s.as_of,
            snapshot=s.id,
            score=s.score,
            level=s.level,
            coverage=s.coverage,
            framework_version=s.framework_version,
        )
        for s in snapshots.history(session, finess, since)
    ]


@router.get(OWN + "/snapshots/{snapshot_id}/recompute", **allow(*READERS))
def recompute(
    finess: str, snapshot_id: str, request: Request, session: SessionDep, who: CurrentUser
) -> Recompute:
    """Score the snapshot's day again from what is stored now and compare the inputs digest."""
    finess = _mine(session, who, finess)
    snapshot = session.get(Snapshot, snapshot_id)
    if snapshot is None or snapshot.finess != finess:
        raise NotFound(f"no snapshot {snapshot_id}")
    record_request(
        request, session, who, "recompute", "maturity", finess, f"snapshot {snapshot_id}"
    )
    retention = request.app.state.settings.retention_days
    return Recompute(**snapshots.recompute(session, snapshot, retention))


@router.get("/maturity/stats", **allow(*NATIONAL))
def get_stats(
    request: Request,
    session: SessionDep,
    who: CurrentUser,
    by: Annotated[str, Query(pattern="^(kind|region)$")] = "kind",
    as_of: date | None = None,
) -> dict[str, Any]:
    """Scores and levels by kind or region, and nationally; groups under 5 suppressed."""
    day = as_of or datetime.now(UTC).date()
    record_request(request, session, who, "read", "maturity_stats", by, day.isoformat())
    return peers.stats(session, default().version, day, by)


# --- declarations ---------------------------------------------------------------------------


@router.get(OWN + "/profile", **allow(*READERS))
def get_profile(
    finess: str, request: Request, session: SessionDep, who: CurrentUser
) -> list[ProfileRead]:
    """Every declaration of the profile, oldest first (the last one holds)."""
    finess = _mine(session, who, finess)
    record_request(request, session, who, "read", "maturity_profile", finess)
    return [ProfileRead.model_validate(p) for p in declarations.profile_history(session, finess)]


@router.put(OWN + "/profile", **allow(Role.ESTABLISHMENT))
def put_profile(
    finess: str, body: ProfileWrite, request: Request, session: SessionDep, who: CurrentUser
) -> ProfileRead:
    """Declare the context that makes controls applicable (audited, with what changed)."""
    finess = _mine(session, who, finess)
    row, changes = declarations.declare_profile(session, finess, who.username, body.model_dump())
    said = "; ".join(f"{k}: {before!r} -> {after!r}" for k, (before, after) in changes.items())
    record_request(
        request,
        session,
        who,
        "declare",
        "maturity_profile",
        finess,
        f"{said or 'no change'} (reason: {body.reason})"[:2000],
    )
    return ProfileRead.model_validate(row)


@router.post(
    OWN + "/proofs",
    status_code=201,
    max_body_size=declarations.MAX_PROOF + 1,
    **allow(Role.ESTABLISHMENT),
)
async def post_proof(
    finess: str,
    request: Request,
    session: SessionDep,
    who: CurrentUser,
    control: Annotated[str, Query(pattern=r"^[A-Z]{2,5}-[0-9]{2}$")],
    filename: Annotated[str, Query(min_length=1, max_length=200)],
) -> ProofRead:
    """Attach a proof file (the body, as is; its Content-Type says what it is)."""
    content = await request.body()
    finess = _mine(session, who, finess)
    proof = declarations.add_proof(
        session,
        finess,
        control,
        who.username,
        filename=filename,
        media_type=request.headers.get("content-type", ""),
        content=content,
    )
    record_request(
        request,
        session,
        who,
        "create",
        "maturity_proof",
        finess,
        f"{proof.id} {control} sha256 {proof.sha256}",
    )
    return ProofRead.model_validate(proof)


@router.get(OWN + "/proofs/{proof_id}", **allow(*READERS))
def get_proof(
    finess: str, proof_id: str, request: Request, session: SessionDep, who: CurrentUser
) -> Response:
    finess = _mine(session, who, finess)
    proof = declarations.get_proof(session, finess, proof_id)
    record_request(request, session, who, "download", "maturity_proof", finess, proof.id)
    return Response(
        proof.content,
        media_type=proof.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{_ascii(proof.filename)}"',
            "X-Content-SHA256": proof.sha256,
        },
    )


def _ascii(name: str) -> str:
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)


@router.put(OWN + "/answers/{control_id}", **allow(Role.ESTABLISHMENT))
def put_answer(
    finess: str,
    control_id: str,
    body: AnswerWrite,
    request: Request,
    session: SessionDep,
    who: CurrentUser,
) -> AnswerRead:
    """Answer a control's question (a new answer; the history stays)."""
    finess = _mine(session, who, finess)
    today = datetime.now(UTC).date()
    row = declarations.answer(session, finess, control_id, who.username, body.model_dump(), today)
    record_request(
        request,
        session,
        who,
        "answer",
        "maturity_answer",
        finess,
        f"{control_id} {row.value} proof {row.proof_id}",
    )
    return AnswerRead.model_validate(row)


@router.get(OWN + "/answers/{control_id}", **allow(*READERS))
def get_answers(
    finess: str, control_id: str, request: Request, session: SessionDep, who: CurrentUser
) -> list[AnswerRead]:
    finess = _mine(session, who, finess)
    rows = declarations.answers(session, finess, control_id)
    record_request(request, session, who, "read", "maturity_answer", finess, control_id)
    return [AnswerRead.model_validate(a) for a in rows]


@router.post(OWN + "/answers/{control_id}/review", **allow(Role.CERT))
def post_review(
    finess: str,
    control_id: str,
    body: ReviewWrite,
    request: Request,
    session: SessionDep,
    who: CurrentUser,
) -> AnswerRead:
    """The CERT's review of the current answer: proven, or rejected."""
    finess = _mine(session, who, finess)
    row = declarations.review(session, finess, control_id, who.username, body.review)
    record_request(
        request,
        session,
        who,
        "review",
        "maturity_answer",
        finess,
        f"{control_id} answer {row.id}: {body.review}",
    )
    return AnswerRead.model_validate(row)


@router.post(OWN + "/exceptions", status_code=201, **allow(Role.ESTABLISHMENT))
def post_exception(
    finess: str, body: ExceptionWrite, request: Request, session: SessionDep, who: CurrentUser
) -> ExceptionRead:
    """Accept a control's risk, or declare a compensating measure, until a date."""
    finess = _mine(session, who, finess)
    if body.expires_at.tzinfo is None:
        raise Invalid("expires_at needs a time zone, e.g. 2027-06-30T00:00:00Z")
    row = declarations.add_exception(
        session, finess, who.username, body.model_dump(), datetime.now(UTC)
    )
    record_request(
        request,
        session,
        who,
        "create",
        "maturity_exception",
        finess,
        f"{row.id} {row.control_id} {row.kind} approved by {row.approver} until "
        f"{row.expires_at:%Y-%m-%d}",
    )
    return ExceptionRead.model_validate(row)


@router.get(OWN + "/exceptions", **allow(*READERS))
def get_exceptions(
    finess: str, request: Request, session: SessionDep, who: CurrentUser
) -> list[ExceptionRead]:
    finess = _mine(session, who, finess)
    record_request(request, session, who, "read", "maturity_exception", finess)
    return [ExceptionRead.model_validate(x) for x in declarations.exceptions(session, finess)]


@router.post(OWN + "/exceptions/{exception_id}/revoke", **allow(Role.ESTABLISHMENT, Role.CERT))
def revoke_exception(
    finess: str, exception_id: str, request: Request, session: SessionDep, who: CurrentUser
) -> ExceptionRead:
    finess = _mine(session, who, finess)
    row = declarations.revoke_exception(session, finess, exception_id, who.username)
    record_request(request, session, who, "revoke", "maturity_exception", finess, exception_id)
    return ExceptionRead.model_validate(row)
