"""Generic webhooks end to end: a real receiver on 127.0.0.1 verifies what we send."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from scanner.alerts.envelope import AlertEvent, webhook_payload
from scanner.alerts.retry import Outcome
from scanner.alerts.sender import DEFAULT_USER_AGENT, deliver
from scanner.alerts.signing import WebhookSecret, verify_github, verify_standard
from scanner.alerts.webhook import WebhookTarget, build_webhook_request, new_message_id

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    MakeEvent = Callable[..., AlertEvent]
    ServeApp = Callable[..., Awaitable[str]]


@dataclass
class Receiver:
    """A receiver holding some secrets; it answers 204 when a signature verifies, else 401."""

    secrets: list[WebhookSecret]
    github_secret_text: str | None = None  # what a GitHub-style receiver is configured with
    seen: list[dict[str, object]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        msg_id = request.headers.get("webhook-id", "")
        timestamp = request.headers.get("webhook-timestamp", "")
        signature = request.headers.get("webhook-signature", "")
        ours = verify_standard(
            signature, self.secrets, msg_id, timestamp, body, now=int(time.time())
        )
        # The same check written from the spec, without our code: HMAC-SHA256
        # over "{id}.{timestamp}.{body}", base64, any "v1," entry may match.
        independent = False
        if timestamp.isdigit() and abs(time.time() - int(timestamp)) <= 300:
            for secret in self.secrets:
                mac = hmac.new(secret.key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
                expected = "v1," + base64.b64encode(mac.digest()).decode()
                independent |= any(
                    hmac.compare_digest(expected, entry) for entry in signature.split(" ")
                )
        github = None
        if self.github_secret_text is not None:
            github_header = request.headers.get("X-Hub-Signature-256", "")
            key = self.github_secret_text.encode()
            github = verify_github(github_header, key, body) and hmac.compare_digest(
                github_header, "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
            )
        self.seen.append(
            {
                "id": msg_id,
                "timestamp": timestamp,
                "ours": ours,
                "independent": independent,
                "github": github,
                "content_type": request.headers.get("Content-Type"),
                "user_agent": request.headers.get("User-Agent"),
                "payload": json.loads(body),
            }
        )
        valid = ours and independent and github is not False
        return web.Response(status=204 if valid else 401)


async def test_signed_webhook_verifies_at_a_real_receiver(
    serve_app: ServeApp,
    hook_session: aiohttp.ClientSession,
    make_event: MakeEvent,
) -> None:
    secret = WebhookSecret.generate()
    receiver = Receiver([secret], github_secret_text=secret.serialize())
    base = await serve_app(receiver.app())
    target = WebhookTarget(f"{base}/hook", (secret,), github_signature=True)
    event = make_event()
    request = build_webhook_request(
        target,
        webhook_payload(event),
        message_id=new_message_id(),
        timestamp=int(time.time()),
    )

    result = await deliver(hook_session, request, timeout=5)

    assert result.status == 204
    assert result.classification.outcome is Outcome.SUCCESS
    [seen] = receiver.seen
    assert seen["ours"] is True
    assert seen["independent"] is True
    assert seen["github"] is True
    assert seen["content_type"] == "application/json"
    assert seen["user_agent"] == DEFAULT_USER_AGENT
    payload = seen["payload"]
    assert isinstance(payload, dict)
    assert payload["type"] == "finding.new"
    assert payload["data"]["fingerprint"] == event.fingerprint


async def test_a_receiver_with_another_secret_refuses(
    serve_app: ServeApp, hook_session: aiohttp.ClientSession
) -> None:
    receiver = Receiver([WebhookSecret.generate()])
    base = await serve_app(receiver.app())
    target = WebhookTarget(f"{base}/hook", (WebhookSecret.generate(),))
    request = build_webhook_request(
        target, b"{}", message_id=new_message_id(), timestamp=int(time.time())
    )

    result = await deliver(hook_session, request, timeout=5)

    assert result.status == 401
    assert result.classification.outcome is Outcome.FAIL
    assert receiver.seen[0]["ours"] is False
    assert receiver.seen[0]["independent"] is False


async def test_rotation_both_old_and_new_receivers_accept_during_grace(
    serve_app: ServeApp, hook_session: aiohttp.ClientSession
) -> None:
    old, new = WebhookSecret.generate(), WebhookSecret.generate()
    not_yet_rotated = Receiver([old])
    rotated = Receiver([new])
    body = b'{"type":"hook.test","timestamp":"2026-01-31T02:00:00.000Z","data":{}}'
    for receiver in (not_yet_rotated, rotated):
        base = await serve_app(receiver.app())
        target = WebhookTarget(f"{base}/hook", (new, old))
        request = build_webhook_request(
            target, body, message_id=new_message_id(), timestamp=int(time.time())
        )
        result = await deliver(hook_session, request, timeout=5)
        assert result.status == 204
    # After the grace period only the new secret signs: the old receiver refuses.
    base = await serve_app(not_yet_rotated.app())
    after_grace = WebhookTarget(f"{base}/hook", (new,))
    request = build_webhook_request(
        after_grace, body, message_id=new_message_id(), timestamp=int(time.time())
    )
    assert (await deliver(hook_session, request, timeout=5)).status == 401


async def test_stale_timestamp_is_rejected_and_a_retry_is_re_signed_with_the_same_id(
    serve_app: ServeApp, hook_session: aiohttp.ClientSession
) -> None:
    secret = WebhookSecret.generate()
    receiver = Receiver([secret])
    base = await serve_app(receiver.app())
    target = WebhookTarget(f"{base}/hook", (secret,))
    message_id = new_message_id()
    body = b'{"type":"finding.resolved"}'

    replayed = build_webhook_request(
        target, body, message_id=message_id, timestamp=int(time.time()) - 600
    )
    first = await deliver(hook_session, replayed, timeout=5)
    retry = build_webhook_request(target, body, message_id=message_id, timestamp=int(time.time()))
    second = await deliver(hook_session, retry, timeout=5)

    assert first.status == 401
    assert second.status == 204
    ids = {seen["id"] for seen in receiver.seen}
    timestamps = {seen["timestamp"] for seen in receiver.seen}
    assert ids == {message_id}  # the receiver's idempotency key survives retries
    assert len(timestamps) == 2  # each attempt carries its own time


def test_request_headers_and_redaction_for_the_log() -> None:
    secret = WebhookSecret.generate()
    target = WebhookTarget("https://hooks.example.com/in", (secret,), github_signature=True)
    request = build_webhook_request(
        target, b"{}", message_id="msg_fixed", timestamp=1700000000, user_agent="ua/1"
    )
    assert request.method == "POST"
    assert request.url == "https://hooks.example.com/in"
    assert request.body == b"{}"
    assert request.header("webhook-id") == "msg_fixed"
    assert request.header("WEBHOOK-TIMESTAMP") == "1700000000"
    assert request.header("user-agent") == "ua/1"
    signature = request.header("webhook-signature")
    assert signature is not None
    assert verify_standard(signature, [secret], "msg_fixed", 1700000000, b"{}", now=1700000000)
    logged = dict(request.loggable_headers())
    assert logged["webhook-signature"] == "[redacted]"
    assert logged["X-Hub-Signature-256"] == "[redacted]"
    assert logged["webhook-id"] == "msg_fixed"
    assert secret.serialize() not in repr(request)


def test_message_ids_are_unique_and_dot_free() -> None:
    ids = {new_message_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(i.startswith("msg_") and "." not in i and " " not in i for i in ids)
