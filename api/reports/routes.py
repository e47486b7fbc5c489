"""`/reports/...`: what auditors download (DESIGN.md, "Reports (contract)")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.audit.routes import AuditFilter
from api.audit.service import record_request
from api.deps import CurrentUser, SessionDep, allow
from api.errors import Invalid
from api.reports import auditlog
from api.reports.signing import ReportSigner
from api.roles import Role

router = APIRouter(prefix="/reports", tags=["reports"])


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
    extract = auditlog.build(session, found, signer)
    m = extract.manifest
    # Recorded after the extract is read: the download is not in its own file.
    span = f"{m['first_id']}-{m['last_id']} rows={m['rows']} sha256={m['csv']['sha256']}"
    record_request(request, session, who, "download", "audit", str(found) or "all", span)
    return Response(
        extract.data,
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="audit-log.zip"'},
    )


def _utc(moment: datetime | None) -> datetime | None:
    """In UTC, as the log keeps its times (a time without zone is taken as UTC)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
