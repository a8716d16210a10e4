"""The response head read on aiohttp's connections by Chromium's rules, over real sockets."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from scanner.core.observation import ProbeError
from scanner.prober import ProbeLimits, Prober

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from scanner.core.plan import ProbeRequest

    MakeProbe = Callable[..., ProbeRequest]
    ServeRaw = Callable[..., Awaitable[str]]

Writer = asyncio.StreamWriter


def answering(data: bytes, *, then_stall: bool = False) -> Callable[..., Awaitable[None]]:
    async def handler(head: bytes, reader: asyncio.StreamReader, writer: Writer) -> None:
        writer.write(data)
        await writer.drain()
        if then_stall:
            await asyncio.Event().wait()

    return handler


async def test_a_head_strict_parsers_refuse_is_read_and_kept_line_by_line(
    serve_raw: ServeRaw, make_probe: MakeProbe
) -> None:
    head = (
        b"HTTP/1.1 200 OK\r\n"
        b"Access-Control-Allow-Origin : https://app.example\r\n"
        b"Garbage without colon\r\n"
        b"Vary: Origin\r\nContent-Length: 0\r\n\r\n"
    )
    url = await serve_raw(answering(head)) + "/"
    async with Prober(ProbeLimits(retries=0)) as prober:
        seen = await prober.send(make_probe(url))

    assert seen.ok, seen.error_detail
    assert seen.status == 200
    assert seen.headers.lines == (
        ("Access-Control-Allow-Origin", "https://app.example"),
        ("Vary", "Origin"),
        ("Content-Length", "0"),
    )
    assert seen.raw_lines == (
        "HTTP/1.1 200 OK",
        "Access-Control-Allow-Origin : https://app.example",
        "Garbage without colon",
        "Vary: Origin",
        "Content-Length: 0",
    )


async def test_a_strict_head_keeps_no_raw_lines(serve_raw: ServeRaw, make_probe: MakeProbe) -> None:
    url = await serve_raw(answering(b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n")) + "/"
    async with Prober(ProbeLimits(retries=0)) as prober:
        seen = await prober.send(make_probe(url))
    assert (seen.status, seen.reason, seen.headers.lines, seen.raw_lines) == (
        204,
        "No Content",
        (("X-A", "1"),),
        (),
    )


async def test_a_head_in_small_pieces_keeps_the_read_timeout_fed(
    serve_raw: ServeRaw, make_probe: MakeProbe
) -> None:
    data = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"s" * 20 + b"\r\n\r\n"

    async def dribbles(head: bytes, reader: asyncio.StreamReader, writer: Writer) -> None:
        for i in range(0, len(data), 3):
            writer.write(data[i : i + 3])
            await writer.drain()
            await asyncio.sleep(0.03)

    url = await serve_raw(dribbles) + "/"
    # 0.3 s of silence would time out; 0.03 s gaps for about 0.5 s in all must not.
    limits = ProbeLimits(read_timeout=0.3, total_timeout=5.0, retries=0)
    async with Prober(limits) as prober:
        seen = await prober.send(make_probe(url))
    assert seen.ok, seen.error_detail
    assert seen.headers.get_all("x-slow") == ("s" * 20,)


async def test_informational_heads_are_skipped(serve_raw: ServeRaw, make_probe: MakeProbe) -> None:
    data = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nAccess-Control-Allow-Origin: *\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nX-Final: 1\r\nContent-Length: 0\r\n\r\n"
    )
    url = await serve_raw(answering(data)) + "/"
    async with Prober(ProbeLimits(retries=0)) as prober:
        seen = await prober.send(make_probe(url))
    assert seen.status == 200
    assert seen.headers.names() == ("x-final", "content-length")


async def test_what_no_browser_accepts_is_refused_at_once_without_waiting(
    serve_raw: ServeRaw, make_probe: MakeProbe
) -> None:
    urls = {
        "banner": await serve_raw(answering(b"SSH-2.0-OpenSSH_9.0\r\n", then_stall=True)),
        "nul": await serve_raw(answering(b"HTTP/1.1 200 OK\r\nX: a\x00", then_stall=True)),
        "long line": await serve_raw(
            answering(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 5000, then_stall=True)
        ),
        "many lines": await serve_raw(
            answering(b"HTTP/1.1 200 OK\r\n" + b"X: 1\r\n" * 120, then_stall=True)
        ),
        "big block": await serve_raw(
            answering(
                b"HTTP/1.1 200 OK\r\n" + (b"X: " + b"b" * 900 + b"\r\n") * 40, then_stall=True
            )
        ),
    }
    limits = ProbeLimits(
        max_field_bytes=4096, max_headers=100, max_head_bytes=32768, total_timeout=10, retries=0
    )
    async with Prober(limits) as prober:
        seen = await prober.send_all([make_probe(u + "/") for u in urls.values()])
    got = {name: (o.error, o.error_detail) for name, o in zip(urls, seen, strict=True)}
    assert got == {
        "banner": (ProbeError.BAD_RESPONSE, "invalid HTTP status line: b'SSH-2.0-OpenSSH_9.0'"),
        "nul": (
            ProbeError.BAD_RESPONSE,
            "invalid header line: b'X: a\\x00' (a NUL byte: Chromium refuses the response)",
        ),
        "long line": (ProbeError.HEADERS_TOO_LARGE, "header line exceeds 4096 bytes"),
        "many lines": (ProbeError.TOO_MANY_HEADERS, "more than 100 header lines"),
        "big block": (ProbeError.HEADERS_TOO_LARGE, "header block exceeds 32768 bytes"),
    }
    # Each server stalls after its bytes: none of these waited for a timeout.
    assert all(o.elapsed_ms < 5000 for o in seen)


async def test_aiohttp_never_resends_a_reset_request(
    serve_raw: ServeRaw, make_probe: MakeProbe
) -> None:
    connections = 0

    async def resets(head: bytes, reader: asyncio.StreamReader, writer: Writer) -> None:
        nonlocal connections
        connections += 1
        writer.transport.abort()

    base = await serve_raw(resets)
    async with Prober(ProbeLimits(retries=0)) as prober:
        reset = await prober.send(make_probe(f"{base}/reset"))
    assert connections == 1, "aiohttp resent the request on its own"
    assert (reset.error, reset.attempts) == (ProbeError.RESET, 1)


async def test_keep_alive_connections_are_reused_and_a_stale_one_replaced(
    make_probe: MakeProbe,
) -> None:
    connections = reuses = 0

    async def serve(reader: asyncio.StreamReader, writer: Writer) -> None:
        # Answers one request per connection, then drops the connection when a
        # second one arrives: a server closing an idle keep-alive connection
        # just as the client reuses it.
        nonlocal connections, reuses
        connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            reuses += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.transport.abort()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        limits = ProbeLimits(retries=0, per_host_concurrency=1, global_concurrency=1)
        async with Prober(limits) as prober:
            seen = [await prober.send(make_probe(f"{base}/{n}")) for n in range(3)]
    finally:
        server.close()
        await server.wait_closed()
    # Each later probe found the pooled connection dropped, and was sent again
    # on a fresh one at once: an answer, one attempt, as a browser does it.
    assert [(o.status, o.attempts) for o in seen] == [(200, 1)] * 3
    assert reuses == 2, "the connection was reused (and found stale) twice"
    assert connections == 3


async def test_a_body_without_framing_is_never_read(make_probe: MakeProbe) -> None:
    async def serve(reader: asyncio.StreamReader, writer: Writer) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n")
        try:
            while True:  # no length: the body runs until the server closes
                writer.write(b"x" * 65536)
                await writer.drain()
        except ConnectionError:
            pass

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with Prober(ProbeLimits(retries=0, total_timeout=5)) as prober:
            seen = await prober.send_all([make_probe(f"{base}/{n}") for n in range(4)])
    finally:
        server.close()
        await server.wait_closed()
    assert [o.status for o in seen] == [200] * 4
    assert all(o.elapsed_ms < 5000 for o in seen)
