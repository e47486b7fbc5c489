"""CSV exports of the dashboard's lists, as a spreadsheet in France opens them: `;` between
cells, UTF-8 with its BOM, and no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from fastapi.responses import Response


def cell(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_response(
    filename: str, header: Sequence[str], rows: Iterable[Sequence[object]]
) -> Response:
    """The rows as a CSV download; text cells go through `cell`."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(header)
    for row in rows:
        writer.writerow([cell(v) if isinstance(v, str) else v for v in row])
    return Response(
        out.getvalue().encode("utf-8-sig"),  # the BOM: Excel in France reads UTF-8 with it
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
