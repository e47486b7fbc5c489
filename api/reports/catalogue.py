"""The reports Vigie makes: their names, formats, who may have them, and the module that
builds each one.

A builder is `build(session, params, out)`: it reads the database as of `params.as_of` (rows
made later are not in it, every query has an explicit order) and writes the file's bytes to
`out`. The same params on the same data write the same bytes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Protocol

from sqlalchemy.orm import Session

from api.errors import Invalid, NotFound
from api.reports import french

MEDIA_TYPES = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
    "zip": "application/zip",
}


@dataclass(frozen=True)
class Params:
    kind: str
    format: str
    as_of: datetime  # UTC
    finess: str | None = None
    region: str | None = None

    def described(self) -> dict[str, str]:
        """The parameters as stored beside a run and shown in listings (sorted, no None)."""
        found = {
            "kind": self.kind,
            "format": self.format,
            "as_of": french.utc(self.as_of).isoformat(),
            "finess": self.finess,
            "region": self.region,
        }
        return {k: v for k, v in sorted(found.items()) if v is not None}

    def filename(self) -> str:
        parts = [KINDS[self.kind].stem, self.finess or "", _slug(self.region or "")]
        stamp = french.utc(self.as_of).strftime("%Y-%m-%d")
        stem = "-".join(p for p in (*parts, stamp) if p)
        return f"{stem}.{KINDS[self.kind].extension(self.format)}"


class Builder(Protocol):
    def __call__(self, session: Session, params: Params, out: IO[bytes]) -> None: ...


@dataclass(frozen=True)
class Kind:
    name: str
    title: str
    stem: str  # the file name's start, in French
    formats: tuple[str, ...]  # the first is the default
    module: str  # holds `build`
    own: bool  # an establishment may have its own (with its FINESS)
    finess: str  # "required", "optional" (national without) or "no"
    region: bool  # takes a region

    def extension(self, format: str) -> str:
        # Statistics in CSV are one CSV per sheet: a ZIP of them.
        return "zip" if (self.name == "stats" and format == "csv") else format

    def builder(self) -> Builder:
        build: Builder = importlib.import_module(self.module).build
        return build


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "maturity",
            "Rapport de maturité",
            "rapport-maturite",
            ("pdf", "xlsx"),
            "api.reports.maturity",
            own=True,
            finess="required",
            region=False,
        ),
        Kind(
            "stats",
            "Statistiques nationales et régionales",
            "statistiques",
            ("xlsx", "csv"),
            "api.reports.stats",
            own=False,
            finess="no",
            region=True,
        ),
        Kind(
            "registry",
            "Registre des incidents et échéances NIS2",
            "registre-incidents",
            ("csv", "xlsx"),
            "api.reports.registry",
            own=True,
            finess="optional",
            region=True,
        ),
        Kind(
            "acknowledgements",
            "Conformité des accusés de réception d'alertes",
            "accuses-reception",
            ("csv", "xlsx"),
            "api.reports.acknowledgements",
            own=False,
            finess="optional",
            region=True,
        ),
    )
}


def kind_of(name: str) -> Kind:
    found = KINDS.get(name)
    if found is None:
        raise NotFound(f"no report {name!r}: the reports are {', '.join(KINDS)}, audit-log")
    return found


def checked(
    name: str,
    format: str | None,
    as_of: datetime,
    finess: str | None = None,
    region: str | None = None,
) -> Params:
    """Params for a report, or `Invalid` saying which one is wrong and what it may be."""
    kind = kind_of(name)
    chosen = format or kind.formats[0]
    if chosen not in kind.formats:
        raise Invalid(f"report {name}: format {chosen!r} is not one of {', '.join(kind.formats)}")
    if kind.finess == "required" and not finess:
        raise Invalid(f"report {name}: give the establishment (finess)")
    if kind.finess == "no" and finess:
        raise Invalid(f"report {name}: covers establishments together, not one (no finess)")
    if region and not kind.region:
        raise Invalid(f"report {name}: takes no region")
    return Params(name, chosen, french.utc(as_of), finess or None, region or None)


def _slug(text: str) -> str:
    import unicodedata

    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c if c.isalnum() else "-" for c in plain.lower()).strip("-")


def describe(kind: Kind) -> dict[str, Any]:
    return {
        "kind": kind.name,
        "title": kind.title,
        "formats": list(kind.formats),
        "establishment_own": kind.own,
        "finess": kind.finess,
        "region": kind.region,
    }
