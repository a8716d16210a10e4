"""Loopback receivers for the alert senders, and sample events.

Fixtures only, so test modules import nothing from here:

- ``serve_app(app)`` starts an aiohttp application on 127.0.0.1 and returns
  its base URL; ``serve_raw(handler)`` a raw TCP server for receivers that
  misbehave below HTTP (the handler gets the request head and the streams);
- ``hook_session`` is the real guarded session with loopback allowed (our
  receivers live on 127.0.0.1);
- ``make_event(**changes)`` builds an ``AlertEvent`` for a new finding.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from scanner.alerts.envelope import AlertEvent, EndpointRef, EventType, api_links
from scanner.alerts.sender import build_hook_session
from scanner.alerts.ssrf import AddressPolicy
from scanner.core.severity import Severity

RawHandler = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
ServeApp = Callable[[web.Application], Awaitable[str]]
ServeRaw = Callable[[RawHandler], Awaitable[str]]

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
OCCURRED_AT = datetime(2026, 1, 31, 2, 0, 0, tzinfo=UTC)
BASE_URL = "https://cors.example.com"


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The hook session ignores proxies anyway; this keeps the tests honest about it.
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
async def serve_app() -> AsyncIterator[ServeApp]:
    """Start aiohttp applications on 127.0.0.1; returns ``http://127.0.0.1:PORT``."""
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


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return b""


@pytest.fixture
async def serve_raw() -> AsyncIterator[ServeRaw]:
    """Start raw TCP servers on 127.0.0.1; handlers run once the request head arrived."""
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
                pass  # the sender hangs up on hostile receivers: that is the point
            finally:
                writer.transport.abort()

        server = await asyncio.start_server(guarded, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def hook_session() -> AsyncIterator[aiohttp.ClientSession]:
    """The production hook session, with loopback allowed for 127.0.0.1 receivers."""
    async with build_hook_session(AddressPolicy(allow_loopback=True)) as session:
        yield session


def _event(**changes: Any) -> AlertEvent:
    base = AlertEvent(
        type=EventType.FINDING_NEW,
        occurred_at=OCCURRED_AT,
        title="Any origin is reflected with credentials",
        summary="Origin https://evil.example -> ACAO https://evil.example, ACAC true",
        endpoint=EndpointRef(
            id=7,
            method="GET",
            url="https://api.example.com/v1/accounts",
            owner="payments-team",
            tags=("pci", "public-api"),
        ),
        rule_id="reflect_any_origin_credentials",
        severity=Severity.CRITICAL,
        fingerprint="fp1:0123456789abcdef0123456789abcdef",
        is_regression=True,
        scan_id=42,
        finding_id=1001,
        event_id=5001,
        links=api_links(BASE_URL, finding_id=1001, endpoint_id=7, scan_id=42),
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def make_event() -> Callable[..., AlertEvent]:
    """``make_event(**changes)``: a critical ``finding.new`` regression, fields replaced."""
    return _event
