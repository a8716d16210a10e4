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

Failed authentication has its own limit, per client address
(:class:`FailedAuthGuard`, used by ``scanner.api.auth``): each unknown or
revoked token spends one request of the address's bucket
(``api_auth_failures_per_minute`` / ``api_auth_failure_burst``); an address
whose bucket is empty gets 429 with ``Retry-After`` before its token is looked
up, so a flood of random tokens costs no database work. A token that
authenticated recently in this process still gets through from a throttled
address (it is then checked in the database as always: revocation is never
cached), and so does any token that exists: a throttled address's request
re-reads the set of active token hashes, at most every
:data:`KNOWN_TOKENS_REFRESH_S`, before it is refused. Unknown token hashes are remembered for
:data:`UNKNOWN_TOKEN_TTL_S`, so the same bogus token sent again is refused
without a lookup. Failures are audited, throttled: one ``auth.failure`` entry
per address per :data:`AUTH_AUDIT_WINDOW_S`, counting the failures since the
previous one.
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

    def refund(self, key: Hashable) -> None:
        """Give back one request :meth:`take` spent (it turned out not to count)."""
        if key in self._buckets:
            tokens, updated = self._buckets[key]
            self._buckets[key] = (min(float(self.burst), tokens + 1.0), updated)

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

# An unknown token hash is refused from memory this long (a flood of one bogus token costs
# one lookup); tokens are 256-bit random, so an unknown hash never becomes a valid one.
UNKNOWN_TOKEN_TTL_S = 60.0
# A token that authenticated this recently passes a throttled address's block.
GOOD_TOKEN_TTL_S = 3600.0
# A throttled address's request re-reads which token hashes exist at most this often, so a
# token made since (by another replica too) is let through; a flood costs one read per period.
KNOWN_TOKENS_REFRESH_S = 30.0
# At most one auth.failure audit entry per client address this often.
AUTH_AUDIT_WINDOW_S = 60.0


class _Expiring:
    """A bounded set of keys that each expire ``ttl`` seconds after they were added."""

    def __init__(self, ttl: float, max_keys: int, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._max_keys = max_keys
        self._clock = clock
        self._until: OrderedDict[Hashable, float] = OrderedDict()

    def add(self, key: Hashable) -> None:
        self._until.pop(key, None)
        self._until[key] = self._clock() + self._ttl
        while len(self._until) > self._max_keys:
            self._until.popitem(last=False)

    def discard(self, key: Hashable) -> None:
        self._until.pop(key, None)

    def __contains__(self, key: object) -> bool:
        until = self._until.get(key)  # type: ignore[call-overload]
        if until is None:
            return False
        if until <= self._clock():
            del self._until[key]  # type: ignore[arg-type]
            return False
        return True

    def __len__(self) -> int:
        return len(self._until)


class FailedAuthGuard:
    """Failed authentication per client address: the budget, the unknown-token cache and
    the audit throttle (module docstring). In-process and bounded like :class:`RateLimiter`.

    Keys are token hashes (never secrets) and client addresses. ``clock`` (seconds,
    monotonic) may be replaced on a running guard: tests move time that way.
    """

    def __init__(
        self,
        per_minute: int,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self.clock = clock
        self.limiter = RateLimiter(per_minute, burst, clock=self._now, max_keys=max_keys)
        self._unknown = _Expiring(UNKNOWN_TOKEN_TTL_S, max_keys, self._now)
        self._good = _Expiring(GOOD_TOKEN_TTL_S, max_keys, self._now)
        self._known: frozenset[str] = frozenset()
        self._known_at: float | None = None
        # address -> (when its last audit entry was written, failures since then)
        self._audited: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._max_keys = max_keys

    def _now(self) -> float:
        return self.clock()

    def admit(self, address: str, digest: str) -> float:
        """Seconds ``address`` must wait before this token is even looked up (0: go ahead).

        A token not known to be good spends one of the address's failures now, before the
        lookup, so concurrent attempts cannot overrun the budget; :meth:`succeeded` gives
        it back."""
        if digest in self._good or digest in self._known:
            return 0.0
        return self.limiter.take(address)

    def known_due(self) -> bool:
        """Whether the set of existing token hashes is old enough to be read again."""
        return self._known_at is None or self._now() - self._known_at >= KNOWN_TOKENS_REFRESH_S

    def known(self, hashes: frozenset[str]) -> None:
        """The hashes of every active token, as just read."""
        self._known = hashes
        self._known_at = self._now()

    def is_unknown(self, digest: str) -> bool:
        """True when this hash failed recently: refuse it without a lookup."""
        return digest in self._unknown

    def succeeded(self, address: str, digest: str) -> None:
        if digest not in self._good and digest not in self._known:
            self.limiter.refund(address)
        self._good.add(digest)

    def failed(self, address: str, digest: str) -> int | None:
        """Count a failure of ``address`` with this token hash (admitted, so already spent).
        Returns the failures to audit now (since the address's previous entry), or None
        inside its audit window."""
        self._unknown.add(digest)
        self._good.discard(digest)
        if digest in self._known:  # revoked since the set was read
            self._known = self._known - {digest}
        now = self._now()
        last, count = self._audited.pop(address, (None, 0))
        count += 1
        if last is not None and now - last < AUTH_AUDIT_WINDOW_S:
            self._audited[address] = (last, count)
            return None
        self._audited[address] = (now, 0)
        while len(self._audited) > self._max_keys:
            self._audited.popitem(last=False)
        return count


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
