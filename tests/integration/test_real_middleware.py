"""The engine against real CORS middleware as users configure it, on loopback servers.

Flask-CORS (through werkzeug's threaded server) and aiohttp-cors refuse an
unusual method outright, with no CORS headers at all: a preflight that asked
for an unusual method *and* a header would hide that they reflect every
requested header (their default ``allow_headers='*'``). One dimension per
preflight finds it. The other cases: a front end's own headers taking part in
the legitimate preflight, a lowercase method judged byte for byte, and a
same-origin front end that needs no CORS at all.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import aiohttp_cors
import pytest
from aiohttp import web
from flask import Flask
from flask_cors import CORS
from werkzeug.serving import make_server

from scanner.core.checks import Assessment
from scanner.core.plan import Endpoint, PlanSettings, PreflightPurpose
from scanner.core.policy import Policy
from scanner.engine import Engine, ScanOptions, Target
from scanner.hostnames import default_public_suffixes
from scanner.prober import ProbeLimits
from tests.loopback import ServeApp

APP = "https://app.acme.test"
LIMITS = ProbeLimits(total_timeout=5.0, retries=0, per_host_concurrency=8, trust_env=False)


async def scan(
    url: str,
    policy: Policy,
    *,
    method: str = "GET",
    headers: tuple[tuple[str, str], ...] = (),
) -> Assessment:
    options = ScanOptions(limits=LIMITS, plan=PlanSettings(extra_request_headers=headers))
    async with Engine(options, default_public_suffixes()) as engine:
        return await engine.assess(Target(Endpoint(url, method), policy))


def rules(assessment: Assessment) -> set[str]:
    return {f.rule_id for f in assessment.findings}


@pytest.fixture
def flask_cors_url() -> Iterator[str]:
    app = Flask("flask_cors_default")
    # As its README shows it: an origin list, credentials; allow_headers defaults to '*'.
    CORS(app, origins=[APP], supports_credentials=True)

    @app.route("/api/items", methods=["GET", "POST"])
    def items() -> str:
        return "[]"

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/api/items"
    finally:
        server.shutdown()
        thread.join(timeout=5)


async def test_flask_cors_default_reflects_every_requested_header(flask_cors_url: str) -> None:
    policy = Policy.build(allowed_origins=[APP], allow_credentials=True)
    assessment = await scan(flask_cors_url, policy)

    assert "preflight_reflects_any_header" in rules(assessment)
    # It refuses the unusual method (no CORS headers at all): no method finding.
    assert "preflight_reflects_any_method" not in rules(assessment)
    by_purpose = {p.observation.request.purpose: p.observation for p in assessment.probes}
    method_probe = by_purpose[PreflightPurpose.REFLECT_METHOD]
    assert method_probe.headers.combined("access-control-allow-methods") is None
    assert "access-control-request-headers" not in method_probe.request.headers
    header_probe = by_purpose[PreflightPurpose.REFLECT_HEADER]
    assert header_probe.request.headers.combined("access-control-request-method") == "GET"


async def aiohttp_cors_app(allow_headers: str | tuple[str, ...]) -> web.Application:
    app = web.Application()
    cors = aiohttp_cors.setup(
        app,
        defaults={
            APP: aiohttp_cors.ResourceOptions(
                allow_credentials=True, allow_headers=allow_headers, expose_headers="*"
            )
        },
    )

    async def items(request: web.Request) -> web.Response:
        return web.json_response([])

    resource = cors.add(app.router.add_resource("/api/items"))
    cors.add(resource.add_route("GET", items))
    return app


async def test_aiohttp_cors_with_any_header_is_caught(serve_app: ServeApp) -> None:
    base = await serve_app(await aiohttp_cors_app("*"))
    policy = Policy.build(allowed_origins=[APP], allow_credentials=True)
    assessment = await scan(f"{base}/api/items", policy)
    assert "preflight_reflects_any_header" in rules(assessment)
    assert "preflight_reflects_any_method" not in rules(assessment)


async def test_aiohttp_cors_with_a_header_list_is_clean_and_says_what_it_could_not_see(
    serve_app: ServeApp,
) -> None:
    base = await serve_app(await aiohttp_cors_app(("Content-Type",)))
    policy = Policy.build(allowed_origins=[APP], allow_credentials=True)
    assessment = await scan(f"{base}/api/items", policy)
    assert not {"preflight_reflects_any_header", "preflight_reflects_any_method"} & rules(
        assessment
    )
    # It answers the random header with 403 and no CORS headers: refused, or no
    # preflight route at all; the scanner cannot tell, and says so.
    assert any(
        line.startswith("preflight_reflects_any_header: not checked:")
        for line in assessment.unchecked
    )


@pytest.fixture
async def literal_star_server(
    serve_app: ServeApp,
) -> tuple[str, list[dict[str, str]]]:
    """Credentials allowed, but 'Access-Control-Allow-Headers: *' (a literal name with
    credentials); an auth hook that refuses requests without the API key, preflights too."""
    seen: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        origin = request.headers.get("Origin", "")
        cors = {"Vary": "Origin"}
        if origin == APP:
            cors |= {"Access-Control-Allow-Origin": APP, "Access-Control-Allow-Credentials": "true"}
        if request.method == "OPTIONS":
            # An auth hook in front of the CORS layer: a preflight with the key passes.
            if request.headers.get("X-Api-Key") != "k3y-for-the-front-end":
                return web.Response(status=401)
            cors |= {"Access-Control-Allow-Methods": "GET", "Access-Control-Allow-Headers": "*"}
            return web.Response(status=204, headers=cors)
        return web.json_response([], headers=cors)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return await serve_app(app) + "/api/me", seen


async def test_front_end_headers_are_named_in_the_preflight_and_never_sent_on_it(
    literal_star_server: tuple[str, list[dict[str, str]]],
) -> None:
    url, seen = literal_star_server
    policy = Policy.build(allowed_origins=[APP], allow_credentials=True)
    assessment = await scan(
        url,
        policy,
        headers=(("X-Api-Key", "k3y-for-the-front-end"), ("Content-Type", "application/json")),
    )
    # The browser's preflight carries no key: the hook refuses it (401), so the
    # front end is broken; a scanner that sent the key on preflights saw a 204.
    assert "preflight_not_handled" in rules(assessment)
    [legit] = [
        p.observation
        for p in assessment.probes
        if p.observation.request.purpose is PreflightPurpose.LEGITIMATE
    ]
    assert legit.status == 401
    assert legit.request.headers.combined("access-control-request-headers") == (
        "content-type,x-api-key"
    )
    preflights = [h for h in seen if "Access-Control-Request-Method" in h]
    actuals = [h for h in seen if "Access-Control-Request-Method" not in h]
    assert preflights
    assert all("X-Api-Key" not in h and "Cookie" not in h for h in preflights)
    assert all(h.get("X-Api-Key") == "k3y-for-the-front-end" for h in actuals)
    # The key is a secret: never in what a report shows.
    for p in assessment.probes:
        assert "k3y-for-the-front-end" not in str(p.observation.request.public_headers)


async def test_a_literal_star_breaks_a_credentialed_front_end_once_the_preflight_passes(
    serve_app: ServeApp,
) -> None:
    async def handle(request: web.Request) -> web.Response:
        cors = {"Vary": "Origin"}
        if request.headers.get("Origin") == APP:
            cors |= {"Access-Control-Allow-Origin": APP, "Access-Control-Allow-Credentials": "true"}
        if request.method == "OPTIONS":
            cors |= {"Access-Control-Allow-Methods": "GET", "Access-Control-Allow-Headers": "*"}
            return web.Response(status=204, headers=cors)
        return web.json_response([], headers=cors)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    url = await serve_app(app) + "/api/me"
    policy = Policy.build(allowed_origins=[APP], allow_credentials=True)
    clean = await scan(url, policy)
    broken = await scan(url, policy, headers=(("Authorization", "Bearer t0ken-value"),))
    assert "preflight_not_handled" not in rules(clean)  # no headers: no preflight needed
    assert "preflight_not_handled" in rules(broken)
    finding = next(f for f in broken.findings if f.rule_id == "preflight_not_handled")
    assert "Request header field authorization is not allowed" in finding.summary


@pytest.mark.parametrize(("acam", "broken"), [("PATCH", True), ("patch", False)])
async def test_a_lowercase_method_is_compared_byte_for_byte(
    serve_app: ServeApp, acam: str, broken: bool
) -> None:
    async def handle(request: web.Request) -> web.Response:
        cors = {"Vary": "Origin"}
        if request.headers.get("Origin") == APP:
            cors |= {"Access-Control-Allow-Origin": APP}
        if request.method == "OPTIONS":
            cors["Access-Control-Allow-Methods"] = acam
            return web.Response(status=204, headers=cors)
        return web.json_response([], headers=cors)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    url = await serve_app(app) + "/api/me"
    policy = Policy.build(allowed_origins=[APP], allowed_methods=["patch"])
    assessment = await scan(url, policy, method="patch")
    [legit] = [
        p.observation
        for p in assessment.probes
        if p.observation.request.purpose is PreflightPurpose.LEGITIMATE
    ]
    assert legit.request.headers.combined("access-control-request-method") == "patch"
    assert ("preflight_not_handled" in rules(assessment)) is broken
    if broken:
        finding = next(f for f in assessment.findings if f.rule_id == "preflight_not_handled")
        assert "Method patch is not allowed" in finding.summary
        assert finding.endpoint_method == "patch"


async def test_a_same_origin_front_end_needs_no_cors(serve_app: ServeApp) -> None:
    async def handle(request: web.Request) -> web.Response:
        return web.json_response([])  # no CORS headers at all

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    base = await serve_app(app)
    # The policy's only front end is served from the API's own origin.
    policy = Policy.build(allowed_origins=[base], allowed_methods=["PUT"])
    assessment = await scan(f"{base}/api/me", policy, method="PUT")
    assert not {"legit_origin_blocked", "preflight_not_handled"} & rules(assessment)
    own = [p for p in assessment.probes if p.observation.request.origin.value == base]
    assert own
    assert all(p.observation.request.purpose is None for p in own), "a browser sends no preflight"
    simple = next(p for p in own if p.verdict is not None)
    assert simple.verdict is not None
    assert simple.verdict.readable
