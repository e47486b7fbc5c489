"""The national and regional statistics on a real database (SQLite and PostgreSQL): every
number below is counted by hand from the rows seeded here, read back from the XLSX with
openpyxl; cells of fewer than 5 establishments are `s`, and so are the cells that would give
them away; the service gives the report to an auditor, not to an establishment.

The world (as of AS_OF):
- Normandie: 6 CHU, public (N1-N6): agents, snapshots, incidents, alerts in detail;
- Bretagne: 5 CH, public (B1-B5), 4 EHPAD, private for-profit (P1-P4), and 3 EHPAD whose
  legal status is not known (U1-U3): the 4 and the 3 hide each other, the 5 stay;
- Corse: 6 psychiatric hospitals and 2 SSR, public: Corse's total would give the 2 away,
  so the 6 are hidden too.
"""

from __future__ import annotations

import hashlib
import io
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import openpyxl
import pytest
from sqlalchemy.orm import Session

from api.agents.models import Agent
from api.alerts.models import Acknowledgement, Alert
from api.db import make_engine, session_factory, transaction, upgrade
from api.establishments.models import Establishment
from api.incidents.models import Incident
from api.maturity.framework import default
from api.maturity.models import Evidence, Snapshot
from api.reports import stats
from api.reports.catalogue import Params
from api.reports.suppression import Count, hidden_cells
from tests.api.conftest import Service
from tests.api.test_service import setup_world

AS_OF = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
FRAMEWORK = default()
NORMANDIE = [f"76000000{i}" for i in range(1, 7)]
BRETAGNE_CH = [f"29000000{i}" for i in range(1, 6)]
BRETAGNE_EHPAD = [f"29000010{i}" for i in range(1, 5)]
BRETAGNE_UNSTATED = [f"29000020{i}" for i in range(1, 4)]
CORSE_PSY = [f"2A000000{i}" for i in range(1, 7)]
CORSE_SSR = ["2A0000101", "2A0000102"]
ENSEMBLE = "Ensemble"


def _id() -> str:
    return str(uuid.uuid4())


def _agent(session: Session, finess: str, heard: timedelta | None, **extra: Any) -> str:
    """An agent whose last heartbeat was `heard` before AS_OF (negative: after it)."""
    agent_id = _id()
    session.add(
        Agent(
            id=agent_id,
            establishment_finess=finess,
            hostname=f"srv-{agent_id[:6]}",
            version="0.1.0",
            key_hash=hashlib.sha256(agent_id.encode()).hexdigest(),
            enrolled_at=extra.pop("enrolled_at", AS_OF - timedelta(days=60)),
            last_heartbeat=None if heard is None else AS_OF - heard,
            **extra,
        )
    )
    return agent_id


def _snapshot(
    session: Session,
    finess: str,
    score: float,
    level: int,
    statuses: dict[str, str],
    *,
    day: date = AS_OF.date(),  # noqa: B008 - a constant
    computed: datetime | None = None,
    version: str = FRAMEWORK.version,
) -> None:
    controls = [{"id": c.id, "status": statuses.get(c.id, "fail")} for c in FRAMEWORK.controls]
    session.add(
        Snapshot(
            id=_id(),
            finess=finess,
            as_of=day,
            kind="CHU",
            region="Normandie",
            framework_id=FRAMEWORK.id,
            framework_version=version,
            framework_digest=FRAMEWORK.digest,
            computed_at=computed or datetime.combine(day, datetime.min.time(), UTC),
            score=score,
            level=level,
            coverage=1.0,
            proof_ratio=1.0,
            inputs_digest="i" * 64,
            result={"controls": controls},
        )
    )


def _incident(session: Session, finess: str, category: str, aware: timedelta, **extra: Any) -> None:
    """An incident its establishment became aware of `aware` before AS_OF."""
    aware_at = AS_OF - aware
    session.add(
        Incident(
            id=_id(),
            establishment_finess=finess,
            origin="declared",
            title=f"{category} at {finess}",
            category=category,
            severity="high",
            care_impact=extra.pop("care_impact", "interrupted"),
            aware_at=aware_at,
            created_by="test",
            created_at=extra.pop("created_at", aware_at + timedelta(minutes=5)),
            notifiable=extra.pop("notifiable", True),
            **extra,
        )
    )


def _alert(session: Session, created: timedelta, severity: str, **extra: Any) -> str:
    alert_id = _id()
    session.add(
        Alert(
            id=alert_id,
            title=f"alerte {alert_id[:6]}",
            severity=severity,
            tlp="amber",
            created_by="cert",
            created_at=AS_OF - created,
            updated_at=extra.pop("updated_at", AS_OF - created),
            **extra,
        )
    )
    session.flush()
    return alert_id


def _ack(session: Session, alert_id: str, finess: str, at: datetime) -> None:
    session.add(
        Acknowledgement(
            alert_id=alert_id,
            establishment_finess=finess,
            acknowledged_by="rssi",
            acknowledged_at=at,
        )
    )


def seed(session: Session) -> None:
    born = AS_OF - timedelta(days=300)
    for group, kind, region, legal in (
        (NORMANDIE, "CHU", "Normandie", "public"),
        (BRETAGNE_CH, "CH", "Bretagne", "public"),
        (BRETAGNE_EHPAD, "EHPAD", "Bretagne", "private_commercial"),
        (BRETAGNE_UNSTATED, "EHPAD", "Bretagne", None),
        (CORSE_PSY, "psychiatry", "Corse", "public"),
        (CORSE_SSR, "SSR", "Corse", "public"),
    ):
        for finess in group:
            session.add(
                Establishment(
                    finess=finess,
                    name=f"É {finess}",
                    kind=kind,
                    region=region,
                    legal_status=legal,
                    created_at=born,
                )
            )
    # Registered after AS_OF: counted nowhere.
    session.add(
        Establishment(
            finess="760000099", name="Later", kind="CHU", region="Normandie",
            legal_status="public", created_at=AS_OF + timedelta(hours=1),
        )
    )  # fmt: skip
    session.flush()
    n1, n2, n3, n4, n5, n6 = NORMANDIE

    # Agents. Active: heard within the 7 days before AS_OF, enrolled and not revoked then.
    _agent(session, n1, timedelta(hours=1))
    _agent(session, n2, timedelta(days=2))
    # Its last heartbeat came after AS_OF; the day's evidence says it was heard before.
    later = _agent(session, n3, timedelta(hours=-3))
    session.add(
        Evidence(
            finess=n3, signal="agent", key=later, day=(AS_OF - timedelta(days=1)).date(),
            count=3, first_seen=AS_OF - timedelta(days=1, hours=2),
            last_seen=AS_OF - timedelta(days=1), samples=["heartbeat"], subjects=["evtx"],
        )
    )  # fmt: skip
    _agent(session, n4, timedelta(days=1), revoked=True, revoked_at=AS_OF + timedelta(days=1))
    _agent(session, n5, timedelta(days=6))
    _agent(session, n5, timedelta(minutes=5))
    # Not active: revoked before AS_OF, silent 8 days, enrolled after AS_OF.
    _agent(session, n6, timedelta(hours=1), revoked=True, revoked_at=AS_OF - timedelta(hours=2))
    _agent(session, n6, timedelta(days=8))
    _agent(session, n6, timedelta(hours=-1), enrolled_at=AS_OF + timedelta(minutes=30))
    for finess in BRETAGNE_CH:
        _agent(session, finess, timedelta(hours=2))

    # Maturity: scores 10..60, levels five times 2 and once 3.
    for finess, score in zip(NORMANDIE, (10.0, 20.0, 30.0, 40.0, 50.0, 60.0), strict=True):
        statuses = {"GOV-01": "pass", "GOV-02": "no_evidence", "GOV-03": "pass"}
        if finess == n6:
            statuses["GOV-03"] = "na"
        _snapshot(session, finess, score, 3 if finess == n6 else 2, statuses)
    # Not counted: computed after AS_OF, of another framework version, an older day.
    _snapshot(session, n1, 99.0, 5, {}, computed=AS_OF + timedelta(minutes=1))
    _snapshot(session, n2, 99.0, 5, {}, version="2025.9")
    _snapshot(session, n3, 99.0, 5, {}, day=AS_OF.date() - timedelta(days=2))

    # Incidents of the 12 months. N1-N5: a ransomware each, reports on time.
    for finess in NORMANDIE[:5]:
        aware = timedelta(days=10)
        _incident(
            session, finess, "ransomware", aware,
            early_warning_at=AS_OF - aware + timedelta(hours=10),
            notification_at=AS_OF - aware + timedelta(hours=50),
        )  # fmt: skip
    # N6: a phishing 73 h ago with nothing sent (missed twice), one 10 h ago (pending twice),
    # a data breach whose notification was sent after AS_OF (missed as of AS_OF).
    _incident(session, n6, "phishing", timedelta(hours=73))
    _incident(session, n6, "phishing", timedelta(hours=10))
    _incident(
        session, n6, "data_breach", timedelta(days=10),
        early_warning_at=AS_OF - timedelta(days=10, hours=-10),
        notification_at=AS_OF + timedelta(hours=1),
    )  # fmt: skip
    # Not counted: created after AS_OF, 13 months before, an exercise.
    _incident(session, n1, "ransomware", timedelta(hours=-2))
    _incident(session, n1, "ransomware", timedelta(days=400))
    _incident(session, n1, "exercise", timedelta(days=3), notifiable=False)

    # Alerts. A1: everyone, high (24 h), 5 days ago.
    a1 = _alert(session, timedelta(days=5), "high", target_all=True)
    for finess in [*NORMANDIE[:5], *BRETAGNE_CH]:
        _ack(session, a1, finess, AS_OF - timedelta(days=5) + timedelta(hours=2))
    _ack(session, a1, n6, AS_OF - timedelta(days=5) + timedelta(hours=30))  # late
    # A2: Normandie, medium (72 h), a day ago: still within its delay.
    a2 = _alert(session, timedelta(days=1), "medium", target_regions=["Normandie"])
    _ack(session, a2, n1, AS_OF - timedelta(hours=23))
    _ack(session, a2, n2, AS_OF + timedelta(hours=1))  # after AS_OF: not yet
    # A3: EHPAD, low, withdrawn an hour after it was published: nothing left to acknowledge.
    a3 = _alert(
        session, timedelta(days=10), "low", target_kinds=["EHPAD"], status="withdrawn",
        updated_at=AS_OF - timedelta(days=10, hours=-1),
    )  # fmt: skip
    _ack(session, a3, BRETAGNE_EHPAD[0], AS_OF - timedelta(days=10, minutes=-30))
    # Not counted: before the period, after AS_OF.
    _alert(session, timedelta(days=400), "high", target_all=True)
    _alert(session, timedelta(hours=-1), "high", target_all=True)


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    engine = make_engine(database_url)
    upgrade(engine)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        seed(session)
    with sessions() as session:
        yield session
    engine.dispose()


def make(session: Session, format: str = "xlsx", region: str | None = None) -> bytes:
    out = io.BytesIO()
    stats.build(session, Params("stats", format, AS_OF, region=region), out)
    return out.getvalue()


def sheets(data: bytes) -> dict[str, list[dict[str, Any]]]:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    out = {}
    for ws in book.worksheets:
        header, *rows = ws.iter_rows(values_only=True)
        out[ws.title] = [dict(zip(header, row, strict=True)) for row in rows]
    book.close()
    return out


def row(rows: list[dict[str, Any]], region: str, kind: str, status: str, **more: str) -> dict:
    found = [
        r
        for r in rows
        if (r["région"], r["catégorie d'établissement"], r["statut juridique"])
        == (region, kind, status)
        and all(r[k] == v for k, v in more.items())
    ]
    assert len(found) == 1, (region, kind, status, more, len(found))
    return found[0]


@pytest.fixture
def report(session: Session) -> dict[str, list[dict[str, Any]]]:
    return sheets(make(session))


def test_a_cohort_of_4_is_hidden_and_one_of_5_is_shown(report: dict) -> None:
    rows = report["etablissements"]
    four = row(rows, "Bretagne", "EHPAD", "privé commercial")
    assert [four[c] for c in ("établissements", "avec agent actif", "couverture (%)")] == ["s"] * 3
    assert row(rows, "Bretagne", "EHPAD", "non renseigné")["établissements"] == "s"
    five = row(rows, "Bretagne", "centre hospitalier", "public")
    assert five["établissements"] == 5
    assert five["avec agent actif"] == 5
    assert five["couverture (%)"] == 1.0
    # The 4 and the 3 hide each other: their region's total and its EHPAD are shown.
    assert row(rows, "Bretagne", ENSEMBLE, ENSEMBLE)["établissements"] == 12
    assert row(rows, "Bretagne", "EHPAD", ENSEMBLE)["établissements"] == 7
    national = row(rows, ENSEMBLE, ENSEMBLE, ENSEMBLE)
    assert national["établissements"] == 26  # not the one registered after AS_OF
    assert national["avec agent actif"] == 10


def test_a_cohort_that_would_give_a_smaller_one_away_is_hidden(report: dict) -> None:
    rows = report["etablissements"]
    assert row(rows, "Corse", ENSEMBLE, ENSEMBLE)["établissements"] == 8
    assert row(rows, "Corse", "SSR", "public")["établissements"] == "s"  # 2
    assert row(rows, "Corse", "psychiatrie", ENSEMBLE)["établissements"] == "s"  # 6 = 8 - 2
    assert row(rows, "Corse", "psychiatrie", "public")["établissements"] == "s"
    assert row(rows, ENSEMBLE, "psychiatrie", ENSEMBLE)["établissements"] == "s"
    assert row(rows, ENSEMBLE, ENSEMBLE, "public")["établissements"] == 19


def test_agents_active_as_of_then(report: dict) -> None:
    normandie = row(report["etablissements"], "Normandie", "CHU", "public")
    assert normandie["établissements"] == 6
    assert normandie["avec agent actif"] == 5  # N1-N5; N6's three agents are not
    assert normandie["agents actifs"] == 6  # N5 has two
    assert normandie["couverture (%)"] == pytest.approx(5 / 6, abs=1e-4)


def test_scores_and_levels(report: dict) -> None:
    normandie = row(report["scores"], "Normandie", ENSEMBLE, ENSEMBLE)
    assert normandie["établissements notés"] == 6
    assert normandie["score médian"] == 35.0
    assert normandie["score P25"] == 22.5
    assert normandie["score P75"] == 47.5
    assert normandie["score moyen"] == 35.0
    # Level 3 counts one establishment; level 2 (5) would give it away: both hidden.
    assert [normandie[f"niveau {n}"] for n in range(1, 6)] == [0, "s", "s", 0, 0]
    nothing = row(report["scores"], "Bretagne", "centre hospitalier", "public")
    assert nothing["établissements notés"] == 0
    assert nothing["score médian"] is None
    assert row(report["scores"], "Bretagne", "EHPAD", ENSEMBLE)["score médian"] is None


def test_control_rates(report: dict) -> None:
    rows = report["controles"]
    gov01 = row(rows, "Normandie", "CHU", ENSEMBLE, contrôle="GOV-01")
    assert gov01["évalués"] == 6
    assert (gov01["conformes (%)"], gov01["partiels (%)"], gov01["non conformes (%)"]) == (1, 0, 0)
    assert gov01["domaine"] == "GOV · Gouvernance et résilience"
    no_evidence = row(rows, "Normandie", "CHU", ENSEMBLE, contrôle="GOV-02")
    assert no_evidence["évalués"] == 0
    assert no_evidence["conformes (%)"] is None
    assert row(rows, ENSEMBLE, ENSEMBLE, ENSEMBLE, contrôle="GOV-03")["évalués"] == 5
    # National, 3 regions, 5 kinds, 3 legal statuses, 5 regions x kinds.
    assert len([r for r in rows if r["contrôle"] == "GOV-01"]) == 1 + 3 + 5 + 3 + 5
    assert len(rows) == 40 * 17


def test_incidents_by_category_and_nis2_deadlines(report: dict) -> None:
    rows = report["incidents"]
    everything = row(rows, "Normandie", "CHU", ENSEMBLE, **{"catégorie d'incident": ENSEMBLE})
    assert everything["établissements touchés"] == 6
    assert everything["incidents"] == 8
    assert everything["soins interrompus"] == 8
    assert everything["notifiables"] == 8
    assert everything["alerte précoce à temps"] == 6
    assert everything["notification à temps"] == 5
    # N6's alone: one establishment.
    for column in ("notification en retard", "notification en attente", "notification à temps (%)"):
        assert everything[column] == "s"
    ransomware = row(rows, "Normandie", "CHU", ENSEMBLE, **{"catégorie d'incident": "rançongiciel"})
    assert ransomware["incidents"] == 5
    assert ransomware["notification à temps"] == 5
    assert ransomware["notification en retard"] == 0
    assert ransomware["notification à temps (%)"] == 1.0
    phishing = row(rows, "Normandie", "CHU", ENSEMBLE, **{"catégorie d'incident": "hameçonnage"})
    assert phishing["incidents"] == "s"
    assert phishing["établissements touchés"] == "s"
    quiet = row(rows, "Bretagne", ENSEMBLE, ENSEMBLE, **{"catégorie d'incident": ENSEMBLE})
    assert quiet["incidents"] == 0
    assert quiet["notification à temps (%)"] is None


def test_alert_acknowledgements(report: dict) -> None:
    normandie = row(report["alertes"], "Normandie", "CHU", "public")
    assert normandie["alertes publiées"] == 2
    assert normandie["établissements ciblés"] == 6
    assert normandie["couples ciblés"] == 12
    assert normandie["couples accusés"] == 7  # A1 by all six, A2 by N1 (N2 after AS_OF)
    assert normandie["couples échus"] == 7  # A2 is not due yet: only its acknowledgement
    assert normandie["accusés dans le délai"] == 6  # N6 acknowledged A1 after 30 h
    assert normandie["dans le délai (%)"] == pytest.approx(6 / 7, abs=1e-4)
    assert normandie["en attente"] == 5
    assert normandie["retirés avant échéance"] == 0
    ehpad = row(report["alertes"], "Bretagne", "EHPAD", ENSEMBLE)
    assert (ehpad["alertes publiées"], ehpad["couples ciblés"]) == (2, 14)
    assert (ehpad["couples échus"], ehpad["retirés avant échéance"]) == (8, 6)
    assert ehpad["accusés dans le délai"] == 1
    assert row(report["alertes"], ENSEMBLE, ENSEMBLE, ENSEMBLE)["alertes publiées"] == 3


def test_definitions_cover_every_column_of_every_sheet(report: dict) -> None:
    defined = {(r["feuille"], r["colonne"]) for r in report["definitions"]}
    assert set(report) == {
        "etablissements", "scores", "controles", "incidents", "alertes", "definitions"
    }  # fmt: skip
    for name, rows in report.items():
        for column in rows[0]:
            assert (name, column) in defined, (name, column)
    topics = {c for f, c in defined if f == "toutes"}
    assert {"période", "cohortes", "s", "secret secondaire", "date d'arrêté"} <= topics


def test_a_region_is_the_national_rows_of_that_region(session: Session, report: dict) -> None:
    regional = sheets(make(session, region="Normandie"))
    for name in ("etablissements", "scores", "controles", "incidents", "alertes"):
        assert regional[name], name
        assert {r["région"] for r in regional[name]} == {"Normandie"}
        assert regional[name] == [r for r in report[name] if r["région"] == "Normandie"]
    assert len(regional["etablissements"]) == 4
    with pytest.raises(Exception, match="no region 'Atlantide'"):
        make(session, region="Atlantide")


def test_the_same_as_of_gives_the_same_bytes(session: Session) -> None:
    for format in ("xlsx", "csv"):
        first, again = make(session, format), make(session, format)
        assert hashlib.sha256(first).hexdigest() == hashlib.sha256(again).hexdigest()
    archive = zipfile.ZipFile(io.BytesIO(first))
    names = [i.filename for i in archive.infolist()]
    assert names == [f"{n}.csv" for n in ("etablissements", "scores", "controles", "incidents",
                                          "alertes", "definitions")]  # fmt: skip
    assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    lines = archive.read("etablissements.csv").decode("utf-8-sig").splitlines()
    assert lines[0].startswith("région;catégorie d'établissement;statut juridique;établissements")
    assert "Bretagne;centre hospitalier;public;5;5;5;100,0" in lines
    assert "Bretagne;EHPAD;privé commercial;s;s;s;s" in lines


ADDITIVE = {
    "etablissements": ("établissements", "avec agent actif", "agents actifs"),
    "scores": ("établissements notés", *(f"niveau {n}" for n in range(1, 6))),
    "incidents": ("incidents", "soins interrompus", "notifiables", "notification en retard"),
    "alertes": ("couples ciblés", "couples échus", "en attente"),
}


def test_no_margin_gives_a_hidden_cell_away(report: dict) -> None:
    """Read from the file alone: a shown "Ensemble" row never leaves exactly one of the rows
    it sums hidden, and where none is hidden it is their sum."""
    for name, counts in ADDITIVE.items():
        rows = report[name]
        width = 4 if name == "incidents" else 3
        by_key = {tuple(r.values())[:width]: r for r in rows}
        for column in counts:
            lines: dict[tuple[int, tuple], list[tuple]] = {}
            for key in by_key:
                for p in range(width):
                    if key[p] != ENSEMBLE:
                        parent = (*key[:p], ENSEMBLE, *key[p + 1 :])
                        lines.setdefault((p, parent), []).append(key)
            checked = 0
            for (_, parent), parts in lines.items():
                if parent not in by_key or by_key[parent][column] == "s":
                    continue
                values = [by_key[k][column] for k in parts]
                assert values.count("s") != 1, (name, column, parent)
                if "s" not in values:
                    assert by_key[parent][column] == sum(values), (name, column, parent)
                    checked += 1
            assert checked, (name, column)


def test_secondary_suppression_leaves_no_lone_hidden_part() -> None:
    keys = [("*",), ("a",), ("b",), ("c",)]
    rows = [{"n": 23}, {"n": 3}, {"n": 12}, {"n": 8}]
    hidden = hidden_cells(keys, rows, [23, 9, 12, 8], [Count("n", along=(0,))], total="*")
    # a (3) is hidden, and the smallest other part with it: the total would give it away.
    assert hidden["n"] == [False, True, False, True]
    both = hidden_cells(
        [("*",)], [{"all": 9, "x": 4, "y": 5, "z": 0}], [9],
        [Count(name, along=()) for name in ("all", "x", "y", "z")],
        [("all", ("x", "y", "z"))], total="*",
    )  # fmt: skip
    assert [both[name][0] for name in ("all", "x", "y", "z")] == [False, True, True, False]


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_auditors_may_download_it_and_establishments_may_not(service: Service) -> None:
    tokens = setup_world(service)
    with service.client(tokens["it_pitie"]) as client:
        assert client.get("/reports/stats").status_code == 403
    with service.client(tokens["inspector"]) as client:
        answer = client.get("/reports/stats", params={"format": "csv"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(answer.content)).namelist()
    assert "definitions.csv" in names
