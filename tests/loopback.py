"""Servers on 127.0.0.1 for tests: well-behaved aiohttp apps and raw, misbehaving TCP peers.

The fixtures are registered in tests/conftest.py; test modules import the types
from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")

# (request head as received, reader, writer); head is b"" if the client hung up.
RawHandler = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
ServeRaw = Callable[[RawHandler], Awaitable[str]]
ServeApp = Callable[..., Awaitable[str]]


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's or CI's proxy must not sit between our clients and 127.0.0.1.
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
    """Start raw TCP servers on 127.0.0.1; returns ``http://127.0.0.1:PORT``.

    The handler runs once the request head has arrived. Handlers may stall
    forever: they are cancelled at teardown.
    """
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
                pass  # the client hangs up on hostile peers: that is the point
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
    """Start aiohttp applications on 127.0.0.1; returns the base URL (no trailing slash)."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application, *, ssl_context: object = None) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)  # type: ignore[arg-type]
        await site.start()
        port = runner.addresses[0][1]
        scheme = "https" if ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def unused_port() -> int:
    """A loopback port with nothing listening (connections are refused)."""
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
