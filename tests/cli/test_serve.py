"""`vigie serve` as a user starts it: on an empty data directory, with one or two workers."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

VIGIE = Path(sys.executable).parent / "vigie"


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def serve_env(home: Path, **extra: str) -> dict[str, str]:
    """A bare environment for `vigie serve` in production (the default): a secret key."""
    secret = "s" * 48
    return {"PATH": str(VIGIE.parent), "HOME": str(home), "VIGIE_SECRET_KEY": secret, **extra}


def free_port() -> int:
    """A port free now (for `vigie demo`, which cannot be told to take any port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_LISTENING = re.compile(r"(?:Uvicorn running|Vigie serving) on (http://127\.0\.0\.1:\d+)")


def listening_url(lines: Iterable[str]) -> str | None:
    """Where `vigie serve --port 0` says it listens (the port the system gave it)."""
    for line in lines:
        found = _LISTENING.search(line)
        if found:
            return found.group(1)
    return None


@contextmanager
def serving(
    data_dir: Path, env: dict[str, str], workers: int = 1
) -> Iterator[tuple[subprocess.Popen[str], str, list[str]]]:
    """`vigie serve` on a port it takes itself (`--port 0`), once it answers; its stderr lines
    gathered as they come."""
    process = subprocess.Popen(
        [VIGIE, "serve", "--data-dir", data_dir, "--port", "0", "--workers", str(workers)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(process.stderr or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "".join(log)
            assert time.monotonic() < deadline, "".join(log)
            url = listening_url(list(log))
            if url is None:
                time.sleep(0.1)
                continue
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield process, url, log
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_starts_on_an_empty_data_dir(tmp_path: Path, workers: int) -> None:
    data_dir = tmp_path / "empty"
    with serving(data_dir, serve_env(tmp_path), workers) as (process, url, log):
        passwords = [m for line in log for m in re.findall(r"with password (\S+)", line)]
        assert len(passwords) == 1, "".join(log)  # said once, even with several workers
        login = {"username": "admin", "password": passwords[0]}
        token = httpx.post(f"{url}/auth/token", json=login).json()["access_token"]
        spec = httpx.get(f"{url}/openapi.json").json()
        assert all(op.get("x-roles") for ops in spec["paths"].values() for op in ops.values())
        # Every worker answers with the same secret and database: a token from one is good
        # on whichever worker takes the next connection.
        for _ in range(6):
            me = httpx.get(f"{url}/auth/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200
            assert me.json()["must_change_password"] is True
        # The printed password opens nothing but its own change.
        refused = httpx.get(f"{url}/establishments", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 403
        assert refused.json()["code"] == "password_change_required"
        assert (data_dir / "vigie.db").exists()
        if workers > 1:
            # A worker that dies is replaced; the service answers meanwhile.
            children = _children(process.pid)
            assert len(children) == workers
            os.kill(children[0], signal.SIGKILL)
            deadline = time.monotonic() + 30
            while len(set(_children(process.pid)) - {children[0]}) < workers:
                assert time.monotonic() < deadline, "".join(log)
                assert httpx.get(f"{url}/health").status_code == 200
                time.sleep(0.2)


def test_serve_refuses_zero_workers(tmp_path: Path) -> None:
    done = subprocess.run(
        [VIGIE, "serve", "--data-dir", tmp_path, "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--workers" in done.stderr
