"""Failed authentication is limited per client address, cached and audited (issue 13, point 6).

A flood of random bearer tokens used to cost one database transaction each and
never met a 429. Now each address has a failure budget; past it, 429 with
``Retry-After`` before any lookup. The counts here are of database
transactions begun (SQLAlchemy's own ``begin`` event on the real engine), with
no embedded worker polling the database meanwhile.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from scanner.api.ratelimit import AUTH_AUDIT_WINDOW_S, AUTH_GUARD, UNKNOWN_TOKEN_TTL_S
from scanner.db.engine import Database
from scanner.errors import ConfigError
from scanner.settings import Settings
from tests.api.client import Api

ENDPOINTS = "/api/v1/endpoints"
FLOOD = 3000


@contextmanager
def counting_transactions(database: Database) -> Iterator[list[int]]:
    """A one-item list holding how many transactions began on ``database`` meanwhile."""
    count = [0]

    def began(_conn: Any) -> None:
        count[0] += 1

    event.listen(database.engine.sync_engine, "begin", began)
    try:
        yield count
    finally:
        event.remove(database.engine.sync_engine, "begin", began)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _bogus() -> str:
    return f"csk_{secrets.token_urlsafe(32)}"


async def test_a_flood_of_random_tokens_meets_429_after_the_budget_and_costs_no_lookups(
    serve_api: Any,
) -> None:
    api: Api = await serve_api(
        api_auth_failures_per_minute=30, api_auth_failure_burst=30, embedded_worker=False
    )
    clock = Clock()
    api.app[AUTH_GUARD].clock = clock  # time stands still: no refill during the flood
    assert (await api.get(ENDPOINTS, token="read")).status == 200  # a known, good token
    gate = asyncio.Semaphore(32)

    async def attempt(n: int) -> tuple[str, int, str | None]:
        async with gate:
            if n % 100 == 0:  # the legitimate client, from the same address, meanwhile
                reply = await api.get(ENDPOINTS, token="read")
                return "good", reply.status, None
            reply = await api.get(ENDPOINTS, token=_bogus())
            return "bogus", reply.status, reply.headers.get("Retry-After")

    with counting_transactions(api.database) as transactions:
        results = await asyncio.gather(*(attempt(n) for n in range(FLOOD)))

    bogus = [(status, retry) for kind, status, retry in results if kind == "bogus"]
    good = [status for kind, status, _ in results if kind == "good"]
    assert len(bogus) == FLOOD - FLOOD // 100
    assert sum(status == 401 for status, _ in bogus) == 30  # the budget
    refused = [retry for status, retry in bogus if status == 429]
    assert len(refused) == len(bogus) - 30
    assert {retry for retry in refused} == {"2"}  # 30 a minute: one more in 2 s
    assert good == [200] * (FLOOD // 100)
    # 30 lookups of bogus tokens, one audit entry, one read of the token hashes that exist,
    # the good token's reads (authentication and the handler's) and its last_used_at write
    # (at most once a minute, in the background): none for the 2940 refused.
    assert transactions[0] <= 30 + 1 + 1 + 2 * len(good) + 1

    refused_reply = await api.get(ENDPOINTS, token=_bogus())
    assert refused_reply.status == 429
    assert refused_reply.problem["code"] == "rate_limited"
    assert "too many failed authentications from 127.0.0.1" in refused_reply.problem["detail"]

    # An admin token this process never saw passes the throttled address too (it exists),
    # and throttled auditing wrote one entry for the address in this window, not thousands.
    entries = [
        e for e in (await api.get("/api/v1/audit")).body["items"] if e["action"] == "auth.failure"
    ]
    assert len(entries) == 1
    assert entries[0]["target_type"] == "client"
    assert entries[0]["target_id"] == "127.0.0.1"
    assert entries[0]["detail"] == {"failures": 1, "reason": "unknown or revoked token"}

    # The budget refills with time: one attempt per 2 s, and the next window's entry
    # counts every failure since the first.
    clock.now += 2.0
    assert (await api.get(ENDPOINTS, token=_bogus())).status == 401
    assert (await api.get(ENDPOINTS, token=_bogus())).status == 429
    clock.now += AUTH_AUDIT_WINDOW_S
    assert (await api.get(ENDPOINTS, token=_bogus())).status == 401
    entries = [
        e for e in (await api.get("/api/v1/audit")).body["items"] if e["action"] == "auth.failure"
    ]
    # Newest first: the flood's other 29, the one at +2 s and this one.
    assert [e["detail"]["failures"] for e in entries] == [31, 1]


async def test_the_same_unknown_token_again_is_refused_without_a_lookup(serve_api: Any) -> None:
    api: Api = await serve_api(embedded_worker=False)
    clock = Clock()
    api.app[AUTH_GUARD].clock = clock
    bogus = _bogus()
    assert (await api.get(ENDPOINTS, token=bogus)).status == 401
    with counting_transactions(api.database) as transactions:
        replies = [await api.get(ENDPOINTS, token=bogus) for _ in range(10)]
    assert [r.status for r in replies] == [401] * 10
    assert all('error="invalid_token"' in r.headers["WWW-Authenticate"] for r in replies)
    assert transactions[0] == 0
    # Briefly: after the cache's lifetime the hash is looked up again.
    clock.now += UNKNOWN_TOKEN_TTL_S + 1
    with counting_transactions(api.database) as transactions:
        assert (await api.get(ENDPOINTS, token=bogus)).status == 401
    assert transactions[0] >= 1


async def test_a_revoked_token_is_refused_at_once_and_then_from_the_cache(
    serve_api: Any,
) -> None:
    api: Api = await serve_api(embedded_worker=False)
    created = await api.post("/api/v1/tokens", {"name": "temp", "scopes": ["read"]})
    secret = created.body["secret"]
    assert (await api.get(ENDPOINTS, token=secret)).status == 200
    assert (await api.delete(f"/api/v1/tokens/{created.body['token']['id']}")).status == 200
    # Known good a moment ago, revoked now: the database says so, no cache of good tokens.
    assert (await api.get(ENDPOINTS, token=secret)).status == 401
    with counting_transactions(api.database) as transactions:
        assert (await api.get(ENDPOINTS, token=secret)).status == 401
    assert transactions[0] == 0


async def test_failures_are_counted_per_client_address_behind_a_trusted_proxy(
    serve_api: Any,
) -> None:
    api: Api = await serve_api(
        api_auth_failures_per_minute=1, api_auth_failure_burst=2, api_trusted_proxies=("127.0.0.1",)
    )
    api.app[AUTH_GUARD].clock = Clock()

    async def from_client(address: str) -> int:
        reply = await api.get(ENDPOINTS, token=_bogus(), headers={"X-Forwarded-For": address})
        return reply.status

    # The proxy (127.0.0.1, trusted) forwards two clients: each has its own budget.
    assert [await from_client("192.0.2.7") for _ in range(3)] == [401, 401, 429]
    assert [await from_client("192.0.2.8") for _ in range(3)] == [401, 401, 429]
    # A forged entry left of the real client changes nothing: the rightmost untrusted counts.
    assert await from_client("198.51.100.1, 192.0.2.7") == 429
    # IPv6 clients are counted per /64.
    assert await from_client("2001:db8::1") == 401
    assert await from_client("2001:db8::2") == 401
    assert await from_client("2001:db8::3") == 429
    entries = [
        e["target_id"]
        for e in (await api.get("/api/v1/audit")).body["items"]
        if e["action"] == "auth.failure"
    ]
    assert sorted(entries) == ["192.0.2.7", "192.0.2.8", "2001:db8::/64"]


async def test_an_untrusted_peer_cannot_choose_its_address(serve_api: Any) -> None:
    api: Api = await serve_api(api_auth_failures_per_minute=1, api_auth_failure_burst=1)
    api.app[AUTH_GUARD].clock = Clock()
    first = await api.get(ENDPOINTS, token=_bogus(), headers={"X-Forwarded-For": "192.0.2.1"})
    second = await api.get(ENDPOINTS, token=_bogus(), headers={"X-Forwarded-For": "192.0.2.2"})
    assert (first.status, second.status) == (401, 429)


async def test_zero_turns_the_failure_limit_off(serve_api: Any) -> None:
    api: Api = await serve_api(api_auth_failures_per_minute=0)
    statuses = {(await api.get(ENDPOINTS, token=_bogus())).status for _ in range(40)}
    assert statuses == {401}
    assert AUTH_GUARD not in api.app


def test_failure_limit_settings_are_validated() -> None:
    settings = Settings.from_env(
        {
            "CORS_SCANNER_API_AUTH_FAILURES_PER_MINUTE": "5",
            "CORS_SCANNER_API_AUTH_FAILURE_BURST": "7",
            "CORS_SCANNER_API_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1",
        }
    )
    assert settings.api_auth_failures_per_minute == 5
    assert settings.api_auth_failure_burst == 7
    assert settings.api_trusted_proxies == ("10.0.0.0/8", "192.0.2.1")
    with pytest.raises(ConfigError, match="CORS_SCANNER_API_TRUSTED_PROXIES"):
        Settings.from_env({"CORS_SCANNER_API_TRUSTED_PROXIES": "proxy.example"})
    with pytest.raises(ConfigError, match="CORS_SCANNER_API_AUTH_FAILURE_BURST"):
        Settings.from_env({"CORS_SCANNER_API_AUTH_FAILURE_BURST": "0"})
