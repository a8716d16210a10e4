"""Alert hooks through the REST API: write-only secrets, SSRF checks, rotation, delivery log."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from scanner.alerts.dispatcher import Dispatcher, DispatcherConfig
from scanner.alerts.signing import WebhookSecret, verify_standard
from scanner.ssrf import AddressPolicy
from tests.api.client import Api


class Receiver:
    """Records every request; answers 200 to signatures it can verify with ``secrets``."""

    def __init__(self) -> None:
        self.secrets: list[WebhookSecret] = []
        self.requests: list[tuple[str, bytes, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        msg_id = request.headers.get("webhook-id", "")
        self.requests.append((msg_id, body, request.headers.get("webhook-signature", "")))
        ok = verify_standard(
            request.headers.get("webhook-signature", ""),
            self.secrets,
            msg_id,
            request.headers.get("webhook-timestamp", ""),
            body,
            now=int(time.time()),
        )
        return web.Response(status=200 if ok else 401)


async def _serve(receiver: Receiver) -> TestServer:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def _dispatch(api: Api) -> None:
    dispatcher = Dispatcher(
        api.database,
        DispatcherConfig(worker_id="api-test", addresses=AddressPolicy(allow_loopback=True)),
    )
    try:
        await dispatcher.run_once()
        await dispatcher.drain()
    finally:
        await dispatcher.stop()


async def test_ssrf_rules_guard_hook_urls(serve_api: Any) -> None:
    strict = await serve_api()
    for url in (
        "http://127.0.0.1:8080/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/hook",
        "http://metadata.google.internal/",
        "file:///etc/passwd",
    ):
        reply = await strict.post("/api/v1/hooks", {"name": "x", "kind": "webhook", "url": url})
        assert reply.status == 400, (url, reply.text)
        assert reply.problem["code"] in ("unsafe_url", "invalid_input", "invalid_url")
    assert (await strict.get("/api/v1/hooks")).body["items"] == []
    # A refusal names the setting that would allow it (or says none can).
    for url, words in (
        ("http://127.0.0.1:8080/hook", "set CORS_SCANNER_HOOK_ALLOW_LOOPBACK=true to allow it"),
        ("http://10.0.0.5/hook", "set CORS_SCANNER_HOOK_ALLOW_PRIVATE=true to allow it"),
        ("http://169.254.169.254/x", "never allowed here, whatever the settings"),
    ):
        reply = await strict.post("/api/v1/hooks", {"name": "x", "kind": "webhook", "url": url})
        assert words in reply.text, (url, reply.text)

    loopback = await serve_api(hook_allow_loopback=True)
    ok = await loopback.post(
        "/api/v1/hooks", {"name": "local", "kind": "webhook", "url": "http://127.0.0.1:9/h"}
    )
    assert ok.status == 201, ok.text
    metadata = await loopback.post(
        "/api/v1/hooks",
        {"name": "meta", "kind": "webhook", "url": "http://169.254.169.254/x"},
    )
    assert metadata.status == 400  # link-local / metadata: never, whatever the settings


async def test_secret_is_write_only_and_scopes_apply(serve_api: Any) -> None:
    api = await serve_api(hook_allow_loopback=True)
    body = {"name": "soc", "kind": "webhook", "url": "http://127.0.0.1:9/hook"}
    assert (await api.post("/api/v1/hooks", body, token="write")).status == 403
    created = await api.post("/api/v1/hooks", body)
    assert created.status == 201
    secret = created.body["secret"]
    assert secret.startswith("whsec_")
    shown = await api.get(f"/api/v1/hooks/{created.body['id']}", token="read")
    assert shown.body["secret_set"] is True
    assert "secret" not in shown.body
    assert secret not in shown.text
    listed = await api.get("/api/v1/hooks")
    assert secret not in listed.text
    again = await api.post("/api/v1/hooks", body)
    assert again.status == 409

    given = WebhookSecret.generate().serialize()
    mine = await api.post("/api/v1/hooks", {**body, "name": "mine", "secret": given})
    assert mine.status == 201
    assert "secret" not in mine.body  # we did not make it: nothing to show
    bad = await api.post("/api/v1/hooks", {**body, "name": "bad", "secret": "hunter2"})
    assert bad.status == 422
    pd = await api.post(
        "/api/v1/hooks", {"name": "pd", "kind": "pagerduty", "url": "http://127.0.0.1:9/pd"}
    )
    assert pd.status == 422
    assert "routing_key" in pd.fields()
    pd_ok = await api.post(
        "/api/v1/hooks",
        {
            "name": "pd",
            "kind": "pagerduty",
            "url": "http://127.0.0.1:9/pd",
            "routing_key": "R0123456789abcdef0123456789abcde",
            "min_severity": "high",
        },
    )
    assert pd_ok.status == 201
    assert "R0123456789abcdef" not in pd_ok.text

    patched = await api.patch(
        f"/api/v1/hooks/{created.body['id']}", {"enabled": False, "tags": ["pci"]}
    )
    assert patched.status == 200
    assert patched.body["enabled"] is False
    assert patched.body["tags"] == ["pci"]
    assert (await api.delete(f"/api/v1/hooks/{created.body['id']}")).status == 204
    assert (await api.get(f"/api/v1/hooks/{created.body['id']}")).status == 404


async def test_test_event_delivery_log_redeliver_and_rotation(serve_api: Any) -> None:
    api = await serve_api(hook_allow_loopback=True)
    receiver = Receiver()
    server = await _serve(receiver)
    try:
        url = str(server.make_url("/hook"))
        created = await api.post("/api/v1/hooks", {"name": "soc", "kind": "webhook", "url": url})
        hook_id = created.body["id"]
        receiver.secrets = [WebhookSecret.parse(created.body["secret"])]

        queued = await api.post(f"/api/v1/hooks/{hook_id}/test", token="write")
        assert queued.status == 202, queued.text
        assert queued.body["event_type"] == "hook.test"
        assert queued.body["status"] == "queued"
        delivery_id = queued.body["id"]
        busy = await api.post(f"/api/v1/deliveries/{delivery_id}/redeliver")
        assert busy.status == 409  # queued: it will be sent anyway

        await _dispatch(api)
        log = await api.get(f"/api/v1/hooks/{hook_id}/deliveries")
        [delivery] = log.body["items"]
        assert delivery["status"] == "delivered"
        assert delivery["attempt_log"][0]["status"] == 200
        assert delivery["attempt_log"][0]["outcome"] == "success"

        again = await api.post(f"/api/v1/deliveries/{delivery_id}/redeliver", token="write")
        assert again.status == 202
        await _dispatch(api)
        assert [r[0] for r in receiver.requests] == [delivery["msg_id"]] * 2  # same webhook-id

        # Rotation: the old secret keeps verifying during the grace period.
        rotated = await api.post(f"/api/v1/hooks/{hook_id}/rotate-secret")
        assert rotated.status == 200
        new_secret = rotated.body["secret"]
        assert new_secret != created.body["secret"]
        assert rotated.body["secret_rotated_at"] is not None
        assert rotated.body["previous_secret_valid_until"] is not None
        await api.post(f"/api/v1/hooks/{hook_id}/test")
        await _dispatch(api)  # receiver still has only the old secret
        _, _, signature = receiver.requests[-1]
        assert len(signature.split()) == 2  # signed with both secrets
        receiver.secrets = [WebhookSecret.parse(new_secret)]
        await api.post(f"/api/v1/hooks/{hook_id}/test")
        await _dispatch(api)  # and the new one verifies too
        statuses = [
            d["status"]
            for d in (await api.get(f"/api/v1/hooks/{hook_id}/deliveries")).body["items"]
        ]
        assert statuses == ["delivered", "delivered", "delivered"]
    finally:
        await server.close()


async def test_openapi_documents_the_hook_routes(api: Api) -> None:
    doc = (await api.get("/api/v1/openapi.json", token=None)).body
    for path in (
        "/api/v1/hooks",
        "/api/v1/hooks/{id}",
        "/api/v1/hooks/{id}/rotate-secret",
        "/api/v1/hooks/{id}/deliveries",
        "/api/v1/hooks/{id}/test",
        "/api/v1/deliveries/{id}/redeliver",
    ):
        assert path in doc["paths"], path


async def test_only_admins_see_a_hook_url_beyond_its_scheme_and_host(serve_api: Any) -> None:
    api: Api = await serve_api(hook_allow_loopback=True)
    secret_url = "http://127.0.0.1:9/hooks/T0K3N-in-path?token=s3cr3t&x=1"
    made = await api.post("/api/v1/hooks", {"name": "ci", "kind": "webhook", "url": secret_url})
    assert made.status == 201, made.text
    assert made.body["url"] == secret_url  # the admin who made it
    hook_id = made.body["id"]
    for who in ("read", "write"):
        listed = await api.get("/api/v1/hooks", token=who)
        one = await api.get(f"/api/v1/hooks/{hook_id}", token=who)
        assert [h["url"] for h in listed.body["items"]] == ["http://127.0.0.1:9"], who
        assert one.body["url"] == "http://127.0.0.1:9", who
        for reply in (listed, one):
            assert "T0K3N" not in reply.text
            assert "s3cr3t" not in reply.text
    assert (await api.get(f"/api/v1/hooks/{hook_id}", token="admin")).body["url"] == secret_url
