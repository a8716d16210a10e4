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

Failed authentication has its own limit per client address:
``scanner.throttle.FailedAuthGuard``.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from scanner.api.auth import TOKEN_KEY
from scanner.api.problems import Problem
from scanner.throttle import (
    AUTH_AUDIT_WINDOW_S,
    UNKNOWN_TOKEN_TTL_S,
    FailedAuthGuard,
    RateLimiter,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
AUTH_GUARD = web.AppKey("auth_guard", FailedAuthGuard)


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


__all__ = [
    "AUTH_AUDIT_WINDOW_S",
    "AUTH_GUARD",
    "RATE_LIMITER",
    "UNKNOWN_TOKEN_TTL_S",
    "FailedAuthGuard",
    "RateLimiter",
    "rate_limit_middleware",
]
