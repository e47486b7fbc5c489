"""How much evidence a snapshot reads: each check declares the signals it reads and over how
many days, the snapshot loads exactly that, and a check reading beyond its declaration fails
loudly instead of judging on rows that were never loaded. Also BAK-04's evidence (recovery
inhibition, backup services stopped included) and alerts withdrawn before they were due."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from api.db import make_engine, session_factory, transaction, upgrade
from api.establishments.models import Establishment
from api.maturity import inputs as facts
from api.maturity.checks import REGISTRY
from api.maturity.checks.base import evidence_windows
from api.maturity.evidence import gather
from api.maturity.framework import Control, default
from api.maturity.inputs import (
    AgentFacts,
    AlertFacts,
    IncidentFacts,
    Inputs,
    ProfileFacts,
    Row,
)
from api.maturity.signals import BACKUP_STOPS, Observation, observe_detections

ROOT = Path(__file__).resolve().parents[2]
AS_OF = date(2026, 11, 30)
CUTOFF = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
FINESS = "350000014"


def at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def every_day(key: str, subjects: tuple[str, ...], days: int = 400) -> list[Row]:
    return [
        Row(key, AS_OF - timedelta(days=d), 5, at(AS_OF - timedelta(days=d)),
            at(AS_OF - timedelta(days=d), 11), (f"a/{key}{d}",), subjects)
        for d in range(days)
    ]  # fmt: skip


def busy(windows: dict[str, int] | None, quiet: bool = False) -> Inputs:
    """An establishment with data of every signal every day for 400 days, agents and
    incidents (none if `quiet`): enough for every check to get past its early returns and
    read all it reads, in one of the two."""
    signals = {
        "source": ["network", "windows", "logs"],
        "net.exposed": ["rdp"],
        "net.health": ["hl7"],
        "net.tls": ["weak:exposed", "ok:exposed", "weak:internal", "ok:internal"],
        "net.smb": ["v1", "v2"],
        "net.cleartext": ["telnet"],
        "net.dns": ["public", "internal"],
        "net.outbound": ["ok"],
        "win.logon": ["ntlmv1", "other"],
        "win.builtin": ["PC-1"],
        "win.privileged": ["PC-1"],
        "win.os": ["7601", "19045"],
        "win.av": ["bad", "ok"],
        "det.recovery": [sorted(BACKUP_STOPS)[0]],
        "agent": ["agent-1"],
    }
    evidence = {
        signal: [r for key in keys for r in every_day(key, ("PC-1", "10.0.0.5"))]
        for signal, keys in signals.items()
    }
    agent = AgentFacts("agent-1", "PC-1", "site", at(AS_OF - timedelta(days=500)), None,
                       CUTOFF - timedelta(hours=1), ("windows",), 0)  # fmt: skip
    incident = IncidentFacts(
        "inc-1", "detection", "ransomware", "high", "new", True, at(AS_OF - timedelta(days=20)),
        at(AS_OF - timedelta(days=20)), None, None, None, None, None, sorted(BACKUP_STOPS)[0],
    )  # fmt: skip
    return Inputs(
        finess=FINESS,
        kind="clinique",
        region="Bretagne",
        as_of=AS_OF,
        cutoff=CUTOFF,
        retention_days=180,
        profile=ProfileFacts(
            sites=("site",),
            expected_sources=("windows",),
            admin_hosts=("10.0.0.5",),
            server_hosts=("SRV-*",),
        ),  # fmt: skip
        evidence=evidence,
        agents=[agent],
        incidents=[] if quiet else [incident],
        windows=windows,
    )


AUTOMATIC = [c for c in default().controls if c.evidence.check is not None]


@pytest.mark.parametrize("control", AUTOMATIC, ids=lambda c: c.id)
def test_each_check_reads_no_more_than_it_declares(control: Control) -> None:
    assert control.evidence.check is not None
    spec = REGISTRY[control.evidence.check]
    params = spec.params.model_validate(control.evidence.params)
    declared = spec.windows(params)
    # With exactly its declared windows loaded, the check runs and judges as with everything.
    for quiet in (False, True):
        assert spec.run(busy(declared, quiet), params) == spec.run(busy(None, quiet), params)
    # One day less of any signal it declares, and it notices (declared and never read: fails).
    for signal, days in declared.items():
        short = dict(declared) | {signal: days - 1}
        noticed = []
        for quiet in (False, True):
            try:
                spec.run(busy(short, quiet), params)
            except LookupError as e:
                noticed.append(str(e))
        assert noticed, f"{signal} declared, never read"
        assert signal in noticed[0]


def test_the_shipped_framework_reads_a_month_of_evidence_and_three_of_boots() -> None:
    windows = evidence_windows(default())
    assert windows["win.os"] == 90  # hosts boot rarely: end-of-support over 90 days
    assert {d for s, d in windows.items() if s != "win.os"} == {30}
    # Every signal ingestion gathers is read by some check; none is read that is not gathered.
    documented = set(re.findall(r"^- `([a-z0-9.]+)`", _signals_doc(), re.M))
    assert set(windows) == documented


def _signals_doc() -> str:
    from api.maturity import signals

    return signals.__doc__ or ""


def test_a_snapshot_loads_each_signal_over_its_window_only(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'vigie.db'}")
    upgrade(engine)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        session.add(Establishment(finess=FINESS, name="Clinique", kind="clinique", region="BRE"))
    seen = [
        Observation(signal, "k", at(AS_OF - timedelta(days=ago)), f"a/{signal}{ago}", "PC-1")
        for signal in ("win.logon", "source", "win.av")
        for ago in (0, 29, 30, 89, 90, 200)
    ]
    seen.append(Observation("win.logon", "k", at(AS_OF + timedelta(days=1)), "a/late", "PC-1"))
    with transaction(sessions) as session:
        gather(session, FINESS, seen)
    windows = {"win.logon": 30, "source": 90}
    with transaction(sessions) as session:
        establishment = session.get(Establishment, FINESS)
        assert establishment is not None
        loaded = facts.load(session, [establishment], as_of=AS_OF, cutoff=CUTOFF,
                            retention_days=180, windows=windows)[FINESS]  # fmt: skip
    ages = {s: sorted((AS_OF - r.day).days for r in rows) for s, rows in loaded.evidence.items()}
    assert ages == {"source": [0, 29, 30, 89], "win.logon": [0, 29]}  # win.av: read by none
    assert loaded.windows == windows
    assert len(loaded.rows("source", 90)) == 4
    with pytest.raises(LookupError):
        loaded.rows("win.av", 1)


def test_vigies_backup_service_rules_count_as_recovery_inhibition() -> None:
    ids = {
        m.group(1)
        for path in (ROOT / "rules" / "sigma").rglob("backup_service_stop*.yml")
        if (m := re.search(r"^id: (\S+)$", path.read_text(), re.M))
    }
    assert ids == BACKUP_STOPS  # a rule renamed or added is seen here
    now = "2026-11-29T03:12:00Z"
    detections = [
        {"rule_id": sorted(BACKUP_STOPS)[0], "tags": ["attack.impact", "attack.t1489"],
         "timestamp": now, "event": {"host": {"name": "SRV-BACKUP"}}},
        {"rule_id": "other-stop", "tags": ["attack.t1489"], "timestamp": now, "event": {}},
        {"rule_id": "vss", "tags": ["attack.T1490"], "timestamp": now,
         "event": {"host": {"name": "SRV-FILES"}}},
    ]  # fmt: skip
    out = observe_detections(detections, ["d1", "d2", "d3"])
    assert [(o.signal, o.key, o.item, o.subject) for o in out] == [
        ("det.recovery", sorted(BACKUP_STOPS)[0], "d1", "SRV-BACKUP"),
        ("det.recovery", "vss", "d3", "SRV-FILES"),
    ]


def _bak04(incident_acknowledged: bool) -> tuple[float | None, str]:
    control = default().control("BAK-04")
    assert control is not None
    assert control.evidence.check is not None
    spec = REGISTRY[control.evidence.check]
    params = spec.params.model_validate(control.evidence.params)
    base = busy(None)
    stop = sorted(BACKUP_STOPS)[0]
    day = AS_OF - timedelta(days=3)
    evidence = {
        "source": base.evidence["source"],
        "det.recovery": [Row(stop, day, 2, at(day), at(day, 11), ("a/d1",), ("SRV-BACKUP",))],
    }
    incident = IncidentFacts(
        "inc-9", "detection", "ransomware", "high", "acknowledged" if incident_acknowledged
        else "new", True, at(day), at(day), None, None, None,
        at(day, 12) if incident_acknowledged else None, None, stop,
    )  # fmt: skip
    mine = Inputs(**{**base.__dict__, "evidence": evidence, "incidents": [incident]})
    outcome = spec.run(mine, params)
    return outcome.score, outcome.summary


def test_bak04_fails_on_a_backup_service_stopped_and_left_untreated() -> None:
    score, summary = _bak04(incident_acknowledged=False)
    assert score == 0.0
    assert "SRV-BACKUP" in summary
    assert "1 incident non pris en compte" in summary
    score, summary = _bak04(incident_acknowledged=True)
    assert score == 1.0
    assert "2 détections" in summary
    assert "aucune laissée sans suite" in summary


def test_an_alert_withdrawn_before_it_was_due_is_not_held_against_anyone() -> None:
    control = next(c for c in AUTOMATIC if c.evidence.check == "alerts.acknowledgement_delays")
    spec = REGISTRY["alerts.acknowledgement_delays"]
    params = spec.params.model_validate(control.evidence.params)
    published = CUTOFF - timedelta(days=5)
    late = AlertFacts("al-late", "high", published, None)
    on_time = AlertFacts("al-ok", "high", published, published + timedelta(hours=1))
    pulled = AlertFacts("al-pulled", "high", published, None, published + timedelta(hours=1))
    pulled_late = AlertFacts("al-after", "high", published, None, published + timedelta(days=3))
    mine = Inputs(**{**busy(None).__dict__, "alerts": [late, on_time, pulled, pulled_late]})
    outcome = spec.run(mine, params)
    # Judged: the late one, the one acknowledged, and the one withdrawn after it was due.
    assert outcome.counts == {"alerts": 3, "on_time": 1}
    assert set(outcome.samples) == {"al-late", "al-after"}
