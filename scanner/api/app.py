"""The aiohttp application factory: settings, database and work-item worker wired with typed keys.

``create_app(settings)`` connects to ``settings.database_url`` when the app
starts and closes it when the app stops; pass ``database=`` to share a handle
the caller owns (tests, ``serve``), which the app then never closes. An
embedded worker (default) lives as long as the app: scans are planned into
work items and this worker runs them; on shutdown it releases the items in
hand back to the queue (another worker, or the next start, resumes them).

Middlewares, outermost first: the request id (``X-Request-Id``, in every log
line), our own CORS (so error responses carry its headers too), problem
documents, bearer-token auth, then the per-token rate limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from scanner.api.auth import TOKEN_USES, TokenUse, auth_middleware
from scanner.api.connections import GuardedRunner, make_guarded_runner
from scanner.api.cors import CorsAllowlist, cors_middleware
from scanner.api.keys import CONTEXT, DATABASE, OPENAPI_CACHE, SETTINGS, WORKER
from scanner.api.problems import problems_middleware
from scanner.api.ratelimit import (
    AUTH_GUARD,
    RATE_LIMITER,
    FailedAuthGuard,
    RateLimiter,
    rate_limit_middleware,
)
from scanner.api.requestid import install_request_ids, request_id_middleware
from scanner.api.routes import add_routes
from scanner.api.schemas import BODY_LIMIT_KEY, IMPORT_LIMIT_KEY, PAGE_MAX_KEY
from scanner.core.variants import PublicSuffixes
from scanner.dashboard import setup_dashboard
from scanner.db.engine import Database
from scanner.engine import Engine, ScanOptions, scan_options
from scanner.hostnames import default_public_suffixes
from scanner.settings import Settings
from scanner.throttle import trusted_networks
from scanner.usecases import Context
from scanner.worker import Worker
from scanner.worker.loop import EngineFactory

log = logging.getLogger("scanner.api")

__all__ = [
    "CONTEXT",
    "DATABASE",
    "OPENAPI_CACHE",
    "SETTINGS",
    "WORKER",
    "create_app",
    "make_runner",
]

# aiohttp's HTTP parser refuses longer request lines with a plain-text 400 of
# its own, before any middleware. Our longest query (a 2048-character base_url,
# up to 12 bytes each once percent-encoded) must fit, so its errors stay ours.
MAX_REQUEST_LINE_BYTES = 65_536
# Seconds open connections get to finish their requests when the server stops.
SHUTDOWN_TIMEOUT_S = 10.0


def make_runner(app: web.Application) -> GuardedRunner:
    """The runner every deployment of the API uses (``serve``, tests): our HTTP limits, and
    the connection limits of the app's settings (scanner.api.connections), or the defaults
    for an app that has none (the demo target)."""
    return make_guarded_runner(
        app,
        app.get(SETTINGS) or Settings(),
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        max_line_size=MAX_REQUEST_LINE_BYTES,
    )


def create_app(
    settings: Settings,
    *,
    database: Database | None = None,
    suffixes: PublicSuffixes | None = None,
    options: ScanOptions | None = None,
    engine_factory: EngineFactory = Engine,
    embedded_worker: bool = True,
) -> web.Application:
    """The REST API application.

    ``suffixes`` defaults to the bundled Public Suffix List, ``options`` to
    :func:`scanner.engine.scan_options` of ``settings``. ``engine_factory``
    exists for the worker's own tests. ``embedded_worker``: run a work-item
    worker inside the app (scans started here complete here); ``serve`` runs
    its worker as a separate runtime component instead.
    """
    allowlist = CorsAllowlist(settings.api_cors_origins)
    guard: FailedAuthGuard | None = None
    if settings.api_auth_failures_per_minute > 0:
        guard = FailedAuthGuard(
            settings.api_auth_failures_per_minute, settings.api_auth_failure_burst
        )
    token_uses = TokenUse(lambda: app[DATABASE])
    middlewares = [
        request_id_middleware,  # first: every later log line of the request carries its id
        cors_middleware(allowlist),
        problems_middleware,
        auth_middleware(
            lambda: app[DATABASE],
            token_uses,
            guard=guard,
            context=lambda: app[CONTEXT],
            trusted_proxies=trusted_networks(settings.api_trusted_proxies),
        ),
    ]
    limiter: RateLimiter | None = None
    if settings.api_rate_limit_per_minute > 0:
        limiter = RateLimiter(settings.api_rate_limit_per_minute, settings.api_rate_limit_burst)
        middlewares.append(rate_limit_middleware(limiter))  # after auth: it counts per token
    app = web.Application(
        middlewares=middlewares,
        # We read bodies ourselves with per-route limits (schemas.read_limited);
        # aiohttp's own cap must not be the smaller one.
        client_max_size=max(settings.max_body_bytes, settings.max_import_bytes) + 1,
    )
    app[SETTINGS] = settings
    app[TOKEN_USES] = token_uses
    if limiter is not None:
        app[RATE_LIMITER] = limiter
    if guard is not None:
        app[AUTH_GUARD] = guard
    install_request_ids(app)
    app[BODY_LIMIT_KEY] = settings.max_body_bytes
    app[IMPORT_LIMIT_KEY] = settings.max_import_bytes
    app[PAGE_MAX_KEY] = settings.max_page_size
    app[OPENAPI_CACHE] = {}
    app.cleanup_ctx.append(_database_context(database))
    app.on_shutdown.append(lambda _app: token_uses.drain())
    if embedded_worker:
        app.cleanup_ctx.append(
            _worker_context(suffixes, options or scan_options(settings), engine_factory)
        )
    add_routes(app)
    # The web dashboard at /; its sign-in counts failures with the API's guard.
    setup_dashboard(app, context=CONTEXT, worker=WORKER, auth_guard=AUTH_GUARD)
    return app


def _database_context(
    given: Database | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        if given is not None:
            app[DATABASE] = given
            app[CONTEXT] = Context(given, app[SETTINGS])
            yield
            return
        database = await Database.connect(app[SETTINGS].database_url)
        app[DATABASE] = database
        app[CONTEXT] = Context(database, app[SETTINGS])
        try:
            yield
        finally:
            await database.close()

    return context


def _worker_context(
    suffixes: PublicSuffixes | None, options: ScanOptions, engine_factory: EngineFactory
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        chosen: PublicSuffixes = default_public_suffixes() if suffixes is None else suffixes
        worker = Worker(
            app[DATABASE], app[SETTINGS], options, chosen, engine_factory=engine_factory
        )
        app[WORKER] = worker
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop), name="api-worker")
        try:
            yield
        finally:
            # Stop claiming, release what is in hand (back to queued), deregister.
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await task
                except Exception:
                    log.exception("the embedded worker failed")

    return context
