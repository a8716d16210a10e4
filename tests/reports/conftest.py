"""Fixtures for the report tests: a sample scan, a hostile endpoint, the SARIF schema, a server.

The assessments are built by ``sample_scans`` (see there); ``reflecting_server``
serves an origin-reflecting API on 127.0.0.1 for the CLI tests.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from sample_scans import SCHEMA_PATH, assessment, clean, hostile, reflector, wildcard

from scanner.core.checks import Assessment
from scanner.core.policy import Policy

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI tests probe 127.0.0.1: a developer's proxy must not sit in between.
    for name in list(os.environ):
        if name.lower() in _PROXY_VARIABLES:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def scan() -> list[Assessment]:
    """Four endpoints as one scan: reflector, wildcard, unreachable, clean (in that order)."""
    return [
        assessment("https://api.acme.com/v1/me", reflector),
        assessment("https://api.acme.com/v1/public", wildcard, Policy()),
        assessment("https://down.acme.com/v1/me", None),
        assessment("https://api.acme.com/v1/ok", clean),
    ]


@pytest.fixture(scope="session")
def hostile_assessment() -> Assessment:
    return assessment("https://api.acme.com/v1/evil", hostile)


@pytest.fixture(scope="session")
def sarif_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def _reflecting_app() -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        origin = request.headers.get("Origin", "")
        headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }
        if request.method == "OPTIONS":
            headers["Access-Control-Allow-Methods"] = "GET, POST, PUT"
            return web.Response(status=204, headers=headers)
        return web.json_response({"user": "alice"}, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@pytest.fixture
async def reflecting_server() -> AsyncIterator[str]:
    """``http://127.0.0.1:PORT``: a server that echoes any Origin with credentials."""
    runner = web.AppRunner(_reflecting_app(), handle_signals=False)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    site = web.SockSite(runner, sock)
    try:
        await site.start()
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        sock.close()
