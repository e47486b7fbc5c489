"""Shared test helpers: where the third-party corpora live, and how to skip without them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from api.auth import passwords

REPO = Path(__file__).resolve().parent.parent
CORPORA = REPO.parent / "shared" / "corpora"


def corpus_path(*parts: str) -> Path:
    """Path into ../shared/corpora; skip (or fail under VIGIE_REQUIRE_CORPORA=1) if absent."""
    path = CORPORA.joinpath(*parts)
    if not path.exists():
        reason = f"corpus not found: {path} (../shared/corpora is not checked out here)"
        if os.environ.get("VIGIE_REQUIRE_CORPORA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(autouse=True)
def _own_cache_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test has its own cache folder: `vigie scan` and the agent cache compiled rules under
    $XDG_CACHE_HOME, which would otherwise be the real ~/.cache/vigie, shared by parallel tests."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


# argon2 at its production cost (64 MiB, 3 passes, 4 lanes) takes 0.1-0.3 s a hash, and each
# service test hashes or checks several passwords while setting up users. Tests hash at the
# lowest cost argon2 allows; the hasher is replaced here, in the test process only, so no
# setting or variable can lower it in production. Hashes keep their parameters, so a hash of
# either cost checks with either hasher. Tests of the cost itself use `production_hashing`.
_PRODUCTION_HASHER = passwords._hasher
passwords._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture
def production_hashing() -> Iterator[None]:
    cheap = passwords._hasher
    passwords._hasher = _PRODUCTION_HASHER
    passwords._dummy_hash.cache_clear()
    try:
        yield
    finally:
        passwords._hasher = cheap
        passwords._dummy_hash.cache_clear()


@pytest.hookimpl(optionalhook=True)  # xdist's hook: without xdist, nothing calls it
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: two workers per core. Many tests spend most of their time waiting (on a
    service or agent process they started, on a scripted schedule of faults), which one worker
    per core would leave the core idle for."""
    return 2 * (os.cpu_count() or 1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first. xdist hands tests out in this order: a long test handed out last ends
    the run alone, while handed out first it runs as the short ones fill the other workers."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
