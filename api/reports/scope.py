"""Which establishments a report covers: its `finess` and `region` filters as conditions on
`Establishment`, checked first so that a typo is an error and not an empty file."""

from __future__ import annotations

import unicodedata

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from api.errors import Invalid, NotFound
from api.establishments.finess import Region
from api.establishments.models import Establishment
from api.reports.catalogue import Params


def establishments(session: Session, params: Params) -> list[ColumnElement[bool]]:
    """Conditions on `Establishment` for the report's filters; NotFound for an unknown
    FINESS, Invalid for a region that is not one of the 18."""
    out: list[ColumnElement[bool]] = []
    if params.finess is not None:
        finess = params.finess.strip().upper()
        found = select(Establishment.finess).where(Establishment.finess == finess)
        if session.scalar(found) is None:
            raise NotFound(f"no establishment {finess}")
        out.append(Establishment.finess == finess)
    if params.region is not None:
        if params.region not in set(Region):
            regions = ", ".join(sorted(Region, key=french_order))
            raise Invalid(f"no region {params.region!r}: the regions are {regions}")
        out.append(Establishment.region == params.region)
    return out


def french_order(text: str) -> tuple[str, str]:
    """A sort key that reads as a French reader expects (Île-de-France among the I), the same
    on every database: databases sort accented letters by their collation, which differs."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return plain.casefold(), text
