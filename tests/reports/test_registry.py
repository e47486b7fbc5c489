"""The incident registry over real HTTP (SQLite and PostgreSQL): incidents declared and reported
through the service, the registry read back as CSV (csv module) and XLSX (openpyxl)."""

from __future__ import annotations

import csv
import hashlib
import io
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import openpyxl

from api.db import make_engine, session_factory, transaction
from api.incidents.models import Campaign, Incident
from tests.api.conftest import Service
from tests.api.test_service import BORDEAUX, PITIE, setup_world

NOW_SLACK = timedelta(minutes=1)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def declare(client: Any, finess: str, title: str, aware: datetime, **extra: Any) -> str:
    body = {
        "establishment": finess,
        "title": title,
        "category": "ransomware",
        "care_impact": "degraded",
        "personal_data": True,
        "aware_at": iso(aware),
        "affected_systems": ["srv-labo-01", "srv-pacs"],
        "severity": "high",
        **extra,
    }
    made = client.post("/incidents", json=body)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def sent(client: Any, incident: str, kind: str, at: datetime | None = None) -> None:
    body = {"kind": kind} | ({"sent_at": iso(at)} if at else {})
    answer = client.post(f"/incidents/{incident}/reports", json=body)
    assert answer.status_code == 200, answer.text


def status(client: Any, incident: str, to: str) -> None:
    answer = client.post(f"/incidents/{incident}/status", json={"status": to})
    assert answer.status_code == 200, answer.text


def moment_now() -> datetime:
    """A moment strictly after everything the service wrote so far, and before what follows."""
    time.sleep(0.01)
    moment = datetime.now(UTC)
    time.sleep(0.01)
    return moment


def registry(
    client: Any, as_of: datetime, **params: str
) -> tuple[bytes, dict[str, dict[str, str]]]:
    answer = client.get("/reports/registry", params={"as_of": iso(as_of), **params})
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-vigie-report-sha256"] == hashlib.sha256(answer.content).hexdigest()
    return answer.content, rows_of(answer.content)


def rows_of(data: bytes) -> dict[str, dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=";")
    return {row["identifiant"]: row for row in reader}


def paris(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    assert moment.utcoffset() in (timedelta(hours=1), timedelta(hours=2)), value
    return moment


def same_second(value: str, expected: datetime) -> bool:
    return paris(value) == expected.replace(microsecond=0)


def test_registry_deadlines_as_of_and_access(service: Service) -> None:
    tokens = setup_world(service)
    start = datetime.now(UTC)
    with service.client(tokens["analyst"]) as cert:
        late = declare(cert, PITIE, "Aware 73 hours ago, nothing sent", start - timedelta(hours=73))
        fresh = declare(cert, PITIE, "Aware 10 hours ago", start - timedelta(hours=10))
        aware = start - timedelta(hours=50)
        reported = declare(cert, BORDEAUX, "Aware 50 hours ago, reports sent", aware)
        sent(cert, reported, "early_warning", aware + timedelta(hours=2))
        sent(cert, reported, "cnil", aware + timedelta(hours=3))
        minor = declare(
            cert, BORDEAUX, "Not significant", start - timedelta(hours=100), notifiable=False
        )
        status(cert, late, "acknowledged")
        first = moment_now()
        # After the first as_of: a notification recorded now, a status change, a new incident.
        sent(cert, reported, "notification")
        status(cert, late, "resolved")
        status(cert, late, "closed")
        later = declare(cert, PITIE, "Declared after the first as_of", start - timedelta(hours=1))
        second = moment_now()

    with service.client(tokens["inspector"]) as auditor:
        data, rows = registry(auditor, first)
        again, _ = registry(auditor, first)
        assert hashlib.sha256(data).digest() == hashlib.sha256(again).digest()
        _, now_rows = registry(auditor, second)

    assert list(rows) == [minor, late, reported, fresh]  # by awareness; `later` came after
    header = data.decode("utf-8-sig").split("\r\n", 1)[0].split(";")
    assert header[:3] == ["identifiant", "FINESS", "établissement"]

    # Aware 73 hours before as_of, nothing sent: the 24 h and 72 h deadlines are missed.
    row = rows[late]
    assert row["alerte précoce : état"] == "missed"
    assert row["notification : état"] == "missed"
    assert row["rapport final : état"] == "pending"
    assert row["notification : envoyée le"] == ""
    assert same_second(row["notification : échéance"], start - timedelta(hours=1))
    assert row["FINESS"] == PITIE
    assert row["région"] == "Île-de-France"
    assert row["systèmes touchés"] == "srv-labo-01, srv-pacs"
    assert row["données personnelles"] == "oui"
    assert row["incident significatif"] == "oui"  # declared: significant unless said otherwise
    assert row["statut à la date d'arrêté"] == "acknowledged"
    assert row["résolu le"] == row["clos le"] == ""
    # Aware 10 hours before: every deadline still to come.
    assert {rows[fresh][f"{k} : état"] for k in ("alerte précoce", "notification")} == {"pending"}
    # The early warning sent on time is met; the notification recorded after as_of is not sent.
    row = rows[reported]
    assert row["alerte précoce : état"] == "met"
    assert same_second(row["alerte précoce : envoyée le"], aware + timedelta(hours=2))
    assert same_second(row["CNIL notifiée le"], aware + timedelta(hours=3))
    assert row["notification : état"] == "pending"
    assert row["notification : envoyée le"] == ""
    # Not significant: no deadline applies.
    row = rows[minor]
    assert [row[f"{k} : état"] for k in ("alerte précoce", "notification", "rapport final")] == [
        "n/a"
    ] * 3
    assert row["notification : échéance"] == ""
    assert row["incident significatif"] == "non"

    # As of the second moment: the notification is sent (on time), the incident closed.
    assert list(now_rows) == [minor, late, reported, fresh, later]
    assert now_rows[reported]["notification : état"] == "met"
    assert now_rows[reported]["notification : envoyée le"] != ""
    assert now_rows[late]["statut à la date d'arrêté"] == "closed"
    assert now_rows[late]["résolu le"] != ""
    assert now_rows[late]["clos le"] != ""
    assert paris(now_rows[late]["résolu le"]) <= paris(now_rows[late]["clos le"])
    assert paris(now_rows[late]["clos le"]) > first - NOW_SLACK

    with service.client(tokens["it_pitie"]) as own:
        _, mine = registry(own, second)
        assert set(mine) == {late, fresh, later}  # its own incidents only
        other = own.get("/reports/registry", params={"as_of": iso(second), "finess": BORDEAUX})
        assert other.status_code == 404
        same = own.get("/reports/registry", params={"as_of": iso(second), "finess": PITIE})
        assert same.status_code == 200
    with service.client(tokens["inspector"]) as auditor:
        _, region = registry(auditor, second, region="Nouvelle-Aquitaine")
        assert set(region) == {minor, reported}
        _, one = registry(auditor, second, finess=BORDEAUX)
        assert set(one) == {minor, reported}
        wrong = auditor.get("/reports/registry", params={"as_of": iso(second), "region": "Nulle"})
        assert wrong.status_code == 422
        absent = auditor.get("/reports/registry", params={"finess": "750000001"})
        assert absent.status_code == 404


def test_registry_xlsx_reads_back_and_is_reproducible(service: Service) -> None:
    tokens = setup_world(service)
    start = datetime.now(UTC)
    with service.client(tokens["analyst"]) as cert:
        late = declare(cert, PITIE, '=HYPERLINK("http://x")', start - timedelta(hours=73))
        fresh = declare(cert, BORDEAUX, "Aware 10 hours ago", start - timedelta(hours=10))
        sent(cert, fresh, "early_warning", start - timedelta(hours=9))
        minor = declare(cert, BORDEAUX, "Minor", start - timedelta(hours=5), notifiable=False)
    _in_campaign(service, late)
    as_of = moment_now()

    with service.client(tokens["inspector"]) as auditor:
        params = {"as_of": iso(as_of), "format": "xlsx"}
        first = auditor.get("/reports/registry", params=params)
        second = auditor.get("/reports/registry", params=params)
        assert first.status_code == 200, first.text
        assert first.headers["content-type"].startswith("application/vnd.openxmlformats")
        assert "registre-incidents" in first.headers["content-disposition"]
        assert hashlib.sha256(first.content).hexdigest() == (
            hashlib.sha256(second.content).hexdigest()
        )
        _, national = registry(auditor, as_of)
    book = openpyxl.load_workbook(io.BytesIO(first.content))
    assert book.sheetnames == ["registre", "synthese", "definitions"]
    sheet = book["registre"]
    header = [c.value for c in sheet[1]]
    rows = {r[0]: dict(zip(header, r, strict=True)) for r in sheet.iter_rows(2, values_only=True)}
    assert list(rows) == [late, fresh, minor]
    row = rows[late]
    assert row["titre"] == '=HYPERLINK("http://x")'  # a string, not a formula
    assert sheet.cell(2, header.index("titre") + 1).data_type == "s"
    assert row["notification : état"] == "missed"
    assert isinstance(row["connaissance le"], datetime)  # a date cell, in Paris time
    expected = (start - timedelta(hours=73)).astimezone(_paris()).replace(tzinfo=None)
    assert abs(row["connaissance le"] - expected) < timedelta(milliseconds=2)
    assert row["données personnelles"] == "oui"
    assert row["campagne"] is not None
    assert rows[fresh]["alerte précoce : état"] == "met"
    assert rows[fresh]["notification : état"] == "pending"
    assert rows[minor]["notification : état"] == "n/a"
    # The CSV says the same: its campaign too (a national registry).
    assert national[late]["campagne"] == row["campagne"]
    assert national[late]["titre"] == '\'=HYPERLINK("http://x")'  # not run by a spreadsheet

    summary = {r[0]: r for r in book["synthese"].iter_rows(2, values_only=True)}
    # échéance, délai, met, missed, pending, n/a, incidents, taux de respect
    assert summary["alerte précoce"][2:7] == (1, 1, 0, 1, 3)
    assert summary["alerte précoce"][7] == 0.5
    assert summary["notification"][2:7] == (0, 1, 1, 1, 3)
    assert summary["rapport final"][2:7] == (0, 0, 2, 1, 3)
    assert summary["rapport final"][7] is None
    defined = {(r[0], r[1]) for r in book["definitions"].iter_rows(2, values_only=True)}
    assert {("registre", h) for h in header} <= defined
    assert ("document", "date d'arrêté") in defined

    with service.client(tokens["it_pitie"]) as own:
        _, mine = registry(own, as_of)
    assert list(mine) == [late]
    assert mine[late]["campagne"] == ""  # campaigns are the CERT's view


def _in_campaign(service: Service, incident: str) -> None:
    """What campaign detection does across establishments, written in the database (a
    declared incident never joins one through the API)."""
    engine = make_engine(service.settings.database_url)
    now = datetime.now(UTC)
    with transaction(session_factory(engine)) as session:
        campaign = Campaign(
            id=str(uuid.uuid4()), rule_id="rule", title="Campaign", first_seen=now, last_seen=now
        )
        session.add(campaign)
        session.flush()
        found = session.get(Incident, incident)
        assert found is not None
        found.campaign_id = campaign.id
    engine.dispose()


def _paris() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Paris")
