"""The registry of establishments. Callers only ever see what `Principal.sees` allows."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.deps import Principal
from api.errors import Conflict, Invalid, NotFound
from api.establishments.finess import InvalidFiness, departement_of, region_of, validate_finess
from api.establishments.models import Establishment
from api.establishments.schemas import EstablishmentCreate, EstablishmentUpdate


def _finess(value: str, what: str = "FINESS") -> str:
    try:
        return validate_finess(value)
    except InvalidFiness as exc:
        raise Invalid(f"{what} {value!r}: {exc}") from exc


def _region(finess: str) -> str:
    region = region_of(departement_of(finess))
    return str(region) if region is not None else "outside regions"  # Wallis-et-Futuna


def create(*, session: Session, data: EstablishmentCreate) -> Establishment:
    finess = _finess(data.finess)
    if session.get(Establishment, finess) is not None:
        raise Conflict(f"establishment {finess} already registered")
    item = Establishment(
        finess=finess,
        name=data.name,
        kind=str(data.kind),
        region=data.region or _region(finess),
        beds=data.beds,
        legal_entity_finess=_finess(data.legal_entity_finess, "legal entity FINESS")
        if data.legal_entity_finess
        else None,
        legal_status=str(data.legal_status) if data.legal_status else None,
    )
    try:
        with session.begin_nested():  # a savepoint: the request stays usable after a refusal
            session.add(item)
    except IntegrityError as exc:  # registered meanwhile by another request
        raise Conflict(f"establishment {finess} already registered") from exc
    return item


def get(*, session: Session, who: Principal, finess: str) -> Establishment:
    item = session.get(Establishment, finess.strip().upper())
    # Not yours and absent answer alike: an establishment cannot probe for others.
    if item is None:
        raise NotFound(f"no establishment {finess}")
    if not who.sees(item.finess):
        raise who.not_yours(f"no establishment {finess}", kind="establishment", target=item.finess)
    return item


def page(
    *,
    session: Session,
    who: Principal,
    offset: int,
    limit: int,
    region: str | None = None,
    kind: str | None = None,
) -> tuple[list[Establishment], int]:
    query = select(Establishment)
    if who.scope is not None:  # an establishment sees itself only
        query = query.where(Establishment.finess == who.scope)
    if region is not None:
        query = query.where(Establishment.region == region)
    if kind is not None:
        query = query.where(Establishment.kind == kind)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(query.order_by(Establishment.finess).offset(offset).limit(limit))
    return list(items), total


def update(
    *, session: Session, who: Principal, finess: str, data: EstablishmentUpdate
) -> Establishment:
    item = get(session=session, who=who, finess=finess)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("legal_entity_finess"):
        changes["legal_entity_finess"] = _finess(
            changes["legal_entity_finess"], "legal entity FINESS"
        )
    if "kind" in changes and changes["kind"] is not None:
        changes["kind"] = str(changes["kind"])
    for key, value in changes.items():
        setattr(item, key, value)
    session.flush()
    return item
