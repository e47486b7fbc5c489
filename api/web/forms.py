"""What a person typed in a form, read into the values the API's schemas take, and the
refusals said in French: a refused form comes back filled, with the reasons, never a 500.

The values are checked by the same schemas (and then the same service functions) as the JSON
routes; this module only reads the text and translates the refusals.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from starlette.datastructures import FormData

from api.web.render import PARIS


class Refused(Exception):
    """The form's values were refused: `reasons` in French, one per problem."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


async def _posted(request: Request) -> FormData:
    # The CSRF check has read (and Starlette cached) the same form already.
    return await request.form()


Posted = Annotated[FormData, Depends(_posted)]


def text(form: FormData, name: str) -> str:
    """A field's text ('' when absent; a file where text was expected counts as absent)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def texts(form: FormData, name: str) -> list[str]:
    """Every value of a repeated field (checkboxes)."""
    return [v for v in form.getlist(name) if isinstance(v, str)]


def lines(value: str) -> list[str]:
    """One item per line, blank lines dropped."""
    return [line.strip() for line in value.splitlines() if line.strip()]


def paris_time(value: str, label: str) -> datetime | None:
    """A `datetime-local` value read as Paris wall-clock time, in UTC (None: left empty).

    An hour the clocks skip (the last Sunday of March, 2:00 to 3:00) is refused; an hour they
    repeat (the last Sunday of October, 2:00 to 3:00) is read as the first one, summer time.
    """
    value = value.strip()
    if not value:
        return None
    try:
        local = datetime.fromisoformat(value)
    except ValueError:
        raise Refused([f"{label} : date et heure attendues (jj/mm/aaaa hh:mm)"]) from None
    if local.tzinfo is not None:
        raise Refused([f"{label} : l'heure de Paris, sans fuseau"])
    moment = local.replace(tzinfo=PARIS)
    if moment.astimezone(UTC).astimezone(PARIS).replace(tzinfo=None) != local:
        raise Refused([f"{label} : {local:%H:%M} n'existe pas ce jour-là à Paris "
                       "(passage à l'heure d'été)"])  # fmt: skip
    return moment.astimezone(UTC)


def paris_input(moment: datetime | None) -> str:
    """A moment as a `datetime-local` input shows it: Paris time, to the minute."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M")


def day(value: str, label: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Refused([f"{label} : date attendue (jj/mm/aaaa)"]) from None


def number(value: str, label: str) -> float | None:
    value = value.strip().replace("\u202f", "").replace(" ", "").replace(",", ".")
    if not value:
        return None
    try:
        found = float(value)
    except ValueError:
        raise Refused([f"{label} : nombre attendu"]) from None
    if not math.isfinite(found):
        raise Refused([f"{label} : nombre attendu"])
    return found


def french(
    exc: ValidationError, labels: Mapping[str, str], skip: Collection[str] = ()
) -> list[str]:
    """A schema's refusal, one French line per problem, named by the form's labels (`skip`:
    fields whose problem was said already)."""
    return [
        f"{_where(e['loc'], labels)} : {_reason(e)}"
        for e in exc.errors()
        if not (e["loc"] and str(e["loc"][0]) in skip)
    ]


def _where(loc: Iterable[Any], labels: Mapping[str, str]) -> str:
    parts = list(loc)
    if not parts:
        return "Formulaire"
    name = labels.get(str(parts[0]), str(parts[0]))
    index = next((p for p in parts[1:] if isinstance(p, int)), None)
    return name if index is None else f"{name} (ligne {index + 1})"


def _reason(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "à remplir"
    if kind == "string_too_short":
        return f"au moins {ctx.get('min_length')} caractère(s)"
    if kind == "string_too_long":
        return f"au plus {ctx.get('max_length')} caractères"
    if kind == "too_long":
        return f"au plus {ctx.get('max_length')} éléments"
    if kind in ("enum", "literal_error"):
        return "valeur inconnue"
    if kind in ("greater_than_equal", "greater_than"):
        return f"au moins {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"au plus {ctx.get('le', ctx.get('lt'))}"
    if kind.startswith(("int_", "float_")):
        return "nombre attendu"
    if kind.startswith(("date", "datetime", "timezone")):
        return "date invalide"
    if kind == "bool_parsing":
        return "oui ou non"
    if "NUL" in str(ctx.get("error", "")):  # NulFree's and the alerts' own check
        return "caractère NUL (\\u0000) refusé"
    return "valeur refusée"


def said(detail: str, known: Iterable[tuple[str, str]], what: str) -> str:
    """A service's refusal in French: the known reasons by their first words; another one
    quoted after `what` (the service's own words are English)."""
    for start, french_text in known:
        if detail.startswith(start):
            return french_text
    return f"{what} : {detail}"
