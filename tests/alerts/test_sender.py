"""``deliver`` against receivers that are slow, failing, huge, broken or redirecting."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import tracemalloc
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from scanner.alerts.retry import DeliveryError, Outcome
from scanner.alerts.sender import MAX_EXCERPT_BYTES, Channel, PreparedRequest, deliver

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import aiohttp

    ServeApp = Callable[..., Awaitable[str]]
    ServeRaw = Callable[..., Awaitable[str]]

TEN_MB = 10 * 1024 * 1024
CHUNK = b"x" * 65536


def post(url: str, body: bytes = b'{"type":"hook.test"}') -> PreparedRequest:
    headers = (("Content-Type", "application/json"), ("User-Agent", "test-agent/1"))
    return PreparedRequest(Channel.WEBHOOK, url, headers, body)


def app_with(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


async def test_success_sends_exactly_our_request(
    serve_app: ServeApp, hook_session: aiohttp.ClientSession
) -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append((request.method, dict(request.headers), await request.read()))
        return web.Response(status=202, text="accepted")

    base = await serve_app(app_with(handle))
    result = await deliver(hook_session, post(f"{base}/hook"), timeout=5)

    assert result.status == 202
    assert result.classification.outcome is Outcome.SUCCESS
    assert result.response_excerpt == "accepted"
    assert result.error is None
    assert result.duration_ms > 0
    [(method, headers, body)] = seen
    assert method == "POST"
    assert body == b'{"type":"hook.test"}'
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "test-agent/1"
    assert "Accept-Encoding" not in headers  # nothing invites a compressed answer
    assert "Cookie" not in headers


async def test_a_slow_receiver_times_out(
    serve_raw: ServeRaw, hook_session: aiohttp.ClientSession
) -> None:
    async def stall(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await asyncio.sleep(3600)

    base = await serve_raw(stall)
    result = await deliver(hook_session, post(f"{base}/hook"), timeout=0.3)

    assert result.status is None
    assert result.error is DeliveryError.TIMEOUT
    assert result.error_detail == "no complete answer within 0.3 s"
    assert result.classification.outcome is Outcome.RETRY


async def test_a_body_that_trickles_forever_also_times_out(
    serve_raw: ServeRaw, hook_session: aiohttp.ClientSession
) -> None:
    async def trickle(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        while True:
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.05)

    base = await serve_raw(trickle)
    result = await deliver(hook_session, post(f"{base}/hook"), timeout=0.5)

    assert result.error is DeliveryError.TIMEOUT
    assert result.classification.outcome is Outcome.RETRY


async def test_a_500_is_transient_and_keeps_the_excerpt(
    serve_app: ServeApp, hook_session: aiohttp.ClientSession
) -> None:
    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500, text="database is down")

    base = await serve_app(app_with(fail))
    result = await deliver(hook_session, post(f"{base}/hook"), timeout=5)

    assert result.status == 500
    assert result.classification.outcome is Outcome.RETRY
    assert result.response_excerpt == "database is down"
    assert result.error is None


async def test_a_10_mb_answer_is_cut_to_the_excerpt_in_bounded_memory(
    serve_app: ServeApp, hook_session: aiohttp.ClientSession
) -> None:
    sent = 0

    async def huge(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(status=503, headers={"Content-Length": str(TEN_MB)})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while sent < TEN_MB:
                await response.write(CHUNK)
                sent += len(CHUNK)
        return response

    base = await serve_app(app_with(huge))
    gc.collect()
    tracemalloc.start()
    try:
        result = await deliver(hook_session, post(f"{base}/hook"), timeout=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.status == 503
    assert result.classification.outcome is Outcome.RETRY
    assert result.response_excerpt == "x" * MAX_EXCERPT_BYTES
    # Receiver and sender share this process: the whole 10 MB never sat in memory.
    assert peak < 2 * 1024 * 1024


async def test_an_endless_answer_is_not_drained(
    serve_raw: ServeRaw, hook_session: aiohttp.ClientSession
) -> None:
    async def endless(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)
        while True:
            writer.write(chunk)
            await writer.drain()

    base = await serve_raw(endless)
    result = await deliver(hook_session, post(f"{base}/hook"), timeout=5)

    # Reading to the end would never finish: returning a 200 at all proves we stopped.
    assert result.status == 200
    assert result.error is None
    assert len(result.response_excerpt) == MAX_EXCERPT_BYTES


async def test_a_receiver_that_closes_the_connection(
    serve_raw: ServeRaw, hook_session: aiohttp.ClientSession
) -> None:
    async def hang_up(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.close()

    base = await serve_raw(hang_up)
    result = await deliver(hook_session, post(f"{base}/hook"), timeout=5)

    assert result.status is None
    assert result.error is DeliveryError.RESET
    assert result.classification.outcome is Outcome.RETRY


async def test_a_connection_cut_in_the_middle_of_the_body_keeps_the_status(
    serve_raw: ServeRaw, hook_session: aiohttp.ClientSession
) -> None:
    async def cut(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 1000\r\n\r\npartial")
        await writer.drain()
        writer.transport.abort()

    base = await serve_raw(cut)
    result = await deliver(hook_session, post(f"{base}/hook"), timeout=5)

    assert result.error is DeliveryError.RESET
    assert result.classification.outcome is Outcome.RETRY


async def test_garbage_instead_of_http(
    serve_raw: ServeRaw, hook_session: aiohttp.ClientSession
) -> None:
    async def garbage(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(3600)

    base = await serve_raw(garbage)
    result = await deliver(hook_session, post(f"{base}/hook"), timeout=5)

    assert result.error is DeliveryError.PROTOCOL
    assert result.classification.outcome is Outcome.RETRY


async def test_connection_refused(hook_session: aiohttp.ClientSession) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await deliver(hook_session, post(f"http://127.0.0.1:{port}/hook"), timeout=5)

    assert result.error is DeliveryError.CONNECT
    assert result.classification.outcome is Outcome.RETRY


async def test_redirects_are_not_followed(
    serve_app: ServeApp, hook_session: aiohttp.ClientSession
) -> None:
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.path)
        if request.path == "/hook":
            raise web.HTTPTemporaryRedirect("/internal-admin")
        return web.Response(text="you should not be here")

    base = await serve_app(app_with(handle))
    result = await deliver(hook_session, post(f"{base}/hook"), timeout=5)

    assert result.status == 307
    assert result.classification.outcome is Outcome.FAIL
    assert "redirect" in result.classification.reason
    assert seen == ["/hook"]


async def test_410_disables_the_hook(
    serve_app: ServeApp, hook_session: aiohttp.ClientSession
) -> None:
    async def gone(request: web.Request) -> web.Response:
        return web.Response(status=410)

    base = await serve_app(app_with(gone))
    result = await deliver(hook_session, post(f"{base}/hook"), timeout=5)
    assert result.classification.outcome is Outcome.DISABLE


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_retry_after_from_a_real_receiver(
    serve_app: ServeApp, hook_session: aiohttp.ClientSession, form: str
) -> None:
    now = datetime(2026, 1, 31, 2, 0, 0, tzinfo=UTC)
    value = "120" if form == "seconds" else format_datetime(now + timedelta(seconds=120), True)

    async def throttle(request: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": value})

    base = await serve_app(app_with(throttle))
    result = await deliver(hook_session, post(f"{base}/hook"), timeout=5, clock=lambda: now)

    assert result.status == 429
    assert result.classification.outcome is Outcome.RETRY
    assert result.retry_after == 120.0


async def test_binary_excerpts_are_logged_as_text(
    serve_app: ServeApp, hook_session: aiohttp.ClientSession
) -> None:
    async def binary(request: web.Request) -> web.Response:
        return web.Response(status=400, body=b"\xff\xfe bad \x00 request")

    base = await serve_app(app_with(binary))
    result = await deliver(hook_session, post(f"{base}/hook"), timeout=5)
    assert result.response_excerpt == "\ufffd\ufffd bad \x00 request"
    assert result.classification.outcome is Outcome.FAIL


async def test_unrequestable_urls_are_data_not_exceptions(
    hook_session: aiohttp.ClientSession,
) -> None:
    result = await deliver(hook_session, post("mailto:someone@example.com"), timeout=5)
    assert result.error is DeliveryError.INVALID_URL
    assert result.classification.outcome is Outcome.FAIL
