"""Making a report: build it into a temporary file, hash it, record the run, keep the file
when asked (scheduled runs), and find kept files again.

Kept files live in `<data dir>/reports/`, private to the service like the rest of the folder;
`report_runs` lists them with their parameters and sha256, so that a file handed to an auditor
can be checked against the service's record.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.datadir import private_files
from api.errors import NotFound
from api.reports.catalogue import KINDS, Params
from api.reports.models import ReportRun

FOLDER = "reports"
# Their bytes are the report's: recorded with every run (a new version may change the bytes).
LIBRARIES = ("vigie", "fpdf2", "matplotlib", "xlsxwriter", "pandas")
_SPOOL = 8 * 1024 * 1024  # in memory up to this size, then on disk


@dataclass
class Made:
    run: ReportRun
    file: IO[bytes]  # positioned at the start; the caller closes it


def versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found


def make(
    session: Session,
    params: Params,
    *,
    trigger: str,
    data_dir: Path | None = None,
) -> Made:
    """Build the report and record its run; with `data_dir`, also keep the file there."""
    kind = KINDS[params.kind]
    out: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115 (returned)
    try:
        kind.builder()(session, params, out)
        digest, size = _digest(out)
        run = ReportRun(
            kind=params.kind,
            format=params.format,
            as_of=params.as_of,
            finess=params.finess,
            region=params.region,
            params=params.described(),
            versions=versions(),
            trigger=trigger,
            sha256=digest,
            size=size,
            filename=params.filename(),
        )
        session.add(run)
        session.flush()  # the id names the kept file
        if data_dir is not None:
            run.path = _keep(out, data_dir, run)
            out.seek(0)
    except BaseException:
        out.close()
        raise
    return Made(run, out)


def _digest(out: IO[bytes]) -> tuple[str, int]:
    out.seek(0)
    sha = hashlib.sha256()
    size = 0
    while chunk := out.read(1 << 20):
        sha.update(chunk)
        size += len(chunk)
    out.seek(0)
    return sha.hexdigest(), size


def _keep(out: IO[bytes], data_dir: Path, run: ReportRun) -> str:
    relative = f"{FOLDER}/{run.as_of:%Y}/{run.id:06d}-{run.filename}"
    target = data_dir / relative
    with private_files():
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as kept:
            shutil.copyfileobj(out, kept)
    return relative


def listed(
    session: Session,
    *,
    kind: str | None = None,
    finess: str | None = None,
    scope: str | None = None,
    kept_only: bool = True,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[ReportRun]:
    """Runs, latest first; `scope`: an establishment's own only (its maturity reports and
    registries, never national ones)."""
    query = select(ReportRun)
    if kept_only:
        query = query.where(ReportRun.path.is_not(None))
    if kind is not None:
        query = query.where(ReportRun.kind == kind)
    if finess is not None:
        query = query.where(ReportRun.finess == finess)
    if scope is not None:
        query = query.where(ReportRun.finess == scope)
    query = query.order_by(ReportRun.created_at.desc(), ReportRun.id.desc())
    return session.scalars(query.limit(limit).offset(offset)).all()


def kept_file(data_dir: Path, run: ReportRun) -> Path:
    """The kept file of a run, or NotFound (never kept, or gone from the disk)."""
    if run.path is None:
        raise NotFound(f"report run {run.id} was not kept: make it again with its as_of")
    path = data_dir / run.path
    if not path.is_file():
        raise NotFound(f"report run {run.id}: its file {run.path} is no longer on the disk")
    return path
