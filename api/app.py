"""`create_app(settings)`: the national service as a FastAPI application."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError
from starlette.types import ASGIApp

from api import datadir
from api.agents.routes import router as agents_router
from api.alerts.live import LiveRules
from api.alerts.routes import router as alerts_router
from api.apikeys.routes import router as apikeys_router
from api.audit.routes import router as audit_router
from api.auth import service as auth_service
from api.auth.routes import router as auth_router
from api.bodies import MAX_JSON_BODY, StrictJSON
from api.db import make_engine, session_factory, transaction, upgrade
from api.errors import VigieServiceError
from api.establishments.routes import router as establishments_router
from api.events.routes import router as events_router
from api.events.sqlite_store import SQLiteEventStore
from api.events.store import EventStore
from api.headers import SecurityHeaders, is_web
from api.incidents.routes import router as incidents_router
from api.ingest.claims import ClaimOwner
from api.ingest.routes import RateLimiter
from api.ingest.routes import router as ingest_router
from api.jobs import scheduler
from api.jobs.routes import router as jobs_router
from api.maturity.routes import router as maturity_router
from api.reports.routes import router as reports_router
from api.settings import Settings
from api.stats.routes import router as stats_router
from api.text import RefuseNulInURL
from api.web import app as web

log = logging.getLogger("vigie.api")


def prepare(settings: Settings) -> str | None:
    """Bring the database to the newest schema and make the first admin, whose password is
    returned for the caller to show on the terminal (`vigie serve` prints it to stderr), never
    to the log, and must be changed at the first login. Run once before several worker
    processes start, so that they do not race to do it."""
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        with transaction(session_factory(engine)) as session:
            password = auth_service.ensure_admin(session=session)
    finally:
        engine.dispose()
    if password:
        log.warning("first start: the 'admin' account was created (its password was shown once)")
    return password


def create_app(settings: Settings) -> FastAPI:
    datadir.check(settings.data_dir)
    with datadir.private_files():  # the files made at start are the service account's only
        password = prepare(settings)
        engine = make_engine(settings.database_url)
        sessions = session_factory(engine)
        event_store = _event_store(settings)
        live_rules = LiveRules(settings, sessions)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler.start(app)
        app.state.ingest_owner.start(sessions)
        # What was built at start (rules, automata, the app) lives as long as the process:
        # out of the cyclic collector's sight, whose full passes would walk it per batch.
        gc.freeze()
        try:
            yield
        finally:
            app.state.ingest_owner.stop(sessions)
            scheduler.stop(app)

    development = settings.environment == "development"
    app = _App(
        lifespan=lifespan,
        title="Vigie national service",
        description="Every operation lists the roles that may call it under `x-roles`.",
        version="0.1.0",
        # Refused by Content-Length or as it streams, before buffering (api/bodies.py).
        max_body_size=MAX_JSON_BODY,
        # The documentation pages load their scripts from a CDN: development only.
        # /openapi.json stays, in every environment.
        docs_url="/docs" if development else None,
        redoc_url="/redoc" if development else None,
    )
    app.add_middleware(StrictJSON)
    app.add_middleware(RefuseNulInURL)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.first_admin_password = password
    app.state.event_store = event_store
    app.state.live_rules = live_rules
    app.state.rate_limiter = RateLimiter()
    app.state.ingest_owner = ClaimOwner()  # this process, as the owner of the batches it claims

    @app.exception_handler(VigieServiceError)
    async def domain_error(request: Request, exc: VigieServiceError) -> Response:
        if is_web(request.url.path):
            return web.error_page(request, exc.status, exc.detail)
        return JSONResponse({"code": exc.code, "detail": exc.detail}, status_code=exc.status)

    web.install(app)

    @app.exception_handler(DataError)
    async def unstorable(request: Request, exc: DataError) -> JSONResponse:
        # A value the database refuses (a NUL, a number or text beyond its column) that no
        # schema caught: the caller's input, so a 422, and logged so that the schema is fixed.
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else "unstorable value"
        log.warning("%s %s: the database refused a value: %s", request.method, request.url.path,
                    reason)  # fmt: skip
        detail = f"a value cannot be stored: {reason}"[:200]
        return JSONResponse({"code": "invalid", "detail": detail}, status_code=422)

    @app.get("/health", tags=["service"], openapi_extra={"x-roles": ["public"]})
    def health() -> dict[str, str]:
        return {"status": "ok"}

    for router in (
        auth_router,
        apikeys_router,
        establishments_router,
        agents_router,
        ingest_router,
        events_router,
        incidents_router,
        alerts_router,
        jobs_router,
        audit_router,
        maturity_router,
        stats_router,
        reports_router,
        web.auth_router,
        # Before the pages: its /ui/incidents/new and /ui/alerts/new would otherwise be read
        # as the pages' /ui/incidents/{incident_id} and /ui/alerts/{alert_id}.
        web.actions_router,
        web.pages_router,
        web.national_router,
        web.reports_router,
    ):
        app.include_router(router)
    return app


class _App(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # The security headers outermost: the answers FastAPI makes outside the added
        # middleware (the body limit's 413, the 500 of an unexpected error) carry them too.
        return SecurityHeaders(super().build_middleware_stack())


def _event_store(settings: Settings) -> EventStore:
    if settings.elasticsearch_url:
        from api.events.elastic_store import ElasticEventStore

        return ElasticEventStore(settings.elasticsearch_url)
    return SQLiteEventStore.in_data_dir(settings.data_dir)
