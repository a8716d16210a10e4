"""Our own API's CORS: exact allowlist echo, Vary everywhere, fixed preflights — and our scanner agrees."""

from __future__ import annotations

from typing import Any

import pytest

from scanner.api.cors import CorsAllowlist
from scanner.core.plan import Endpoint
from scanner.core.policy import Policy
from scanner.core.severity import Severity
from scanner.engine import Engine, ScanOptions, Target
from scanner.errors import ConfigError
from scanner.hostnames import default_public_suffixes
from tests.api.client import CONSOLE, Api

ENDPOINTS = "/api/v1/endpoints"


def vary(reply: Any) -> set[str]:
    return {v.strip().lower() for v in reply.headers.get("Vary", "").split(",") if v.strip()}


async def test_allowed_origin_is_echoed_exactly(api: Api) -> None:
    reply = await api.get(ENDPOINTS, headers={"Origin": CONSOLE})
    assert reply.status == 200
    assert reply.headers["Access-Control-Allow-Origin"] == CONSOLE
    assert "Access-Control-Allow-Credentials" not in reply.headers
    assert "origin" in vary(reply)
    assert "Location" in reply.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.test",
        "null",
        "https://console.acme.test.evil.test",
        "https://evilconsole.acme.test",
        "http://console.acme.test",
        "https://CONSOLE.acme.test",
        "https://console.acme.test:443",
        "https://console.acme.test/",
    ],
)
async def test_other_origins_get_no_cors_headers(api: Api, origin: str) -> None:
    reply = await api.get(ENDPOINTS, headers={"Origin": origin})
    assert reply.status == 200
    assert "Access-Control-Allow-Origin" not in reply.headers
    assert "origin" in vary(reply)


async def test_vary_and_cors_headers_on_every_response_errors_included(api: Api) -> None:
    cases = [
        await api.get("/healthz", token=None),
        await api.get(ENDPOINTS, token=None, headers={"Origin": CONSOLE}),  # 401
        await api.get(ENDPOINTS, token="read", headers={"Origin": CONSOLE}),
        await api.post(ENDPOINTS, {"bogus": 1}, headers={"Origin": CONSOLE}),  # 422
        await api.get("/api/v1/nope", headers={"Origin": CONSOLE}),  # 404
        await api.call("PUT", ENDPOINTS, headers={"Origin": CONSOLE}),  # 405
    ]
    assert [r.status for r in cases] == [200, 401, 200, 422, 404, 405]
    for reply in cases:
        assert "origin" in vary(reply)
    for reply in cases[1:]:
        assert reply.headers["Access-Control-Allow-Origin"] == CONSOLE
        assert reply.headers["Access-Control-Allow-Origin"] != "*"


async def test_preflight(api: Api) -> None:
    allowed = await api.call(
        "OPTIONS",
        f"{ENDPOINTS}/3",
        token=None,
        headers={
            "Origin": CONSOLE,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert allowed.status == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == CONSOLE
    assert allowed.headers["Access-Control-Allow-Methods"] == "GET, POST, PATCH, DELETE"
    assert allowed.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert allowed.headers["Access-Control-Max-Age"] == "600"
    assert {"origin", "access-control-request-method"} <= vary(allowed)

    # Nothing from the request is echoed: an unusual method or header is not granted.
    unusual = await api.call(
        "OPTIONS",
        ENDPOINTS,
        token=None,
        headers={
            "Origin": CONSOLE,
            "Access-Control-Request-Method": "PROPFIND",
            "Access-Control-Request-Headers": "x-anything",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert "PROPFIND" not in unusual.headers["Access-Control-Allow-Methods"]
    assert "x-anything" not in unusual.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Private-Network" not in unusual.headers

    foreign = await api.call(
        "OPTIONS",
        ENDPOINTS,
        token=None,
        headers={"Origin": "https://evil.test", "Access-Control-Request-Method": "DELETE"},
    )
    assert foreign.status == 204
    assert not [h for h in foreign.headers if h.lower().startswith("access-control-")]


def test_allowlist_configuration_is_validated() -> None:
    assert CorsAllowlist(["HTTPS://Console.Acme.test:443"]).origins == {CONSOLE}
    with pytest.raises(ConfigError, match="null"):
        CorsAllowlist(["null"])
    with pytest.raises(ConfigError, match="CORS_SCANNER_API_CORS_ORIGINS"):
        CorsAllowlist(["https://*.acme.test"])


async def test_our_own_scanner_finds_nothing_wrong_with_our_api(api: Api) -> None:
    """Dogfood: the API passes the checks we run on everyone else."""
    base = str(api.client.make_url("")).rstrip("/")
    policy = Policy.build(
        allowed_origins=[CONSOLE],
        allowed_methods=["GET", "POST", "PATCH", "DELETE"],
        allowed_headers=["authorization", "content-type"],
        exposed_headers=["location", "www-authenticate"],
        max_age=600,
    )
    targets = [
        Target(Endpoint(f"{base}{ENDPOINTS}", "GET"), policy),
        Target(Endpoint(f"{base}{ENDPOINTS}", "POST"), policy),
        Target(Endpoint(f"{base}{ENDPOINTS}/1", "PATCH"), policy),
        Target(Endpoint(f"{base}{ENDPOINTS}/1", "DELETE"), policy),
        Target(Endpoint(f"{base}/api/v1/scans", "GET"), policy),
        Target(Endpoint(f"{base}/healthz", "GET"), policy),
    ]
    async with Engine(ScanOptions(), default_public_suffixes()) as engine:
        assessments = [a async for a in engine.scan(targets)]
    assert len(assessments) == len(targets)
    for assessment in assessments:
        assert assessment.reachable
        assert not assessment.errors
        serious = [f for f in assessment.findings if f.severity >= Severity.LOW]
        assert serious == [], (
            assessment.endpoint.key,
            [(f.rule_id, f.severity.value, f.summary) for f in serious],
        )
        # Not vacuous: the console itself can read, every attacker variant cannot.
        simple = [p for p in assessment.probes if p.observation.request.kind.value == "simple"]
        legit = [p for p in simple if p.observation.request.origin.value == CONSOLE]
        assert legit
        assert all(p.verdict is not None and p.verdict.readable for p in legit)
        # The API's own origin is same-origin, not CORS: readable whatever the headers.
        others = [
            p
            for p in simple
            if p.observation.request.origin.value != CONSOLE
            and p.observation.request.cors_request.cross_origin
        ]
        assert len(others) > 10
        assert not any(p.verdict is not None and p.verdict.readable for p in others)
