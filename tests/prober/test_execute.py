"""The prober against real loopback servers: what goes on the wire, what comes back."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from scanner.core.observation import ProbeError
from scanner.core.plan import ProbeKind
from scanner.prober import ProbeLimits, Prober
from scanner.prober.limits import DEFAULT_USER_AGENT

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from scanner.core.plan import ProbeRequest

    MakeProbe = Callable[..., ProbeRequest]
    ServeApp = Callable[..., Awaitable[str]]
    ServeRaw = Callable[..., Awaitable[str]]

FAST = ProbeLimits(connect_timeout=1.0, read_timeout=1.0, total_timeout=2.0, backoff=0.01)


def recorder() -> tuple[web.Application, list[web.Request]]:
    """An app answering 204 on every path and method, keeping every request it got."""
    seen: list[web.Request] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app, seen


async def test_sends_exactly_the_planned_headers_in_order(
    serve_app: ServeApp, make_probe: MakeProbe
) -> None:
    app, seen = recorder()
    base = await serve_app(app)
    lines = [
        ("Origin", "https://app.example"),
        ("Access-Control-Request-Method", "PUT"),
        ("Access-Control-Request-Headers", "content-type,x-token"),
        ("X-Dup", "1"),
        ("Cookie", "cors_scanner_probe=1"),
        ("X-Dup", "2"),
    ]

    async with Prober(FAST) as prober:
        observation = await prober.send(
            make_probe(f"{base}/api/a%2Fb?q=%20x", "OPTIONS", lines, ProbeKind.PREFLIGHT)
        )

    assert observation.ok, observation.error_detail
    assert observation.status == 204
    (got,) = seen
    assert got.method == "OPTIONS"
    assert got.raw_path == "/api/a%2Fb?q=%20x"  # not re-quoted
    host = base.removeprefix("http://")
    wire = [(n.decode(), v.decode()) for n, v in got.raw_headers]
    # Host (HTTP/1.1 needs it), the plan's lines untouched, our User-Agent:
    # no Accept, Accept-Encoding, Connection or cookie we did not ask for.
    assert wire == [("Host", host), *lines, ("User-Agent", DEFAULT_USER_AGENT)]


async def test_bodiless_post_gets_length_zero_and_no_content_type(
    serve_app: ServeApp, make_probe: MakeProbe
) -> None:
    app, seen = recorder()
    base = await serve_app(app)

    async with Prober(FAST) as prober:
        observation = await prober.send(make_probe(f"{base}/x", "POST", [("Origin", "null")]))

    assert observation.status == 204
    names = [n.decode().lower() for n, _ in seen[0].raw_headers]
    assert names == ["host", "origin", "user-agent", "content-length"]
    assert seen[0].headers["Content-Length"] == "0"


async def test_a_planned_user_agent_replaces_ours(
    serve_app: ServeApp, make_probe: MakeProbe
) -> None:
    app, seen = recorder()
    base = await serve_app(app)

    async with Prober(FAST) as prober:
        await prober.send(make_probe(f"{base}/", headers=[("User-Agent", "Mozilla/5.0 (probe)")]))

    assert seen[0].headers.getall("User-Agent") == ["Mozilla/5.0 (probe)"]


async def test_cookies_set_by_a_target_are_not_sent_back(
    serve_app: ServeApp, make_probe: MakeProbe
) -> None:
    seen: list[web.Request] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request)
        response = web.Response(status=200)
        response.set_cookie("session", "stolen")
        return response

    app = web.Application()
    app.router.add_get("/", handle)
    base = await serve_app(app)

    async with Prober(FAST) as prober:
        first = await prober.send(make_probe(f"{base}/"))
        await prober.send(make_probe(f"{base}/"))

    assert first.headers.get_all("set-cookie")
    assert "Cookie" not in seen[1].headers


async def test_response_header_lines_are_kept_raw_in_order_with_duplicates(
    make_probe: MakeProbe,
    serve_raw: ServeRaw,
) -> None:
    response = (
        b"HTTP/1.1 200 Fine\r\n"
        b"access-control-allow-origin: https://app.example\r\n"
        b"Vary: Origin\r\n"
        b"Access-Control-Allow-Origin: *\r\n"
        b"Set-Cookie: a=1\r\n"
        b"Set-Cookie: b=2\r\n"
        b"Content-Type: text/plain\r\n"
        b"Content-Type: text/html\r\n"
        b"X-Bytes: caf\xc3\xa9 \xff\xfe\x80\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )

    async def handler(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(response)
        await writer.drain()

    base = await serve_raw(handler)
    async with Prober(FAST) as prober:
        observation = await prober.send(make_probe(f"{base}/"))

    assert observation.ok, observation.error_detail
    assert (observation.status, observation.reason) == (200, "Fine")
    assert observation.headers.lines == (
        ("access-control-allow-origin", "https://app.example"),
        ("Vary", "Origin"),
        ("Access-Control-Allow-Origin", "*"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Content-Type", "text/plain"),
        ("Content-Type", "text/html"),
        ("X-Bytes", "caf\xc3\xa9 \xff\xfe\x80"),
        ("Content-Length", "0"),
    )
    # latin-1 round trip: the exact bytes the server sent
    assert observation.headers.get_all("x-bytes")[0].encode("latin-1") == (
        b"caf\xc3\xa9 \xff\xfe\x80"
    )
    assert observation.headers.combined("access-control-allow-origin") == ("https://app.example, *")


async def test_reason_phrase_bytes_survive(serve_raw: ServeRaw, make_probe: MakeProbe) -> None:
    async def handler(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"HTTP/1.1 403 Interdit \xe9t\xc3\xa9\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    base = await serve_raw(handler)
    async with Prober(FAST) as prober:
        observation = await prober.send(make_probe(f"{base}/"))

    assert observation.status == 403
    assert observation.reason is not None
    assert observation.reason.encode("latin-1") == b"Interdit \xe9t\xc3\xa9"


async def test_redirects_are_observed_not_followed(
    serve_app: ServeApp, make_probe: MakeProbe
) -> None:
    followed: list[str] = []

    async def moved(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/elsewhere"})

    async def elsewhere(request: web.Request) -> web.Response:
        followed.append(request.path)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_get("/start", moved)
    app.router.add_get("/elsewhere", elsewhere)
    base = await serve_app(app)

    async with Prober(FAST) as prober:
        observation = await prober.send(make_probe(f"{base}/start"))

    assert observation.status == 302
    assert observation.redirect_location == "/elsewhere"
    assert followed == []


async def test_refused_connection_is_connect_error(unused_port: int, make_probe: MakeProbe) -> None:
    limits = ProbeLimits(retries=1, backoff=0.01)
    async with Prober(limits) as prober:
        observation = await prober.send(make_probe(f"http://127.0.0.1:{unused_port}/"))

    assert observation.error is ProbeError.CONNECT
    assert observation.error_detail == "connection refused"
    assert observation.status is None
    assert observation.attempts == 2  # refused is transient: retried


async def test_silence_is_a_read_timeout(serve_raw: ServeRaw, make_probe: MakeProbe) -> None:
    async def stall(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await asyncio.Event().wait()

    base = await serve_raw(stall)
    limits = ProbeLimits(read_timeout=0.3, total_timeout=5.0, retries=0)
    async with Prober(limits) as prober:
        observation = await prober.send(make_probe(f"{base}/"))

    assert observation.error is ProbeError.TIMEOUT
    assert observation.error_detail == "no data for 0.3 s while waiting for response headers"


async def test_invalid_url_is_an_error_not_an_exception(make_probe: MakeProbe) -> None:
    async with Prober(FAST) as prober:
        observation = await prober.send(make_probe("http:///no-host"))

    assert observation.error is ProbeError.OTHER
    assert observation.error_detail is not None
    assert observation.error_detail.startswith("invalid URL")
    assert observation.attempts == 0


async def test_header_injection_in_our_own_request_is_refused(
    serve_app: ServeApp, make_probe: MakeProbe
) -> None:
    app, seen = recorder()
    base = await serve_app(app)

    async with Prober(FAST) as prober:
        observation = await prober.send(
            make_probe(f"{base}/", headers=[("X-A", "1\r\nX-Injected: 1")])
        )

    assert observation.error is ProbeError.OTHER
    assert observation.attempts == 1
    assert seen == []


async def test_using_a_closed_prober_is_a_programming_error(make_probe: MakeProbe) -> None:
    prober = Prober(FAST)
    with pytest.raises(RuntimeError, match="not open"):
        await prober.send(make_probe("http://127.0.0.1:1/"))


async def test_environment_proxy_is_used_unless_no_proxy_or_trust_env_off(
    make_probe: MakeProbe, serve_app: ServeApp, serve_raw: ServeRaw, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, seen = recorder()
    base = await serve_app(app)
    proxied: list[bytes] = []

    async def proxy(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        proxied.append(head)
        writer.write(b"HTTP/1.1 299 Via Proxy\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    proxy_url = await serve_raw(proxy)
    monkeypatch.setenv("HTTP_PROXY", proxy_url)

    async with Prober(FAST) as prober:
        via_proxy = await prober.send(make_probe(f"{base}/p"))
    async with Prober(ProbeLimits(trust_env=False)) as prober:
        direct = await prober.send(make_probe(f"{base}/d"))
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    async with Prober(FAST) as prober:
        bypassed = await prober.send(make_probe(f"{base}/b"))

    assert via_proxy.status == 299
    assert proxied[0].startswith(f"GET {base}/p HTTP/1.1\r\n".encode())
    assert (direct.status, bypassed.status) == (204, 204)
    assert [r.path for r in seen] == ["/d", "/b"]


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose accept queue is full: connection attempts hang until they time out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for sock in [*fillers, listener]:
        sock.close()


async def test_a_connection_that_never_completes_is_a_connect_timeout(
    unanswered_port: int, make_probe: MakeProbe
) -> None:
    limits = ProbeLimits(connect_timeout=0.3, total_timeout=5.0, retries=1, backoff=0.01)
    async with Prober(limits) as prober:
        observation = await prober.send(make_probe(f"http://127.0.0.1:{unanswered_port}/"))

    assert observation.error is ProbeError.TIMEOUT
    assert observation.error_detail == "timed out after 0.3 s connecting"
    assert observation.attempts == 2


async def test_cancellation_is_not_swallowed(serve_raw: ServeRaw, make_probe: MakeProbe) -> None:
    started = asyncio.Event()

    async def stall(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        started.set()
        await asyncio.Event().wait()

    base = await serve_raw(stall)
    async with Prober(FAST) as prober:
        task = asyncio.create_task(prober.send(make_probe(f"{base}/")))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
