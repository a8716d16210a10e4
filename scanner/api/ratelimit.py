"""Per-token rate limits on the API: a token bucket per token, in this process, bounded.

Each token may make ``api_rate_limit_per_minute`` requests a minute on
average and ``api_rate_limit_burst`` at once: its bucket holds up to
``burst`` requests and refills continuously at ``per_minute / 60`` a second.
A request finding the bucket empty is answered 429 (problem ``rate_limited``)
with ``Retry-After``: whole seconds until one request's worth has refilled.
Public routes (health, OpenAPI, docs) are not limited; requests without a
valid token are refused by authentication before they reach a bucket.

The state is in-process (each API replica counts on its own: with N
replicas a token gets up to N times the limit) and bounded: at most
``max_keys`` buckets, the least recently used dropped first. A dropped
bucket comes back full, which only ever errs towards allowing.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable

from aiohttp import web
from aiohttp.typedefs import Middleware

from scanner.api.auth import TOKEN_KEY
from scanner.api.problems import Problem
from scanner.errors import ConfigError

DEFAULT_MAX_KEYS = 10_000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RateLimiter:
    """Token buckets keyed by anything hashable (the API uses token ids).

    ``clock`` returns seconds (monotonic); it is a parameter so tests and
    callers decide what time is.
    """

    def __init__(
        self,
        per_minute: int,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if per_minute <= 0 or burst <= 0 or max_keys <= 0:
            raise ConfigError(
                f"rate limit: per_minute, burst and max_keys must be above 0, got "
                f"{per_minute}, {burst}, {max_keys}"
            )
        self.per_minute = per_minute
        self.burst = burst
        self._rate = per_minute / 60.0  # requests per second
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: Hashable) -> float:
        """Spend one request of ``key``'s bucket: 0.0 if allowed, else seconds until it would be."""
        now = self._clock()
        tokens, updated = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - updated) * self._rate)
        if tokens >= 1.0:
            tokens -= 1.0
            wait = 0.0
        else:
            wait = (1.0 - tokens) / self._rate
        self._buckets[key] = (tokens, now)  # re-inserted last: most recently used
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)


def rate_limit_middleware(limiter: RateLimiter) -> Middleware:
    """Refuse (429) a token's request when its bucket is empty; place it after authentication."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        token = request.get(TOKEN_KEY)
        if token is None:  # a public route
            return await handler(request)
        wait = limiter.take(token.id)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise Problem(
                "rate_limited",
                f"this token made more than {limiter.per_minute} requests a minute "
                f"(bursts up to {limiter.burst}); retry in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )
        return await handler(request)

    return middleware
