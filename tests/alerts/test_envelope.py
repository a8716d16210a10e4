"""The Standard Webhooks payload: shape, thinness, and the size cap under hostile evidence."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest

from scanner.alerts.envelope import (
    MAX_PAYLOAD_BYTES,
    TRUNCATION_MARKER,
    AlertEvent,
    EndpointRef,
    EventType,
    Link,
    api_links,
    iso_timestamp,
    truncate,
    webhook_payload,
)
from scanner.core.diff import EndpointSnapshot, diff_run
from scanner.core.findings import Category, Finding
from scanner.core.lifecycle import REGRESSION_KINDS, Event, EventKind
from scanner.core.severity import Severity
from scanner.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Callable

    MakeEvent = Callable[..., AlertEvent]


def test_payload_shape(make_event: MakeEvent) -> None:
    payload = json.loads(webhook_payload(make_event()))
    assert set(payload) == {"type", "timestamp", "data"}
    assert payload["type"] == "finding.new"
    assert payload["timestamp"] == "2026-01-31T02:00:00.000Z"
    data = payload["data"]
    assert data["endpoint"] == {
        "id": 7,
        "method": "GET",
        "url": "https://api.example.com/v1/accounts",
        "owner": "payments-team",
        "tags": ["pci", "public-api"],
    }
    assert data["rule_id"] == "reflect_any_origin_credentials"
    assert data["severity"] == "critical"
    assert data["fingerprint"] == "fp1:0123456789abcdef0123456789abcdef"
    assert data["summary"].startswith("Origin https://evil.example")
    assert data["truncated"] is False
    assert (data["scan_id"], data["finding_id"], data["event_id"]) == (42, 1001, 5001)
    assert data["links"] == {
        "finding": "https://cors.example.com/api/v1/findings/1001",
        "endpoint": "https://cors.example.com/api/v1/endpoints/7",
        "scan": "https://cors.example.com/api/v1/scans/42",
    }


def test_payload_is_compact_ascii_json(make_event: MakeEvent) -> None:
    body = webhook_payload(make_event(summary="ACAO: https://é.example\x00\u2028"))
    body.decode("ascii")  # raises if not ASCII
    decoded = json.loads(body)
    assert body == json.dumps(decoded, separators=(",", ":")).encode()  # no spaces added
    assert decoded["data"]["summary"] == "ACAO: https://é.example\x00\u2028"


def test_event_timestamp_is_utc_whatever_the_input_zone(make_event: MakeEvent) -> None:
    paris = timezone(timedelta(hours=1))
    event = make_event(occurred_at=datetime(2026, 1, 31, 3, 0, 0, 123456, tzinfo=paris))
    assert json.loads(webhook_payload(event))["timestamp"] == "2026-01-31T02:00:00.123Z"
    assert iso_timestamp(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    "evidence",
    [
        "A" * 10_000_000,  # a 10 MB header value
        "é" * 100_000,  # six bytes each once escaped
        "\U0001f600" * 100_000,  # twelve bytes each (a surrogate pair)
        '"\\' * 100_000,  # escapes that double
    ],
)
def test_huge_evidence_is_truncated_below_20_kb(make_event: MakeEvent, evidence: str) -> None:
    body = webhook_payload(make_event(summary=evidence))
    assert len(body) <= MAX_PAYLOAD_BYTES < 20_000
    data = json.loads(body)["data"]
    assert data["truncated"] is True
    assert data["summary"].endswith(TRUNCATION_MARKER)
    kept = data["summary"].removesuffix(TRUNCATION_MARKER)
    assert evidence.startswith(kept)
    assert len(kept) > 100  # the evidence is cut, not dropped
    assert data["fingerprint"] == "fp1:0123456789abcdef0123456789abcdef"  # identity intact


def test_pathological_fields_are_cut_too(make_event: MakeEvent) -> None:
    endpoint = EndpointRef(
        id=1,
        method="GET",
        url="https://api.example.com/" + "é" * 50_000,
        owner="o" * 10_000,
        tags=tuple(f"tag-{i}-" + "ü" * 200 for i in range(1000)),
    )
    event = make_event(endpoint=endpoint, title="t" * 10_000, before="b" * 9_000, summary="s")
    body = webhook_payload(event)
    assert len(body) <= MAX_PAYLOAD_BYTES
    data = json.loads(body)["data"]
    assert data["truncated"] is True
    assert data["endpoint"]["url"].startswith("https://api.example.com/")
    assert data["summary"] == "s"  # room was kept for the evidence


def test_small_payload_is_not_marked_truncated(make_event: MakeEvent) -> None:
    event = make_event(summary="x" * 5000)
    data = json.loads(webhook_payload(event))["data"]
    assert data["summary"] == "x" * 5000
    assert data["truncated"] is False


def test_api_links_are_built_from_the_base_url() -> None:
    assert api_links("https://scanner.corp/tools/cors/", finding_id=3, scan_id=9) == (
        Link("finding", "https://scanner.corp/tools/cors/api/v1/findings/3"),
        Link("scan", "https://scanner.corp/tools/cors/api/v1/scans/9"),
    )
    assert api_links("http://127.0.0.1:8080") == ()


@pytest.mark.parametrize(
    "base", ["ftp://x", "/relative", "https://x?q=1", "https://x#frag", "https://" + "a" * 600]
)
def test_api_links_refuse_bad_base_urls(base: str) -> None:
    with pytest.raises(InputError, match="base URL"):
        api_links(base, finding_id=1)


def test_events_validate_their_values(make_event: MakeEvent) -> None:
    with pytest.raises(InputError, match="timezone-aware"):
        make_event(occurred_at=datetime(2026, 1, 1))
    with pytest.raises(InputError, match="unknown type"):
        make_event(type="finding.exploded")
    with pytest.raises(InputError, match="unknown severity"):
        make_event(severity="urgent")


def test_event_types_follow_the_standard_webhooks_pattern() -> None:
    for kind in EventType:
        head, _, tail = kind.value.partition(".")
        assert head
        assert tail
        assert all(part.replace("_", "").isalnum() for part in (head, tail))
    assert not EventType.HEADER_DRIFT.is_regression_kind  # drift alone is informational
    assert EventType.FINDING_NEW.is_regression_kind
    assert not EventType.FINDING_RESOLVED.is_regression_kind


def test_truncate() -> None:
    assert truncate("short", 10) == "short"
    assert truncate("x" * 40, 20) == "x" * (20 - len(TRUNCATION_MARKER)) + TRUNCATION_MARKER
    assert len(truncate("x" * 40, 20)) == 20
    assert truncate("x" * 40, 3) == "xxx"  # no room for the marker: a plain cut


def test_every_core_event_kind_has_an_alert_type() -> None:
    assert {kind.value for kind in EventKind} <= {kind.value for kind in EventType}
    regression_kinds = {kind.value for kind in REGRESSION_KINDS}
    assert {t.value for t in EventType if t.is_regression_kind} == regression_kinds


def _new_finding_event() -> Event:
    finding = Finding(
        rule_id="reflect_any_origin_credentials",
        severity=Severity.CRITICAL,
        category=Category.EXPOSURE,
        title="Reflected with credentials",
        endpoint_method="GET",
        endpoint_url="https://api.example.com/v1/accounts",
        origin_class="arbitrary",
        summary="https://evil.example is reflected, with credentials",
    )
    diff = diff_run(
        run_id=42,
        now=datetime(2026, 1, 31, 2, 0, tzinfo=UTC),
        previous={},
        snapshots=[EndpointSnapshot(endpoint_id=7, probed=True, findings=(finding,))],
        previous_headers={},
    )
    [event] = diff.events
    return event


def test_alert_from_a_real_diff_event() -> None:
    core = _new_finding_event()
    endpoint = EndpointRef(7, "GET", "https://api.example.com/v1/accounts", owner="payments")
    event = AlertEvent.from_core(
        core, endpoint=endpoint, base_url="https://cors.example.com", finding_id=1001, event_id=9
    )
    assert event.type is EventType.FINDING_NEW
    assert event.is_regression is True
    assert event.occurred_at == core.at
    assert event.title == "Any origin can read responses with the user's credentials"  # catalogue
    assert event.summary == "https://evil.example is reflected, with credentials"
    assert event.fingerprint == core.fingerprint
    assert event.severity is Severity.CRITICAL
    assert event.scan_id == 42
    assert event.link("finding") == "https://cors.example.com/api/v1/findings/1001"
    assert event.link("scan") == "https://cors.example.com/api/v1/scans/42"
    data = json.loads(webhook_payload(event))["data"]
    assert data["after"]["severity"] == "critical"
    assert data["before"] is None
    assert data["is_regression"] is True


def test_from_core_checks_the_endpoint_and_keeps_rule_change_transitions() -> None:
    core = _new_finding_event()
    with pytest.raises(InputError, match="endpoint 8"):
        AlertEvent.from_core(core, endpoint=EndpointRef(8, "GET", "https://x.example/"))
    changed = replace(
        core,
        kind=EventKind.RULE_CHANGE,
        transition=EventKind.FINDING_NEW,
        is_regression=False,
    )
    event = AlertEvent.from_core(changed, endpoint=EndpointRef(7, "GET", "https://x.example/"))
    assert event.type is EventType.RULE_CHANGE
    assert event.transition is EventType.FINDING_NEW
    assert event.links == ()
    assert json.loads(webhook_payload(event))["data"]["transition"] == "finding.new"


def test_only_regression_kinds_can_be_regressions(make_event: MakeEvent) -> None:
    with pytest.raises(InputError, match="never a regression"):
        make_event(type=EventType.FINDING_RESOLVED, is_regression=True)


def test_oversized_before_after_evidence_is_replaced_by_a_marker(make_event: MakeEvent) -> None:
    big = {"evidence": ["h" * 500] * 20, "severity": "high"}
    body = webhook_payload(make_event(before=big, after={"severity": "critical"}))
    data = json.loads(body)["data"]
    assert data["before"] == {"truncated": True}
    assert data["after"] == {"severity": "critical"}
    assert data["truncated"] is True


def test_drift_gives_way_to_the_finding_evidence_it_rides_with(make_event: MakeEvent) -> None:
    # A finding's evidence plus a large header drift: the drift's probes go first.
    lines = [["access-control-allow-headers", "x" * 400]]
    after = {
        "severity": "critical",
        "evidence": [{"probe": "simple:arbitrary_origin:0", "verdict": "readable"}],
        "probes": {f"simple:k:{i}": lines for i in range(10)},
        "changed_total": 12,
    }
    data = json.loads(webhook_payload(make_event(after=after)))["data"]
    assert data["after"]["evidence"] == after["evidence"]
    assert data["after"]["probes"] == {}
    assert data["after"]["changed_total"] == 12
    assert data["truncated"] is True
