"""Loopback servers for the hardening suites, and the API fixtures of ``tests/api``.

``serve_raw(handler)`` starts a raw TCP server whose handler gets the request
head and the streams (hostile behaviour); ``serve_app(app)`` starts an aiohttp
application. Both return ``http://127.0.0.1:PORT`` and are torn down after
the test, stalled handlers included.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from tests.api.conftest import api, serve_api  # noqa: F401 - fixtures, re-exported

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")

RawHandler = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
ServeRaw = Callable[[RawHandler], Awaitable[str]]
ServeApp = Callable[[web.Application], Awaitable[str]]


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's or CI's proxy must not sit between the prober and 127.0.0.1.
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return b""


@pytest.fixture
async def serve_raw() -> AsyncIterator[ServeRaw]:
    """Raw TCP servers on 127.0.0.1; the handler runs once the request head arrived."""
    servers: list[asyncio.Server] = []
    tasks: set[asyncio.Task[None]] = set()

    async def start(handler: RawHandler) -> str:
        async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await handler(await _read_head(reader), reader, writer)
            except (ConnectionError, asyncio.CancelledError):
                pass  # the prober hangs up on hostile servers: that is the point
            finally:
                writer.transport.abort()
                tasks.discard(task)

        server = await asyncio.start_server(guarded, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def serve_app() -> AsyncIterator[ServeApp]:
    """aiohttp applications on 127.0.0.1; the base URL without a trailing slash."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()
