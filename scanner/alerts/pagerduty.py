"""The PagerDuty channel: Events API v2 ``trigger`` and ``resolve`` messages.

(``PagerDuty/developer-docs`` events-API-v2: Overview, Trigger Events.) Our
finding lifecycle maps onto PagerDuty alerts through ``dedup_key`` = the
finding's fingerprint:

- regressions (``finding.new``, ``finding.reopened``,
  ``finding.severity_raised`` with ``is_regression``) and
  ``finding.sla_breached`` -> ``trigger`` keyed by the fingerprint (repeated
  triggers with the same key add to the open alert instead of opening another);
- ``finding.resolved`` -> ``resolve`` with the same ``dedup_key`` and the same
  ``routing_key``; a later trigger opens a new alert, matching "reopened";
  ``finding.suppressed`` resolves too: a person decided nobody is to be paged;
- ``endpoint.unreachable`` -> ``trigger`` keyed by the endpoint
  (``cors-scanner:endpoint:<id>:unreachable``), ``endpoint.reachable`` ->
  ``resolve`` with that key;
- ``hook.test`` -> a ``resolve`` of a key no incident has: PagerDuty answers
  202 when the routing key is valid, and nobody is paged for a test;
- anything else (not a regression, a rule change, header drift alone,
  ``scan.*``) -> nothing (None): PagerDuty is for things a human must fix now.

Every trigger's key therefore has a resolution that sends the same key (a
test in tests/alerts/test_pagerduty.py walks every event type).

Severity: critical -> critical, high -> error, medium -> warning, low and
info -> info. Success is ``202 Accepted``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from scanner.alerts.envelope import (
    AlertEvent,
    EventType,
    bounded_json,
    iso_timestamp,
    truncate,
)
from scanner.alerts.sender import DEFAULT_USER_AGENT, Channel, PreparedRequest
from scanner.core.hooks import EVENTS_URL, check_routing_key
from scanner.core.severity import Severity

__all__ = [
    "EVENTS_URL",
    "MAX_DEDUP_KEY",
    "MAX_SUMMARY",
    "RESOLVE_TYPES",
    "PagerDutyTarget",
    "build_pagerduty_request",
    "dedup_key",
    "pagerduty_sends",
    "pagerduty_severity",
]

MAX_DEDUP_KEY = 255
MAX_SUMMARY = 1024
CLIENT = "cors-scanner"
# Short enough that custom_details never approach PagerDuty's 512 KB limit.
_DETAIL_CAPS = {"summary": 4000, "url": 2048, "text": 500, "json": 8192}

_SEVERITY = {
    Severity.CRITICAL: "critical",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "info",
    Severity.INFO: "info",
}
_ALWAYS_TRIGGER = frozenset({EventType.SLA_BREACHED, EventType.ENDPOINT_UNREACHABLE})
RESOLVE_TYPES = frozenset(
    {
        EventType.FINDING_RESOLVED,
        EventType.SUPPRESSED,
        EventType.ENDPOINT_REACHABLE,
        EventType.HOOK_TEST,
    }
)
_ENDPOINT_TYPES = frozenset({EventType.ENDPOINT_UNREACHABLE, EventType.ENDPOINT_REACHABLE})


@dataclass(frozen=True, slots=True)
class PagerDutyTarget:
    """One PagerDuty integration: its routing (integration) key and the Events API URL.

    ``routing_key`` is a secret (it lets anyone open incidents): never in
    ``repr``. ``url`` defaults to the US service; the EU one is
    ``https://events.eu.pagerduty.com/v2/enqueue``.
    """

    routing_key: str = field(repr=False)
    url: str = EVENTS_URL

    def __post_init__(self) -> None:
        check_routing_key(self.routing_key)


def pagerduty_severity(severity: Severity | None) -> str:
    """PagerDuty's severity for ours (``info`` when there is none)."""
    return _SEVERITY[severity] if severity is not None else "info"


def dedup_key(event: AlertEvent) -> str:
    """The alert's identity, at most 255 characters, shared by a trigger and its resolve.

    The finding fingerprint; for ``endpoint.*`` the endpoint. A longer key is
    hashed rather than cut (two long keys sharing a prefix must not merge).
    Other events (never triggers) use their event id.
    """
    if event.fingerprint:
        key = event.fingerprint
    elif event.type in _ENDPOINT_TYPES and event.endpoint is not None:
        key = f"{CLIENT}:endpoint:{event.endpoint.id}:unreachable"
    elif event.event_id is not None:
        key = f"{CLIENT}:event:{event.event_id}"
    else:
        key = f"{CLIENT}:{event.type.value}:{iso_timestamp(event.occurred_at)}"
    if len(key) > MAX_DEDUP_KEY:
        key = "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return key


def pagerduty_sends(event: AlertEvent) -> bool:
    """PagerDuty acts on ``event``: it resolves an incident, or is a regression that pages."""
    return event.type in RESOLVE_TYPES or event.is_regression or event.type in _ALWAYS_TRIGGER


def build_pagerduty_request(
    target: PagerDutyTarget, event: AlertEvent, *, user_agent: str = DEFAULT_USER_AGENT
) -> PreparedRequest | None:
    """The Events API v2 request for ``event``, or None when PagerDuty has no use for it."""
    if not pagerduty_sends(event):
        return None
    if event.type in RESOLVE_TYPES:
        message: dict[str, Any] = {
            "routing_key": target.routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key(event),
        }
    else:
        message = _trigger(target, event)
    body = json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    headers = (("Content-Type", "application/json"), ("User-Agent", user_agent))
    return PreparedRequest(Channel.PAGERDUTY, target.url, headers, body)


def _trigger(target: PagerDutyTarget, event: AlertEvent) -> dict[str, Any]:
    endpoint = event.endpoint
    payload: dict[str, Any] = {
        "summary": truncate(_summary_line(event), MAX_SUMMARY),
        "source": _source(event),
        "severity": pagerduty_severity(event.severity),
        "timestamp": iso_timestamp(event.occurred_at),
    }
    if endpoint is not None:
        payload["component"] = truncate(f"{endpoint.method} {endpoint.url}", _DETAIL_CAPS["text"])
        if endpoint.owner:
            payload["group"] = truncate(endpoint.owner, _DETAIL_CAPS["text"])
    if event.rule_id:
        payload["class"] = truncate(event.rule_id, _DETAIL_CAPS["text"])
    payload["custom_details"] = _details(event)
    message: dict[str, Any] = {
        "routing_key": target.routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(event),
        "payload": payload,
        "client": CLIENT,
    }
    links = [{"href": link.href, "text": f"{link.rel} in cors-scanner"} for link in event.links]
    if links:
        message["links"] = links
        message["client_url"] = links[0]["href"]
    return message


def _summary_line(event: AlertEvent) -> str:
    severity = f"[{event.severity.value}] " if event.severity is not None else ""
    where = ""
    if event.endpoint is not None:
        where = f" on {event.endpoint.method} {event.endpoint.url}"
    return f"{severity}{event.title}{where}"


def _source(event: AlertEvent) -> str:
    # "The unique location of the affected system": the endpoint's host.
    if event.endpoint is not None:
        host = urlsplit(event.endpoint.url).netloc
        if host:
            return truncate(host, _DETAIL_CAPS["text"])
    return CLIENT


def _details(event: AlertEvent) -> dict[str, Any]:
    details: dict[str, Any] = {"event_type": event.type.value}
    if event.fingerprint:
        details["fingerprint"] = event.fingerprint
    if event.severity is not None:
        details["severity"] = event.severity.value
    if event.rule_id:
        details["rule_id"] = truncate(event.rule_id, _DETAIL_CAPS["text"])
    if event.endpoint is not None:
        details["endpoint"] = {
            "id": event.endpoint.id,
            "method": truncate(event.endpoint.method, _DETAIL_CAPS["text"]),
            "url": truncate(event.endpoint.url, _DETAIL_CAPS["url"]),
            "owner": event.endpoint.owner and truncate(event.endpoint.owner, _DETAIL_CAPS["text"]),
            "tags": [truncate(tag, _DETAIL_CAPS["text"]) for tag in event.endpoint.tags[:50]],
        }
    for name in ("before", "after"):
        value = getattr(event, name)
        if value is not None:
            details[name] = bounded_json(value, _DETAIL_CAPS["json"])[0]
    if event.summary:
        details["evidence"] = truncate(event.summary, _DETAIL_CAPS["summary"])
    for name, value in (
        ("scan_id", event.scan_id),
        ("finding_id", event.finding_id),
        ("event_id", event.event_id),
    ):
        if value is not None:
            details[name] = value
    return details
