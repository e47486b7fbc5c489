"""The audit log as a hash chain, through the running service on SQLite and PostgreSQL: the
signed extract is the same file twice and verifies; a row removed or edited in the database is
found and named; concurrent writers never chain to the same row."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from datetime import UTC, datetime

import sqlalchemy

from api.audit.chain import GENESIS
from api.db import make_engine
from api.reports import auditlog
from tests.api.conftest import Service

PASSWORD = "Tour-de-Constance-1248"  # noqa: S105 - the tests' auditor


def _tokens(service: Service) -> tuple[str, str]:
    admin = service.login("admin", service.admin_password)
    with service.client(admin) as client:
        made = client.post(
            "/users", json={"username": "inspector", "password": PASSWORD, "role": "auditor"}
        )
        assert made.status_code == 201, made.text
    return admin, service.login("inspector", PASSWORD)


def _reads(service: Service, token: str, count: int) -> None:
    with service.client(token) as client:
        for _ in range(count):
            assert client.get("/audit?limit=1").status_code == 200


def _execute(service: Service, statement: str) -> None:
    engine = make_engine(service.settings.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(statement))
    finally:
        engine.dispose()


def test_the_extract_is_the_same_file_twice_and_verifies(service: Service) -> None:
    admin, auditor = _tokens(service)
    _reads(service, admin, 5)
    until = datetime.now(UTC).isoformat()
    with service.client(auditor) as client:
        first = client.get("/reports/audit-log", params={"until": until})
        _reads(service, auditor, 2)  # the log grows past `until`: the extract does not change
        second = client.get("/reports/audit-log", params={"until": until})
        filtered = client.get("/reports/audit-log", params={"until": until, "actor": "admin"})
        bad = client.get("/reports/audit-log", params={"since": until, "until": until})
        downloads = client.get("/audit?action=download").json()
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/zip"
    assert hashlib.sha256(first.content).digest() == hashlib.sha256(second.content).digest()
    assert bad.status_code == 422
    assert "since" in bad.json()["detail"]
    assert [d["actor"] for d in downloads] == ["inspector"] * 3

    verdict = auditlog.verify(first.content)
    assert verdict.ok, verdict.problems
    archive = zipfile.ZipFile(io.BytesIO(first.content))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["rows"] == verdict.rows >= 7  # logins, the auditor's creation, 5 reads
    assert manifest["first_id"] == 1
    assert manifest["anchor"] == GENESIS
    assert manifest["generated_at"] == datetime.fromisoformat(until).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )
    assert archive.read("public-key.pem").startswith(b"-----BEGIN PUBLIC KEY-----")

    only_admin = auditlog.verify(filtered.content)
    assert only_admin.ok, only_admin.problems
    admin_manifest = json.loads(zipfile.ZipFile(io.BytesIO(filtered.content)).read("manifest.json"))
    assert admin_manifest["consecutive"] is False
    assert 0 < admin_manifest["rows"] < manifest["rows"]


def test_a_row_removed_or_edited_in_the_database_is_named(service: Service) -> None:
    admin, auditor = _tokens(service)
    _reads(service, admin, 6)
    with service.client(auditor) as client:
        sound = client.get("/audit/verify").json()
    assert sound["ok"] is True
    assert sound["breaks"] == []
    assert sound["rows"] >= 8

    _execute(service, "DELETE FROM audit_log WHERE id = 4")
    _execute(service, "UPDATE audit_log SET detail = 'rien' WHERE id = 6")
    with service.client(auditor) as client:
        broken = client.get("/audit/verify").json()
    assert broken["ok"] is False
    reasons = {(b["row_id"], b["reason"].split(":")[0].split(" ")[0]) for b in broken["breaks"]}
    # Row 5 no longer follows row 3; row 6's content no longer matches its hash.
    assert reasons == {(5, "chain"), (6, "row")}, broken["breaks"]

    # Hashes recomputed after the edit, to hide it: the next row's link still gives it away.
    # (Its first digit changed for another: one hash in 16 already starts with 'f'.)
    _execute(
        service,
        "UPDATE audit_log SET row_hash = CASE WHEN substr(row_hash, 1, 1) = 'f' THEN 'e' "
        "ELSE 'f' END || substr(row_hash, 2) WHERE id = 7",
    )
    with service.client(auditor) as client:
        later = client.get("/audit/verify").json()
    assert {b["row_id"] for b in later["breaks"]} == {5, 6, 7, 8}


def test_concurrent_writers_leave_an_unbroken_chain(service: Service) -> None:
    admin, auditor = _tokens(service)
    threads = [threading.Thread(target=_reads, args=(service, t, 50)) for t in (admin, auditor)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with service.client(auditor) as client:
        check = client.get("/audit/verify").json()
    assert check["ok"] is True, check["breaks"]
    assert check["rows"] >= 100
