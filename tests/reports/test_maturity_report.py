"""The maturity report (PDF and XLSX) of an establishment scored by the real service: the same
`as_of` gives the same bytes, even after later declarations and scores; what it says (read
back with pypdf and openpyxl) is what the API said at that moment; who may download it."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pypdf
import pytest
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from api.db import make_engine, session_factory, transaction
from api.errors import NotFound
from api.reports import french, maturity
from api.reports.catalogue import Params, checked
from api.web.actions import STATUS_FR
from tests.api.conftest import Service
from tests.api.test_ingest import agent_key, post
from tests.api.test_maturity_api import bad_hygiene_batch, iso, run_job
from tests.api.test_service import BORDEAUX, PASSWORD, PITIE, setup_world


@pytest.fixture
def world(service: Service) -> dict[str, Any]:
    """Pitié scored three times over two months, with a profile that makes EXP-05 not
    applicable, an exception on EXP-01, and a crisis exercise seen by Vigie while the
    answer says the last one is old (a contradiction on GOV-04). Returns the tokens and
    `as_of`, a moment after the last score."""
    tokens: dict[str, Any] = setup_world(service)
    assert post(service, agent_key(service, tokens), bad_hygiene_batch()).status_code == 200
    base = f"/establishments/{PITIE}/maturity"
    now = datetime.now(UTC)
    with service.client(tokens["admin"]) as client:
        made = client.post(
            "/users",
            json={
                "username": "it_bordeaux",
                "password": PASSWORD,
                "role": "establishment",
                "establishment": BORDEAUX,
            },
        )
        assert made.status_code == 201, made.text  # fmt: skip
        for days in (60, 30):  # earlier days: a trend
            ran = client.post("/jobs/maturity/run", params={"now": iso(now - timedelta(days=days))})
            assert ran.json()["outcome"] == "ok", ran.text
    with service.client(tokens["it_pitie"]) as client:
        profile = {"flags": {"has_remote_access": False}, "reason": "aucun accès distant"}
        assert client.put(f"{base}/profile", json=profile).status_code == 200
        old = (now - timedelta(days=500)).date().isoformat()
        assert client.put(f"{base}/answers/GOV-04", json={"date": old}).status_code == 200
        exercise = {
            "title": "Exercice de crise : rançongiciel sur le DPI",
            "category": "exercise",
            "care_impact": "none",
            "personal_data": False,
            "aware_at": iso(now - timedelta(days=10)),
            "notifiable": False,
        }
        assert client.post("/incidents", json=exercise).status_code == 201
        accepted = client.post(
            f"{base}/exceptions",
            json={
                "control": "EXP-01",
                "kind": "risk_accepted",
                "reason": "télémaintenance du PACS le temps de la migration",
                "approver": "Directrice générale",
                "expires_at": iso(now + timedelta(days=90)),
            },
        )
        assert accepted.status_code == 201, accepted.text
    run_job(service, tokens["admin"])
    tokens["exception"] = accepted.json()["id"]
    tokens["as_of"] = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    return tokens


@pytest.fixture
def sessions(service: Service) -> Iterator[sessionmaker[Session]]:
    """Sessions of our own on the service's database, as the CLI opens them."""
    engine = make_engine(service.settings.database_url)
    yield session_factory(engine)
    engine.dispose()


def made(sessions: sessionmaker[Session], params: Params) -> bytes:
    """One report, in a transaction of its own (as `runs.make` is called)."""
    out = io.BytesIO()
    with transaction(sessions) as session:
        maturity.build(session, params, out)
    return out.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def sheet_rows(data: bytes, name: str) -> list[dict[str, Any]]:
    rows = list(openpyxl.load_workbook(io.BytesIO(data), read_only=True)[name].values)
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def api_maturity(service: Service, token: str, day: date) -> dict[str, Any]:
    with service.client(token) as client:
        answer = client.get(f"/establishments/{PITIE}/maturity", params={"as_of": str(day)})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def wait_past(moment: datetime) -> None:
    """Rows written from now on are later than `moment` (times are the database's clock)."""
    import time

    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()) + 0.05)


def test_same_as_of_same_bytes_and_what_the_api_said(
    service: Service, world: dict[str, Any], sessions: sessionmaker[Session]
) -> None:
    as_of = world["as_of"]
    wait_past(as_of)
    pdf_params = checked("maturity", "pdf", as_of, PITIE)
    xlsx_params = checked("maturity", "xlsx", as_of, PITIE)
    pdf, xlsx = made(sessions, pdf_params), made(sessions, xlsx_params)
    assert pdf.startswith(b"%PDF-1.7")
    assert xlsx.startswith(b"PK")
    assert sha(made(sessions, pdf_params)) == sha(pdf)
    assert sha(made(sessions, xlsx_params)) == sha(xlsx)

    doc = api_maturity(service, world["inspector"], as_of.date())
    text = pdf_text(pdf)
    assert PITIE in text
    assert f"{french.number(doc['score'], 1)} / 100" in text
    assert f"{doc['level']} / 5 · {doc['level_name']}" in text
    first_fix = doc["fixes"][0]["control"]
    fixes_page = text[text.index("corrections les plus utiles") : text.index("Toutes les mesures")]
    assert first_fix in fixes_page
    assert "Directrice générale" in text  # the exception, with who approved it
    assert "aucun accès distant" in text  # the profile's reason, beside the N/A controls
    assert doc["framework"]["digest"] in text.replace("\n", "")  # the framework file's
    assert "page 1 sur " in text
    assert "3 jours calculés" in text  # 60 and 30 days ago, and today

    controls = sheet_rows(xlsx, "mesures")
    assert [(r["mesure"], r["code statut"]) for r in controls] == [
        (c["id"], c["status"]) for c in doc["controls"]
    ]
    assert all(r["statut"] == STATUS_FR[r["code statut"]] for r in controls)
    statuses = {r["mesure"]: r["code statut"] for r in controls}
    assert statuses["EXP-01"] == "risk_accepted"
    assert statuses["EXP-05"] == "na"
    assert sheet_rows(xlsx, "corrections")[0]["mesure"] == first_fix
    [exception] = sheet_rows(xlsx, "exceptions")
    assert (exception["mesure"], exception["approuvée par"], exception["état"]) == (
        "EXP-01", "Directrice générale", "en vigueur"
    )  # fmt: skip
    [na] = sheet_rows(xlsx, "non_applicables")
    assert (na["mesure"], na["profil déclaré par"]) == ("EXP-05", "it_pitie")
    [contradiction] = sheet_rows(xlsx, "contradictions")
    assert contradiction["mesure"] == "GOV-04"
    assert "Dernier exercice de crise enregistré" in contradiction["observé"]
    assert len(sheet_rows(xlsx, "evolution")) == 3
    sheets = openpyxl.load_workbook(io.BytesIO(xlsx), read_only=True).sheetnames
    assert sheets[-1] == "definitions"

    # PDF/A-3B, dated as_of (never the clock), in the XMP metadata that PDF/A reads.
    xmp = pypdf.PdfReader(io.BytesIO(pdf)).xmp_metadata
    assert xmp is not None
    assert xmp.xmp_create_date == xmp.xmp_modify_date == as_of.replace(tzinfo=None)
    raw = pypdf.PdfReader(io.BytesIO(pdf)).trailer["/Root"]["/Metadata"].get_object().get_data()
    assert b"<pdfaid:part>3</pdfaid:part>" in raw
    assert b"<pdfaid:conformance>B</pdfaid:conformance>" in raw


def test_later_declarations_and_scores_leave_the_report_unchanged(
    service: Service, world: dict[str, Any], sessions: sessionmaker[Session]
) -> None:
    as_of = world["as_of"]
    wait_past(as_of)
    params = {f: checked("maturity", f, as_of, PITIE) for f in ("pdf", "xlsx")}
    before = {f: sha(made(sessions, p)) for f, p in params.items()}
    base = f"/establishments/{PITIE}/maturity"
    with service.client(world["it_pitie"]) as client:
        revoked = client.post(f"{base}/exceptions/{world['exception']}/revoke")
        assert revoked.status_code == 200
        later = {
            "control": "HYG-02",
            "kind": "compensated",
            "reason": "VLAN isolé en attendant",
            "approver": "DSI",
            "expires_at": iso(datetime.now(UTC) + timedelta(days=30)),
        }
        assert client.post(f"{base}/exceptions", json=later).status_code == 201  # fmt: skip
    run_job(service, world["admin"])  # the same day scored again, after as_of
    assert {f: sha(made(sessions, p)) for f, p in params.items()} == before
    # As of now, the report knows all that.
    now = datetime.now(UTC)
    xlsx = made(sessions, checked("maturity", "xlsx", now, PITIE))
    states = {(r["mesure"], r["état"]) for r in sheet_rows(xlsx, "exceptions")}
    assert states == {("EXP-01", "révoquée"), ("HYG-02", "en vigueur")}
    controls = {r["mesure"]: r["code statut"] for r in sheet_rows(xlsx, "mesures")}
    assert controls["EXP-01"] == "fail"
    assert controls["HYG-02"] == "compensated"


def test_no_score_yet_or_no_such_establishment(
    service: Service, sessions: sessionmaker[Session]
) -> None:
    setup_world(service)
    now = datetime.now(UTC)
    with pytest.raises(NotFound, match="run the maturity job first"):
        made(sessions, checked("maturity", "pdf", now, PITIE))
    with pytest.raises(NotFound, match="no establishment 999999999"):
        made(sessions, checked("maturity", "pdf", now, "999999999"))


def test_download_over_http(service: Service, world: dict[str, Any]) -> None:
    as_of = world["as_of"]
    wait_past(as_of)
    asked = {"finess": PITIE, "format": "pdf", "as_of": iso(as_of)}
    digests = []
    for who in ("inspector", "inspector", "it_pitie"):
        with service.client(world[who]) as client:
            answer = client.get("/reports/maturity", params=asked)
        assert answer.status_code == 200, (who, answer.text)
        assert answer.headers["content-type"] == "application/pdf"
        assert answer.headers["x-vigie-report-sha256"] == sha(answer.content)
        digests.append(sha(answer.content))
    # The same file whoever asks, and as often: an auditor's copy is the establishment's.
    assert len(set(digests)) == 1
    other = service.login("it_bordeaux", PASSWORD)
    with service.client(other) as client:
        refused = client.get("/reports/maturity", params=asked)
        assert refused.status_code == 404
        # Its own, scored by the same jobs.
        own = client.get("/reports/maturity", params={**asked, "finess": BORDEAUX})
        assert own.status_code == 200, own.text
        assert BORDEAUX in pdf_text(own.content)
    with service.client(world["inspector"]) as client:
        early = client.get("/reports/maturity",
                           params={**asked, "as_of": iso(as_of - timedelta(days=90))})  # fmt: skip
        assert early.status_code == 404
        assert "run the maturity job first" in early.text
        xlsx = client.get("/reports/maturity", params={**asked, "format": "xlsx"})
        assert xlsx.status_code == 200
        assert len(sheet_rows(xlsx.content, "mesures")) == 40


def test_the_monthly_job_keeps_each_report(service: Service, world: dict[str, Any]) -> None:
    """Scheduled: each scored establishment's PDF and XLSX as of the month's start, kept and
    downloadable again byte for byte."""
    now = datetime.now(UTC)
    next_month = (now.replace(day=1) + timedelta(days=32)).replace(day=2)
    with service.client(world["admin"], timeout=120) as client:
        ran = client.post("/jobs/report_maturity/run", params={"now": iso(next_month)})
        assert ran.json()["outcome"] == "ok", ran.text
        counts = {"establishments": 2, "made": 4, "already_kept": 0, "failed": 0, "left": 0}
        assert ran.json()["counts"] == counts
    with service.client(world["it_pitie"]) as client:
        kept = client.get("/reports/runs").json()
        assert {(r["finess"], r["format"]) for r in kept} == {(PITIE, "pdf"), (PITIE, "xlsx")}
        for run in kept:
            assert run["as_of"].startswith(next_month.strftime("%Y-%m-01T00:00:00"))
            again = client.get(f"/reports/runs/{run['id']}/file")
            assert again.status_code == 200
            assert sha(again.content) == run["sha256"]


def test_every_page_renders_with_poppler(
    service: Service, world: dict[str, Any], sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """pdftoppm (poppler, as a reader would open it) draws every page, none of them blank:
    a second PDF engine than the one pypdf's text extraction exercises."""
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        if os.environ.get("CI") == "true":
            pytest.fail("pdftoppm is required in CI (.ci/install-debian-packages: poppler-utils)")
        pytest.skip("pdftoppm (Debian's poppler-utils) is not installed")
    wait_past(world["as_of"])
    pdf = made(sessions, checked("maturity", "pdf", world["as_of"], PITIE))
    (tmp_path / "m.pdf").write_bytes(pdf)
    done = subprocess.run(
        [pdftoppm, "-r", "30", "-png", str(tmp_path / "m.pdf"), str(tmp_path / "page")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Error" not in done.stderr, done.stderr
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == len(pypdf.PdfReader(io.BytesIO(pdf)).pages) >= 5
    for page in pages:
        darkest, lightest = Image.open(page).convert("L").getextrema()
        assert darkest < 100 < lightest, f"{page.name} is blank"
