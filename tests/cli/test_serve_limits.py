"""`vigie serve` as an operator runs it, attacked as the independent test did: production by
default (a secret key required), a private data directory, and a steady memory under 20
parallel 100 MB unauthenticated bodies."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests import rawhttp
from tests.api.test_datadir import assert_private
from tests.cli.test_serve import VIGIE, serve_env, serving

MB = 2**20


def test_production_is_the_default_and_needs_a_secret(tmp_path: Path) -> None:
    env = serve_env(tmp_path)
    del env["VIGIE_SECRET_KEY"]
    done = subprocess.run(
        [VIGIE, "serve", "--data-dir", tmp_path / "data"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2
    assert "VIGIE_SECRET_KEY is required in production" in done.stderr
    assert "VIGIE_ENVIRONMENT=development" in done.stderr  # and how to try Vigie without one


def test_serve_keeps_its_data_dir_private(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    os.umask(old := os.umask(0o022))
    assert old == 0o022  # the caller's usual umask: vigie serve sets its own
    with serving(data, serve_env(tmp_path)) as (_, url, log):
        password = re.search(r"with password (\S+)", "".join(log))
        assert password, "".join(log)
        login = {"username": "admin", "password": password.group(1)}
        assert httpx.post(f"{url}/auth/token", json=login).status_code == 200
        assert (data / "vigie.db-wal").exists()
        assert_private(data)
    assert_private(data)
    assert {"vigie.db", "events.db", "bundle-signing.key"} <= {p.name for p in data.iterdir()}


def test_serve_warns_about_a_wider_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "wide"
    data.mkdir()
    data.chmod(0o755)
    env = serve_env(tmp_path, VIGIE_ENVIRONMENT="development")
    del env["VIGIE_SECRET_KEY"]  # development: a secret.key generated in the folder
    with serving(data, env) as (_, _url, log):
        pass
    assert any("0755" in line and "chmod 700" in line for line in log), "".join(log)
    assert stat.S_IMODE((data / "secret.key").stat().st_mode) == 0o600


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of a process, in bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) * 1024
    return found


def _hundred_megabytes() -> Iterator[bytes]:
    """100 MB of one JSON string, made as it is sent: never in this test's memory."""
    yield b'{"token": "'
    chunk = b"a" * (256 * 1024)
    for _ in range(100 * MB // len(chunk)):
        yield chunk


def test_twenty_parallel_100_mb_bodies_leave_memory_flat(tmp_path: Path) -> None:
    with serving(tmp_path / "data", serve_env(tmp_path)) as (process, url, log):
        for _ in range(5):  # warm: the first requests' allocations are not the attack's
            rawhttp.send(url, "/agents/enroll", [b'{"token": "x"}'])
        idle = _memory(process.pid)["VmRSS"]
        Path(f"/proc/{process.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS, from here
        targets = ["/agents/enroll", "/auth/token", "/users", "/alerts", "/ingest"]

        def attack(n: int) -> int:
            path = targets[n % len(targets)]
            if n % 2:  # streamed, chunked, no length
                status, _, _ = rawhttp.send(url, path, _hundred_megabytes())
            else:  # announced: a Content-Length of 100 MB, the body streamed after it
                headers = {"Content-Length": str(100 * MB + 11)}
                status, _, _ = rawhttp.send(
                    url, path, _hundred_megabytes(), headers=headers, chunked=False
                )
            return status

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(attack, range(20)))
        peak = _memory(process.pid)["VmHWM"]
        assert httpx.get(f"{url}/health").status_code == 200
    # /ingest authenticates first: a stranger's stream is refused with 401 before it is read.
    assert set(statuses) <= {413, 401}, statuses
    assert statuses.count(413) >= 16, statuses
    assert peak - idle < 50 * MB, f"idle {idle / MB:.0f} MB, peak {peak / MB:.0f} MB"
    print(f"idle {idle / MB:.1f} MB, peak under 20 x 100 MB {peak / MB:.1f} MB")
