"""Jinja2 for the dashboard: the templates and assets installed with the package
(`dashboards/web/`), autoescaped, with French formats and times in Europe/Paris."""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

import dashboards

PARIS = ZoneInfo("Europe/Paris")
WEB = Path(str(files(dashboards) / "web"))
STATIC = WEB / "static"

SEVERITIES = {"critical": "critique", "high": "élevée", "medium": "moyenne", "low": "faible"}
STATUSES = {
    "new": "nouveau",
    "acknowledged": "pris en compte",
    "contained": "confiné",
    "resolved": "résolu",
    "closed": "clos",
}
KINDS = {
    "CHU": "CHU",
    "CH": "centre hospitalier",
    "clinic": "clinique",
    "EHPAD": "EHPAD",
    "psychiatry": "psychiatrie",
    "SSR": "SSR",
    "other": "autre",
}
ROLES = {
    "cert": "CERT",
    "establishment": "Établissement",
    "auditor": "Auditeur",
    "admin": "Administrateur",
}
AGENT_STATES = {
    "active": "actif",
    "silent": "silencieux",
    "never": "jamais vu",
    "revoked": "révoqué",
}
TOKEN_STATES = {
    "active": "utilisable",
    "expired": "expiré",
    "used_up": "épuisé",
    "revoked": "révoqué",
}


def paris(moment: datetime | None, with_seconds: bool = False) -> str:
    """`06/12/2026 14:05` in Paris time ('—' for none); naive datetimes are UTC."""
    if moment is None:
        return "—"
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(PARIS)
    return local.strftime("%d/%m/%Y %H:%M:%S" if with_seconds else "%d/%m/%Y %H:%M")


def iso(moment: datetime | None) -> str:
    """The UTC time, for a tooltip and `<time datetime=...>`."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def day(value: date | None) -> str:
    return "—" if value is None else value.strftime("%d/%m/%Y")


def number(value: int | float | None) -> str:
    """French digit grouping with a narrow no-break space: 10 500."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.1f}".replace(",", "\u202f").replace(".", ",")
    return f"{value:,}".replace(",", "\u202f")


def pretty(value: object) -> str:
    """JSON for people: indented, accents kept (autoescaped where it is shown)."""
    import json

    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(WEB / "templates")),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,  # a misspelt name fails the test, not the page silently
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(paris=paris, iso=iso, day=day, number=number, pretty=pretty)
    env.globals.update(
        SEVERITIES=SEVERITIES,
        STATUSES=STATUSES,
        ROLES=ROLES,
        KINDS=KINDS,
        AGENT_STATES=AGENT_STATES,
        TOKEN_STATES=TOKEN_STATES,
    )
    return env


def page(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """A whole page, or only its `content` block when htmx asks for a part of it."""
    doc = environment().get_template(template)
    values = {"request": request, "kiosk": request.query_params.get("kiosk") == "1", **context}
    return HTMLResponse(doc.render(values), status_code=status_code)
