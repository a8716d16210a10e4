"""The dashboard under test: the real ``create_app`` on 127.0.0.1 over the shared ``database``.

``dash`` serves the application (API and dashboard) with tokens of each
scope and an inventory of every demo path (:mod:`scanner.demo`, served on
loopback too) with the policy its case says, owners and tags, so that a run
finds the demo's real misconfigurations. No worker runs until a test calls
``dash.run_worker()``: tests decide when a run progresses.

``browser`` is one headless Chromium (Debian's ``/usr/bin/chromium``) for the
whole session, driven by Playwright's async API in a thread of its own: the
tests' event loop serves the dashboard while the browser loop drives it, and
``await browser.run(coro)`` runs a coroutine of Playwright calls there. No
browser is downloaded: Playwright only launches ``executable_path``. Without
Chromium, the browser tests skip, saying so.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import socket
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web

import scanner
from scanner.alerts.dispatcher import Dispatcher
from scanner.api import create_app
from scanner.api.app import make_runner
from scanner.core.severity import Severity
from scanner.db import hooks
from scanner.db.engine import Database
from scanner.db.runs import get_run
from scanner.demo import DEMO_CASES, demo_app
from scanner.engine import scan_options
from scanner.hostnames import default_public_suffixes
from scanner.settings import Settings
from scanner.usecases import Context, inventory, policies
from scanner.worker import Worker
from tests.api.client import make_tokens

CHROMIUM = Path("/usr/bin/chromium")
NO_CHROMIUM = f"{CHROMIUM} is absent (Debian's chromium package): the browser tests need it"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
REPO = Path(scanner.__file__).resolve().parents[1]
DOCS = REPO / "docs"
# Read at import: the autouse fixture strips CORS_SCANNER_* from each test's environment.
SCREENSHOTS = os.environ.get("CORS_SCANNER_SCREENSHOTS", "") not in ("", "0")
BROWSER_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 60.0

OWNERS = ("payments-team", "identity-team", "storefront-team")
TAGS = (("public-api", "pci"), ("internal",), ("public-api",))

T = TypeVar("T")


class Browser:
    """Headless Chromium on its own thread and event loop (see the module docstring)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="chromium", daemon=True)
        self._playwright: Any = None
        self.chromium: Any = None

    def start(self) -> None:
        self._thread.start()
        self._wait(self._launch())

    async def _launch(self) -> None:
        from playwright.async_api import async_playwright

        self._playwright = await async_playwright().start()
        self.chromium = await self._playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS)
        )

    def _wait(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(BROWSER_TIMEOUT_S)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` (Playwright calls) on the browser's loop; await it from the test's."""
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), BROWSER_TIMEOUT_S)

    async def page(self, base_url: str) -> Any:
        """A new page in a fresh context (no cookies) that resolves paths against ``base_url``."""

        async def make() -> Any:
            context = await self.chromium.new_context(
                base_url=base_url, viewport={"width": 1280, "height": 900}
            )
            context.set_default_timeout(15_000)
            return await context.new_page()

        return await self.run(make())

    async def close_page(self, page: Any) -> None:
        await self.run(page.context.close())

    def stop(self) -> None:
        async def close() -> None:
            if self.chromium is not None:
                await self.chromium.close()
            if self._playwright is not None:
                await self._playwright.stop()

        with contextlib.suppress(Exception):
            self._wait(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(NO_CHROMIUM)
    host = Browser()
    host.start()
    try:
        yield host
    finally:
        host.stop()


@dataclass
class Dashboard:
    """The served application, its tokens, and helpers to drive runs."""

    url: str
    app: web.Application
    database: Database
    settings: Settings
    tokens: dict[str, str]
    demo_url: str
    endpoint_ids: list[int] = field(default_factory=list)
    hook_id: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    _workers: list[tuple[asyncio.Task[None], asyncio.Event]] = field(default_factory=list)

    def run_worker(self) -> None:
        """Start a real work-item worker in this process (it runs queued runs)."""
        worker = Worker(
            self.database, self.settings, scan_options(self.settings), default_public_suffixes()
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop), name="dashboard-test-worker")
        self._workers.append((task, stop))

    async def wait_for_run(self, run_id: int) -> None:
        """Until the run is final (the worker's real work: bounded, never a fixed sleep)."""
        deadline = asyncio.get_running_loop().time() + RUN_TIMEOUT_S
        while True:
            async with self.database.session() as session, session.begin():
                run = await get_run(session, run_id)
            if run.status.final:
                return
            assert asyncio.get_running_loop().time() < deadline, f"run {run_id} did not finish"
            await asyncio.sleep(0.05)

    async def deliver_alerts(self) -> None:
        """Send the outbox once with a real dispatcher, to the loopback receiver."""
        dispatcher = Dispatcher.from_settings(self.database, self.settings)
        try:
            while await dispatcher.run_once():
                await dispatcher.drain()
        finally:
            await dispatcher.stop()

    async def stop_workers(self) -> None:
        for task, stop in self._workers:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 30)
        self._workers.clear()


def dashboard_settings(database: Database, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "database_url": database.url,
        "page_size": 50,
        "timeout": 5.0,
        "retries": 0,
        "poll_seconds": 0.05,
        "heartbeat_seconds": 1.0,
        "per_host": 8,
        "hook_allow_loopback": True,  # the alert receiver is on 127.0.0.1
    }
    base.update(overrides)
    return Settings(**base)


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = make_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
    port = sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}"


async def seed_demo_inventory(database: Database, settings: Settings, demo_url: str) -> list[int]:
    """Every demo path as an endpoint with its case's policy, spread over owners and tags.

    Plus one endpoint that does not answer, as an inventory always has. Made
    through the use cases, as an admin would (audited as ``admin-bot``).
    """
    ctx = Context(database, settings)
    ids: list[int] = []
    owners = itertools.cycle(zip(OWNERS, TAGS, strict=True))
    for case in DEMO_CASES:
        owner, tags = next(owners)
        record = await inventory.create_endpoint(
            ctx,
            {
                "method": case.method,
                "url": demo_url + case.path,
                "name": case.title,
                "owner": owner,
                "tags": list(tags),
            },
            actor="admin-bot",
        )
        await policies.set_policy(
            ctx,
            "endpoint",
            endpoint_id=record.id,
            values=dict(case.policy_kwargs),
            actor="admin-bot",
        )
        ids.append(record.id)
    # One endpoint nobody answers (a loopback port with no listener): "not verified".
    record = await inventory.create_endpoint(
        ctx,
        {
            "url": f"http://127.0.0.1:{closed_port()}/orders",
            "name": "Orders API (down)",
            "owner": "storefront-team",
            "tags": ["public-api"],
        },
        actor="admin-bot",
    )
    ids.append(record.id)
    return ids


def closed_port() -> int:
    """A loopback port with no listener: the kernel gave it to us and we released it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _receiver(received: list[dict[str, Any]]) -> web.Application:
    """An alert receiver: records each delivery and answers 204."""

    async def receive(request: web.Request) -> web.Response:
        received.append({"id": request.headers.get("webhook-id"), "body": await request.json()})
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks/cors", receive)
    return app


@pytest.fixture
async def dash(database: Database) -> AsyncIterator[Dashboard]:
    received: list[dict[str, Any]] = []
    demo_runner, demo_url = await _serve(demo_app())
    receiver_runner, receiver_url = await _serve(_receiver(received))
    settings = dashboard_settings(database)
    app = create_app(settings, database=database, embedded_worker=False)
    runner, url = await _serve(app)
    board = Dashboard(
        url=url,
        app=app,
        database=database,
        settings=settings,
        tokens=await make_tokens(database),
        demo_url=demo_url,
    )
    board.endpoint_ids = await seed_demo_inventory(database, settings, demo_url)
    board.received = received
    async with database.session() as session, session.begin():
        hook, _secret = await hooks.create_hook(
            session,
            hooks.HookInput(
                name="security-oncall",
                kind=hooks.HookKind.WEBHOOK,
                url=receiver_url + "/hooks/cors",
                min_severity=Severity.CRITICAL,
            ),
            by="admin-bot",
            now=datetime.now(UTC),
        )
    board.hook_id = hook.id
    try:
        yield board
    finally:
        await board.stop_workers()
        await runner.cleanup()
        await receiver_runner.cleanup()
        await demo_runner.cleanup()


@pytest.fixture
async def http(dash: Dashboard) -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client of the dashboard (own cookie jar, redirects not followed by default)."""
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    async with aiohttp.ClientSession(base_url=dash.url, cookie_jar=jar) as session:
        yield session


def screenshot_path(name: str) -> Path:
    return DOCS / f"dashboard-{name}.png"


async def screenshot(page: Any, name: str, *, full_page: bool = True) -> None:
    """Write ``docs/dashboard-<name>.png`` when CORS_SCANNER_SCREENSHOTS is set; else check it exists.

    Pixels are never compared: fonts and rendering differ between machines.
    """
    path = screenshot_path(name)
    if SCREENSHOTS:
        await page.screenshot(path=str(path), full_page=full_page)
    else:
        assert path.exists(), (
            f"{path} is missing: run the browser tests with CORS_SCANNER_SCREENSHOTS=1"
        )
