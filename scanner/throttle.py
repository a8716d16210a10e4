"""Throttles that need no web framework: token buckets, and failed authentication per
client address (used by the API's middleware and the dashboard's sign-in alike).

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

The client address is the connection's peer, unless that peer is one of
``api_trusted_proxies``: then it is the rightmost ``X-Forwarded-For`` entry
that is not a trusted proxy (what the proxy nearest to us saw). IPv6 clients
are counted per /64, the block one host usually holds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

from scanner.db.engine import Database
from scanner.db.tokens import active_token_hashes
from scanner.errors import ConfigError
from scanner.usecases import Context
from scanner.usecases.tokens import record_auth_failures

log = logging.getLogger("scanner.throttle")

DEFAULT_MAX_KEYS = 10_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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
        until = self._until.get(key)
        if until is None:
            return False
        if until <= self._clock():
            del self._until[key]
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
        # One re-read of the known tokens at a time, however many requests wait for it.
        self.refreshing = asyncio.Lock()
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


def trusted_networks(entries: Sequence[str]) -> tuple[Network, ...]:
    """``api_trusted_proxies`` as networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network] = ()
) -> str:
    """The address failed authentications are counted under (module docstring):
    ``peer`` is the connection's, ``forwarded_for`` the request's X-Forwarded-For lines."""
    first = peer or "unknown"
    chain = [first]
    if trusted and _within(first, trusted):
        hops = [h.strip() for h in ",".join(forwarded_for).split(",") if h.strip()]
        chain = [first, *reversed(hops)]
    address = chain[0]
    for hop in chain:
        address = hop
        if not _within(hop, trusted):
            break
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


def _within(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


async def admission(guard: FailedAuthGuard, database: Database, address: str, digest: str) -> int:
    """Whole seconds ``address`` must wait before this token hash is looked up (0: go on).
    A throttled address's token is checked against the tokens that exist first (re-read
    at most every :data:`KNOWN_TOKENS_REFRESH_S`), so a real one still gets through."""
    wait = guard.admit(address, digest)
    if wait > 0 and guard.known_due():
        async with guard.refreshing:
            if guard.known_due():
                async with database.read_session() as session, session.begin():
                    guard.known(await active_token_hashes(session))
        wait = guard.admit(address, digest)
    return max(1, math.ceil(wait)) if wait > 0 else 0


async def note_failure(
    guard: FailedAuthGuard, context: Context | None, address: str, digest: str
) -> None:
    """Count a failed authentication, and audit it when its address's window allows."""
    failures = guard.failed(address, digest)
    if failures is None or context is None:
        return
    try:
        await record_auth_failures(context, address=address, failures=failures)
    except Exception as exc:  # the refusal stands whatever the audit log does
        log.warning("could not audit failed authentication from %s: %s", address, exc)


__all__ = [
    "AUTH_AUDIT_WINDOW_S",
    "GOOD_TOKEN_TTL_S",
    "KNOWN_TOKENS_REFRESH_S",
    "UNKNOWN_TOKEN_TTL_S",
    "FailedAuthGuard",
    "RateLimiter",
    "admission",
    "client_address",
    "note_failure",
    "trusted_networks",
]
