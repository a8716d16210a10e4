"""PagerDuty Events API v2: trigger/resolve shapes, dedup keys, severities, limits."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from scanner.alerts.envelope import AlertEvent, EventType
from scanner.alerts.pagerduty import (
    EVENTS_URL,
    MAX_DEDUP_KEY,
    MAX_SUMMARY,
    PagerDutyTarget,
    build_pagerduty_request,
    dedup_key,
    pagerduty_severity,
)
from scanner.alerts.retry import Outcome
from scanner.alerts.sender import Channel, PreparedRequest, deliver
from scanner.core.severity import Severity
from scanner.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import aiohttp

    MakeEvent = Callable[..., AlertEvent]
    ServeApp = Callable[..., Awaitable[str]]

ROUTING_KEY = "R0123456789abcdef0123456789ABCDE"
TARGET = PagerDutyTarget(ROUTING_KEY)


def body_of(request: PreparedRequest | None) -> dict[str, Any]:
    assert request is not None
    assert request.channel is Channel.PAGERDUTY
    decoded: dict[str, Any] = json.loads(request.body)
    return decoded


def test_new_finding_triggers(make_event: MakeEvent) -> None:
    request = build_pagerduty_request(TARGET, make_event())
    assert request is not None
    assert request.url == EVENTS_URL
    assert request.header("Content-Type") == "application/json"
    message = body_of(request)
    assert message["routing_key"] == ROUTING_KEY
    assert message["event_action"] == "trigger"
    assert message["dedup_key"] == "fp1:0123456789abcdef0123456789abcdef"
    assert message["client"] == "cors-scanner"
    assert message["client_url"] == "https://cors.example.com/api/v1/findings/1001"
    assert message["links"][0] == {
        "href": "https://cors.example.com/api/v1/findings/1001",
        "text": "finding in cors-scanner",
    }
    payload = message["payload"]
    assert payload["summary"] == (
        "[critical] Any origin is reflected with credentials "
        "on GET https://api.example.com/v1/accounts"
    )
    assert payload["source"] == "api.example.com"
    assert payload["severity"] == "critical"
    assert payload["timestamp"] == "2026-01-31T02:00:00.000Z"
    assert payload["component"] == "GET https://api.example.com/v1/accounts"
    assert payload["group"] == "payments-team"
    assert payload["class"] == "reflect_any_origin_credentials"
    details = payload["custom_details"]
    assert details["fingerprint"] == "fp1:0123456789abcdef0123456789abcdef"
    assert details["endpoint"]["tags"] == ["pci", "public-api"]
    assert details["evidence"].startswith("Origin https://evil.example")
    assert (details["scan_id"], details["finding_id"]) == (42, 1001)


@pytest.mark.parametrize(
    "kind",
    [
        EventType.FINDING_NEW,
        EventType.FINDING_REOPENED,
        EventType.SEVERITY_RAISED,
        EventType.LEGIT_ORIGIN_BLOCKED,
    ],
)
def test_regressions_trigger(make_event: MakeEvent, kind: EventType) -> None:
    message = body_of(build_pagerduty_request(TARGET, make_event(type=kind, is_regression=True)))
    assert message["event_action"] == "trigger"
    assert message["dedup_key"] == "fp1:0123456789abcdef0123456789abcdef"


def test_sla_breach_triggers_on_the_finding_alert(make_event: MakeEvent) -> None:
    event = make_event(type=EventType.SLA_BREACHED, is_regression=False)
    message = body_of(build_pagerduty_request(TARGET, event))
    assert message["event_action"] == "trigger"
    assert message["dedup_key"] == "fp1:0123456789abcdef0123456789abcdef"


def test_header_drift_alone_never_pages(make_event: MakeEvent) -> None:
    event = make_event(
        type=EventType.HEADER_DRIFT,
        fingerprint=None,
        rule_id=None,
        severity=None,
        is_regression=False,
    )
    assert build_pagerduty_request(TARGET, event) is None


def test_an_outage_triggers_and_the_recovery_resolves_the_same_key(make_event: MakeEvent) -> None:
    down = make_event(
        type=EventType.ENDPOINT_UNREACHABLE,
        fingerprint=None,
        rule_id=None,
        severity=None,
        is_regression=False,
    )
    up = make_event(
        type=EventType.ENDPOINT_REACHABLE,
        fingerprint=None,
        rule_id=None,
        severity=None,
        is_regression=False,
    )
    trigger = body_of(build_pagerduty_request(TARGET, down))
    resolve = body_of(build_pagerduty_request(TARGET, up))
    assert trigger["event_action"] == "trigger"
    assert resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == "cors-scanner:endpoint:7:unreachable"


def test_every_trigger_has_a_resolution_with_its_key(make_event: MakeEvent) -> None:
    # Walk every event type: whatever PagerDuty is told to open, some event
    # of the same finding or endpoint closes it with the same dedup_key.
    triggered: dict[EventType, str] = {}
    resolvers: dict[EventType, str] = {}
    for kind in EventType:
        if kind.value.startswith(("endpoint.", "scan.", "hook.", "regression.header")):
            event = make_event(
                type=kind, fingerprint=None, rule_id=None, severity=None, is_regression=False
            )
        else:
            event = make_event(type=kind, is_regression=kind.is_regression_kind)
        request = build_pagerduty_request(TARGET, event)
        if request is None:
            continue
        message = body_of(request)
        found = triggered if message["event_action"] == "trigger" else resolvers
        found[kind] = message["dedup_key"]
    assert set(triggered) == {
        EventType.FINDING_NEW,
        EventType.FINDING_REOPENED,
        EventType.SEVERITY_RAISED,
        EventType.LEGIT_ORIGIN_BLOCKED,
        EventType.SLA_BREACHED,
        EventType.ENDPOINT_UNREACHABLE,
    }
    for kind, key in triggered.items():
        assert key in {
            resolvers[EventType.FINDING_RESOLVED],
            resolvers[EventType.ENDPOINT_REACHABLE],
        }, kind


@pytest.mark.parametrize(
    "kind",
    [
        EventType.FINDING_NEW,  # e.g. seen while the ruleset changed
        EventType.FINDING_REOPENED,  # reopened but still suppressed
        EventType.SEVERITY_LOWERED,
        EventType.NOT_VERIFIED,
        EventType.TRIAGE_EXPIRED,
        EventType.UNSUPPRESSED,
        EventType.SCAN_COMPLETED,
        EventType.SCAN_FAILED,
    ],
)
def test_what_is_not_a_regression_never_pages(make_event: MakeEvent, kind: EventType) -> None:
    assert build_pagerduty_request(TARGET, make_event(type=kind, is_regression=False)) is None


def test_rule_changes_never_page(make_event: MakeEvent) -> None:
    event = make_event(
        type=EventType.RULE_CHANGE, transition=EventType.FINDING_NEW, is_regression=False
    )
    assert build_pagerduty_request(TARGET, event) is None


@pytest.mark.parametrize("kind", [EventType.FINDING_RESOLVED, EventType.SUPPRESSED])
def test_resolved_or_suppressed_resolves_the_same_alert(
    make_event: MakeEvent, kind: EventType
) -> None:
    trigger = body_of(build_pagerduty_request(TARGET, make_event()))
    resolve = body_of(build_pagerduty_request(TARGET, make_event(type=kind, is_regression=False)))
    assert resolve == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": trigger["dedup_key"],
    }


def test_hook_test_is_a_resolve_nobody_is_paged_for(make_event: MakeEvent) -> None:
    event = make_event(
        type=EventType.HOOK_TEST,
        severity=None,
        fingerprint=None,
        endpoint=None,
        rule_id=None,
        is_regression=False,
    )
    message = body_of(build_pagerduty_request(TARGET, event))
    # PagerDuty answers 202 to a resolve when the routing key is valid: the
    # integration is proven, and no incident is opened that nobody would close.
    assert message["event_action"] == "resolve"
    assert message["dedup_key"] == "cors-scanner:event:5001"
    assert "payload" not in message


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (Severity.CRITICAL, "critical"),
        (Severity.HIGH, "error"),
        (Severity.MEDIUM, "warning"),
        (Severity.LOW, "info"),
        (Severity.INFO, "info"),
        (None, "info"),
    ],
)
def test_severity_map(make_event: MakeEvent, ours: Severity | None, theirs: str) -> None:
    assert pagerduty_severity(ours) == theirs
    message = body_of(build_pagerduty_request(TARGET, make_event(severity=ours)))
    assert message["payload"]["severity"] == theirs


def test_long_dedup_keys_are_hashed_not_cut(make_event: MakeEvent) -> None:
    first = dedup_key(make_event(fingerprint="f" * 300 + "1"))
    second = dedup_key(make_event(fingerprint="f" * 300 + "2"))
    assert len(first) <= MAX_DEDUP_KEY
    assert first.startswith("sha256:")
    assert first != second  # a shared prefix must not merge two alerts
    assert dedup_key(make_event(fingerprint="k" * MAX_DEDUP_KEY)) == "k" * MAX_DEDUP_KEY


def test_summary_is_capped_at_1024_characters(make_event: MakeEvent) -> None:
    message = body_of(build_pagerduty_request(TARGET, make_event(title="T" * 5000)))
    assert len(message["payload"]["summary"]) == MAX_SUMMARY
    assert message["payload"]["summary"].endswith("[truncated]")


def test_huge_evidence_keeps_the_message_small(make_event: MakeEvent) -> None:
    request = build_pagerduty_request(TARGET, make_event(summary="x" * 10_000_000))
    assert request is not None
    assert len(request.body) < 16_000  # PagerDuty accepts up to 512 KB


@pytest.mark.parametrize("key", ["", "has space", "x" * 65, "clé"])
def test_routing_keys_are_validated(key: str) -> None:
    with pytest.raises(InputError, match="routing_key"):
        PagerDutyTarget(key)


def test_routing_key_is_not_in_repr() -> None:
    assert ROUTING_KEY not in repr(TARGET)


def events_api(status: int = 202) -> tuple[web.Application, list[dict[str, Any]]]:
    """Validates like the Events API: 400 for a malformed event, else ``status``."""
    seen: list[dict[str, Any]] = []

    async def enqueue(request: web.Request) -> web.Response:
        event = await request.json()
        seen.append(event)
        problems = []
        if len(event.get("routing_key", "")) != 32:
            problems.append("routing_key")
        if event.get("event_action") not in ("trigger", "acknowledge", "resolve"):
            problems.append("event_action")
        if len(event.get("dedup_key", "")) > MAX_DEDUP_KEY:
            problems.append("dedup_key")
        if event.get("event_action") == "trigger":
            payload = event.get("payload", {})
            if not payload.get("summary") or len(payload["summary"]) > MAX_SUMMARY:
                problems.append("payload.summary")
            if not payload.get("source"):
                problems.append("payload.source")
            if payload.get("severity") not in ("critical", "error", "warning", "info"):
                problems.append("payload.severity")
        if problems:
            return web.json_response({"status": "invalid event", "errors": problems}, status=400)
        return web.json_response(
            {"status": "success", "dedup_key": event["dedup_key"]}, status=status
        )

    app = web.Application()
    app.router.add_post("/v2/enqueue", enqueue)
    return app, seen


async def test_trigger_then_resolve_against_an_events_api_receiver(
    serve_app: ServeApp, hook_session: aiohttp.ClientSession, make_event: MakeEvent
) -> None:
    app, seen = events_api()
    base = await serve_app(app)
    target = PagerDutyTarget(ROUTING_KEY, url=f"{base}/v2/enqueue")
    for kind in (EventType.FINDING_NEW, EventType.FINDING_RESOLVED, EventType.FINDING_REOPENED):
        event = make_event(
            type=kind, title="T" * 3000, is_regression=kind is not EventType.FINDING_RESOLVED
        )
        request = build_pagerduty_request(target, event)
        assert request is not None
        result = await deliver(hook_session, request, timeout=5)
        assert result.status == 202
        assert result.classification.outcome is Outcome.SUCCESS
    assert [e["event_action"] for e in seen] == ["trigger", "resolve", "trigger"]
    assert len({e["dedup_key"] for e in seen}) == 1
    assert len({e["routing_key"] for e in seen}) == 1


async def test_pagerduty_success_is_202_only(
    serve_app: ServeApp, hook_session: aiohttp.ClientSession, make_event: MakeEvent
) -> None:
    app, _ = events_api(status=200)
    base = await serve_app(app)
    target = PagerDutyTarget(ROUTING_KEY, url=f"{base}/v2/enqueue")
    request = build_pagerduty_request(target, make_event())
    assert request is not None
    result = await deliver(hook_session, request, timeout=5)
    assert result.status == 200
    assert result.classification.outcome is Outcome.FAIL
    assert "202" in result.classification.reason
