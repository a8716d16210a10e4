"""The outbox, alerting's side: which hooks hear an event, and the body each channel sends.

:func:`enqueue_events` routes events to the hooks that want them
(:func:`hook_wants`) and writes one outbox row per (event, hook), one per run
for Slack (a batch), through ``scanner.db.hooks.add_deliveries``. A row holds
the events themselves (:func:`scanner.alerts.envelope.event_document`), never
a rendered body: :func:`render_request` renders the webhook, Slack or
PagerDuty request at send time from those events and the hook's current
configuration (its URL, secrets, routing key). Rendering is deterministic, so
every attempt of a delivery sends the same body under the same ``webhook-id``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from scanner.alerts.envelope import (
    MONITORING_TYPES,
    AlertEvent,
    EventType,
    event_document,
    event_from_document,
    webhook_payload,
)
from scanner.alerts.pagerduty import (
    RESOLVE_TYPES,
    PagerDutyTarget,
    build_pagerduty_request,
    pagerduty_sends,
)
from scanner.alerts.sender import DEFAULT_USER_AGENT, Channel, PreparedRequest
from scanner.alerts.signing import WebhookSecret
from scanner.alerts.slack import build_slack_request
from scanner.alerts.webhook import WebhookTarget, build_webhook_request, new_message_id
from scanner.core.diff import LEGIT_RULE
from scanner.core.lifecycle import REGRESSION_KINDS
from scanner.db.hooks import (
    ClaimedDelivery,
    HookRecord,
    HookSecrets,
    NewDelivery,
    add_deliveries,
    list_hooks,
)
from scanner.errors import InputError

__all__ = [
    "DEFAULT_EVENT_TYPES",
    "OutgoingEvent",
    "enqueue_events",
    "hook_wants",
    "outbox_message",
    "read_message",
    "render_request",
    "signing_secrets",
]

# What a hook hears when it names no event kinds: every regression, the good
# news that closes them, losing and regaining sight of an endpoint, a run that
# measured nothing, and tests. Not header drift alone, nor the rest of the
# log (not_verified, rule_change...): a hook asks for those by name.
DEFAULT_EVENT_TYPES = frozenset(
    {
        *(EventType(k.value) for k in REGRESSION_KINDS),
        EventType.FINDING_RESOLVED,
        EventType.ENDPOINT_UNREACHABLE,
        EventType.ENDPOINT_REACHABLE,
        EventType.SCAN_FAILED,
    }
)
_FINDING_APPEARS = frozenset({EventType.FINDING_NEW, EventType.FINDING_REOPENED})
_SCAN_TYPES = frozenset({EventType.SCAN_FAILED, EventType.SCAN_COMPLETED})


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """An alert to route, with the stored event's id (None for service events)."""

    alert: AlertEvent
    event_id: int | None


def hook_wants(hook: HookRecord, event: AlertEvent) -> bool:
    """``hook``'s filters let ``event`` through (hook tests always pass).

    ``min_severity`` filters what carries a severity (findings, and drift
    riding in a finding's event) and holds back informational events
    without one (header drift alone); monitoring events (``endpoint.*``,
    ``scan.*``) pass it. A PagerDuty hook gets every resolution of the
    endpoints it covers, whatever its kinds and severity say: its triggers
    must be resolvable even after a finding's severity changed.
    """
    if event.type is EventType.HOOK_TEST:
        return True
    closes = hook.kind is Channel.PAGERDUTY and event.type in RESOLVE_TYPES
    if not closes and not _wants_type(hook, event):
        return False
    if hook.min_severity is not None and not closes:
        if event.severity is None:
            if event.type not in MONITORING_TYPES:
                return False
        elif event.severity < hook.min_severity:
            return False
    if event.type in _SCAN_TYPES:
        return True  # a run's failure concerns every team it scanned
    endpoint = event.endpoint
    if hook.tags and (endpoint is None or not set(hook.tags) & set(endpoint.tags)):
        return False
    return not (hook.owners and (endpoint is None or endpoint.owner not in hook.owners))


def _wants_type(hook: HookRecord, event: AlertEvent) -> bool:
    kinds = set(hook.event_kinds) or {t.value for t in DEFAULT_EVENT_TYPES}
    if event.type.value in kinds:
        return True
    # The retired regression.legit_origin_blocked: its subscribers still hear it.
    return (
        EventType.LEGIT_ORIGIN_BLOCKED.value in kinds
        and event.type in _FINDING_APPEARS
        and event.rule_id == LEGIT_RULE
    )


def outbox_message(events: Sequence[AlertEvent], *, heading: str) -> str:
    """What an outbox row stores: the events' documents, and the heading a Slack batch opens with."""
    doc = {"heading": heading, "events": [event_document(e) for e in events]}
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":"))


def read_message(text: str) -> tuple[str, list[AlertEvent]]:
    """What :func:`outbox_message` stored: the heading and the events; InputError otherwise."""
    try:
        doc = json.loads(text)
        heading, docs = doc["heading"], doc["events"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"outbox: not an outbox message ({exc})") from None
    events = [event_from_document(d) for d in docs]
    if not events:
        raise InputError("outbox: a message without events")
    return heading, events


async def enqueue_events(
    session: AsyncSession,
    events: Sequence[OutgoingEvent],
    *,
    now: datetime,
    run_id: int | None = None,
    heading: str = "cors-scanner",
    hooks: Iterable[int] | None = None,
) -> list[int]:
    """Write the deliveries of ``events`` for every enabled hook that wants them; their ids.

    Webhooks and PagerDuty get one delivery per event (PagerDuty only those
    it acts on); Slack one message for all the events it wants (a run's
    batch). ``hooks`` limits the hooks considered (a hook test). Runs in the
    caller's transaction.
    """
    if not events:
        return []
    chosen = None if hooks is None else set(hooks)
    new: list[NewDelivery] = []
    for hook in await list_hooks(session, enabled_only=True):
        if chosen is not None and hook.id not in chosen:
            continue
        wanted = [e for e in events if hook_wants(hook, e.alert)]
        if not wanted:
            continue
        if hook.kind is Channel.SLACK:
            single = len(wanted) == 1
            new.append(
                NewDelivery(
                    hook_id=hook.id,
                    event_id=wanted[0].event_id if single else None,
                    event_type=wanted[0].alert.type.value if single else "batch",
                    msg_id=new_message_id(),
                    events=outbox_message([e.alert for e in wanted], heading=heading),
                )
            )
            continue
        for item in wanted:
            if hook.kind is Channel.PAGERDUTY and not pagerduty_sends(item.alert):
                continue
            new.append(
                NewDelivery(
                    hook_id=hook.id,
                    event_id=item.event_id,
                    event_type=item.alert.type.value,
                    msg_id=new_message_id(),
                    events=outbox_message([item.alert], heading=heading),
                )
            )
    return await add_deliveries(session, new, run_id=run_id, now=now)


def signing_secrets(secrets: HookSecrets, now: datetime) -> tuple[WebhookSecret, ...]:
    """Current secret first, then the previous one while its grace period lasts."""
    out: list[WebhookSecret] = []
    if secrets.secret:
        out.append(WebhookSecret.parse(secrets.secret))
    if (
        secrets.previous_secret
        and secrets.previous_secret_until is not None
        and now < secrets.previous_secret_until
    ):
        out.append(WebhookSecret.parse(secrets.previous_secret))
    return tuple(out)


def render_request(
    hook: HookRecord, secrets: HookSecrets, claimed: ClaimedDelivery, now: datetime
) -> PreparedRequest:
    """The request for one attempt of ``claimed``, rendered now from its events.

    Signed with this attempt's timestamp. A row queued before events were
    stored (migration ``0011_outbox_events``) holds its rendered body: sent as is.
    InputError/ValueError when the hook's configuration cannot make a request.
    """
    if claimed.events is None:
        return _legacy_request(hook, secrets, claimed, now)
    heading, events = read_message(claimed.events)
    if hook.kind is Channel.WEBHOOK:
        return _signed(hook, secrets, claimed, webhook_payload(events[0]), now)
    if hook.kind is Channel.SLACK:
        return build_slack_request(hook.url, events, heading=heading)
    target = PagerDutyTarget(secrets.routing_key or "", hook.url)
    request = build_pagerduty_request(target, events[0])
    if request is None:
        raise InputError(f"PagerDuty has no use for a {events[0].type} event")
    return request


def _signed(
    hook: HookRecord, secrets: HookSecrets, claimed: ClaimedDelivery, body: bytes, now: datetime
) -> PreparedRequest:
    target = WebhookTarget(hook.url, signing_secrets(secrets, now), hook.github_signature)
    return build_webhook_request(
        target, body, message_id=claimed.msg_id, timestamp=int(now.timestamp())
    )


def _legacy_request(
    hook: HookRecord, secrets: HookSecrets, claimed: ClaimedDelivery, now: datetime
) -> PreparedRequest:
    # The body rendered at enqueue time by releases before 0011 (PagerDuty's without its key).
    body = (claimed.body or "").encode("utf-8")
    if hook.kind is Channel.WEBHOOK:
        return _signed(hook, secrets, claimed, body, now)
    headers = (("Content-Type", "application/json"), ("User-Agent", DEFAULT_USER_AGENT))
    if hook.kind is Channel.SLACK:
        return PreparedRequest(Channel.SLACK, hook.url, headers, body)
    message = {"routing_key": secrets.routing_key or "", **json.loads(body)}
    wire = json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return PreparedRequest(Channel.PAGERDUTY, hook.url, headers, wire)
