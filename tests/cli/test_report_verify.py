"""`vigie report audit-log`, `verify` and `verify-chain` on a real database (SQLite and
PostgreSQL): the extract verifies, and a byte changed in its CSV or its manifest, a row taken
out, another key, or a row changed in the database is refused with its place."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from api.audit.service import _add
from api.db import make_engine, session_factory, transaction, upgrade
from api.reports import auditlog
from api.reports.signing import ReportSigner
from cli.main import main
from tests.api.conftest import database_url  # noqa: F401 - the fixture, SQLite and PostgreSQL


@pytest.fixture
def logged(database_url: str, tmp_path: Path) -> str:  # noqa: F811
    """A database whose audit log holds 12 entries, one with `;`, quotes and a line break."""
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        sessions = session_factory(engine)
        for n in range(12):
            with transaction(sessions) as session:
                detail = 'a;b "c"\nd' if n == 4 else f"{n}"
                _add(
                    session, f"user{n % 3}", "cert", "read", "incident", str(n), "10.0.0.1", detail
                )
    finally:
        engine.dispose()
    return database_url


def _extract(url: str, tmp_path: Path, *more: str) -> Path:
    out = tmp_path / "extract.zip"
    given = ["report", "audit-log", "--output", str(out), "--database-url", url]
    assert main([*given, "--data-dir", str(tmp_path / "data"), *more]) == 0
    return out


def _rewrite(path: Path, name: str, change: bytes, at: int) -> None:
    """`path` with the byte at `at` of its member `name` replaced by `change`."""
    files = {n: zipfile.ZipFile(path).read(n) for n in zipfile.ZipFile(path).namelist()}
    files[name] = files[name][:at] + change + files[name][at + 1 :]
    path.write_bytes(auditlog._zip(list(files.items())))


def test_an_extract_verifies_with_its_key_and_the_pinned_one(
    logged: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _extract(logged, tmp_path, "--until", "2999-01-01T00:00:00")
    assert main(["report", "verify", str(out)]) == 0
    assert "OK, 12 rows" in capsys.readouterr().out
    pem = tmp_path / "report.pem"
    pem.write_bytes(ReportSigner.in_data_dir(tmp_path / "data").public_pem())
    assert main(["report", "verify", str(out), "--public-key", str(pem)]) == 0
    # A key other than the service's: refused, though the extract is whole.
    other = Ed25519PrivateKey.generate().public_key()
    pem.write_bytes(other.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    capsys.readouterr()
    assert main(["report", "verify", str(out), "--public-key", str(pem)]) == 1
    assert "manifest.sig: the signature does not match" in capsys.readouterr().out
    assert main(["report", "verify-chain", "--database-url", logged]) == 0


def test_a_byte_changed_in_the_csv_is_found_with_its_line(
    logged: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _extract(logged, tmp_path)
    table = zipfile.ZipFile(out).read("audit-log.csv")
    third = table.index(b"\r\n3;") + 2  # the line of row 3 (line 4: the header is line 1)
    at = table.index(b"user2", third) + 4  # its actor (row n is entry n - 1's: user2)
    _rewrite(out, "audit-log.csv", b"9", at)
    capsys.readouterr()
    assert main(["report", "verify", str(out)]) == 1
    said = capsys.readouterr().out
    assert "audit-log.csv: sha256" in said
    assert "audit-log.csv line 4 (row 3): row edited" in said
    assert "row 4" not in said  # the next row still follows row 3's (stated) hash


def test_a_row_taken_out_of_the_csv_is_found(
    logged: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _extract(logged, tmp_path)
    files = {n: zipfile.ZipFile(out).read(n) for n in zipfile.ZipFile(out).namelist()}
    lines = files["audit-log.csv"].split(b"\r\n")
    files["audit-log.csv"] = b"\r\n".join(lines[:3] + lines[4:])  # row 3 out
    out.write_bytes(auditlog._zip(list(files.items())))
    capsys.readouterr()
    assert main(["report", "verify", str(out)]) == 1
    said = capsys.readouterr().out
    assert "(row 4): chain broken, prev_hash does not follow row 2" in said
    assert "holds 11 rows" in said


def test_a_byte_changed_in_the_manifest_breaks_the_signature(
    logged: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _extract(logged, tmp_path)
    manifest = zipfile.ZipFile(out).read("manifest.json")
    _rewrite(out, "manifest.json", b"3", manifest.index(b'"rows": 12') + 8)  # 12 -> 32
    capsys.readouterr()
    assert main(["report", "verify", str(out)]) == 1
    said = capsys.readouterr().out
    assert "manifest.sig: the signature does not match manifest.json" in said
    assert "the manifest says 32" in said
    assert main(["report", "verify", str(tmp_path / "missing.zip")]) == 2
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    assert main(["report", "verify", str(tmp_path / "junk.zip")]) == 1
    assert "not a readable ZIP" in capsys.readouterr().out


def test_a_row_edited_in_the_database_is_named_by_verify_chain(
    logged: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(logged)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("UPDATE audit_log SET actor = 'x' WHERE id = 5"))
        connection.execute(sqlalchemy.text("DELETE FROM audit_log WHERE id = 9"))
    engine.dispose()
    capsys.readouterr()
    assert main(["report", "verify-chain", "--database-url", logged]) == 1
    said = capsys.readouterr().out
    assert "row 5: row edited" in said
    assert "row 10: chain broken after row 8" in said
    # An extract of the range tells the same.
    out = _extract(logged, tmp_path)
    assert main(["report", "verify", str(out)]) == 1
    said = capsys.readouterr().out
    assert "(row 5): row edited" in said
    assert "(row 10): chain broken, prev_hash does not follow row 8" in said


def test_the_same_range_twice_is_the_same_file(logged: str, tmp_path: Path) -> None:
    # Each extract adds its own entry to the log, after `until`: not in the next one.
    until = ["--until", datetime.now(UTC).isoformat()]
    first = _extract(logged, tmp_path, *until).read_bytes()
    assert _extract(logged, tmp_path, *until).read_bytes() == first
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(first)).read("manifest.json"))
    assert manifest["rows"] == 12
    assert auditlog.verify(first).ok
    by_actor = io.BytesIO(_extract(logged, tmp_path, "--actor", "user1").read_bytes())
    assert zipfile.ZipFile(by_actor).read("audit-log.csv").count(b"\r\n") == 1 + 4
    assert auditlog.verify(by_actor.getvalue()).ok
