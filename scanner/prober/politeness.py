"""Being a good guest on other people's servers: per-host queues, caps, request spacing, backoff.

A *host* is scheme + host + port (``https://api.acme.com:443``): the unit a
server operator's rate limits and connection limits apply to.

:class:`Politeness` is the prober's scheduler. Every probe waits in its
host's FIFO queue; a fixed pool of workers (the global concurrency) takes the
next probe of the next host that may start one (fewer than
``per_host_concurrency`` in flight, its next start time reached under a rate
cap), round robin across hosts so one slow host never starves the others.
Taking and returning a slot is a few dictionary and deque operations: no task,
semaphore or timer per probe, which is most of what a probe costs the
scanner beyond the request itself.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Iterator
from typing import Generic, TypeVar

from scanner.core.origin import host_key as host_key  # the one host key (re-exported)

DEFAULT_PORTS = {"http": 80, "https": 443}
# However many retries are configured, one wait never exceeds this (seconds).
MAX_BACKOFF = 30.0

J = TypeVar("J")


def backoff_delay(attempt: int, base: float, rng: random.Random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    Exponential backoff with full jitter: uniform in [0, base * 2**(attempt-1)],
    capped at ``MAX_BACKOFF``. Jitter spreads the retries of many probes that
    failed together (a host restarting) instead of having them return in step.
    """
    ceiling = min(base * 2 ** max(attempt - 1, 0), MAX_BACKOFF)
    return rng.uniform(0.0, ceiling)


class _Host(Generic[J]):
    __slots__ = ("cooling", "in_flight", "key", "next_start", "queue", "ready")

    def __init__(self, key: str) -> None:
        self.key = key
        self.queue: deque[J] = deque()
        self.in_flight = 0
        self.next_start = 0.0  # loop time before which no request may start (rate cap)
        self.ready = False  # in the ready ring
        self.cooling = False  # a timer will make it ready at next_start


class Politeness(Generic[J]):
    """Per-host FIFO queues of jobs, served under per-host caps and an optional start rate.

    ``submit(host, job)`` queues a job; ``take()`` returns the next job that
    may start now (its host's slot taken) or None; ``done(host)`` returns the
    slot. ``wait()`` sleeps until a job may start. The per-host table only
    holds hosts with queued or running jobs (plus, under a rate cap, hosts
    whose next start is still in the future), so memory stays bounded however
    many hosts a scan touches.
    """

    def __init__(self, *, per_host_concurrency: int, per_host_rate: float | None = None) -> None:
        self._per_host = per_host_concurrency
        self._interval = 1.0 / per_host_rate if per_host_rate else 0.0
        self._hosts: dict[str, _Host[J]] = {}
        self._ready: deque[_Host[J]] = deque()
        self._idle: deque[asyncio.Future[None]] = deque()

    @property
    def tracked_hosts(self) -> int:
        """Hosts currently in the per-host table (queued, in flight or cooling down)."""
        return len(self._hosts)

    def in_flight(self, host: str) -> int:
        state = self._hosts.get(host)
        return state.in_flight if state is not None else 0

    def submit(self, host: str, job: J) -> None:
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _Host(host)
        state.queue.append(job)
        self._offer(state)

    def drain(self, host: str) -> Iterator[J]:
        """Remove and yield every job still queued for ``host`` (none of them started)."""
        state = self._hosts.get(host)
        if state is None:
            return
        while state.queue:
            yield state.queue.popleft()
        self._forget_if_idle(state)

    def take(self) -> tuple[str, J] | None:
        """The next job allowed to start, with its host (whose slot it now holds); None if none."""
        ready = self._ready
        while ready:
            state = ready.popleft()
            state.ready = False
            if not state.queue or state.in_flight >= self._per_host:
                continue
            if self._interval:
                now = asyncio.get_running_loop().time()
                if now < state.next_start:
                    self._cool(state)
                    continue
                # Claimed when the job actually starts: the spacing holds
                # between real starts, however late the loop runs.
                state.next_start = now + self._interval
            job = state.queue.popleft()
            state.in_flight += 1
            self._offer(state)
            return state.key, job
        return None

    def done(self, host: str) -> None:
        """A job of ``host`` finished its attempt: its slot is free."""
        state = self._hosts.get(host)
        if state is None:  # pragma: no cover - done() without take()
            return
        state.in_flight -= 1
        if state.queue:
            self._offer(state)
        else:
            self._forget_if_idle(state)

    async def wait(self) -> None:
        """Until a job may start (or one was submitted)."""
        waiter = asyncio.get_running_loop().create_future()
        self._idle.append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done():
                waiter.cancel()

    def _offer(self, state: _Host[J]) -> None:
        if state.ready or not state.queue or state.in_flight >= self._per_host:
            return
        if self._interval and state.next_start > asyncio.get_running_loop().time():
            self._cool(state)
            return
        state.ready = True
        self._ready.append(state)
        self._wake()

    def _wake(self) -> None:
        idle = self._idle
        while idle:
            waiter = idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _cool(self, state: _Host[J]) -> None:
        if state.cooling:
            return
        state.cooling = True
        asyncio.get_running_loop().call_at(state.next_start, self._warm, state)

    def _warm(self, state: _Host[J]) -> None:
        state.cooling = False
        if self._hosts.get(state.key) is not state:
            return
        if state.queue:
            self._offer(state)
        else:
            self._forget_if_idle(state)

    def _forget_if_idle(self, state: _Host[J]) -> None:
        if state.queue or state.in_flight or self._hosts.get(state.key) is not state:
            return
        if self._interval and state.next_start > asyncio.get_running_loop().time():
            # Dropping the entry now would let the next request start early.
            self._cool(state)
            return
        if not state.cooling:
            del self._hosts[state.key]
