"""Logins under attack (issue 13, finding 7): back-off per account and per address, the same
time for unknown and known names, and a bound on the memory a login flood can take.

Other client addresses are real: Linux routes all of 127.0.0.0/8 to the loopback, so a client
bound to 127.0.0.2 reaches the service as another address.
"""

from __future__ import annotations

import re
import secrets
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from api.agents.models import utcnow
from api.auth import throttle
from api.auth.passwords import CONCURRENT_HASHES
from api.db import make_engine
from tests import clients
from tests.api.conftest import Service
from tests.api.test_service import PASSWORD, setup_world
from tests.cli.test_serve import listening_url

VIGIE = Path(sys.executable).parent / "vigie"
MIB = 1024 * 1024


def login_from(service: Service, address: str, username: str, password: str) -> httpx.Response:
    transport = clients.transport(local_address=address)
    with clients.client(service.url, transport=transport, timeout=30) as client:
        return client.post("/auth/token", json={"username": username, "password": password})


def test_guessing_one_account_is_stopped(service: Service) -> None:
    setup_world(service)
    statuses = Counter(
        login_from(service, "127.0.0.1", "analyst", f"guess-{n}").status_code for n in range(30)
    )
    # The first five are checked, the rest refused before any check.
    assert statuses == {401: throttle.ACCOUNT_THRESHOLD, 429: 30 - throttle.ACCOUNT_THRESHOLD}
    right = login_from(service, "127.0.0.1", "analyst", PASSWORD)
    assert right.status_code == 429
    assert right.json()["code"] == "too_many_attempts"
    assert 1 <= int(right.headers["Retry-After"]) <= 60
    # From another address: the account's own limit still holds...
    assert login_from(service, "127.0.0.2", "analyst", PASSWORD).status_code == 429
    # ...and the address is not blocked for other accounts (five failures are under its limit).
    assert login_from(service, "127.0.0.1", "inspector", PASSWORD).status_code == 200
    assert login_from(service, "127.0.0.2", "inspector", PASSWORD).status_code == 200
    # A name that does not exist is blocked the same way: blocking says nothing of existence.
    ghost = [login_from(service, "127.0.0.3", "ghost", "x").status_code for _ in range(7)]
    assert ghost == [401] * throttle.ACCOUNT_THRESHOLD + [429, 429]


def test_guessing_from_one_address_is_stopped(service: Service) -> None:
    setup_world(service)
    # A spray: one guess on each of many names, from one address.
    statuses = [
        login_from(service, "127.0.0.4", f"user{n}", "Printemps2024!").status_code
        for n in range(throttle.ADDRESS_THRESHOLD + 3)
    ]
    assert statuses == [401] * throttle.ADDRESS_THRESHOLD + [429] * 3
    # That address is refused even for a right password; another address is not.
    assert login_from(service, "127.0.0.4", "analyst", PASSWORD).status_code == 429
    assert login_from(service, "127.0.0.5", "analyst", PASSWORD).status_code == 200


def test_a_stolen_token_is_no_password_oracle(service: Service) -> None:
    tokens = setup_world(service)
    with service.client(tokens["analyst"]) as client:
        answers = [
            client.post(
                "/auth/password",
                json={"current_password": f"guess-{n}", "new_password": "Sentinelle-du-Raz-1887"},
            ).status_code
            for n in range(8)
        ]
    assert answers == [403] * throttle.ACCOUNT_THRESHOLD + [429] * 3


def test_a_block_ends_and_a_success_clears_the_account(service: Service) -> None:
    """The back-off's arithmetic, on the service's own database, with the clock moved."""
    engine = make_engine(service.settings.database_url)
    now = utcnow()
    try:
        with Session(engine) as session, session.begin():
            for _ in range(throttle.ACCOUNT_THRESHOLD):
                throttle.failed(session=session, username="Analyst", address="10.1.2.3", now=now)
        with Session(engine) as session, session.begin():
            # Names are counted case-blind; the block lasts 30 s, then doubles per failure.
            with pytest.raises(throttle.TooManyAttempts) as blocked:
                throttle.check(session=session, username="analyst", address=None, now=now)
            assert 29 <= blocked.value.retry_after <= 31
            later = now + timedelta(seconds=31)
            throttle.check(session=session, username="analyst", address=None, now=later)
            throttle.failed(session=session, username="analyst", address=None, now=later)
            with pytest.raises(throttle.TooManyAttempts) as doubled:
                throttle.check(session=session, username="analyst", address=None, now=later)
            assert 59 <= doubled.value.retry_after <= 61
            throttle.succeeded(session=session, username="analyst")
            throttle.check(session=session, username="analyst", address=None, now=later)
            # Failures older than the window are forgotten.
            throttle.failed(session=session, username="bob", address=None, now=now)
            far = now + timedelta(hours=1)
            for _ in range(throttle.ACCOUNT_THRESHOLD - 1):
                throttle.failed(session=session, username="bob", address=None, now=far)
            throttle.check(session=session, username="bob", address=None, now=far)
    finally:
        engine.dispose()


def _median_login_time(service: Service, address: str, username: str, tries: int) -> float:
    times = []
    for n in range(tries):
        began = time.perf_counter()
        answer = login_from(service, address, username, f"wrong-{n}")
        times.append(time.perf_counter() - began)
        assert answer.status_code == 401
    return statistics.median(times)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("production_hashing")  # the cost compared is the production one
def test_unknown_names_cost_the_same_time_as_known_ones(service: Service) -> None:
    """Before: 2 ms for an unknown name against 120 ms for a known one. Each name stays
    under the account threshold (4 tries), from addresses of their own."""
    setup_world(service)
    with service.client(service.login("admin", service.admin_password)) as client:
        assert client.patch("/users/inspector", json={"active": False}).status_code == 200
    known = [_median_login_time(service, "127.0.0.6", "analyst", 4)]
    known.append(_median_login_time(service, "127.0.0.6", "it_pitie", 4))
    unknown = [_median_login_time(service, "127.0.0.7", f"nobody{n}", 4) for n in range(2)]
    disabled = _median_login_time(service, "127.0.0.8", "inspector", 4)
    k, u = statistics.median(known), statistics.median(unknown)
    assert u > k / 3, (k, u)
    assert u < k * 3, (k, u)
    assert k / 3 < disabled < k * 3, (k, disabled)


def _vm_hwm(pid: int) -> int:
    """The process's peak resident memory, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert found
    return int(found.group(1)) * 1024


@pytest.mark.slow
def test_a_login_flood_stays_within_a_memory_bound(tmp_path: Path) -> None:
    """40 logins at once from 40 addresses (so that no back-off cuts them short): the
    service's peak memory grows by at most CONCURRENT_HASHES x 64 MiB (argon2's memory per
    check) + 100 MiB; before, 20 at once took it from 349 MB to 1.3 GB."""
    process = subprocess.Popen(
        [VIGIE, "serve", "--data-dir", tmp_path / "data", "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={
            "PATH": str(VIGIE.parent),
            "HOME": str(tmp_path),
            "VIGIE_SECRET_KEY": secrets.token_urlsafe(40),  # production, the default
        },
    )
    try:
        assert process.stderr is not None
        password, url = "", None
        for line in process.stderr:
            found = re.search(r"with password (\S+)", line)
            password = found.group(1) if found else password
            url = listening_url([line])
            if url:  # said once the application has started
                break
        threading.Thread(target=lambda: [None for _ in process.stderr or ()], daemon=True).start()
        assert url, "vigie serve did not say where it listens"
        warm = httpx.post(f"{url}/auth/token", json={"username": "admin", "password": password})
        assert warm.status_code == 200  # one check done: its memory is in the idle peak
        idle = _vm_hwm(process.pid)
        statuses: Counter[int] = Counter()
        start = threading.Barrier(40)

        def guess(n: int) -> None:
            transport = httpx.HTTPTransport(local_address=f"127.0.1.{n + 10}")
            with httpx.Client(base_url=url, transport=transport, timeout=60) as client:
                start.wait()
                body = {"username": f"flood{n}", "password": "Printemps2024!"}
                statuses[client.post("/auth/token", json=body).status_code] += 1

        threads = [threading.Thread(target=guess, args=(n,)) for n in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        peak = _vm_hwm(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
    print(f"peak {idle // MIB} MiB idle, {peak // MIB} MiB after the flood: {dict(statuses)}")
    # Every attempt answered: refused as wrong, or turned away while the checks were busy.
    assert sum(statuses.values()) == 40
    assert set(statuses) <= {401, 503}, statuses
    assert statuses[401] >= CONCURRENT_HASHES
    grown = peak - idle
    assert grown <= CONCURRENT_HASHES * 64 * MIB + 100 * MIB, (grown // MIB, statuses)
