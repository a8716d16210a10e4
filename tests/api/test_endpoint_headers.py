"""Request headers stored with an endpoint: the front end's own headers (an API key,
``Content-Type``), kept secret everywhere, asked for in the legitimate preflight and
sent only on actual requests (issue 11: "given with --header, or stored with the endpoint").

A real run through the API and the embedded worker, against a loopback target that
records every request it gets and echoes the API key back.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from scanner.cli import EXIT_OK, main
from scanner.db import inventory
from tests.api.client import Api
from tests.loopback import ServeApp

ENDPOINTS = "/api/v1/endpoints"
SCANS = "/api/v1/scans"
SECRET = "s3cret-api-key-0042"
APP = "https://app.example.com"


@dataclass
class Recorder:
    """What the target was sent: (method, headers) of every request."""

    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            self.seen.append((request.method, {k.lower(): v for k, v in request.headers.items()}))
            origin = request.headers.get("Origin", "")
            cors = {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Credentials": "true",
            }
            if request.method == "OPTIONS":
                # A literal "*" is no wildcard for a credentialed request: a browser then
                # allows no header but the safelisted ones, so the front end's X-Api-Key fails.
                return web.Response(
                    status=204,
                    headers={
                        **cors,
                        "Access-Control-Allow-Methods": "GET",
                        "Access-Control-Allow-Headers": "*",
                    },
                )
            echoed = request.headers.get("X-Api-Key", "")
            return web.json_response({"ok": True}, headers={**cors, "X-Echo": f"key={echoed}"})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app


@pytest.fixture
async def recorder(serve_app: ServeApp) -> tuple[Recorder, str]:
    rec = Recorder()
    return rec, await serve_app(rec.app())


async def _endpoint(api: Api, url: str, headers: dict[str, str]) -> dict[str, Any]:
    reply = await api.post(
        ENDPOINTS,
        {"url": url, "tags": ["front"], "request_headers": headers},
        token="write",
    )
    assert reply.status == 201, reply.text
    policy = await api.post(
        "/api/v1/policies",
        {
            "scope": "endpoint",
            "endpoint_id": reply.body["id"],
            "allowed_origins": [APP],
            "allow_credentials": True,
            "allowed_methods": ["GET"],
        },
        token="write",
    )
    assert policy.status == 201, policy.text
    return dict(reply.body)


async def _run(api: Api) -> dict[str, Any]:
    started = await api.post(SCANS, {"tag": "front"}, token="write")
    assert started.status == 202, started.text
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        reply = await api.get(f"{SCANS}/{started.body['id']}")
        if reply.body["status"] in ("completed", "failed", "cancelled"):
            return dict(reply.body)
        assert loop.time() < deadline, reply.body
        await asyncio.sleep(0.05)


async def test_stored_headers_are_asked_for_sent_on_actual_requests_only_and_never_shown(
    api: Api, recorder: tuple[Recorder, str]
) -> None:
    rec, base = recorder
    created = await _endpoint(
        api, f"{base}/v1/me", {"X-Api-Key": SECRET, "Content-Type": "application/json"}
    )
    assert created["request_headers"] == {"X-Api-Key": "[redacted]", "Content-Type": "[redacted]"}

    scan = await _run(api)
    assert scan["status"] == "completed", scan

    legit_preflights = [
        h
        for m, h in rec.seen
        if m == "OPTIONS" and h.get("origin") == APP and "access-control-request-headers" in h
    ]
    assert legit_preflights, rec.seen
    asked = {n.strip() for n in legit_preflights[0]["access-control-request-headers"].split(",")}
    assert {"x-api-key", "content-type"} <= asked
    # A browser never sends the front end's headers, credentials included, on a preflight.
    assert all("x-api-key" not in h for m, h in rec.seen if m == "OPTIONS")
    actual = [h for m, h in rec.seen if m == "GET"]
    assert actual
    assert all(h.get("x-api-key") == SECRET for h in actual if h.get("origin") == APP)

    findings = await api.walk(f"{SCANS}/{scan['id']}/findings", token="read")
    # "*" with credentials allows no X-Api-Key: the organisation's own front end is broken.
    assert "preflight_not_handled" in {f["rule_id"] for f in findings}, findings
    probes = await api.walk(f"{SCANS}/{scan['id']}/probes", token="read")
    report = await api.get(f"{SCANS}/{scan['id']}/report", token="read")
    endpoint = await api.get(f"{ENDPOINTS}/{created['id']}", token="read")
    audit = await api.get("/api/v1/audit", token="admin")
    for text in (json.dumps(findings), json.dumps(probes), report.text, endpoint.text, audit.text):
        assert SECRET not in text
    assert "key=[redacted]" in json.dumps(probes)  # the target's echo, redacted


async def test_redacted_given_back_keeps_the_stored_value(
    api: Api, recorder: tuple[Recorder, str]
) -> None:
    rec, base = recorder
    created = await _endpoint(api, f"{base}/v1/keep", {"X-Api-Key": SECRET})
    shown = (await api.get(f"{ENDPOINTS}/{created['id']}", token="read")).body
    # A client that PATCHes back what it read must not overwrite the key with "[redacted]".
    patched = await api.patch(
        f"{ENDPOINTS}/{created['id']}",
        {"request_headers": {**shown["request_headers"], "Accept": "application/json"}},
        token="write",
    )
    assert patched.status == 200, patched.text
    assert patched.body["request_headers"] == {"X-Api-Key": "[redacted]", "Accept": "[redacted]"}
    await _run(api)
    sent = [h for m, h in rec.seen if m == "GET" and h.get("origin") == APP]
    assert sent
    assert sent[0]["x-api-key"] == SECRET
    assert sent[0]["accept"] == "application/json"

    unknown = await api.patch(
        f"{ENDPOINTS}/{created['id']}",
        {"request_headers": {"Authorization": "[redacted]"}},
        token="write",
    )
    assert unknown.status == 422, unknown.text
    assert "request_headers" in unknown.fields()
    assert "give the real value" in unknown.text

    cleared = await api.patch(
        f"{ENDPOINTS}/{created['id']}", {"request_headers": None}, token="write"
    )
    assert cleared.status == 200
    assert cleared.body["request_headers"] == {}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Origin": "https://x"}, "sets this header itself"),
        ({"Bad Name": "1"}, "not a valid header name"),
        ({"X-A": "line\r\nInjected: 1"}, "CR, LF or NUL"),
        ({"X-A": "1", "x-a": "2"}, "given twice"),
        ({"X-A": "[redacted]"}, "give the real value"),
    ],
)
async def test_bad_request_headers_are_refused_by_field(
    api: Api, headers: dict[str, str], message: str
) -> None:
    reply = await api.post(
        ENDPOINTS, {"url": "https://api.example.com/x", "request_headers": headers}, token="write"
    )
    assert reply.status == 422, reply.text
    assert "request_headers" in reply.fields()
    assert message in reply.text


CONTENT_TYPES = {"csv": "text/csv", "json": "application/json", "yaml": "application/yaml"}


@pytest.mark.parametrize("fmt", ["csv", "json", "yaml"])
async def test_export_redacts_and_reimports_unchanged(
    api: Api, fmt: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await api.post(
        ENDPOINTS,
        {"url": "https://api.example.com/a", "request_headers": {"X-Api-Key": SECRET}},
        token="write",
    )
    assert created.status == 201, created.text
    monkeypatch.setenv("CORS_SCANNER_DATABASE_URL", api.database.url)
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["endpoints", "export", "--format", fmt]) == EXIT_OK
    exported = capsys.readouterr().out
    assert SECRET not in exported
    assert "[redacted]" in exported
    imported = await api.call(
        "POST",
        f"{ENDPOINTS}/import",
        token="write",
        data=exported.encode(),
        headers={"Content-Type": CONTENT_TYPES[fmt]},
    )
    assert imported.status == 200, imported.text
    assert imported.body["summary"] == {"created": 0, "changed": 0, "unchanged": 1, "errors": 0}
    assert await asyncio.to_thread(main, ["endpoints", "show", str(created.body["id"])]) == EXIT_OK
    shown = capsys.readouterr().out
    assert "X-Api-Key" in shown
    assert SECRET not in shown
    # And the stored key is still the real one, not the "[redacted]" the export showed.
    async with api.database.session() as session:
        stored = await inventory.get_endpoint(session, created.body["id"])
    assert stored.request_headers == (("X-Api-Key", SECRET),)


async def test_cli_add_with_header_and_csv_import_of_real_values(
    api: Api, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORS_SCANNER_DATABASE_URL", api.database.url)
    code = await asyncio.to_thread(
        main,
        [
            "endpoints",
            "add",
            "https://api.example.com/cli",
            "--header",
            f"Authorization: Bearer {SECRET}",
            "--format",
            "json",
        ],
    )
    assert code == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["request_headers"] == {"Authorization": "[redacted]"}
    csv_body = (
        "url,request_headers\n"
        'https://api.example.com/csv,"{""X-Api-Key"": ""k-123456""}"\n'
        "https://api.example.com/bad,not json\n"
    )
    imported = await api.call(
        "POST",
        f"{ENDPOINTS}/import",
        token="write",
        data=csv_body,
        headers={"Content-Type": "text/csv"},
    )
    assert imported.status == 200, imported.text
    assert imported.body["summary"]["created"] == 1
    [error] = imported.body["errors"]
    assert error["field"] == "request_headers"
    assert "JSON object" in error["message"]
