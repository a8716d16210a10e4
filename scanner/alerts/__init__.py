"""Alert delivery: from an ``AlertEvent`` to a receiver's answer, safely.

The pieces, in the order a delivery uses them:

- ``envelope``: the channel-neutral :class:`AlertEvent` and its Standard
  Webhooks payload (thin, under 20 kB);
- ``webhook`` / ``slack`` / ``pagerduty``: build the :class:`PreparedRequest`
  for one channel (signed webhook, one Slack message per scan, Events API v2);
- ``signing``: ``whsec_`` secrets, ``v1`` signatures with rotation, GitHub's
  ``X-Hub-Signature-256``, and verification for receivers;
- ``ssrf``: refuse internal addresses, when a hook is saved and again on
  every connection (after DNS resolution, so rebinding cannot bypass it);
- ``sender``: one attempt through the guarded session -> :class:`AttemptResult`;
- ``retry``: what the result means (success / retry / fail / disable) and when
  to try again (full-jitter backoff, ``Retry-After``, give up after 3 days).

The outbox and the dispatcher that claims deliveries live elsewhere; nothing
here touches the database.

Typical use (inside the dispatcher)::

    async with build_hook_session(AddressPolicy()) as session:
        request = build_webhook_request(target, body, message_id=mid, timestamp=now_s)
        result = await deliver(session, request, timeout=15)
        decision = decide(result.classification, attempt=n, first_attempted_at=t0,
                          now=now, retry_after=result.retry_after, rng=rng)
"""

from __future__ import annotations

from scanner.alerts.envelope import AlertEvent, EndpointRef, EventType, Link, api_links
from scanner.alerts.pagerduty import PagerDutyTarget, build_pagerduty_request
from scanner.alerts.retry import (
    Action,
    Classification,
    Decision,
    DeliveryError,
    Outcome,
    RetryPolicy,
    decide,
)
from scanner.alerts.sender import (
    AttemptResult,
    Channel,
    PreparedRequest,
    build_hook_session,
    deliver,
)
from scanner.alerts.signing import WebhookSecret, verify_github, verify_standard
from scanner.alerts.slack import build_slack_request
from scanner.alerts.webhook import WebhookTarget, build_webhook_request, new_message_id
from scanner.ssrf import AddressPolicy, check_hook_url, check_url, guarded_connector

__all__ = [
    "Action",
    "AddressPolicy",
    "AlertEvent",
    "AttemptResult",
    "Channel",
    "Classification",
    "Decision",
    "DeliveryError",
    "EndpointRef",
    "EventType",
    "Link",
    "Outcome",
    "PagerDutyTarget",
    "PreparedRequest",
    "RetryPolicy",
    "WebhookSecret",
    "WebhookTarget",
    "api_links",
    "build_hook_session",
    "build_pagerduty_request",
    "build_slack_request",
    "build_webhook_request",
    "check_hook_url",
    "check_url",
    "decide",
    "deliver",
    "guarded_connector",
    "new_message_id",
    "verify_github",
    "verify_standard",
]
