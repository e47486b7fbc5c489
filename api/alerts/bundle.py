"""The bundle an establishment's agents fetch, and its version, the establishment's own.

The national counter (`service.bundle_version`) goes up with every publication, edit or
withdrawal, whoever they are for: shown to an establishment it would tell it when alerts it
cannot see come and go. Each establishment's bundle has its own version instead, kept with
the digest of its content (`EstablishmentBundle`): the version goes up by one when that
content changes, and only then. It never goes down, even when the content comes back to an
earlier one (agents refuse a version older than one they had).

The national counter stays internal: it tells whether an establishment's content may have
changed, so that a poll with nothing new costs one read, not the building of the bundle.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.agents.models import as_utc, utcnow
from api.alerts.models import EstablishmentBundle, Tlp
from api.alerts.service import bundle_version, own_establishment, published, targets
from api.deps import Principal
from api.errors import Invalid
from api.establishments.models import Establishment
from detection.event import iso_utc

BUNDLE_FORMAT = "vigie-bundle/1"


def bundle(*, session: Session, who: Principal) -> dict[str, Any]:
    """The rules and indicators of the published alerts meant for the caller's establishment,
    at the establishment's own version.

    TLP:RED alerts never go into bundles: they are for the people they name, not for machines
    that log and forward what they run.
    """
    own = _establishment(session, who)
    content = _content(session, own)
    version = _version(session, own, _basis(session, own), content)
    return {"format": BUNDLE_FORMAT, "version": version, "establishment": own.finess, **content}


def current_version(*, session: Session, who: Principal) -> int:
    """The version of the caller's establishment's bundle as it stands now."""
    own = _establishment(session, who)
    basis = _basis(session, own)
    row = session.get(EstablishmentBundle, own.finess)
    if row is not None and row.basis == basis:
        return row.version
    return _version(session, own, basis, _content(session, own))


def _establishment(session: Session, who: Principal) -> Establishment:
    own = own_establishment(session, who)
    if own is None:
        raise Invalid("a bundle is for an establishment's agent")
    return own


def _basis(session: Session, own: Establishment) -> str:
    return f"{bundle_version(session=session)}|{own.region}|{own.kind}"


def _content(session: Session, own: Establishment) -> dict[str, Any]:
    alerts = [a for a in published(session=session) if a.tlp != Tlp.RED and targets(a, own)]
    return {
        "alerts": [
            {
                "id": a.id,
                "title": a.title,
                "severity": a.severity,
                "tlp": a.tlp,
                "cves": a.cves,
                "updated_at": iso_utc(as_utc(a.updated_at)),
            }
            for a in alerts
        ],
        "sigma": [{"alert_id": a.id, "rule": text} for a in alerts for text in a.sigma_rules],
        "yara": [{"alert_id": a.id, "rule": text} for a in alerts for text in a.yara_rules],
        "indicators": [
            {"alert_id": a.id, "type": i["type"], "value": i["value"]}
            for a in alerts
            for i in a.indicators
        ],
    }


def _version(session: Session, own: Establishment, basis: str, content: dict[str, Any]) -> int:
    """The establishment's version for `content`: the stored one when the content is the
    same, else one more (once, however many requests see the change at the same time)."""
    digest = hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
    for _ in range(3):
        row = session.scalar(
            select(EstablishmentBundle)
            .where(EstablishmentBundle.finess == own.finess)
            .execution_options(populate_existing=True)
        )
        if row is None:
            try:
                with session.begin_nested():
                    session.add(
                        EstablishmentBundle(
                            finess=own.finess, version=1, digest=digest, basis=basis
                        )
                    )
                return 1
            except IntegrityError:  # another request made it first: read it
                continue
        if row.digest == digest:
            if row.basis != basis:
                row.basis = basis
                session.flush()
            return row.version
        moved = session.execute(
            update(EstablishmentBundle)
            .where(
                EstablishmentBundle.finess == own.finess,
                EstablishmentBundle.version == row.version,
                EstablishmentBundle.digest == row.digest,
            )
            .values(version=row.version + 1, digest=digest, basis=basis, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount == 1:  # type: ignore[attr-defined]
            return row.version + 1
    raise Invalid("the bundle is changing too fast; fetch it again")
