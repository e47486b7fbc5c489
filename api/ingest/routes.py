from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field

from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from api.agents import service as agents
from api.audit.service import record_request as _audit
from api.deps import CurrentUser, SessionDep, allow
from api.ingest import service, stats
from api.ingest.schemas import Batch, BatchResult, IngestStats
from api.roles import Role

router = APIRouter(tags=["ingest"])
READERS = (Role.ESTABLISHMENT, Role.CERT, Role.AUDITOR, Role.ADMIN)

MAX_BODY = 16 * 2**20  # bytes as sent (compressed)
MAX_BATCH = 64 * 2**20  # bytes once decompressed: a gzip bomb stops here


@dataclass
class RateLimiter:
    """Per-agent token bucket, in this process (several service processes: per process)."""

    per_second: float = 20.0
    burst: float = 40.0
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        tokens, last = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.per_second)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            return False
        self.buckets[key] = (tokens - 1, now)
        return True


def _decoded(body: bytes, encoding: str) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise HTTPException(415, f"unsupported Content-Encoding {encoding!r} (gzip or none)")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, MAX_BATCH)
    except zlib.error as exc:
        raise HTTPException(400, f"body is not valid gzip: {exc}") from exc
    if inflater.unconsumed_tail:
        raise HTTPException(413, f"batch larger than {MAX_BATCH} bytes once decompressed")
    return data


# The body is read by hand (it may be gzip): describe it for the OpenAPI document.
_ROUTE = allow(Role.AGENT)
_ROUTE["openapi_extra"]["requestBody"] = {
    "required": True,
    "content": {"application/json": {"schema": Batch.model_json_schema()}},
}


@router.post("/ingest", max_body_size=MAX_BODY, **_ROUTE)
async def ingest(request: Request, session: SessionDep, who: CurrentUser) -> BatchResult:
    limiter: RateLimiter = request.app.state.rate_limiter
    if not limiter.allow(who.username):
        raise HTTPException(429, "too many batches; retry later", headers={"Retry-After": "1"})
    body = await request.body()  # at most MAX_BODY: FastAPI's limit on the route
    encoding = request.headers.get("content-encoding", "").lower()

    def work() -> BatchResult:
        # Off the event loop: parsing, detection and storage are CPU and disk work, and
        # other requests (heartbeats, the dashboard) must not wait behind them.
        batch = service.parse_batch(_decoded(body, encoding))
        return service.ingest(
            session=session,
            sessions=request.app.state.sessions,
            store=request.app.state.event_store,
            live=request.app.state.live_rules,
            who=who,
            batch=batch,
            owner=request.app.state.ingest_owner,
            evidence=request.app.state.settings.maturity_evidence,
        )

    return await run_in_threadpool(work)


@router.get("/agents/{agent_id}/ingest", **allow(*READERS))
def agent_ingest_stats(
    agent_id: str, request: Request, session: SessionDep, who: CurrentUser
) -> IngestStats:
    """What the service received from the agent; an establishment, of its own agents only."""
    agent = agents.get(session=session, who=who, agent_id=agent_id)
    _audit(request, session, who, "read", "agent_ingest", agent.id)
    return stats.for_agent(session=session, agent_id=agent.id)
