"""Sending spooled batches to the national service: gzip, the batch's own id, exponential
back-off with full jitter on anything that may pass (network errors, 5xx, 429, a batch the
service is still processing), and a clear stop on what will not (a revoked key)."""

from __future__ import annotations

import gzip
import logging
import random
from dataclasses import dataclass, field
from typing import Any

import httpx

from collector.spool import Batch, Spool

log = logging.getLogger("vigie.agent")
BASE_DELAY = 1.0  # seconds, doubled per failure up to the configured cap


class AgentRevoked(RuntimeError):
    """The service refuses the agent's key: nothing will pass until it is enrolled again."""


@dataclass
class Backoff:
    cap: float
    failures: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        """Full jitter: agents that lost the service together do not all come back at once."""
        self.failures += 1
        return self.rng.uniform(0, min(self.cap, BASE_DELAY * 2 ** min(self.failures, 30)))

    def reset(self) -> None:
        self.failures = 0


@dataclass
class Shipper:
    client: httpx.Client  # base_url = the service, Authorization = the agent key
    spool: Spool
    batch_events: int
    backoff: Backoff
    last_error: str | None = None
    # A service older than per-item ids refuses them as unknown fields: batches then go
    # without (it dedupes by batch id only).
    item_ids: bool = True

    def ship(self) -> float | None:
        """Send batches until the spool is empty (None) or a send fails: then the seconds to
        wait before trying again."""
        while True:
            batch = self.spool.next_batch(self.batch_events)
            if batch is None:
                return None
            delay = self._send(batch)
            if delay is not None:
                return delay

    def _send(self, batch: Batch) -> float | None:
        body = gzip.compress(batch.body(item_ids=self.item_ids), compresslevel=6)
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        try:
            answer = self.client.post("/ingest", content=body, headers=headers)
        except httpx.HTTPError as exc:
            return self._failed(f"cannot reach the service: {exc or type(exc).__name__}")
        if answer.status_code == 200:
            result: dict[str, Any] = answer.json()
            if result.get("rejected"):
                log.warning(
                    "batch %s: %d item(s) rejected by the service, first: %s",
                    batch.batch_id,
                    len(result["rejected"]),
                    result["rejected"][0],
                )
            if result.get("duplicates"):
                log.info(
                    "batch %s: %d item(s) the service had already (a retry), not stored twice",
                    batch.batch_id,
                    result["duplicates"],
                )
            self.spool.ack(batch)
            self.backoff.reset()
            self.last_error = None
            return None
        if answer.status_code == 401:
            self.last_error = f"agent key refused: {answer.text[:200]}"
            raise AgentRevoked(self.last_error)
        if answer.status_code == 422 and self.item_ids and "event_ids" in answer.text:
            log.warning("the service takes no per-item ids (an older version): sending without")
            self.item_ids = False
            return self._send(batch)
        if answer.status_code in (409, 429) or answer.status_code >= 500:
            return self._failed(f"service answered {answer.status_code}: {answer.text[:200]}")
        # Any other refusal is about this batch and will not change: keep it out of the way,
        # counted, rather than block everything behind it.
        log.error(
            "batch %s refused for good (%d): %s",
            batch.batch_id,
            answer.status_code,
            answer.text[:500],
        )
        self.spool.ack(batch, counter="refused")
        return None

    def _failed(self, reason: str) -> float:
        delay = self.backoff.next_delay()
        self.last_error = reason
        log.warning("%s; next try in %.1f s", reason, delay)
        return delay
