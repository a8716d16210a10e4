"""Targets that misbehave on purpose: every one becomes data, none raises or hangs."""

from __future__ import annotations

import asyncio
import re
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from scanner.core.observation import ProbeError
from scanner.prober import ProbeLimits, Prober

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from scanner.core.plan import ProbeRequest

    MakeProbe = Callable[..., ProbeRequest]
    ServeApp = Callable[..., Awaitable[str]]
    ServeRaw = Callable[..., Awaitable[str]]
    RawHandler = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def rst(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST instead of a FIN (SO_LINGER with a zero timeout)."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def resets(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    rst(writer)


async def stalls(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.Event().wait()


async def trickles(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"z" * 100:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(1.0)


async def huge_line(
    head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nX-Huge: " + b"a" * 1_000_000 + b"\r\n\r\n")
    await writer.drain()
    await asyncio.Event().wait()


async def many_lines(
    head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    lines = b"".join(b"X-Line-%d: v\r\n" % i for i in range(10_000))
    writer.write(b"HTTP/1.1 200 OK\r\n" + lines + b"\r\n")
    await writer.drain()
    await asyncio.Event().wait()


async def ssh_banner(
    head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(b"SSH-2.0-OpenSSH_9.0\r\n")
    await writer.drain()
    await asyncio.Event().wait()


async def endless_body(
    head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    # No Content-Length: the body runs until the server closes, which it never does.
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
    chunk = b"x" * 65536
    while True:
        writer.write(chunk)
        await writer.drain()


async def binary_values(
    head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\n"
        b"Access-Control-Allow-Origin: https://app.example\xff\xfe\r\n"
        b"X-Latin: caf\xe9\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    await writer.drain()


async def nul_in_value(
    head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nX-Nul: a\x00b\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    await asyncio.Event().wait()


async def closes(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def half_headers(
    head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\n")
    await writer.drain()
    writer.close()


async def half_headers_reset(
    head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\n")
    await writer.drain()
    await asyncio.sleep(0.05)
    rst(writer)


@dataclass(frozen=True)
class Expected:
    error: ProbeError | None
    detail: str | None  # a regular expression; "{s}" stands for a duration like "0.1 s"
    attempts: int

    def matches(self, detail: str | None) -> bool:
        if self.detail is None or detail is None:
            return self.detail is detail
        pattern = re.escape(self.detail).replace(re.escape("{s}"), r"\d+\.\d s")
        return re.fullmatch(pattern, detail) is not None


async def test_hostile_targets_become_precise_errors_next_to_healthy_ones(
    serve_raw: ServeRaw, serve_app: ServeApp, make_probe: MakeProbe
) -> None:
    limits = ProbeLimits(
        connect_timeout=1.0,
        read_timeout=3.0,  # longer than the total: the trickle must hit the total timeout
        total_timeout=1.5,
        max_field_bytes=4096,
        max_headers=100,
        retries=1,
        backoff=0.01,
    )
    total = "timed out after 1.5 s waiting for response headers"
    hostile = {
        resets: Expected(ProbeError.RESET, "connection reset by peer after {s}", 2),
        stalls: Expected(ProbeError.TIMEOUT, total, 2),
        trickles: Expected(ProbeError.TIMEOUT, total, 2),
        huge_line: Expected(ProbeError.HEADERS_TOO_LARGE, "header line exceeds 4096 bytes", 1),
        many_lines: Expected(ProbeError.TOO_MANY_HEADERS, "more than 100 header lines", 1),
        ssh_banner: Expected(
            ProbeError.BAD_RESPONSE, "invalid HTTP status line: b'SSH-2.0-OpenSSH_9.0'", 1
        ),
        endless_body: Expected(None, None, 1),
        binary_values: Expected(None, None, 1),
        nul_in_value: Expected(
            ProbeError.BAD_RESPONSE,
            "invalid header line: b'X-Nul: a\\x00b' (a NUL byte: Chromium refuses the response)",
            1,
        ),
        closes: Expected(
            ProbeError.RESET, "server closed the connection without a response after {s}", 2
        ),
        # A head cut short by a clean close is read as far as it got, as Chromium does.
        half_headers: Expected(None, None, 1),
        half_headers_reset: Expected(
            ProbeError.RESET,
            "connection reset by peer after {s}",
            2,
        ),
    }
    urls = {handler: await serve_raw(handler) + "/" for handler in hostile}

    async def healthy(request: web.Request) -> web.Response:
        return web.Response(status=200, headers={"Access-Control-Allow-Origin": "*"})

    app = web.Application()
    app.router.add_get("/healthy/{n}", healthy)
    base = await serve_app(app)
    healthy_probes = [make_probe(f"{base}/healthy/{n}") for n in range(20)]
    hostile_probes = [make_probe(url) for url in urls.values()]
    # Interleaved, so healthy probes are queued behind and between hostile ones.
    requests = [p for pair in zip(hostile_probes, healthy_probes, strict=False) for p in pair]
    requests += healthy_probes[len(hostile_probes) :]

    async with Prober(limits) as prober:
        observations = await prober.send_all(requests)

    assert [o.request for o in observations] == requests
    by_url = {o.request.url: o for o in observations}
    for handler, expected in hostile.items():
        got = by_url[urls[handler]]
        assert (got.error, got.attempts) == (expected.error, expected.attempts), handler.__name__
        assert expected.matches(got.error_detail), (handler.__name__, got.error_detail)
        assert (got.status is None) == (expected.error is not None), handler.__name__
    for observation in observations:
        if observation.request.url.startswith(f"{base}/healthy/"):
            assert observation.ok, observation.error_detail
            assert observation.status == 200
            assert observation.headers.combined("access-control-allow-origin") == "*"

    cut_short = by_url[urls[half_headers]]
    assert cut_short.status == 200
    assert cut_short.headers.combined("access-control-allow-origin") == "*"
    endless = by_url[urls[endless_body]]
    assert endless.status == 200
    # Headers only: reading any of the body would have run into the total timeout.
    assert endless.elapsed_ms < limits.total_timeout * 1000
    trickled = by_url[urls[trickles]]
    assert trickled.elapsed_ms >= limits.total_timeout * 1000 * 0.95
    binary = by_url[urls[binary_values]]
    assert binary.headers.get_all("access-control-allow-origin") == ("https://app.example\xff\xfe",)
    assert binary.headers.get_all("x-latin")[0].encode("latin-1") == b"caf\xe9"


async def test_transient_resets_are_retried_until_the_target_answers(
    serve_raw: ServeRaw, make_probe: MakeProbe
) -> None:
    connections = 0

    async def flaky(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal connections
        connections += 1
        if connections <= 2:
            rst(writer)
            return
        writer.write(OK_HEAD)
        await writer.drain()

    url = await serve_raw(flaky) + "/"
    async with Prober(ProbeLimits(retries=2, backoff=0.01)) as prober:
        observation = await prober.send(make_probe(url))

    assert observation.ok, observation.error_detail
    assert observation.status == 200
    assert observation.attempts == 3
    assert connections == 3


async def test_a_target_that_always_resets_costs_retries_plus_one_attempts(
    serve_raw: ServeRaw, make_probe: MakeProbe
) -> None:
    connections = 0

    async def always(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal connections
        connections += 1
        rst(writer)

    url = await serve_raw(always) + "/"
    limits = ProbeLimits(retries=3, backoff=0.01)
    async with Prober(limits) as prober:
        observation = await prober.send(make_probe(url))

    assert observation.error is ProbeError.RESET
    assert observation.attempts == limits.retries + 1 == connections


async def test_a_request_that_may_have_been_processed_is_not_resent_unless_idempotent(
    serve_raw: ServeRaw, make_probe: MakeProbe, unused_port: int
) -> None:
    connections = 0

    async def always(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal connections
        connections += 1
        rst(writer)

    url = await serve_raw(always) + "/"
    limits = ProbeLimits(retries=2, backoff=0.01)
    async with Prober(limits) as prober:
        post = await prober.send(make_probe(url, "POST"))
        refused = await prober.send(make_probe(f"http://127.0.0.1:{unused_port}/", "POST"))

    # The POST reached the server: sending it again could act twice.
    assert (post.error, post.attempts, connections) == (ProbeError.RESET, 1, 1)
    # Refused: nothing was sent, so even a POST is tried again.
    assert (refused.error, refused.attempts) == (ProbeError.CONNECT, 3)


async def test_protocol_garbage_is_not_retried(serve_raw: ServeRaw, make_probe: MakeProbe) -> None:
    connections = 0

    async def garbage(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal connections
        connections += 1
        writer.write(b"220 smtp.example ESMTP ready\r\n")
        await writer.drain()

    url = await serve_raw(garbage) + "/"
    async with Prober(ProbeLimits(retries=2, backoff=0.01)) as prober:
        observation = await prober.send(make_probe(url))

    assert observation.error is ProbeError.BAD_RESPONSE
    assert observation.error_detail == "invalid HTTP status line: b'220 smtp.example ESMTP ready'"
    assert (observation.attempts, connections) == (1, 1)


def header_block(lines: list[bytes]) -> RawHandler:
    async def handler(
        head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n")
        await writer.drain()

    return handler


async def test_header_caps_are_exact(serve_raw: ServeRaw, make_probe: MakeProbe) -> None:
    limits = ProbeLimits(max_headers=10, max_field_bytes=300, retries=0)
    # One line is name + value: "X-Fill" (6 bytes) + value.
    cases = {
        "ten lines": ([b"X-N: v"] * 9 + [b"Content-Length: 0"], None),
        "eleven lines": ([b"X-N: v"] * 10 + [b"Content-Length: 0"], ProbeError.TOO_MANY_HEADERS),
        "twelve lines": ([b"X-N: v"] * 11 + [b"Content-Length: 0"], ProbeError.TOO_MANY_HEADERS),
        "300 bytes": ([b"X-Fill: " + b"f" * 294, b"Content-Length: 0"], None),
        "301 bytes": (
            [b"X-Fill: " + b"f" * 295, b"Content-Length: 0"],
            ProbeError.HEADERS_TOO_LARGE,
        ),
        "302 bytes": (
            [b"X-Fill: " + b"f" * 296, b"Content-Length: 0"],
            ProbeError.HEADERS_TOO_LARGE,
        ),
    }
    urls = {name: await serve_raw(header_block(lines)) + "/" for name, (lines, _) in cases.items()}

    async with Prober(limits) as prober:
        observations = await prober.send_all([make_probe(url) for url in urls.values()])

    got = {name: o.error for name, o in zip(urls, observations, strict=True)}
    assert got == {name: error for name, (_, error) in cases.items()}
    assert observations[0].headers.get_all("x-n") == ("v",) * 9


async def test_an_unresolvable_name_is_a_dns_error(make_probe: MakeProbe) -> None:
    # .invalid never resolves (RFC 6761).
    async with Prober(ProbeLimits(retries=0)) as prober:
        observation = await prober.send(make_probe("http://does-not-exist.invalid/"))

    assert observation.error is ProbeError.DNS
    assert observation.error_detail is not None
    assert observation.error_detail.startswith("cannot resolve does-not-exist.invalid: ")
