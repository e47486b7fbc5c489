"""The alert acknowledgement report over real HTTP (SQLite and PostgreSQL): alerts published by
the CERT, acknowledged by establishments, the report read back as CSV and XLSX."""

from __future__ import annotations

import csv
import hashlib
import io
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import openpyxl
from sqlalchemy import update

from api.alerts.models import Alert
from api.db import make_engine, session_factory, transaction
from api.establishments.models import Establishment
from tests.api.conftest import Service
from tests.api.test_alerts import alert_body
from tests.api.test_service import BORDEAUX, CORTE, PASSWORD, PITIE, setup_world

Key = tuple[str, str]  # (alert, FINESS)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def publish(client: Any, severity: str, target: dict[str, Any]) -> str:
    body = alert_body(
        title=f"Alerte {severity}", severity=severity, target=target, sigma_rules=[], yara_rules=[]
    )
    answer = client.post("/alerts", json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def acknowledge(service: Service, token: str, alert: str) -> None:
    with service.client(token) as client:
        answer = client.post(f"/alerts/{alert}/acknowledge", json={})
    assert answer.status_code == 200, answer.text


def earlier(service: Service, by: timedelta, *alerts: str, establishments: bool = False) -> None:
    """Alerts published `by` ago (and, with `establishments`, every establishment registered
    10 days before): the API does it now, so times are moved back in the database; what
    follows (acknowledgements) goes through the API."""
    engine = make_engine(service.settings.database_url)
    with transaction(session_factory(engine)) as session:
        for alert in alerts:
            found = session.get(Alert, alert)
            assert found is not None
            found.created_at = found.created_at - by
            found.updated_at = found.updated_at - by
        if establishments:
            session.execute(
                update(Establishment).values(created_at=datetime.now(UTC) - timedelta(days=10))
            )
    engine.dispose()


def moment_now() -> datetime:
    time.sleep(0.01)
    moment = datetime.now(UTC)
    time.sleep(0.01)
    return moment


def report(client: Any, as_of: datetime, **params: str) -> tuple[bytes, dict[Key, dict[str, str]]]:
    answer = client.get("/reports/acknowledgements", params={"as_of": iso(as_of), **params})
    assert answer.status_code == 200, answer.text
    data = answer.content
    assert data.startswith(b"\xef\xbb\xbf")
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=";")
    return data, {(row["alerte"], row["FINESS"]): row for row in reader}


def test_acknowledgements_on_time_late_pending_withdrawn(service: Service) -> None:
    tokens = setup_world(service)
    with service.client(tokens["admin"]) as admin:
        made = admin.post(
            "/users",
            json={"username": "it_bordeaux", "password": PASSWORD, "role": "establishment",
                  "establishment": BORDEAUX},
        )  # fmt: skip
        assert made.status_code == 201, made.text
    tokens["it_bordeaux"] = service.login("it_bordeaux", PASSWORD)
    with service.client(tokens["analyst"]) as cert:
        old = publish(cert, "high", {"all": True})  # 24 h, published 3 days ago
        regional = publish(cert, "medium", {"regions": ["Nouvelle-Aquitaine"]})  # 72 h, 4 days
        recent = publish(cert, "critical", {"all": True})
        withdrawn = publish(cert, "high", {"all": True})
        assert cert.post(f"/alerts/{withdrawn}/withdraw").status_code == 200
    earlier(service, timedelta(days=3), old, establishments=True)
    earlier(service, timedelta(days=4), regional)
    acknowledge(service, tokens["it_pitie"], old)  # 72 hours after: late
    acknowledge(service, tokens["it_pitie"], recent)  # at once: on time
    # Corte joins after these alerts: only the later one, for nursing homes, is meant for it.
    # (A second later: SQLite registers an establishment at the second, CURRENT_TIMESTAMP.)
    time.sleep(1.1)
    with service.client(tokens["admin"]) as admin:
        made = admin.post(
            "/establishments", json={"finess": CORTE, "name": "EHPAD de Corte", "kind": "EHPAD"}
        )
        assert made.status_code == 201, made.text
        made = admin.post(
            "/users",
            json={"username": "it_corte", "password": PASSWORD, "role": "establishment",
                  "establishment": CORTE},
        )  # fmt: skip
        assert made.status_code == 201, made.text
    with service.client(tokens["analyst"]) as cert:
        homes = publish(cert, "low", {"kinds": ["EHPAD"]})
    acknowledge(service, service.login("it_corte", PASSWORD), homes)
    first = moment_now()
    acknowledge(service, tokens["it_bordeaux"], recent)  # after the first as_of
    second = moment_now()

    with service.client(tokens["inspector"]) as auditor:
        data, rows = report(auditor, first)
        again, _ = report(auditor, first)
        _, later = report(auditor, second)
        _, corse = report(auditor, second, region="Corse")
        _, pitie = report(auditor, second, finess=PITIE)
        xlsx = auditor.get(
            "/reports/acknowledgements", params={"as_of": iso(first), "format": "xlsx"}
        )
        xlsx_again = auditor.get(
            "/reports/acknowledgements", params={"as_of": iso(first), "format": "xlsx"}
        )
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(again).hexdigest()
    assert xlsx.status_code == 200, xlsx.text
    assert hashlib.sha256(xlsx.content).digest() == hashlib.sha256(xlsx_again.content).digest()

    # Regions in French order (Île-de-France among the I), then FINESS, then publication.
    assert list(rows) == [
        (homes, CORTE),
        (old, PITIE), (recent, PITIE), (withdrawn, PITIE),
        (regional, BORDEAUX), (old, BORDEAUX), (recent, BORDEAUX), (withdrawn, BORDEAUX),
    ]  # fmt: skip
    state = {key: row["dans les délais"] for key, row in rows.items()}
    assert state == {
        (homes, CORTE): "oui",
        (old, PITIE): "non",  # acknowledged 72 hours after, for 24
        (recent, PITIE): "oui",
        (withdrawn, PITIE): "sans objet",
        (old, BORDEAUX): "non",  # never acknowledged, past due
        (regional, BORDEAUX): "non",
        (recent, BORDEAUX): "en attente",  # acknowledged after as_of: not yet
        (withdrawn, BORDEAUX): "sans objet",
    }
    assert rows[(old, PITIE)]["délai cible (h)"] == "24"
    assert rows[(regional, BORDEAUX)]["délai cible (h)"] == "72"
    assert rows[(homes, CORTE)]["délai cible (h)"] == "72"
    delay = float(rows[(old, PITIE)]["délai (h)"].replace(",", "."))
    assert 72 <= delay < 72.1
    assert rows[(recent, BORDEAUX)]["accusée le"] == ""
    assert rows[(withdrawn, PITIE)]["retirée le"] != ""
    assert rows[(old, PITIE)]["retirée le"] == ""
    assert rows[(old, PITIE)]["région"] == "Île-de-France"

    assert later[(recent, BORDEAUX)]["dans les délais"] == "oui"
    assert later[(recent, BORDEAUX)]["accusée le"] != ""
    assert set(corse) == {(homes, CORTE)}
    assert set(pitie) == {(old, PITIE), (recent, PITIE), (withdrawn, PITIE)}

    book = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    assert book.sheetnames == ["accuses", "etablissements", "regions", "definitions"]
    detail = list(book["accuses"].iter_rows(2, values_only=True))
    assert len(detail) == len(rows)
    header = [c.value for c in book["accuses"][1]]
    first_row = dict(zip(header, detail[0], strict=True))
    assert first_row["FINESS"] == CORTE
    assert isinstance(first_row["publiée le"], datetime)
    # alertes, accusées, dans les délais, en retard, en attente, sans objet, taux, médiane
    by_establishment = {r[0]: r[4:] for r in book["etablissements"].iter_rows(2, values_only=True)}
    assert by_establishment[PITIE][:7] == (3, 2, 1, 1, 0, 1, 0.5)
    assert 36 <= by_establishment[PITIE][7] < 36.1  # the median of about 72 and about 0 hours
    assert by_establishment[BORDEAUX] == (4, 0, 0, 2, 1, 1, 0.0, None)
    assert by_establishment[CORTE][:7] == (1, 1, 1, 0, 0, 0, 1.0)
    by_region = [r for r in book["regions"].iter_rows(2, values_only=True)]
    assert [r[0] for r in by_region] == ["Corse", "Île-de-France", "Nouvelle-Aquitaine"]
    assert by_region[1][1:9] == (1, 3, 2, 1, 1, 0, 1, 0.5)
    defined = {(r[0], r[1]) for r in book["definitions"].iter_rows(2, values_only=True)}
    assert {("accuses", h) for h in header} <= defined
    assert ("document", "délais cibles") in defined


def test_acknowledgements_are_for_national_roles(service: Service) -> None:
    tokens = setup_world(service)
    with service.client(tokens["it_pitie"]) as own:
        answer = own.get("/reports/acknowledgements")
        assert answer.status_code == 403
        assert own.get("/reports/acknowledgements", params={"finess": PITIE}).status_code == 403
    with service.client(tokens["inspector"]) as auditor:
        empty = auditor.get("/reports/acknowledgements")
        assert empty.status_code == 200, empty.text
        lines = empty.content.decode("utf-8-sig").split("\r\n")
        assert lines[0].startswith("alerte;titre;sévérité;TLP")
        assert lines[1:] == [""]  # no alert: the header alone
        wrong = auditor.get("/reports/acknowledgements", params={"region": "Atlantide"})
        assert wrong.status_code == 422
