"""Numbers and dates written in French by code, never by the locale, so that a report made on
any machine has the same bytes: decimal comma, a narrow no-break space between thousands,
times in Paris time with their offset where a machine may read them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
THOUSANDS = "\u202f"  # narrow no-break space, as the dashboard writes 10 500
NONE = "—"

MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip


def utc(moment: datetime) -> datetime:
    """In UTC (a time without zone is UTC, as the service stores them)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def number(value: float | None, decimals: int = 0) -> str:
    """`10 500`, `72,5`: rounded half away from zero at `decimals`, never `-0`."""
    if value is None:
        return NONE
    text = f"{_round(value, decimals):,.{decimals}f}"
    if text.lstrip("-").strip("0.,") == "":
        text = text.lstrip("-")
    return text.replace(",", THOUSANDS).replace(".", ",")


def percent(value: float | None, decimals: int = 0) -> str:
    """`42 %` from 0.42 (a no-break space before the sign, as French typography wants)."""
    return NONE if value is None else f"{number(value * 100, decimals)}\u00a0%"


def day(value: date | datetime | None) -> str:
    """`06/12/2026` (a datetime: its day in Paris)."""
    if value is None:
        return NONE
    if isinstance(value, datetime):
        value = utc(value).astimezone(PARIS).date()
    return f"{value.day:02d}/{value.month:02d}/{value.year:04d}"


def long_day(value: date) -> str:
    """`6 décembre 2026` (`1er` for the first of a month)."""
    first = "1er" if value.day == 1 else str(value.day)
    return f"{first} {MONTHS[value.month - 1]} {value.year}"


def moment(value: datetime | None) -> str:
    """`06/12/2026 15:35` in Paris time, for people."""
    if value is None:
        return NONE
    local = utc(value).astimezone(PARIS)
    return f"{day(local.date())} {local.hour:02d}:{local.minute:02d}"


def iso(value: datetime | None) -> str:
    """`2026-12-06T15:35:00+01:00`: Paris time with its offset, for files machines read too
    (unambiguous at the autumn hour change). Empty for none."""
    if value is None:
        return ""
    return utc(value).astimezone(PARIS).replace(microsecond=0).isoformat()


def hours(value: float | None) -> str:
    """A delay in hours with one decimal: `26,5 h`."""
    return NONE if value is None else f"{number(value, 1)}\u00a0h"


def yes_no(value: bool | None) -> str:
    return NONE if value is None else ("oui" if value else "non")


def _round(value: float, decimals: int) -> float:
    """Half away from zero (Python's round() goes to even, and floats' 2.675 is 2.67499...)."""
    from decimal import ROUND_HALF_UP, Decimal

    step = Decimal(1).scaleb(-decimals)
    # float(): a numpy float64 (pandas, matplotlib) has a repr Decimal cannot read.
    return float(Decimal(repr(float(value))).quantize(step, rounding=ROUND_HALF_UP))
