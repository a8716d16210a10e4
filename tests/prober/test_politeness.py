"""Per-host concurrency, request spacing and bounded bookkeeping, seen from the server."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from scanner.prober import Politeness, ProbeLimits, Prober, host_key
from scanner.prober.politeness import MAX_BACKOFF, backoff_delay

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from scanner.core.plan import ProbeRequest

    MakeProbe = Callable[..., ProbeRequest]
    ServeApp = Callable[..., Awaitable[str]]


class Gauge:
    """Requests in flight now, and the most ever seen at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    def enter(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        self.now -= 1


class InFlight:
    """An app that measures its requests in flight and records when each started.

    ``shared`` also counts them, so several servers can measure a global total.
    """

    def __init__(self, delay: float, shared: Gauge | None = None) -> None:
        self.delay = delay
        self.gauge = Gauge()
        self.shared = shared or Gauge()
        self.starts: list[float] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.starts.append(asyncio.get_running_loop().time())
        self.gauge.enter()
        self.shared.enter()
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.gauge.leave()
            self.shared.leave()
        return web.Response(status=204)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{n}", self.handle)
        return app


async def test_per_host_concurrency_is_capped_but_used(
    serve_app: ServeApp, make_probe: MakeProbe
) -> None:
    first, second = InFlight(delay=0.05), InFlight(delay=0.05)
    base_a = await serve_app(first.app())
    base_b = await serve_app(second.app())
    requests = [make_probe(f"{base}/{n}") for n in range(20) for base in (base_a, base_b)]

    limits = ProbeLimits(per_host_concurrency=2, global_concurrency=64)
    async with Prober(limits) as prober:
        observations = await prober.send_all(requests)

    assert all(o.status == 204 for o in observations)
    for server in (first, second):
        assert 1 < server.gauge.peak <= 2


async def test_global_concurrency_caps_all_hosts_together(
    serve_app: ServeApp, make_probe: MakeProbe
) -> None:
    everywhere = Gauge()
    servers = [InFlight(delay=0.05, shared=everywhere) for _ in range(4)]
    bases = [await serve_app(server.app()) for server in servers]

    limits = ProbeLimits(per_host_concurrency=4, global_concurrency=3)
    async with Prober(limits) as prober:
        observations = await prober.send_all(
            [make_probe(f"{base}/{n}") for n in range(6) for base in bases]
        )

    assert all(o.status == 204 for o in observations)
    assert 1 < everywhere.peak <= 3


async def test_per_host_rate_spaces_request_starts(
    serve_app: ServeApp, make_probe: MakeProbe
) -> None:
    server = InFlight(delay=0.0)
    base = await serve_app(server.app())

    limits = ProbeLimits(per_host_rate=20, per_host_concurrency=4)  # one start per 50 ms
    async with Prober(limits) as prober:
        observations = await prober.send_all([make_probe(f"{base}/{n}") for n in range(8)])

    assert all(o.status == 204 for o in observations)
    starts = sorted(server.starts)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) == 7
    # Starts are spaced when sent; seen from the server, a request delayed in
    # transit (a busy shared machine) can arrive close to the next one, but the
    # run as a whole cannot be faster than the rate.
    assert starts[-1] - starts[0] >= 7 * 0.05 * 0.95
    assert sorted(gaps)[3] >= 0.045


async def test_per_host_table_forgets_idle_hosts() -> None:
    politeness: Politeness[str] = Politeness(per_host_concurrency=2)
    politeness.submit("http://a:80", "a1")
    politeness.submit("http://b:80", "b1")
    taken = [politeness.take(), politeness.take()]
    assert sorted(t[1] for t in taken if t) == ["a1", "b1"]
    assert politeness.tracked_hosts == 2
    politeness.done("http://a:80")
    politeness.done("http://b:80")
    assert politeness.tracked_hosts == 0

    spaced: Politeness[str] = Politeness(per_host_concurrency=2, per_host_rate=50)
    spaced.submit("http://a:80", "a1")
    assert spaced.take() == ("http://a:80", "a1")
    spaced.done("http://a:80")
    # Kept while its next start is in the future (forgetting it would allow an early start)...
    assert spaced.tracked_hosts == 1
    await asyncio.sleep(0.05)
    # ...then dropped.
    assert spaced.tracked_hosts == 0


async def test_hosts_take_turns_and_each_keeps_its_cap() -> None:
    politeness: Politeness[str] = Politeness(per_host_concurrency=2)
    for n in range(4):
        politeness.submit("http://a:80", f"a{n}")
    politeness.submit("http://b:80", "b0")
    order = []
    while (taken := politeness.take()) is not None:
        order.append(taken[1])
    # Round robin across hosts, FIFO within one, at most two of a's at once.
    assert order == ["a0", "b0", "a1"]
    assert politeness.in_flight("http://a:80") == 2
    politeness.done("http://a:80")
    assert politeness.take() == ("http://a:80", "a2")
    assert list(politeness.drain("http://a:80")) == ["a3"]
    assert politeness.take() is None


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://API.Acme.com/v1?x=1", "https://api.acme.com:443"),
        ("http://acme.com:8080/", "http://acme.com:8080"),
        ("http://acme.com/", "http://acme.com:80"),
        ("http://[::1]:9000/x", "http://[::1]:9000"),
    ],
)
def test_host_key_is_scheme_host_and_port(url: str, key: str) -> None:
    assert host_key(url) == key


def test_host_key_rejects_urls_without_host() -> None:
    with pytest.raises(ValueError, match="no host"):
        host_key("http:///path")


def test_backoff_is_exponential_with_full_jitter() -> None:
    rng = random.Random(7)
    first = [backoff_delay(1, 0.25, rng) for _ in range(200)]
    third = [backoff_delay(3, 0.25, rng) for _ in range(200)]
    assert all(0 <= d <= 0.25 for d in first)
    assert all(0 <= d <= 1.0 for d in third)
    assert max(third) > 0.5  # the ceiling doubled twice
    assert min(first) < 0.05  # full jitter reaches down to zero
    assert all(backoff_delay(50, 0.25, rng) <= MAX_BACKOFF for _ in range(50))
