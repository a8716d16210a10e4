"""Which hooks hear which events: one root cause per delivery, silence always heard."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from scanner.alerts.envelope import AlertEvent, EventType
from scanner.alerts.outbox import hook_wants
from scanner.core.severity import Severity
from scanner.db.hooks import HookKind, HookRecord

MakeEvent = Callable[..., AlertEvent]
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def hook(**changes: Any) -> HookRecord:
    values: dict[str, Any] = {
        "id": 1,
        "name": "soc",
        "kind": HookKind.WEBHOOK,
        "url": "https://hooks.example.com/in",
        "github_signature": False,
        "event_kinds": (),
        "min_severity": None,
        "tags": (),
        "owners": (),
        "enabled": True,
        "disabled_reason": None,
        "secret_set": True,
        "secret_rotated_at": None,
        "previous_secret_until": None,
        "created_by": "test",
        "created_at": NOW,
        "updated_at": NOW,
    }
    return HookRecord(**{**values, **changes})


def endpoint_event(make_event: MakeEvent, kind: EventType) -> AlertEvent:
    return make_event(type=kind, fingerprint=None, rule_id=None, severity=None, is_regression=False)


def test_drift_alone_reaches_only_hooks_that_ask_for_it_without_a_severity_filter(
    make_event: MakeEvent,
) -> None:
    drift = endpoint_event(make_event, EventType.HEADER_DRIFT)
    assert not hook_wants(hook(), drift)  # not a default
    assert hook_wants(hook(event_kinds=("regression.header_drift",)), drift)
    for floor in Severity:
        asked = hook(event_kinds=("regression.header_drift",), min_severity=floor)
        assert not hook_wants(asked, drift), floor


def test_drift_inside_a_finding_has_the_finding_severity(make_event: MakeEvent) -> None:
    high = hook(min_severity=Severity.HIGH)
    carried = make_event(after={"probes": {}, "changed_total": 2})  # critical finding.new
    assert hook_wants(high, carried)
    assert not hook_wants(high, make_event(severity=Severity.MEDIUM, after={"changed_total": 2}))


@pytest.mark.parametrize(
    "kind", [EventType.ENDPOINT_UNREACHABLE, EventType.ENDPOINT_REACHABLE, EventType.SCAN_FAILED]
)
def test_silence_reaches_hooks_filtered_by_severity(make_event: MakeEvent, kind: EventType) -> None:
    event = endpoint_event(make_event, kind)
    assert hook_wants(hook(), event)
    assert hook_wants(hook(min_severity=Severity.CRITICAL), event)
    assert hook_wants(hook(kind=HookKind.PAGERDUTY, min_severity=Severity.HIGH), event)


def test_a_scan_failure_is_news_for_every_team(make_event: MakeEvent) -> None:
    failed = make_event(
        type=EventType.SCAN_FAILED,
        endpoint=None,
        fingerprint=None,
        rule_id=None,
        severity=None,
        is_regression=False,
    )
    assert hook_wants(hook(tags=("pci",), owners=("payments-team",)), failed)


def test_pagerduty_always_hears_the_resolution_of_what_it_may_have_opened(
    make_event: MakeEvent,
) -> None:
    # Triggered at high, lowered to medium later, then fixed: the resolve must still go.
    resolved = make_event(
        type=EventType.FINDING_RESOLVED, severity=Severity.MEDIUM, is_regression=False
    )
    pagerduty = hook(
        kind=HookKind.PAGERDUTY, min_severity=Severity.HIGH, event_kinds=("finding.new",)
    )
    assert hook_wants(pagerduty, resolved)
    webhook = hook(min_severity=Severity.HIGH)
    assert not hook_wants(webhook, resolved)
    other_team = hook(kind=HookKind.PAGERDUTY, tags=("internal",))
    assert not hook_wants(other_team, resolved)


def test_the_retired_legit_origin_kind_still_hears_blocked_origins(make_event: MakeEvent) -> None:
    subscribed = hook(event_kinds=("regression.legit_origin_blocked",))
    blocked = make_event(rule_id="legit_origin_blocked", severity=Severity.HIGH)
    assert hook_wants(subscribed, blocked)
    assert not hook_wants(subscribed, make_event())
