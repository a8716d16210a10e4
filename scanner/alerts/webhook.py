"""The generic webhook channel: a Standard Webhooks request, signed, optionally GitHub-signed too.

Headers on every attempt:

- ``webhook-id``: the delivery's message id, the *same on every retry* (the
  receiver's idempotency key); make it once with :func:`new_message_id` and
  store it with the delivery;
- ``webhook-timestamp``: integer Unix seconds of *this attempt* (receivers
  reject stale ones, so a retry is re-signed with a fresh timestamp);
- ``webhook-signature``: ``v1,...`` per secret (two during a rotation);
- ``X-Hub-Signature-256`` when the hook asks for it (signed with the current
  secret's text, see ``WebhookSecret.github_key``);
- ``Content-Type: application/json`` and our ``User-Agent``.
"""

from __future__ import annotations

import secrets as _random
from dataclasses import dataclass

from scanner.alerts.sender import DEFAULT_USER_AGENT, Channel, PreparedRequest
from scanner.alerts.signing import WebhookSecret, github_signature, signature_header
from scanner.errors import InputError

__all__ = ["MESSAGE_ID_PREFIX", "WebhookTarget", "build_webhook_request", "new_message_id"]

MESSAGE_ID_PREFIX = "msg_"


def new_message_id() -> str:
    """A fresh ``webhook-id``: ``msg_`` + 128 random bits, URL-safe base64 (never a '.')."""
    return MESSAGE_ID_PREFIX + _random.token_urlsafe(16)


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where and how to deliver generic webhooks for one hook.

    ``secrets`` sign every request, current first; during a rotation's grace
    period pass ``(new, old)`` and receivers holding either keep verifying.
    ``github_signature`` adds ``X-Hub-Signature-256`` (current secret only).
    ``url`` is assumed checked by ``scanner.ssrf.check_hook_url`` when
    the hook was saved; the session's guard checks it again on connect.
    """

    url: str
    secrets: tuple[WebhookSecret, ...]
    github_signature: bool = False

    def __post_init__(self) -> None:
        if not self.secrets:
            raise InputError("webhook: at least one signing secret is needed")


def build_webhook_request(
    target: WebhookTarget,
    body: bytes,
    *,
    message_id: str,
    timestamp: int,
    user_agent: str = DEFAULT_USER_AGENT,
) -> PreparedRequest:
    """The signed request for one attempt; ``timestamp`` is now, in Unix seconds.

    ``body`` is sent byte for byte (usually ``envelope.webhook_payload(event)``, stored
    with the delivery so that every retry sends the same bytes); the
    signatures cover exactly these bytes.
    """
    headers = [
        ("Content-Type", "application/json"),
        ("User-Agent", user_agent),
        ("webhook-id", message_id),
        ("webhook-timestamp", str(timestamp)),
        ("webhook-signature", signature_header(target.secrets, message_id, timestamp, body)),
    ]
    if target.github_signature:
        current = target.secrets[0]
        headers.append(("X-Hub-Signature-256", github_signature(current.github_key, body)))
    return PreparedRequest(Channel.WEBHOOK, target.url, tuple(headers), body)
