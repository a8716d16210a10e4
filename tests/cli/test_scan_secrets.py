"""A secret given with --header is sent to the target but never written to a report."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from scanner.cli import main

SECRET = "Bearer s3cr3t-value-never-in-reports"


SEEN: web.AppKey[list[str]] = web.AppKey("seen", list)


@pytest.fixture
async def recording_server() -> AsyncIterator[TestServer]:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        origin = request.headers.get("Origin", "")
        return web.Response(headers={"Access-Control-Allow-Origin": origin, "Vary": "Origin"})

    app = web.Application()
    app[SEEN] = seen
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.mark.parametrize("fmt", ["json", "table", "sarif", "junit", "csv"])
async def test_header_secret_is_sent_but_redacted(
    recording_server: TestServer, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / "report"
    url = str(recording_server.make_url("/api"))
    # main() runs its own event loop: call it in a thread.
    code = await asyncio.to_thread(
        main,
        ["scan", url, "--header", f"Authorization: {SECRET}", "--format", fmt, "-o", str(out)],
    )
    assert code == 1  # reflects any origin: high
    assert SECRET in recording_server.app[SEEN]
    text = out.read_text()
    assert "s3cr3t" not in text
    if fmt == "json":
        doc = json.loads(text)
        probe = doc["endpoints"][0]["probes"][0]
        assert ["Authorization", "[redacted]"] in probe["request_headers"]
