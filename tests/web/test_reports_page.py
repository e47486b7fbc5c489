"""The dashboard's reports page, as a person uses it: logged in with the form, offered what
their role may have, downloading with the same rules, bytes and audit as the API."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from tests.api.conftest import Service
from tests.api.test_incidents import form
from tests.api.test_service import BORDEAUX, PITIE, setup_world
from tests.web.test_pages import browser


@pytest.fixture
def world(service: Service) -> dict[str, str]:
    tokens = setup_world(service)
    with service.client(tokens["admin"]) as client:
        for finess in (PITIE, BORDEAUX):
            made = client.post("/incidents", json=form(establishment=finess))
            assert made.status_code == 201, made.text
    return tokens


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_auditor_downloads_the_same_file_twice(service: Service, world: dict[str, str]) -> None:
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    with browser(service, "inspector") as client:
        listing = client.get("/ui/reports")
        assert listing.status_code == 200
        for title in ("Rapport de maturité", "Statistiques nationales", "Registre des incidents",
                      "accusés de réception", "Extrait signé du journal d'audit"):  # fmt: skip
            assert title in listing.text, title
        first = client.get("/ui/reports/registry", params={"format": "csv", "day": yesterday})
        again = client.get("/ui/reports/registry", params={"format": "csv", "day": yesterday})
    assert first.status_code == 200, first.text
    assert first.headers["content-type"].startswith("text/csv")
    assert first.content == again.content
    # The incidents were made today: as of the end of yesterday, the registry has none.
    assert PITIE not in first.text
    digest = hashlib.sha256(first.content).hexdigest()
    with service.client(world["admin"]) as client:
        entries = client.get("/audit", params={"actor": "inspector", "action": "download"}).json()
    assert [e["detail"].endswith(f"sha256={digest}") for e in entries] == [True, True]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_establishment_has_its_own_reports_only(service: Service, world: dict[str, str]) -> None:
    with browser(service, "it_pitie") as client:
        listing = client.get("/ui/reports")
        assert "Registre des incidents" in listing.text
        assert "Statistiques nationales" not in listing.text
        assert 'name="finess"' not in listing.text  # its own: nothing to choose
        own = client.get("/ui/reports/registry", params={"format": "csv"})
        assert own.status_code == 200
        assert PITIE in own.text
        assert BORDEAUX not in own.text
        refused = client.get("/ui/reports/stats")
        assert refused.status_code == 403
        assert "Accès refusé" in refused.text
        theirs = client.get("/ui/reports/maturity", params={"finess": BORDEAUX})
        assert theirs.status_code == 404
