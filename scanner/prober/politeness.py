"""Being a good guest on other people's servers: concurrency caps, request spacing, backoff.

A *host* is scheme + host + port (``https://api.acme.com:443``): the unit a
server operator's rate limits and connection limits apply to.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from scanner.core.origin import host_key as host_key  # the one host key (re-exported)

DEFAULT_PORTS = {"http": 80, "https": 443}
# However many retries are configured, one wait never exceeds this (seconds).
MAX_BACKOFF = 30.0


def backoff_delay(attempt: int, base: float, rng: random.Random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    Exponential backoff with full jitter: uniform in [0, base * 2**(attempt-1)],
    capped at ``MAX_BACKOFF``. Jitter spreads the retries of many probes that
    failed together (a host restarting) instead of having them return in step.
    """
    ceiling = min(base * 2 ** max(attempt - 1, 0), MAX_BACKOFF)
    return rng.uniform(0.0, ceiling)


@dataclass(slots=True)
class _Host:
    semaphore: asyncio.Semaphore
    users: int = 0  # holding or waiting for a slot; the entry lives while > 0
    next_start: float = field(default=0.0)  # loop time before which no request may start


class Politeness:
    """Per-host and global concurrency caps, and an optional per-host start rate.

    ``async with politeness.slot(host_key(url)):`` brackets one request
    attempt. The per-host table only holds hosts with a request in flight or
    waiting (plus, with a rate cap, hosts whose next start is still in the
    future), so memory stays bounded however many hosts a scan touches.
    """

    def __init__(
        self,
        *,
        per_host_concurrency: int,
        global_concurrency: int,
        per_host_rate: float | None = None,
    ) -> None:
        self._per_host = per_host_concurrency
        self._global = asyncio.Semaphore(global_concurrency)
        self._interval = 1.0 / per_host_rate if per_host_rate else 0.0
        self._hosts: dict[str, _Host] = {}

    @property
    def tracked_hosts(self) -> int:
        """Hosts currently in the per-host table (in flight, waiting or cooling down)."""
        return len(self._hosts)

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        """Wait for a per-host slot, a global slot and the host's next start time."""
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _Host(asyncio.Semaphore(self._per_host))
        state.users += 1
        try:
            # Host slot first: a request queued behind its own host must not sit
            # on one of the global slots other hosts could use meanwhile.
            async with state.semaphore, self._global:
                await self._wait_turn(state)
                yield
        finally:
            self._release(host, state)

    async def _wait_turn(self, state: _Host) -> None:
        if not self._interval:
            return
        # Claim the start when actually resuming, not when going to sleep: if
        # the loop wakes a request late, the next one is pushed back with it,
        # so the spacing holds between the real starts. Done under the global
        # slot, so nothing else delays a request after its claim (at the cost of
        # holding a global slot while sleeping: at most per_host_concurrency of
        # them per rate-capped host).
        loop = asyncio.get_running_loop()
        # Waits for a time, not for another task's signal: there is no Event to await.
        while (wait := state.next_start - loop.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
        state.next_start = loop.time() + self._interval

    def _release(self, host: str, state: _Host) -> None:
        state.users -= 1
        if state.users:
            return
        loop = asyncio.get_running_loop()
        wait = state.next_start - loop.time()
        if wait <= 0:
            self._forget(host, state)
        else:
            # Dropping the entry now would let the next request start early.
            loop.call_later(wait, self._forget, host, state)

    def _forget(self, host: str, state: _Host) -> None:
        if state.users == 0 and self._hosts.get(host) is state:
            del self._hosts[host]
