"""`/reports/...`: what auditors download (DESIGN.md, "Reports (contract)")."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from api.audit.routes import AuditFilter
from api.audit.service import record_request
from api.deps import CurrentUser, Principal, SessionDep, allow
from api.errors import Forbidden, Invalid, NotFound
from api.reports import auditlog, catalogue, runs
from api.reports.catalogue import KINDS, MEDIA_TYPES
from api.reports.models import ReportRun
from api.reports.signing import ReportSigner
from api.roles import Role

router = APIRouter(prefix="/reports", tags=["reports"])

_READERS = (Role.AUDITOR, Role.CERT, Role.ADMIN, Role.ESTABLISHMENT)
# A report as of a moment still to come would change as it comes: refused beyond this margin.
_CLOCK_SKEW = timedelta(minutes=5)


@router.get("", **allow(*_READERS))
def list_kinds(who: CurrentUser) -> list[dict[str, Any]]:
    """The reports this caller may have (an establishment: its own maturity and registry)."""
    national = who.scope is None
    kinds = [catalogue.describe(k) for k in KINDS.values() if national or k.own]
    if who.role in (Role.AUDITOR, Role.ADMIN):
        kinds.append({"kind": "audit-log", "title": "Extrait signé du journal d'audit",
                      "formats": ["zip"], "establishment_own": False, "finess": "no",
                      "region": False})  # fmt: skip
    return kinds


@router.get("/runs", **allow(*_READERS))
def list_runs(
    session: SessionDep,
    who: CurrentUser,
    kind: Annotated[str | None, Query(max_length=30)] = None,
    finess: Annotated[str | None, Query(max_length=11)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    """Kept reports (the scheduled ones), latest first, with their parameters and sha256."""
    found = runs.listed(
        session, kind=kind, finess=finess, scope=who.scope, limit=limit, offset=offset
    )
    return [_run_json(r) for r in found]


@router.get(
    "/runs/{run_id}/file",
    **allow(*_READERS),
    response_class=Response,
    responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}}},
)
def get_run_file(request: Request, session: SessionDep, who: CurrentUser, run_id: int) -> Response:
    """A kept report again, byte for byte (its sha256 is in the listing)."""
    return deliver_kept(request, session, who, run_id)


def deliver_kept(request: Request, session: Session, who: Principal, run_id: int) -> Response:
    """A kept run's file for `who` (an establishment: its own only), audited. The dashboard
    calls it too."""
    run = session.get(ReportRun, run_id)
    if run is None:
        raise NotFound(f"no report run {run_id}")
    if who.scope is not None and run.finess != who.scope:
        raise who.not_yours(f"no report run {run_id}", kind="report", target=str(run_id))
    path = runs.kept_file(request.app.state.settings.data_dir, run)
    record_request(request, session, who, "download", "report", run.kind, _said(run))
    return FileResponse(
        path,
        media_type=MEDIA_TYPES[path.suffix.lstrip(".")],
        filename=run.filename,
    )


@router.get(
    "/audit-log",
    **allow(Role.AUDITOR, Role.ADMIN),
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
)
def audit_log_extract(
    request: Request,
    session: SessionDep,
    who: CurrentUser,
    since: Annotated[datetime | None, Query(description="from this time (included)")] = None,
    until: Annotated[datetime | None, Query(description="until this time (excluded)")] = None,
    actor: Annotated[str | None, Query(max_length=120, description="exact account name")] = None,
    action: Annotated[str | None, Query(max_length=20)] = None,
    kind: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """The audit log over a range as a signed ZIP (CSV, manifest, signature, public key).
    Give `until` for a file that does not change: without it the range runs to the last row."""
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since >= until:
        raise Invalid("since must come before until")
    found = AuditFilter(actor=actor, action=action, kind=kind, since=since, until=until)
    signer = ReportSigner.in_data_dir(request.app.state.settings.data_dir)
    out: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 (streamed)
    try:
        m = auditlog.build(session, found, signer, out)
        size = out.tell()
        out.seek(0)
    except BaseException:
        out.close()
        raise
    # Recorded after the extract is read: the download is not in its own file.
    span = f"{m['first_id']}-{m['last_id']} rows={m['rows']} sha256={m['csv']['sha256']}"
    record_request(request, session, who, "download", "audit", str(found) or "all", span)
    return StreamingResponse(
        _chunks(out),
        media_type="application/zip",
        headers={
            "Content-Disposition": 'attachment; filename="audit-log.zip"',
            "Content-Length": str(size),
        },
    )


def _utc(moment: datetime | None) -> datetime | None:
    """In UTC, as the log keeps its times (a time without zone is taken as UTC)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# Registered last: `/reports/audit-log` and `/reports/runs` above are not kinds.
@router.get(
    "/{kind}",
    **allow(*_READERS),
    response_class=Response,
    responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}}},
)
def get_report(
    request: Request,
    session: SessionDep,
    who: CurrentUser,
    kind: str,
    format: Annotated[str | None, Query(max_length=10, description="default: the first")] = None,
    as_of: Annotated[
        datetime | None, Query(description="the moment reported on (default: now)")
    ] = None,
    finess: Annotated[str | None, Query(max_length=11)] = None,
    region: Annotated[str | None, Query(max_length=60)] = None,
) -> Response:
    """Make a report (DESIGN.md, "Reports"): auditors, the CERT and admins have every report;
    an establishment its own maturity report and its own registry. The same `as_of` on the
    same data gives the same bytes. The download is in the audit log, with its sha256."""
    return deliver(request, session, who, kind, format, as_of, finess, region)


def deliver(
    request: Request,
    session: Session,
    who: Principal,
    kind: str,
    format: str | None,
    as_of: datetime | None,
    finess: str | None,
    region: str | None,
) -> Response:
    """A report made for `who` and streamed, audited with its sha256. The dashboard calls it
    too, with the person's principal: the same rules as the API."""
    now = datetime.now(UTC)
    moment = _utc(as_of) or now  # to the microsecond: what was made this second is in
    if moment > now + _CLOCK_SKEW:
        raise Invalid("as_of is in the future: a report says what was, not what will be")
    found = catalogue.kind_of(kind)
    if who.scope is not None:
        if not found.own:
            raise Forbidden(f"report {kind} covers establishments together: national roles only")
        if finess and finess.strip().upper() != who.scope:
            raise who.not_yours(f"no establishment {finess}", kind="report", target=finess)
        finess, region = who.scope, None
    params = catalogue.checked(kind, format, moment, finess, region)
    made = runs.make(session, params, trigger=f"api:{who.username}")
    record_request(request, session, who, "download", "report", kind, _said(made.run))
    return StreamingResponse(
        _chunks(made.file),
        media_type=MEDIA_TYPES[found.extension(params.format)],
        headers={
            "Content-Disposition": f'attachment; filename="{params.filename()}"',
            "Content-Length": str(made.run.size),
            "X-Vigie-Report-Sha256": made.run.sha256,
        },
    )


def _chunks(file: IO[bytes]) -> Iterator[bytes]:
    try:
        while chunk := file.read(1 << 16):
            yield chunk
    finally:
        file.close()


def _said(run: ReportRun) -> str:
    params = " ".join(f"{k}={v}" for k, v in run.params.items())
    return f"run={run.id} {params} sha256={run.sha256}"


def _run_json(run: ReportRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "kind": run.kind,
        "format": run.format,
        "as_of": _utc(run.as_of),
        "finess": run.finess,
        "region": run.region,
        "params": run.params,
        "versions": run.versions,
        "trigger": run.trigger,
        "created_at": _utc(run.created_at),
        "sha256": run.sha256,
        "size": run.size,
        "filename": run.filename,
    }
