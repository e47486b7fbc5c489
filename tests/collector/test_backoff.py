"""The README's "exponential back-off and jitter" of the agent's shipping: each failure doubles
the ceiling of the wait up to the configured cap, the wait is drawn anywhere below that ceiling
(full jitter), and a delivered batch starts again from the first ceiling."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx

from collector.shipper import BASE_DELAY, Backoff, Shipper
from collector.spool import Spool
from tests.collector.conftest import serving_proxy


class _Top(random.Random):
    """A random source whose every draw is the top of its range: the delay is the ceiling."""

    def random(self) -> float:
        return 1.0


def test_the_ceiling_doubles_per_failure_up_to_the_cap() -> None:
    backoff = Backoff(cap=100.0, rng=_Top())
    ceilings = [backoff.next_delay() for _ in range(10)]
    assert ceilings == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 100.0, 100.0, 100.0, 100.0]
    assert ceilings[0] == 2 * BASE_DELAY
    backoff.reset()
    assert backoff.next_delay() == 2.0
    # Thousands of failures (a service down for days) stay at the cap.
    for _ in range(5000):
        last = backoff.next_delay()
    assert last == 100.0


def test_jitter_spreads_the_delays_over_the_whole_range_below_the_ceiling() -> None:
    """Agents that lost the service together draw different waits: 2,000 draws at each
    failure count cover the range from near 0 to near the ceiling, never beyond it."""
    rng = random.Random(14)  # seeded: the same draws every run
    for failures, ceiling in ((1, 2.0), (3, 8.0), (9, 60.0)):
        draws = []
        for _ in range(2000):
            backoff = Backoff(cap=60.0, failures=failures - 1, rng=rng)
            draws.append(backoff.next_delay())
        assert all(0.0 <= d <= ceiling for d in draws)
        assert min(draws) < 0.05 * ceiling
        assert max(draws) > 0.95 * ceiling
        assert len(set(draws)) == len(draws)
        # Full jitter: uniform, so the mean sits near half the ceiling (the 2,000 draws'
        # standard error is 0.6% of the ceiling; 5% is far outside chance).
        assert abs(sum(draws) / len(draws) - ceiling / 2) < 0.05 * ceiling


def test_the_shipper_waits_longer_after_each_refusal_and_starts_again_once_delivered(
    tmp_path: Path,
) -> None:
    """Over HTTP: a service answering 503 gets a doubling wait from the shipper, a 200 acks
    the batch and resets the back-off."""
    answers: dict[str, Any] = {"/ingest": lambda: (503, {"detail": "busy"})}
    server = serving_proxy(answers)
    spool = Spool(tmp_path)
    client = httpx.Client(base_url=f"http://127.0.0.1:{server.server_address[1]}")
    try:
        spool.put([{"@timestamp": "2026-11-20T10:00:00Z", "message": "one"}])
        shipper = Shipper(client, spool, 100, Backoff(cap=5.0, rng=_Top()))
        assert [shipper.ship() for _ in range(4)] == [2.0, 4.0, 5.0, 5.0]
        assert shipper.last_error is not None
        assert "503" in shipper.last_error
        answers["/ingest"] = lambda: (200, {"accepted": 1})
        assert shipper.ship() is None
        assert spool.next_batch(100) is None  # delivered
        assert shipper.backoff.failures == 0
        spool.put([{"@timestamp": "2026-11-20T10:00:01Z", "message": "two"}])
        answers["/ingest"] = lambda: (429, {"detail": "slow down"})
        assert shipper.ship() == 2.0  # from the first ceiling again
    finally:
        client.close()
        spool.close()
        server.shutdown()
        server.server_close()
