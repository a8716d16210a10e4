"""A dead host costs its first probes' timeout, not one timeout per probe; a busy endpoint
stops at its time budget. Real loopback servers, counted from their side."""

from __future__ import annotations

import asyncio
import re
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

NOT_SENT = re.compile(
    r"not sent: http://127\.0\.0\.1:\d+ is unresponsive: \d+ probes timed out "
    r"\(no answer within \d+\.\d s\) and none was answered"
)


class Counting:
    """A raw server that stalls forever on every request, counting connections."""

    def __init__(self) -> None:
        self.connections = 0

    async def __call__(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        await asyncio.Event().wait()


async def test_a_stalled_host_is_given_up_after_its_first_timeouts(
    serve_raw: ServeRaw, serve_app: ServeApp, make_probe: MakeProbe
) -> None:
    stalled = Counting()
    dead = await serve_raw(stalled)

    async def ok(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/{n}", ok)
    alive = await serve_app(app)
    limits = ProbeLimits(
        total_timeout=0.5, per_host_concurrency=2, retries=1, backoff=0.01, unresponsive_after=2
    )
    requests = [make_probe(f"{dead}/{n}") for n in range(30)]
    requests += [make_probe(f"{alive}/{n}") for n in range(30)]
    async with Prober(limits) as prober:
        seen = await prober.send_all(requests)
        # Later batches to the dead host are not sent at all.
        later = await prober.send_all([make_probe(f"{dead}/later/{n}") for n in range(5)])

    to_dead, to_alive = seen[:30], seen[30:]
    assert all(o.status == 204 for o in to_alive)
    sent = [o for o in to_dead if o.attempts]
    skipped = [o for o in to_dead if not o.attempts]
    # Two slots, plus what started while the second timeout was being counted.
    assert 2 <= len(sent) <= 3
    assert stalled.connections <= 3
    assert all(o.error is ProbeError.TIMEOUT for o in sent)
    assert len(skipped) == 30 - len(sent)
    for o in [*skipped, *later]:
        assert o.error is ProbeError.HOST_UNRESPONSIVE
        assert not o.sent
        assert NOT_SENT.fullmatch(o.error_detail or ""), o.error_detail
    assert stalled.connections <= 3, "nothing more was sent to the dead host"


async def test_a_host_that_answers_other_probes_is_not_dead(
    serve_raw: ServeRaw, make_probe: MakeProbe
) -> None:
    async def half(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if b"/stall" in head:
            await asyncio.Event().wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    base = await serve_raw(half)
    limits = ProbeLimits(total_timeout=0.3, per_host_concurrency=2, retries=0)
    requests = [make_probe(f"{base}/{'stall' if n % 2 else 'ok'}/{n}") for n in range(12)]
    async with Prober(limits) as prober:
        seen = await prober.send_all(requests)
    assert {o.error for o in seen[1::2]} == {ProbeError.TIMEOUT}
    assert {o.status for o in seen[::2]} == {200}


async def test_the_rule_can_be_turned_off(serve_raw: ServeRaw, make_probe: MakeProbe) -> None:
    stalled = Counting()
    base = await serve_raw(stalled)
    limits = ProbeLimits(total_timeout=0.2, per_host_concurrency=4, retries=0, unresponsive_after=0)
    async with Prober(limits) as prober:
        seen = await prober.send_all([make_probe(f"{base}/{n}") for n in range(6)])
    assert {o.error for o in seen} == {ProbeError.TIMEOUT}
    assert stalled.connections == 6


async def test_an_endpoint_stops_at_its_time_budget(
    serve_app: ServeApp, make_probe: MakeProbe
) -> None:
    served = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        await asyncio.sleep(0.2)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/{n}", slow)
    base = await serve_app(app)
    # One slot: each probe keeps the host busy 0.2 s; the budget is 0.5 s.
    limits = ProbeLimits(per_host_concurrency=1, endpoint_budget=0.5, retries=0)
    async with Prober(limits) as prober:
        seen = await prober.send_all([make_probe(f"{base}/{n}") for n in range(10)])
        # The budget is per batch: the next endpoint starts afresh.
        fresh = await prober.send(make_probe(f"{base}/fresh"))

    answered = [o for o in seen if o.ok]
    cut = [o for o in seen if o.error is ProbeError.DEADLINE]
    assert 2 <= len(answered) <= 4
    assert len(answered) + len(cut) == 10
    assert all(o.attempts == 0 for o in cut)
    assert all("time budget of 0.5 s" in (o.error_detail or "") for o in cut)
    assert served == len(answered) + 1
    assert fresh.status == 204
