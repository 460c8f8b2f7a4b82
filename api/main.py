"""The application factory: routes, error handling, database lifespan, health checks."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.middleware.cors import CORSMiddleware

from api import hooks
from api.activities.routes import routers as activities_routers
from api.auth.deps import document_access, identify
from api.auth.routes import routers as auth_routers
from api.clients.routes import routers as clients_routers
from api.core import audit
from api.core.db import Database, get_database, make_engine, pool_options
from api.core.errors import ServiceUnavailable, document_problems, install_error_handlers, problems
from api.core.idempotency import Idempotency
from api.core.limits import BodySizeLimit
from api.core.live import FEED, SYNC, Broker
from api.core.ratelimit import RateLimiter, RateLimitHeaders
from api.core.security_headers import (
    CORS_METHODS,
    CORS_REQUEST_HEADERS,
    CORS_RESPONSE_HEADERS,
    SecurityHeaders,
    install_docs,
    security_headers,
)
from api.deals.routes import routers as deals_routers
from api.exports.routes import routers as exports_routers
from api.feed.routes import routers as feed_routers
from api.imports.routes import router as imports_router
from api.insights.routes import routers as insights_routers
from api.marketing.routes import routers as marketing_routers
from api.settings import Settings, get_settings
from api.sync.push import document_mutations
from api.sync.routes import routers as sync_routers
from api.web import install_app
from api.webhooks import worker
from api.webhooks.routes import router as webhooks_router

API_PREFIX = "/api/v1"


def _operation_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    """Build the app. Tests pass a `database` bound to their own connection; otherwise the lifespan opens one."""
    settings = settings or get_settings()

    async def close_brokers(app: FastAPI) -> None:
        await app.state.broker.close()
        await app.state.pokes.close()
        await app.state.rate_limiter.close()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = None
        if database is None:
            engine = make_engine(settings.database_url, **pool_options(settings))
            app.state.db = Database(engine)
        else:
            app.state.db = database
        await app.state.rate_limiter.open(app.state.db)
        try:
            async with _webhook_worker(app, settings):
                yield
        finally:
            await close_brokers(app)
            if engine is not None:
                await engine.dispose()

    app = FastAPI(
        title="Fieldbook API",
        version="1.0",
        summary="A mobile-first CRM for field sales teams.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # install_docs: the page with its own Content-Security-Policy
        redoc_url=None,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    install_state(app, settings, database)
    install_error_handlers(app)
    hooks.install()
    app.add_middleware(Idempotency, identify=identify)
    # Outside the idempotency middleware: a stored response is kept without the caller's RateLimit-* of the moment.
    app.add_middleware(RateLimitHeaders)
    # Added last, so it runs first: a body over the cap is refused before anything reads it.
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        uploads={f"{API_PREFIX}/imports": settings.max_upload_bytes},
    )
    if settings.cors_origins:
        # Outside the body cap: its 413, like any refusal (401, 429), reaches the other site readable.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_RESPONSE_HEADERS,
        )
    # Around the whole stack, Starlette's error middleware included (add_middleware would sit inside it): every
    # answer carries them, a preflight's, a refusal's and a 500's included.
    inner, headers = app.build_middleware_stack, security_headers(settings.hsts_seconds)
    app.build_middleware_stack = lambda: SecurityHeaders(inner(), headers=headers)  # type: ignore[method-assign]

    api = APIRouter(prefix=API_PREFIX)
    for router in (
        *auth_routers,
        *clients_routers,
        *deals_routers,
        *activities_routers,
        *feed_routers,
        *sync_routers,
        *insights_routers,
        *exports_routers,
        *marketing_routers,
        imports_router,
        webhooks_router,
        audit.router,
    ):
        api.include_router(router)
    app.include_router(api)
    app.include_router(_health)
    install_docs(app)
    install_app(app, settings.pwa_dir)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            app.openapi_schema = document_access(document_mutations(document_problems(spec)), app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def install_state(app: FastAPI, settings: Settings, database: Database | None) -> None:
    """What an app holds besides its routes: its database (else the lifespan opens one), settings, live brokers and
    rate limits. Apart so that tests, which need fresh state each, can reuse one app's routes (building them, FastAPI
    analyses every endpoint's signature: half a second, once per process in production)."""
    if database is not None:
        app.state.db = database
    app.state.settings = settings
    app.state.broker = Broker(FEED)
    app.state.pokes = Broker(SYNC)
    app.state.rate_limiter = RateLimiter(settings)


@asynccontextmanager
async def _webhook_worker(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """The in-process webhook worker of `fieldbook serve` (FIELDBOOK_WEBHOOK_WORKER): woken by each commit that
    writes events, it also polls, so events written by other processes go out too."""
    if not settings.webhook_worker:
        yield
        return
    stop, wake = asyncio.Event(), asyncio.Event()
    app.state.webhook_wake = wake
    task = asyncio.create_task(worker.run(app.state.db, settings, stop=stop, wake=wake, app=app), name="webhook-worker")
    try:
        yield
    finally:
        stop.set()
        wake.set()
        # A delivery cut short is sent again by the next worker (its claim expires): stopping need not wait long.
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)


_health = APIRouter(tags=["health"])
_OK: dict[int | str, dict[str, Any]] = {200: {"content": {"application/json": {"example": {"status": "ok"}}}}}


@_health.get("/healthz", name="live", summary="The process is up", responses=_OK)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@_health.get("/readyz", name="ready", summary="The database answers", responses={**_OK, **problems(503)})
async def readyz(request: Request) -> dict[str, str]:
    try:
        async with get_database(request).reader() as session:
            await session.execute(sa.text("SELECT 1"))
    except Exception as exc:
        logging.getLogger("fieldbook").warning("readiness check failed: %s", exc)
        raise ServiceUnavailable("The database is not reachable.") from exc
    return {"status": "ok"}
