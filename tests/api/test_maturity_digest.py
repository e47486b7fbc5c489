"""`Inputs.digest` is the SHA-256 of the sorted JSON of `asdict(inputs)`: snapshots already
stored keep proving their inputs when the digest is computed another way (faster)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest

from api.db import make_engine, session_factory, transaction, upgrade
from api.establishments.models import Establishment
from api.maturity.evidence import gather
from api.maturity.inputs import (
    AgentFacts,
    AlertFacts,
    AnswerFacts,
    ExceptionFacts,
    IncidentFacts,
    Inputs,
    ProfileFacts,
    Row,
    load,
)
from api.maturity.signals import Observation

CUTOFF = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)


def _reference(inputs: Inputs, framework_digest: str) -> str:
    """The definition: asdict, keys sorted, tuples as lists, sets sorted."""

    def plain(value: Any) -> Any:
        if isinstance(value, set | frozenset):
            return sorted(value)
        if isinstance(value, tuple):
            return list(value)
        raise TypeError(type(value).__name__)

    doc = {"framework": framework_digest, **asdict(inputs)}
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS, default=plain)).hexdigest()


def _inputs(**changes: Any) -> Inputs:
    day = CUTOFF.date() - timedelta(days=1)
    seen = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
    fields: dict[str, Any] = {
        "finess": "750100125",
        "kind": "CHU",
        "region": "Île-de-France",
        "as_of": CUTOFF.date(),
        "cutoff": CUTOFF,
        "retention_days": 180,
        "profile": ProfileFacts(
            flags={"has_hl7": True, "has_dicom": False},
            sites=("Pitié", "Salpêtrière"),
            expected_sources=("network", "windows"),
            server_hosts=("SRV-*",),
            admin_hosts=("DC01",),
            resolvers=("10.0.0.53",),
            declared_at=seen,
        ),
        "evidence": {
            "win.logon": [
                Row("other", day, 40, seen, seen + timedelta(hours=3), ("a/1", "a/2"), ("PC1",)),
                Row("ntlmv1", day, 2, seen, seen, ("a/3",), ("PC2", "PC3")),
            ],
            "source": [Row("network", day, 9, seen, seen, ("a/4",), ("agent-1",))],
        },
        "agents": [AgentFacts("ag-1", "vigie-1", "Pitié", seen, None, seen, ("evtx",), 0)],
        "incidents": [
            IncidentFacts(
                "inc-1",
                "declared",
                "exercise",
                "low",
                "resolved",
                False,
                seen,
                seen,
                None,
                None,
                None,
                seen,
                seen + timedelta(hours=2),
                None,
            )
        ],
        "alerts": [AlertFacts("al-1", "high", seen, None)],
        "answers": {
            "GOV-01": AnswerFacts(
                7, {"date": "2026-01-15", "extra": [1, {"b": 2, "a": 1}]}, seen, True, "ab" * 32
            ),
        },
        "exceptions": {"HYG-01": ExceptionFacts("ex-1", "compensated", "la direction", seen)},
    }
    fields.update(changes)
    return Inputs(**fields)


def test_digest_is_the_sorted_json_of_asdict() -> None:
    inputs = _inputs()
    assert inputs.digest("fw|2026-09-07") == _reference(inputs, "fw|2026-09-07")


def test_digest_of_empty_inputs_and_of_a_change() -> None:
    empty = _inputs(
        profile=ProfileFacts(),
        evidence={},
        agents=[],
        incidents=[],
        alerts=[],
        answers={},
        exceptions={},
    )
    assert empty.digest("fw") == _reference(empty, "fw")
    full = _inputs()
    later = _inputs(as_of=date(2026, 12, 7))
    assert later.digest("fw") == _reference(later, "fw")
    assert later.digest("fw") != full.digest("fw")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_digest_does_not_depend_on_the_database_sessions_time_zone(
    database_url: str,
) -> None:
    # PostgreSQL hands timestamps back in the session's time zone: the same instants must
    # give the same bytes, or a recompute on a server set otherwise would not prove anything.
    finess = "350000014"
    at = datetime(2026, 12, 5, 23, 30, tzinfo=UTC)
    engine = make_engine(database_url)
    upgrade(engine)
    with transaction(session_factory(engine)) as session:
        session.add(Establishment(finess=finess, name="Clinique", kind="clinique", region="BRE"))
    with transaction(session_factory(engine)) as session:
        gather(session, finess, [Observation("win.logon", "other", at, "a/1", "PC-1")])
    engine.dispose()
    digests = set()
    for zone in ("UTC", "Pacific/Auckland", "America/Cayenne"):
        engine = make_engine(database_url.replace("options=", f"options=-ctimezone%3D{zone}%20"))
        with session_factory(engine)() as session:
            establishment = session.get(Establishment, finess)
            assert establishment is not None
            loaded = load(session, [establishment], as_of=date(2026, 12, 6), cutoff=CUTOFF,
                          retention_days=180, windows={"win.logon": 30})[finess]  # fmt: skip
            assert loaded.evidence["win.logon"][0].first_seen == at
            digests.add(loaded.digest("f"))
        engine.dispose()
    assert len(digests) == 1
