"""Scan targets and the SSRF rule: metadata and link-local refused, internal ranges allowed.

Refused addresses never see a packet: the guard stops the socket before it
connects, so these tests are safe on any machine (and need no network).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from dataclasses import replace

import pytest
from aiohttp import web

from scanner.cli.options import apply_probe_flags
from scanner.core.browser import CorsRequest
from scanner.core.headers import Headers
from scanner.core.observation import Observation, ProbeError
from scanner.core.plan import Endpoint, ProbeKind, ProbeRequest
from scanner.core.variants import ProbeOrigin, VariantKind
from scanner.engine import Engine, ScanOptions, Target, scan_options
from scanner.errors import ConfigError
from scanner.hostnames import default_public_suffixes
from scanner.prober import ProbeLimits, Prober
from scanner.prober.guard import DEFAULT_TARGET_POLICY, target_policy
from scanner.settings import Settings
from tests.loopback import ServeApp, ServeRaw


async def acao_star(request: web.Request) -> web.Response:
    return web.Response(text="reached", headers={"Access-Control-Allow-Origin": "*"})


FAST = ProbeLimits(connect_timeout=1.0, read_timeout=2.0, total_timeout=2.0, retries=2)


def probe(url: str) -> ProbeRequest:
    origin = ProbeOrigin("https://app.example", VariantKind.ALLOWED, trusted=True)
    return ProbeRequest(
        key=f"GET {url}",
        kind=ProbeKind.SIMPLE,
        method="GET",
        url=url,
        origin=origin,
        headers=Headers.of([("Origin", origin.value)]),
        cors_request=CorsRequest(origin.value, "GET"),
    )


async def send(url: str, limits: ProbeLimits = FAST) -> Observation:
    async with Prober(limits) as prober:
        return await prober.send(probe(url))


@pytest.mark.parametrize(
    ("url", "kind", "setting"),
    [
        ("http://169.254.169.254/latest/meta-data/", "metadata", "METADATA"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "metadata", "METADATA"),
        ("http://100.100.100.200/latest/meta-data/", "metadata", "METADATA"),
        ("http://[::ffff:169.254.169.254]/", "metadata", "METADATA"),
        ("http://169.254.10.10:8080/", "link-local", "LINK_LOCAL"),
        ("http://[fe80::1]:8080/", "link-local", "LINK_LOCAL"),
    ],
)
async def test_metadata_and_link_local_targets_are_blocked_by_default(
    url: str, kind: str, setting: str
) -> None:
    observation = await send(url)

    assert observation.error is ProbeError.BLOCKED
    assert observation.status is None
    assert observation.attempts == 1  # our own rule: never retried
    detail = observation.error_detail or ""
    assert detail.startswith("refused by the target address rules: ")
    assert f"a {kind} address" in detail
    assert f"CORS_SCANNER_TARGET_ALLOW_{setting} is off" in detail


async def test_metadata_host_names_are_blocked_before_any_lookup() -> None:
    observation = await send("http://metadata.google.internal/computeMetadata/v1/")

    assert observation.error is ProbeError.BLOCKED
    assert "cloud metadata host name" in (observation.error_detail or "")


@pytest.mark.parametrize("url", ["http://0.0.0.0:9/", "http://224.0.0.1/", "http://240.0.0.1/"])
async def test_unspecified_multicast_and_reserved_targets_are_never_allowed(url: str) -> None:
    everything = replace(
        DEFAULT_TARGET_POLICY, allow_link_local=True, allow_metadata=True, allow_private=True
    )
    observation = await send(url, replace(FAST, target_policy=everything))

    assert observation.error is ProbeError.BLOCKED
    assert "never allowed" in (observation.error_detail or "")


async def test_loopback_targets_are_allowed_by_default(serve_app: ServeApp) -> None:
    app = web.Application()
    app.router.add_get("/", acao_star)
    base = await serve_app(app)

    observation = await send(base + "/")

    assert observation.ok
    assert observation.status == 200
    assert observation.headers.combined("access-control-allow-origin") == "*"


async def test_a_name_resolving_to_a_refused_address_is_blocked_at_connect_time(
    serve_app: ServeApp,
) -> None:
    # "localhost" goes through the system resolver; with loopback refused the
    # guard must judge the *resolved* address, not the name.
    app = web.Application()
    app.router.add_get("/", acao_star)
    base = await serve_app(app)
    port = base.rsplit(":", 1)[1]
    no_loopback = replace(FAST, target_policy=replace(DEFAULT_TARGET_POLICY, allow_loopback=False))

    by_name = await send(f"http://localhost:{port}/", no_loopback)
    by_literal = await send(f"http://127.0.0.1:{port}/", no_loopback)

    for observation in (by_name, by_literal):
        assert observation.error is ProbeError.BLOCKED, observation
        assert "a loopback address" in (observation.error_detail or "")
        assert "CORS_SCANNER_TARGET_ALLOW_LOOPBACK is off" in (observation.error_detail or "")
    assert "localhost resolves only to refused addresses" in (by_name.error_detail or "")


async def test_redirects_to_metadata_are_never_followed(serve_raw: ServeRaw) -> None:
    followed = asyncio.Event()

    async def redirect(head: bytes, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        if b"/meta" in head:
            followed.set()
        w.write(
            b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        await w.drain()

    base = await serve_raw(redirect)
    observation = await send(base + "/start")

    assert observation.status == 302
    assert observation.redirect_location == "http://169.254.169.254/latest/meta-data/"
    assert not followed.is_set()


async def test_through_a_proxy_ip_literals_are_still_judged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The proxy would resolve and connect for us: the guard must refuse before asking it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed}")

    observation = await send("http://169.254.169.254/latest/meta-data/")

    assert observation.error is ProbeError.BLOCKED
    assert "a metadata address" in (observation.error_detail or "")


async def test_a_scan_records_blocked_targets_and_judges_the_others(serve_app: ServeApp) -> None:
    app = web.Application()
    app.router.add_route("*", "/", acao_star)
    base = await serve_app(app)
    options = ScanOptions(limits=FAST)
    targets = [
        Target(Endpoint("http://169.254.169.254/latest/meta-data/iam/")),
        Target(Endpoint(base + "/")),
    ]

    async with Engine(options, default_public_suffixes()) as engine:
        results = {a.endpoint.url: a async for a in engine.scan(targets)}

    blocked = results["http://169.254.169.254/latest/meta-data/iam/"]
    assert not blocked.reachable
    assert blocked.probes
    assert {p.observation.error for p in blocked.probes} == {ProbeError.BLOCKED}
    assert results[base + "/"].reachable


def test_target_settings_build_the_rule_and_defaults_match_the_issue() -> None:
    defaults = target_policy(Settings())
    assert defaults == DEFAULT_TARGET_POLICY
    assert (defaults.allow_private, defaults.allow_loopback) == (True, True)
    assert (defaults.allow_link_local, defaults.allow_metadata) == (False, False)

    env = {
        "CORS_SCANNER_TARGET_ALLOW_PRIVATE": "false",
        "CORS_SCANNER_TARGET_ALLOW_LOOPBACK": "no",
        "CORS_SCANNER_TARGET_ALLOW_LINK_LOCAL": "yes",
        "CORS_SCANNER_TARGET_ALLOW_METADATA": "1",
    }
    settings = Settings.from_env(env)
    rule = target_policy(settings)
    assert (rule.allow_private, rule.allow_loopback) == (False, False)
    assert (rule.allow_link_local, rule.allow_metadata) == (True, True)
    # The scan command and the service both carry it to the prober.
    assert scan_options(settings).limits.target_policy == rule
    flagged = apply_probe_flags(argparse.Namespace(timeout=3.0), settings)
    assert scan_options(flagged).limits.target_policy == rule
    assert scan_options(flagged).limits.total_timeout == 3.0

    with pytest.raises(ConfigError, match="CORS_SCANNER_TARGET_ALLOW_METADATA"):
        Settings.from_env({"CORS_SCANNER_TARGET_ALLOW_METADATA": "maybe"})
