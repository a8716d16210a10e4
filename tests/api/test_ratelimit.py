"""Per-token rate limits: a token bucket per token, 429 with Retry-After, bounded memory."""

from __future__ import annotations

from typing import Any

import pytest

from scanner.api.app import create_app
from scanner.api.openapi import build_document
from scanner.api.ratelimit import RATE_LIMITER, RateLimiter
from scanner.errors import ConfigError
from scanner.settings import Settings
from tests.api.client import Api

ENDPOINTS = "/api/v1/endpoints"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)

    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(1.0)  # one a second at 60 a minute
    assert limiter.take("b") == 0.0  # another token has its own bucket

    clock.now += 0.5
    assert limiter.take("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.take("a") == 0.0
    clock.now += 3600  # a long pause refills to the burst, not beyond
    assert [limiter.take("a") for _ in range(4)][-1] > 0


def test_memory_is_bounded_and_a_dropped_bucket_comes_back_full() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=1, clock=clock, max_keys=10)
    assert limiter.take("first") == 0.0
    assert limiter.take("first") > 0

    for key in range(100):
        limiter.take(key)

    assert len(limiter) == 10
    assert limiter.take("first") == 0.0  # evicted, least recently used: full again


@pytest.mark.parametrize(("per_minute", "burst"), [(0, 1), (1, 0), (-5, 10)])
def test_a_limiter_needs_positive_numbers(per_minute: int, burst: int) -> None:
    with pytest.raises(ConfigError):
        RateLimiter(per_minute, burst)


def test_settings_defaults_and_variables() -> None:
    assert (Settings().api_rate_limit_per_minute, Settings().api_rate_limit_burst) == (600, 600)
    env = {
        "CORS_SCANNER_API_RATE_LIMIT_PER_MINUTE": "0",
        "CORS_SCANNER_API_RATE_LIMIT_BURST": "20",
    }
    settings = Settings.from_env(env)
    assert (settings.api_rate_limit_per_minute, settings.api_rate_limit_burst) == (0, 20)
    with pytest.raises(ConfigError, match="CORS_SCANNER_API_RATE_LIMIT_BURST"):
        Settings.from_env({"CORS_SCANNER_API_RATE_LIMIT_BURST": "0"})
    with pytest.raises(ConfigError, match="CORS_SCANNER_API_RATE_LIMIT_PER_MINUTE"):
        Settings.from_env({"CORS_SCANNER_API_RATE_LIMIT_PER_MINUTE": "-1"})


async def test_a_token_over_its_limit_gets_429_with_retry_after(serve_api: Any) -> None:
    api: Api = await serve_api(api_rate_limit_per_minute=60, api_rate_limit_burst=3)

    allowed = [await api.get(ENDPOINTS, token="read") for _ in range(3)]
    refused = await api.get(ENDPOINTS, token="read")

    assert [r.status for r in allowed] == [200, 200, 200]
    assert refused.status == 429
    problem = refused.problem
    assert problem["code"] == "rate_limited"
    assert problem["status"] == 429
    assert "more than 60 requests a minute" in problem["detail"]
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["X-Request-Id"]
    # Other tokens are counted on their own; public routes are not counted.
    assert (await api.get(ENDPOINTS, token="write")).status == 200
    for _ in range(10):
        assert (await api.get("/healthz", token=None)).status == 200
    # An unknown token is refused by authentication, before any bucket.
    assert (await api.get(ENDPOINTS, token="csk_not-a-real-token")).status == 401


async def test_writes_count_too_and_refused_requests_change_nothing(serve_api: Any) -> None:
    api: Api = await serve_api(api_rate_limit_per_minute=60, api_rate_limit_burst=1)

    first = await api.post(ENDPOINTS, {"url": "https://a.acme.test/"}, token="write")
    second = await api.post(ENDPOINTS, {"url": "https://b.acme.test/"}, token="write")

    assert first.status == 201
    assert second.status == 429
    listed = await api.get(ENDPOINTS, token="admin")
    assert [e["url"] for e in listed.body["items"]] == ["https://a.acme.test/"]


async def test_zero_turns_the_limit_off(serve_api: Any) -> None:
    api: Api = await serve_api(api_rate_limit_per_minute=0, api_rate_limit_burst=1)

    replies = [await api.get(ENDPOINTS, token="read") for _ in range(5)]

    assert {r.status for r in replies} == {200}
    assert RATE_LIMITER not in api.app


def test_the_openapi_document_lists_429_for_every_authenticated_operation() -> None:
    settings = Settings(database_url="sqlite+aiosqlite:///unused.db")
    document = build_document(create_app(settings), settings)

    for path, item in document["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            scoped = bool(op.get("security"))
            assert ("429" in op["responses"]) == scoped, (method, path)
