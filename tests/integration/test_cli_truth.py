"""`scan` and `explain` as a user runs them: method case, same-origin, dead hosts, secrets.

``scanner.cli.main`` runs its own event loop, so it is called in a worker thread
while the loopback servers keep answering on the test's loop.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from scanner.cli import EXIT_FINDINGS, EXIT_OK, main
from tests.loopback import ServeApp, ServeRaw

APP = "https://app.acme.test"


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def no_cors_app(serve_app: ServeApp) -> str:
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.method)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return await serve_app(app)


async def test_explain_same_origin_is_allowed_without_cors(
    serve_app: ServeApp, capsys: pytest.CaptureFixture[str]
) -> None:
    base = await no_cors_app(serve_app)
    code = await cli("explain", "--url", f"{base}/api", "--origin", base, "--method", "PUT")
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert "same-origin" in out
    assert "Preflight: not sent" in out
    # From any other origin the same server blocks the page.
    code = await cli("explain", "--url", f"{base}/api", "--origin", APP)
    out = capsys.readouterr().out
    assert code == EXIT_FINDINGS
    assert "No 'Access-Control-Allow-Origin' header" in out


async def test_explain_reads_a_head_as_the_browser_does(
    serve_raw: ServeRaw, capsys: pytest.CaptureFixture[str]
) -> None:
    async def spaced(head: bytes, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(
            b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin : " + APP.encode() + b"\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        await w.drain()

    base = await serve_raw(spaced)
    code = await cli("explain", "--url", f"{base}/api", "--origin", APP, "--format", "json")
    doc = json.loads(capsys.readouterr().out)
    assert code == EXIT_OK
    assert doc["readable"] is True


async def test_scan_keeps_a_lowercase_method_as_the_front_end_sends_it(
    serve_app: ServeApp, capsys: pytest.CaptureFixture[str]
) -> None:
    async def handle(request: web.Request) -> web.Response:
        headers = {"Vary": "Origin"}
        if request.headers.get("Origin") == APP:
            headers["Access-Control-Allow-Origin"] = APP
        if request.method == "OPTIONS":
            headers["Access-Control-Allow-Methods"] = "GET, PATCH"  # not "patch"
            return web.Response(status=204, headers=headers)
        return web.json_response({}, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    base = await serve_app(app)
    argv = ["scan", f"{base}/api", "--allow-origin", APP, "--retries", "0", "--no-progress"]
    code = await cli(*argv, "--method", "patch", "--format", "json")
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    [endpoint] = doc["endpoints"]
    assert endpoint["method"].lower() == "patch"
    rules = {f["rule_id"]: f for f in endpoint["findings"]}
    assert "preflight_not_handled" in rules
    assert "Method patch is not allowed" in rules["preflight_not_handled"]["summary"]
    assert code == EXIT_FINDINGS
    # DELETE GET HEAD OPTIONS POST PUT are normalised in any case; PATCH passes.
    code = await cli(*argv, "--method", "PATCH", "--format", "json")
    doc = json.loads(capsys.readouterr().out)
    assert "preflight_not_handled" not in {f["rule_id"] for f in doc["endpoints"][0]["findings"]}


async def test_scan_says_in_one_line_which_probes_a_dead_host_did_not_get(
    serve_raw: ServeRaw, capsys: pytest.CaptureFixture[str]
) -> None:
    async def stalls(head: bytes, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()

    base = await serve_raw(stalls)
    argv = ["scan", f"{base}/api", "--allow-origin", APP, "--timeout", "0.5", "--no-progress"]
    code = await cli(*argv, "--format", "table")
    table = capsys.readouterr().out
    assert "skipped      not sent:" in table
    assert "host_unresponsive" in table
    code = await cli(*argv, "--format", "json")
    doc = json.loads(capsys.readouterr().out)
    [endpoint] = doc["endpoints"]
    assert endpoint["not_sent"].startswith("not sent: ")
    assert endpoint["not_sent"] in endpoint["unchecked"]
    kinds = {p["error"] for p in endpoint["probes"]}
    assert kinds == {"timeout", "host_unresponsive"}
    assert code != EXIT_OK
    for fmt in ("sarif", "junit"):
        await cli(*argv, "--format", fmt)
        assert "host_unresponsive" in capsys.readouterr().out


async def test_an_echoed_secret_stays_out_of_the_report(
    serve_app: ServeApp, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "Bearer s3cr3t-echoed-back"

    async def echo(request: web.Request) -> web.Response:
        headers = {"X-Debug-Auth": request.headers.get("Authorization", "none")}
        if request.headers.get("Origin") == APP:
            headers["Access-Control-Allow-Origin"] = APP
        return web.json_response({}, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    base = await serve_app(app)
    await cli(
        "scan",
        f"{base}/api",
        "--allow-origin",
        APP,
        "--header",
        f"Authorization: {secret}",
        "--format",
        "json",
        "--no-progress",
    )
    out = capsys.readouterr().out
    assert "s3cr3t" not in out
    doc = json.loads(out)
    probes = doc["endpoints"][0]["probes"]
    simple = next(p for p in probes if p["kind"] == "simple")
    assert ["X-Debug-Auth", "[redacted]"] in simple["response_headers"]
    assert ["Authorization", "[redacted]"] in simple["request_headers"]
    # The scanner's own protocol lines are never redacted.
    attacker = next(p for p in probes if p["purpose"] == "attacker")
    assert ["Access-Control-Request-Private-Network", "true"] in attacker["request_headers"]
    assert all(n != "Authorization" for n, _ in attacker["request_headers"])
