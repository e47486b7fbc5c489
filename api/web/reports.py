"""The dashboard's reports page: the reports a person may have, made on demand with the same
rules and audit as `GET /reports/{kind}`, and the reports the service kept (monthly maturity,
quarterly statistics) to download again, byte for byte."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from api.audit.service import record_request, returned
from api.deps import SessionDep
from api.establishments.finess import Region
from api.incidents.routes import READERS
from api.reports import catalogue, runs
from api.reports.routes import deliver, deliver_kept
from api.web.deps import Viewer, viewer
from api.web.pages import roles
from api.web.render import PARIS, page

router = APIRouter(prefix="/ui", include_in_schema=False)

Reader = Annotated[Viewer, Depends(viewer(*READERS))]
FORMAT_NAMES = {"pdf": "PDF", "xlsx": "Excel (XLSX)", "csv": "CSV"}


@router.get("/reports", **roles(*READERS))
def reports_page(request: Request, session: SessionDep, v: Reader) -> HTMLResponse:
    """Every reader: the reports they may have (an establishment: its own maturity report and
    registry) and the kept ones, latest first."""
    national = v.who.scope is None
    kinds = [k for k in catalogue.KINDS.values() if national or k.own]
    kept = runs.listed(session, scope=v.who.scope, limit=50)
    record_request(request, session, v.who, "read", "report", "runs", returned(r.id for r in kept))
    return page(request, "reports.html", {
        "v": v, "kinds": kinds, "kept": kept, "formats": FORMAT_NAMES, "regions": list(Region),
        "today": datetime.now(PARIS).date().isoformat(),
    })  # fmt: skip


@router.get("/reports/runs/{run_id}", **roles(*READERS))
def kept_report(request: Request, session: SessionDep, v: Reader, run_id: int) -> Response:
    """Every reader: a kept report (an establishment: its own)."""
    return deliver_kept(request, session, v.who, run_id)


@router.get("/reports/{kind}", **roles(*READERS))
def make_report(
    request: Request,
    session: SessionDep,
    v: Reader,
    kind: str,
    format: Annotated[str | None, Query(max_length=10)] = None,
    day: Annotated[date | None, Query(description="as of the end of this Paris day")] = None,
    finess: Annotated[str | None, Query(max_length=11)] = None,
    region: Annotated[str | None, Query(max_length=60)] = None,
) -> Response:
    """Every reader, as `GET /reports/{kind}` allows them: a report as of the end of a past
    day in Paris (the same file each time), or as of now for today."""
    return deliver(request, session, v.who, kind, format, _end_of(day), finess, region)


def _end_of(day: date | None) -> datetime | None:
    """The last second of a Paris day in UTC; None (now) for today or no day."""
    if day is None or day >= datetime.now(PARIS).date():
        return None
    return datetime.combine(day + timedelta(days=1), time(), PARIS).astimezone(UTC) - timedelta(
        seconds=1
    )
