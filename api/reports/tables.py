"""The tables reports are made of, and the two ways they are written.

A `Column` has a header, a definition (every report carries a sheet or file defining its
columns) and a kind, which says how a value is written:

- CSV, as a spreadsheet in France opens it: `;` between cells, CRLF, UTF-8 with its BOM,
  decimal comma, times in Paris with their offset (`french.iso`), no cell that a spreadsheet
  would run as a formula;
- XLSX (XlsxWriter, row by row in constant memory): numbers as numbers, times as Paris times
  with a date format, the workbook's dates set to `as_of` so that the same data gives the
  same bytes.

Writers take rows one at a time: a registry of 100,000 incidents is never held whole.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Any

import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from api.reports import french

SUPPRESSED = "s"  # a cell counting fewer establishments than the threshold (statistics)
KINDS = ("text", "int", "float", "percent", "moment", "date", "bool")


@dataclass(frozen=True)
class Column:
    name: str
    definition: str
    kind: str = "text"
    decimals: int = 1  # float and percent
    width: int = 14  # XLSX column width, in characters

    def __post_init__(self) -> None:
        assert self.kind in KINDS, self.kind


def cell(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_text(column: Column, value: Any) -> str:
    """A value as the CSV writes it ("" for none; `s` stays `s`)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return cell(value)
    kind = column.kind
    if kind == "bool":
        return french.yes_no(bool(value))
    if kind == "moment":
        return french.iso(value)
    if kind == "date":
        return value.isoformat()
    if kind == "percent":
        return french.number(value * 100, column.decimals).replace(french.THOUSANDS, "")
    if kind == "float":
        return french.number(value, column.decimals).replace(french.THOUSANDS, "")
    return str(value)


class CsvWriter:
    """Rows into a binary stream, the header first."""

    def __init__(self, out: IO[bytes], columns: Sequence[Column]) -> None:
        self._out = out
        self._columns = columns
        self._text = io.StringIO()
        self._writer = csv.writer(self._text, delimiter=";", lineterminator="\r\n")
        out.write("\ufeff".encode())  # the BOM: Excel in France reads UTF-8 with it
        self._emit([c.name for c in columns])

    def row(self, values: Sequence[Any]) -> None:
        self._emit([csv_text(c, v) for c, v in zip(self._columns, values, strict=True)])

    def rows(self, rows: Iterable[Sequence[Any]]) -> None:
        for values in rows:
            self.row(values)

    def _emit(self, cells: list[str]) -> None:
        self._writer.writerow(cells)
        self._out.write(self._text.getvalue().encode())
        self._text.seek(0)
        self._text.truncate()


def definitions_rows(columns: Sequence[Column]) -> list[tuple[str, str]]:
    return [(c.name, c.definition) for c in columns]


class Workbook:
    """An XLSX written sheet by sheet, row by row (XlsxWriter's constant memory mode: rows
    go to temporary files as they come and cannot be revisited)."""

    def __init__(self, out: IO[bytes], *, title: str, as_of: datetime) -> None:
        self._book = xlsxwriter.Workbook(
            out, {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
        )
        created = french.utc(as_of).replace(tzinfo=None)
        self._book.set_properties(
            {"title": title, "author": "Vigie", "company": "Vigie", "created": created}
        )
        self._header = self._book.add_format({"bold": True, "text_wrap": True, "valign": "top"})
        self._formats = {
            "moment": self._book.add_format({"num_format": "dd/mm/yyyy hh:mm"}),
            "date": self._book.add_format({"num_format": "dd/mm/yyyy"}),
            "percent": self._book.add_format({"num_format": "0.0%"}),
            "float": self._book.add_format({"num_format": "0.0"}),
            "suppressed": self._book.add_format({"italic": True, "align": "right"}),
        }

    def sheet(self, name: str, columns: Sequence[Column]) -> Sheet:
        worksheet = self._book.add_worksheet(name)
        for index, column in enumerate(columns):
            worksheet.set_column(index, index, column.width)
            worksheet.write_string(0, index, column.name, self._header)
        worksheet.freeze_panes(1, 0)
        return Sheet(worksheet, columns, self._formats)

    def definitions(self, columns_by_sheet: Sequence[tuple[str, Sequence[Column]]]) -> None:
        """A `definitions` sheet: every column of every sheet, with what it means."""
        columns = [
            Column("feuille", "the sheet", width=18),
            Column("colonne", "the column", width=28),
            Column("définition", "what it holds", width=100),
        ]
        sheet = self.sheet("definitions", columns)
        for name, sheet_columns in columns_by_sheet:
            for column in sheet_columns:
                sheet.row([name, column.name, column.definition])

    def close(self) -> None:
        self._book.close()


class Sheet:
    def __init__(
        self, worksheet: Worksheet, columns: Sequence[Column], formats: dict[str, Any]
    ) -> None:
        self._ws = worksheet
        self._columns = columns
        self._formats = formats
        self._next = 1

    def row(self, values: Sequence[Any]) -> None:
        ws, r = self._ws, self._next
        for c, (column, value) in enumerate(zip(self._columns, values, strict=True)):
            if value is None:
                continue
            if value == SUPPRESSED and column.kind != "text":
                ws.write_string(r, c, SUPPRESSED, self._formats["suppressed"])
            elif column.kind == "moment":
                local = french.utc(value).astimezone(french.PARIS).replace(tzinfo=None)
                ws.write_datetime(r, c, local, self._formats["moment"])
            elif column.kind == "date":
                moment = datetime(value.year, value.month, value.day)  # noqa: DTZ001 (a day)
                ws.write_datetime(r, c, moment, self._formats["date"])
            elif column.kind == "bool":
                ws.write_string(r, c, french.yes_no(bool(value)))
            elif column.kind in ("int", "float", "percent"):
                ws.write_number(r, c, value, self._formats.get(column.kind))
            else:
                ws.write_string(r, c, str(value))
        self._next += 1

    def rows(self, rows: Iterable[Sequence[Any]]) -> None:
        for values in rows:
            self.row(values)


def as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value
