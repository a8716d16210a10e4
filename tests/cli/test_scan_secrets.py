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


ECHOED = "k3y-echoed-back-by-the-target"
REQUESTS: web.AppKey[list[tuple[str, str | None]]] = web.AppKey("requests", list)


@pytest.fixture
async def echoing_server() -> AsyncIterator[TestServer]:
    """A target that echoes the API key back everywhere it can: a header value, a header
    that names it, the reason phrase, a cookie, the body, and a CORS header."""
    requests: list[tuple[str, str | None]] = []

    async def handler(request: web.Request) -> web.Response:
        key = request.headers.get("X-Api-Key")
        requests.append((request.method, key))
        origin = request.headers.get("Origin", "")
        shown = key or "none"
        # ?acao=key: the key as the allowed origin, which a browser's verdict then quotes.
        allowed = shown if request.query.get("acao") == "key" and key else origin
        return web.Response(
            reason=f"OK {shown}",
            text=f"your key is {shown}",
            headers={
                "Access-Control-Allow-Origin": allowed,
                "Access-Control-Allow-Headers": "X-Api-Key",
                "Access-Control-Expose-Headers": f"X-Echo, {shown}",
                "Vary": "Origin",
                "X-Echo": f"key={shown}; again {shown}",
                "Set-Cookie": f"session={shown}; Path=/",
            },
        )

    app = web.Application()
    app[REQUESTS] = requests
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.mark.parametrize("fmt", ["json", "table", "sarif", "junit", "csv"])
async def test_a_header_value_the_target_echoes_back_is_redacted_and_never_preflighted(
    echoing_server: TestServer, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / "report"
    url = str(echoing_server.make_url("/api"))
    code = await asyncio.to_thread(
        main,
        ["scan", url, "--header", f"X-Api-Key: {ECHOED}", "--format", fmt, "-o", str(out)],
    )
    assert code == 1
    text = out.read_text()
    assert ECHOED not in text
    assert "k3y-echoed" not in text
    seen = echoing_server.app[REQUESTS]
    # Actual requests carry the key; a preflight never does (a browser sends none).
    assert any(method != "OPTIONS" and key == ECHOED for method, key in seen)
    preflights = [key for method, key in seen if method == "OPTIONS"]
    assert preflights
    assert set(preflights) == {None}
    if fmt == "json":
        doc = json.loads(text)
        probes = doc["endpoints"][0]["probes"]
        echoed = [p for p in probes if p["kind"] != "preflight"]
        assert echoed
        for probe in echoed:
            headers = dict((n.lower(), v) for n, v in probe["response_headers"])
            assert headers["x-echo"] == "key=[redacted]; again [redacted]"


@pytest.mark.parametrize("fmt", ["json", "text"])
async def test_explain_redacts_a_header_value_the_target_echoes_back(
    echoing_server: TestServer, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    url = str(echoing_server.make_url("/api?acao=key"))
    origin = "https://app.acme.test"
    args = ["explain", "--url", url, "--origin", origin, "--header", f"X-Api-Key: {ECHOED}"]
    await asyncio.to_thread(main, [*args, "--format", fmt])
    out = capsys.readouterr()
    assert out.out.strip()
    assert ECHOED not in out.out + out.err
    # X-Api-Key is not safelisted: the browser preflights, without the key.
    seen = echoing_server.app[REQUESTS]
    assert ("OPTIONS", None) in seen
    assert (("GET", ECHOED)) in seen
