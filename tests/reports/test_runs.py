"""Reports as a whole, through the real service: who may have which, the audit log of every
download, the runs kept by the scheduled jobs and listed with their sha256, and the CLI giving
the same bytes as the API for the same `as_of`."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from tests.api.conftest import Service
from tests.api.test_incidents import form
from tests.api.test_service import BORDEAUX, PITIE, setup_world


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _next_month_start(now: datetime) -> datetime:
    first = now.replace(day=1, hour=2, minute=30, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


@pytest.fixture
def world(service: Service) -> dict[str, str]:
    tokens = setup_world(service)
    with service.client(tokens["admin"]) as client:
        for finess in (PITIE, BORDEAUX):
            made = client.post("/incidents", json=form(establishment=finess))
            assert made.status_code == 201, made.text
        assert client.post("/jobs/maturity/run").json()["outcome"] == "ok"
    return tokens


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_each_role_is_offered_what_it_may_have(service: Service, world: dict[str, str]) -> None:
    offered = {}
    for who in ("it_pitie", "inspector", "analyst", "admin"):
        with service.client(world[who]) as client:
            offered[who] = {k["kind"] for k in client.get("/reports").json()}
    assert offered["it_pitie"] == {"maturity", "registry"}
    assert offered["analyst"] == {"maturity", "stats", "registry", "acknowledgements"}
    assert offered["inspector"] == offered["analyst"] | {"audit-log"}
    with service.client(world["it_pitie"]) as client:
        for kind in ("stats", "acknowledgements"):
            assert client.get(f"/reports/{kind}").status_code == 403
        theirs = client.get("/reports/maturity", params={"finess": BORDEAUX})
        assert theirs.status_code == 404
        # Its own registry, whatever region it names: never another establishment's rows.
        own = client.get(
            "/reports/registry", params={"format": "csv", "region": "Nouvelle-Aquitaine"}
        )
        assert own.status_code == 200
        assert PITIE in own.text
        assert BORDEAUX not in own.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_requests_say_what_is_wrong(service: Service, world: dict[str, str]) -> None:
    future = quote((datetime.now(UTC) + timedelta(days=1)).isoformat())
    with service.client(world["inspector"]) as client:
        cases = {
            "/reports/nothing": (404, "the reports are"),
            "/reports/maturity?format=pdf": (422, "finess"),
            f"/reports/maturity?finess={PITIE}&format=docx": (422, "pdf, xlsx"),
            f"/reports/stats?finess={PITIE}": (422, "not one"),
            f"/reports/registry?as_of={future}": (422, "future"),
        }
        for url, (status, said) in cases.items():
            answer = client.get(url)
            assert answer.status_code == status, (url, answer.text)
            assert said in answer.text, (url, answer.text)


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_download_is_audited_with_its_sha256(service: Service, world: dict[str, str]) -> None:
    as_of = datetime.now(UTC).replace(microsecond=0).isoformat()
    with service.client(world["inspector"]) as client:
        first = client.get("/reports/registry", params={"format": "xlsx", "as_of": as_of})
        again = client.get("/reports/registry", params={"format": "xlsx", "as_of": as_of})
    assert first.status_code == 200, first.text
    assert first.content == again.content
    digest = _sha(first.content)
    assert first.headers["x-vigie-report-sha256"] == digest
    assert first.headers["content-disposition"].endswith('.xlsx"')
    with service.client(world["admin"]) as client:
        entries = client.get("/audit", params={"actor": "inspector", "action": "download"}).json()
    downloads = [e for e in entries if e["target_kind"] == "report"]
    assert len(downloads) == 2
    assert all(f"sha256={digest}" in e["detail"] for e in downloads)
    assert all(e["target_id"] == "registry" for e in downloads)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_scheduled_runs_are_kept_listed_and_downloadable(
    service: Service, world: dict[str, str]
) -> None:
    moment = _next_month_start(datetime.now(UTC)).isoformat()
    with service.client(world["admin"], timeout=120) as client:
        run = client.post("/jobs/report_maturity/run", params={"now": moment}).json()
        assert run["outcome"] == "ok", run
        assert run["counts"] == {
            "establishments": 2,
            "made": 4,
            "already_kept": 0,
            "failed": 0,
            "left": 0,
        }
        again = client.post("/jobs/report_maturity/run", params={"now": moment}).json()
        assert again["counts"]["made"] == 0
        assert again["counts"]["already_kept"] == 4
        stats = client.post("/jobs/report_stats/run", params={"now": moment}).json()
        assert stats["outcome"] == "ok", stats
        assert stats["counts"]["made"] == 2
        listed = client.get("/reports/runs").json()
    assert len(listed) == 6
    assert {(r["kind"], r["format"]) for r in listed} == {
        ("maturity", "pdf"),
        ("maturity", "xlsx"),
        ("stats", "xlsx"),
        ("stats", "csv"),
    }
    assert all(r["trigger"] == "schedule" and r["versions"]["fpdf2"] for r in listed)
    with service.client(world["inspector"]) as client:
        for r in listed:
            kept = client.get(f"/reports/runs/{r['id']}/file")
            assert kept.status_code == 200
            assert _sha(kept.content) == r["sha256"]
            assert len(kept.content) == r["size"]
    # An establishment lists and downloads its own kept reports only.
    with service.client(world["it_pitie"]) as client:
        mine = client.get("/reports/runs").json()
        assert {r["finess"] for r in mine} == {PITIE}
        assert len(mine) == 2
        theirs = next(r for r in listed if r["finess"] == BORDEAUX)
        assert client.get(f"/reports/runs/{theirs['id']}/file").status_code == 404
        national = next(r for r in listed if r["kind"] == "stats")
        assert client.get(f"/reports/runs/{national['id']}/file").status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_cli_writes_the_same_bytes_as_the_api(service: Service, world: dict[str, str]) -> None:
    as_of = datetime.now(UTC).replace(microsecond=0)
    with service.client(world["inspector"]) as client:
        api = client.get(
            "/reports/registry", params={"format": "csv", "as_of": as_of.isoformat()}
        ).content
    out = service.settings.data_dir / "registre.csv"
    command = [
        sys.executable, "-m", "cli.main", "report", "registry", "--format", "csv",
        "--as-of", as_of.isoformat(), "--output", str(out),
        "--data-dir", str(service.settings.data_dir),
        "--database-url", service.settings.database_url,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == api
    assert _sha(api) in done.stdout
    future = (as_of + timedelta(days=2)).isoformat()
    refused = subprocess.run(
        [*command[:8], future, *command[9:]], capture_output=True, text=True, check=False
    )
    assert refused.returncode != 0
    assert "future" in refused.stderr
