"""What an alert says: the ``AlertEvent`` value and its Standard Webhooks payload.

The dispatcher builds one :class:`AlertEvent` per event of the pure diff
(``AlertEvent.from_core(scanner.core.lifecycle.Event, ...)``) or of the
service (scan completed, hook test), and hands it to every channel: the
generic webhook (:func:`webhook_payload`), Slack and PagerDuty. Payloads are
*thin* (Standard Webhooks' advice for sensitive data): ids, the endpoint,
rule, severity, fingerprint, a short evidence summary, the diff's bounded
before/after evidence, and API links. A payload stays under
:data:`MAX_PAYLOAD_BYTES` whatever the target sent us: the summary
(possibly hostile and huge) is cut first, with :data:`TRUNCATION_MARKER`;
before/after evidence too big to carry becomes ``{"truncated": true}``;
the links point to the rest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from scanner.core.catalogue import CATALOGUE
from scanner.core.hooks import MONITORING_TYPES, EventType
from scanner.core.lifecycle import Event, EventKind, JSONObject
from scanner.core.severity import Severity
from scanner.errors import InputError

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MONITORING_TYPES",
    "TRUNCATION_MARKER",
    "AlertEvent",
    "EndpointRef",
    "EventType",
    "Link",
    "api_links",
    "bounded_json",
    "event_document",
    "event_from_document",
    "iso_timestamp",
    "truncate",
    "webhook_payload",
]

# Standard Webhooks: "usually smaller than 20kb". We stay well below.
MAX_PAYLOAD_BYTES = 16 * 1024
TRUNCATION_MARKER = "… [truncated]"
API_PREFIX = "/api/v1"
MAX_BASE_URL = 512
# Per-field caps (characters) before the summary gets what is left of the budget.
_CAPS = {"title": 300, "url": 2048, "owner": 200, "tag": 100, "tags": 50, "json": 4096}
# The summary is worth keeping even when other fields are pathological: shrink
# them (by these divisors) until this much room is left for it.
_MIN_SUMMARY_BYTES = 512
_SHRINK = (1, 4, 16, 64)


@dataclass(frozen=True, slots=True)
class EndpointRef:
    """The endpoint an event is about, as users know it (inventory id, method, URL, owner, tags)."""

    id: int | None
    method: str
    url: str
    owner: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Link:
    """A link for humans and machines: ``rel`` (``finding``, ``endpoint``, ``scan``) and ``href``."""

    rel: str
    href: str


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One thing worth telling a hook, channel-neutral.

    ``occurred_at`` is when the event happened (timezone-aware), not when it
    is delivered. ``title`` is one line of our own words (the rule's title);
    ``summary`` is the short evidence (may quote what a hostile target sent:
    channels escape or cap it). ``before``/``after`` are the diff's JSON
    evidence of the change (shape depends on the type). ``fingerprint`` is
    the finding's stable identity (``fp1:...``): PagerDuty deduplicates on it.
    ``is_regression`` is the diff's verdict: only regressions page.
    ``transition`` is set on ``finding.rule_change`` events: the change they
    stand for. ``links`` come from :func:`api_links`.
    """

    type: EventType
    occurred_at: datetime
    title: str
    summary: str = ""
    endpoint: EndpointRef | None = None
    rule_id: str | None = None
    severity: Severity | None = None
    fingerprint: str | None = None
    before: JSONObject | None = field(default=None, hash=False)
    after: JSONObject | None = field(default=None, hash=False)
    is_regression: bool = False
    transition: EventType | None = None
    scan_id: int | None = None
    finding_id: int | None = None
    event_id: int | None = None
    links: tuple[Link, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.type, EventType):
            raise InputError(f"alert event: unknown type {self.type!r}")
        if not isinstance(self.occurred_at, datetime) or self.occurred_at.utcoffset() is None:
            raise InputError("alert event: occurred_at must be a timezone-aware datetime")
        if self.severity is not None and not isinstance(self.severity, Severity):
            raise InputError(f"alert event: unknown severity {self.severity!r}")
        if self.is_regression and not self.type.is_regression_kind:
            raise InputError(f"alert event: a {self.type} event is never a regression")

    @classmethod
    def from_core(
        cls,
        event: Event,
        *,
        endpoint: EndpointRef,
        base_url: str | None = None,
        finding_id: int | None = None,
        event_id: int | None = None,
        title: str | None = None,
    ) -> AlertEvent:
        """The alert for one diff event about ``endpoint`` (whose id must match).

        ``title`` defaults to the rule's title from the catalogue; the summary
        is the finding's summary carried in ``after`` (or ``before``). Links
        into the API are built when ``base_url`` is given.
        """
        if endpoint.id != event.endpoint_id:
            raise InputError(
                f"alert event: endpoint {endpoint.id} given for an event of {event.endpoint_id}"
            )
        try:
            kind = EventType(event.kind.value)
            transition = EventType(event.transition.value) if event.transition else None
        except ValueError:
            raise InputError(f"alert event: no alert type for {event.kind.value!r}") from None
        links: tuple[Link, ...] = ()
        if base_url is not None:
            links = api_links(
                base_url, finding_id=finding_id, endpoint_id=endpoint.id, scan_id=event.run_id
            )
        return cls(
            type=kind,
            occurred_at=event.at,
            title=title or _default_title(event),
            summary=_summary_from(event.after) or _summary_from(event.before),
            endpoint=endpoint,
            rule_id=event.rule_id,
            severity=event.severity,
            fingerprint=event.fingerprint,
            before=event.before,
            after=event.after,
            is_regression=event.is_regression,
            transition=transition,
            scan_id=event.run_id,
            finding_id=finding_id,
            event_id=event_id,
            links=links,
        )

    def link(self, rel: str) -> str | None:
        """The href of the first link with this ``rel``, or None."""
        return next((link.href for link in self.links if link.rel == rel), None)


def event_document(event: AlertEvent) -> dict[str, Any]:
    """``event`` as a JSON document (what an outbox row stores), lossless.

    Unlike the channel payloads nothing is cut: every channel renders its
    body from this at send time, so the body follows the hook's current
    configuration and a retry sends what the first attempt sent.
    """
    endpoint = event.endpoint
    return {
        "type": event.type.value,
        "occurred_at": event.occurred_at.isoformat(),
        "title": event.title,
        "summary": event.summary,
        "endpoint": None
        if endpoint is None
        else {
            "id": endpoint.id,
            "method": endpoint.method,
            "url": endpoint.url,
            "owner": endpoint.owner,
            "tags": list(endpoint.tags),
        },
        "rule_id": event.rule_id,
        "severity": event.severity.value if event.severity is not None else None,
        "fingerprint": event.fingerprint,
        "before": event.before,
        "after": event.after,
        "is_regression": event.is_regression,
        "transition": event.transition.value if event.transition is not None else None,
        "scan_id": event.scan_id,
        "finding_id": event.finding_id,
        "event_id": event.event_id,
        "links": [{"rel": link.rel, "href": link.href} for link in event.links],
    }


def event_from_document(doc: Mapping[str, Any]) -> AlertEvent:
    """The event :func:`event_document` wrote; InputError when ``doc`` is not one."""
    try:
        endpoint = doc["endpoint"]
        return AlertEvent(
            type=EventType(doc["type"]),
            occurred_at=datetime.fromisoformat(doc["occurred_at"]),
            title=doc["title"],
            summary=doc["summary"],
            endpoint=None
            if endpoint is None
            else EndpointRef(
                id=endpoint["id"],
                method=endpoint["method"],
                url=endpoint["url"],
                owner=endpoint["owner"],
                tags=tuple(endpoint["tags"]),
            ),
            rule_id=doc["rule_id"],
            severity=Severity(doc["severity"]) if doc["severity"] is not None else None,
            fingerprint=doc["fingerprint"],
            before=doc["before"],
            after=doc["after"],
            is_regression=doc["is_regression"],
            transition=EventType(doc["transition"]) if doc["transition"] is not None else None,
            scan_id=doc["scan_id"],
            finding_id=doc["finding_id"],
            event_id=doc["event_id"],
            links=tuple(Link(link["rel"], link["href"]) for link in doc["links"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"alert event: not an event document ({exc})") from None


def _default_title(event: Event) -> str:
    known = CATALOGUE.get(event.rule_id) if event.rule_id else None
    if known is not None:
        return known.title
    if event.kind is EventKind.HEADER_DRIFT:
        return "CORS response headers changed"
    if event.kind is EventKind.ENDPOINT_UNREACHABLE:
        return "Endpoint unreachable: no probe got an answer"
    if event.kind is EventKind.ENDPOINT_REACHABLE:
        return "Endpoint answers again"
    return event.rule_id or event.kind.value


def _summary_from(evidence: JSONObject | None) -> str:
    summary = evidence.get("summary") if evidence is not None else None
    return summary if isinstance(summary, str) else ""


def api_links(
    base_url: str,
    *,
    finding_id: int | None = None,
    endpoint_id: int | None = None,
    scan_id: int | None = None,
) -> tuple[Link, ...]:
    """Links into our API (``{base_url}/api/v1/...``) for the ids given, in that order.

    ``base_url`` is where users reach the API (``https://cors.example.com``,
    maybe with a path prefix); InputError unless it is an absolute http(s) URL
    without query or fragment.
    """
    parts = urlsplit(base_url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.query
        or parts.fragment
        or len(base_url) > MAX_BASE_URL
    ):
        raise InputError(f"alert links: expected an absolute http(s) base URL, got {base_url!r}")
    root = base_url.rstrip("/") + API_PREFIX
    links: list[Link] = []
    for rel, collection, ident in (
        ("finding", "findings", finding_id),
        ("endpoint", "endpoints", endpoint_id),
        ("scan", "scans", scan_id),
    ):
        if ident is not None:
            links.append(Link(rel, f"{root}/{collection}/{int(ident)}"))
    return tuple(links)


def iso_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``: ``2026-01-31T02:00:00.000Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def truncate(text: str, limit: int, *, marker: str = TRUNCATION_MARKER) -> str:
    """``text`` if it has at most ``limit`` characters, else a prefix + ``marker`` of ``limit``."""
    if len(text) <= limit:
        return text
    if limit <= len(marker):
        return text[:limit]
    return text[: limit - len(marker)] + marker


def webhook_payload(event: AlertEvent) -> bytes:
    """The generic webhook body: ``{"type", "timestamp", "data"}`` as compact JSON bytes.

    Always under :data:`MAX_PAYLOAD_BYTES`. ``data.truncated`` says whether
    anything was cut (the summary first; other fields only in pathological
    cases), in which case the text ends with :data:`TRUNCATION_MARKER`.
    """
    for divisor in _SHRINK:
        data, cut = _data(event, divisor)
        # ``false`` is the longer of the two values ``truncated`` can take.
        skeleton = _dumps(_envelope(event, {**data, "summary": "", "truncated": False}))
        room = MAX_PAYLOAD_BYTES - len(skeleton)
        if room >= _MIN_SUMMARY_BYTES:
            break
    summary, cut_summary = _fit_json_string(event.summary, max(room, 0))
    data["summary"] = summary
    data["truncated"] = cut or cut_summary
    body = _dumps(_envelope(event, data))
    if len(body) > MAX_PAYLOAD_BYTES:  # pragma: no cover - the arithmetic above forbids it
        raise AssertionError("webhook payload exceeds MAX_PAYLOAD_BYTES")
    return body


def _envelope(event: AlertEvent, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": event.type.value, "timestamp": iso_timestamp(event.occurred_at), "data": data}


def _data(event: AlertEvent, divisor: int) -> tuple[dict[str, Any], bool]:
    cut = False

    def cap(text: str | None, kind: str) -> str | None:
        nonlocal cut
        if text is None:
            return None
        short = truncate(text, max(_CAPS[kind] // divisor, 16))
        cut = cut or short != text
        return short

    endpoint: dict[str, Any] | None = None
    if event.endpoint is not None:
        ref = event.endpoint
        tags = ref.tags[: _CAPS["tags"] // divisor]
        cut = cut or len(tags) != len(ref.tags)
        endpoint = {
            "id": ref.id,
            "method": cap(ref.method, "tag"),
            "url": cap(ref.url, "url"),
            "owner": cap(ref.owner, "owner"),
            "tags": [cap(tag, "tag") for tag in tags],
        }
    data: dict[str, Any] = {
        "event_id": event.event_id,
        "scan_id": event.scan_id,
        "finding_id": event.finding_id,
        "title": cap(event.title, "title"),
        "endpoint": endpoint,
        "rule_id": cap(event.rule_id, "title"),
        "severity": event.severity.value if event.severity is not None else None,
        "fingerprint": cap(event.fingerprint, "title"),
        "is_regression": event.is_regression,
        "transition": event.transition.value if event.transition is not None else None,
        "links": {link.rel: link.href for link in event.links},
    }
    for name in ("before", "after"):
        evidence = getattr(event, name)
        limit = max(_CAPS["json"] // divisor, 64)
        value, too_big = bounded_json(evidence, limit)
        if too_big and isinstance(evidence, Mapping) and evidence.get("probes"):
            # Header drift rides along with a finding's evidence: when both do
            # not fit, the finding's own evidence is what to keep (the drift's
            # probes are behind the links; changed_total still says how many).
            value, too_big = bounded_json({**evidence, "probes": {}}, limit)
            too_big = True
        data[name] = value
        cut = cut or too_big
    return data, cut


def bounded_json(value: JSONObject | None, limit: int) -> tuple[JSONObject | None, bool]:
    """``(value, False)`` if its compact JSON has at most ``limit`` bytes, else ``(marker, True)``.

    The marker, ``{"truncated": true}``, says the evidence exists but is too
    big to carry: follow the links. Evidence is JSON structure, so it is kept
    whole or not at all, never cut into invalid JSON.
    """
    if value is None or len(_dumps(value)) <= limit:
        return value, False
    return {"truncated": True}, True


def _dumps(value: Any) -> bytes:
    # ASCII-only JSON: a hostile value cannot smuggle invalid UTF-8 or raw
    # control characters, and the byte count is the character count.
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _fit_json_string(text: str, room: int) -> tuple[str, bool]:
    """The longest prefix of ``text`` (+ marker when cut) whose JSON form fits ``room`` bytes."""

    def size(candidate: str) -> int:
        return len(_dumps(candidate)) - 2  # the skeleton already holds the quotes

    if size(text) <= room:
        return text, False
    low, high = 0, len(text)  # invariant: prefix of length ``low`` + marker fits
    if size(TRUNCATION_MARKER) > room:
        return "", True
    while low < high:
        middle = (low + high + 1) // 2
        if size(text[:middle] + TRUNCATION_MARKER) <= room:
            low = middle
        else:
            high = middle - 1
    return text[:low] + TRUNCATION_MARKER, True
