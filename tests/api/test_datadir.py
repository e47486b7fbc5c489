"""The data directory made by `create_app` is its account's alone: 0700, files 0600, the
SQLite WAL and SHM files and what is made later included; a wider one is reported."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

import pytest

from api.settings import Settings
from tests.api.conftest import running
from tests.api.test_ingest import agent_key, post
from tests.api.test_service import setup_world


def modes(folder: Path) -> dict[str, int]:
    """The permission bits of `folder` and of everything under it, by relative path."""
    found = {".": stat.S_IMODE(folder.stat().st_mode)}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def assert_private(folder: Path) -> None:
    seen = modes(folder)
    for name, mode in seen.items():
        wanted = 0o700 if (folder / name).is_dir() else 0o600
        assert mode & ~wanted == 0, f"{name}: {mode:04o}, wanted {wanted:04o} ({seen})"


def test_a_fresh_data_dir_is_private(tmp_path: Path) -> None:
    assert os.umask(0o022) == 0o022  # the usual umask (and restored as it was)
    data = tmp_path / "fresh"
    settings = Settings(data, f"sqlite:///{data / 'vigie.db'}", secrets.token_urlsafe(40))
    with running(settings) as service:
        tokens = setup_world(service)  # the databases written, their WAL and SHM files made
        key = agent_key(service, tokens)
        batch = {"batch_id": "private-1", "events": [{"@timestamp": "2026-11-20T10:00:00Z"}]}
        assert post(service, key, batch).status_code == 200
        assert (data / "vigie.db-wal").exists()
        assert_private(data)
    assert {"vigie.db", "events.db", "bundle-signing.key"} <= set(modes(data))
    assert_private(data)
    assert os.umask(0o022) == 0o022  # create_app leaves the process's umask as it found it


def test_a_wider_data_dir_is_reported_and_its_files_closed(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "wide"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    old = data / "secret.key"
    old.write_text("x" * 40)
    old.chmod(0o644)
    settings = Settings(data, database_url, secrets.token_urlsafe(40))
    with caplog.at_level(logging.WARNING, logger="vigie.api"), running(settings):
        pass
    assert any("0755" in r.getMessage() and str(data) in r.getMessage() for r in caplog.records)
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
