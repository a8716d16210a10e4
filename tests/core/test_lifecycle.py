"""Triage and the transitions a person or the clock causes, one table per operation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from scanner.core.findings import Category, Evidence, Finding
from scanner.core.headers import Headers
from scanner.core.lifecycle import (
    Event,
    EventKind,
    FindingStatus,
    TrackedFinding,
    Triage,
    TriageKind,
    expire_triage,
    suppress,
    unsuppress,
)
from scanner.core.severity import Severity
from scanner.errors import Conflict, InputError, ValidationError

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def make_finding() -> Finding:
    return Finding(
        rule_id="null_origin_trusted",
        severity=Severity.CRITICAL,
        category=Category.EXPOSURE,
        title="The null origin is trusted",
        endpoint_method="GET",
        endpoint_url="https://api.acme.com/v1/me",
        origin_class="null",
        summary="Untrusted origin(s) null can read responses with the user's credentials.",
        evidence=(
            Evidence(
                probe_key="simple:null:0",
                origin="null",
                origin_kind="null",
                method="GET",
                url="https://api.acme.com/v1/me",
                request_headers=Headers.of({"Origin": "null"}),
                status=200,
                response_headers=Headers.of({"Access-Control-Allow-Origin": "null"}),
            ),
        ),
    )


def tracked(
    status: FindingStatus = FindingStatus.OPEN, triage: Triage | None = None
) -> TrackedFinding:
    base = TrackedFinding.first(make_finding(), endpoint_id=7, run_id=1, now=T0)
    resolved_at = T0 + DAY if status is FindingStatus.RESOLVED else None
    return replace(base, status=status, triage=triage, resolved_at=resolved_at, version=3)


def triage(kind: TriageKind = TriageKind.SUPPRESSED, *, days: int | None = 30) -> Triage:
    until = T0 + days * DAY if days is not None else None
    return Triage(kind, by="alice", reason="served only to the intranet", at=T0, until=until)


# -- Triage values ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fields"),
    [
        pytest.param({"by": " "}, ["by"], id="blank-by"),
        pytest.param({"reason": ""}, ["reason"], id="blank-reason"),
        pytest.param({"at": datetime(2026, 3, 1)}, ["at"], id="naive-at"),
        pytest.param({"until": T0}, ["until"], id="until-not-after-at"),
        pytest.param({"until": T0 - DAY}, ["until"], id="until-before-at"),
        pytest.param(
            {"until": datetime(2026, 4, 1)},
            ["until"],
            id="naive-until",
        ),
        pytest.param(
            {"kind": TriageKind.ACCEPTED, "until": None}, ["until"], id="accepted-forever"
        ),
        pytest.param({"by": "", "reason": "", "until": T0}, ["by", "reason", "until"], id="all"),
    ],
)
def test_invalid_triage_names_every_bad_field(kwargs: dict[str, object], fields: list[str]) -> None:
    values: dict[str, object] = {
        "kind": TriageKind.SUPPRESSED,
        "by": "alice",
        "reason": "false positive",
        "at": T0,
        "until": T0 + DAY,
        **kwargs,
    }
    with pytest.raises(ValidationError) as info:
        Triage(**values)  # type: ignore[arg-type]
    assert [e.field for e in info.value.errors] == fields


@pytest.mark.parametrize(
    ("kind", "days", "at", "active"),
    [
        pytest.param(TriageKind.SUPPRESSED, None, T0 + 9999 * DAY, True, id="no-expiry"),
        pytest.param(TriageKind.ACCEPTED, 30, T0 + 29 * DAY, True, id="before-expiry"),
        pytest.param(TriageKind.ACCEPTED, 30, T0 + 30 * DAY, False, id="at-expiry-exclusive"),
        pytest.param(TriageKind.ACCEPTED, 30, T0 + 31 * DAY, False, id="after-expiry"),
    ],
)
def test_triage_is_active_until_its_expiry(
    kind: TriageKind, days: int | None, at: datetime, active: bool
) -> None:
    assert triage(kind, days=days).active(at) is active


# -- suppress ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "status",
    [FindingStatus.NEW, FindingStatus.OPEN, FindingStatus.REOPENED],
    ids=lambda s: s.value,
)
def test_suppressing_a_live_finding(status: FindingStatus) -> None:
    decision = triage(TriageKind.ACCEPTED)
    before = tracked(status)
    change = suppress(before, decision)
    assert change.finding.status is FindingStatus.SUPPRESSED
    assert change.finding.triage == decision
    assert change.finding.version == before.version + 1
    event = change.event
    assert event.kind is EventKind.SUPPRESSED
    assert not event.is_regression
    assert event.at == T0
    assert event.fingerprint == before.fingerprint
    assert event.before == {"status": status.value, "triage": None}
    assert event.after is not None
    assert event.after["triage"] == {
        "kind": "accepted",
        "by": "alice",
        "reason": "served only to the intranet",
        "at": T0.isoformat(),
        "until": (T0 + 30 * DAY).isoformat(),
    }


def test_suppressing_again_replaces_the_decision() -> None:
    first = suppress(tracked(), triage(days=10)).finding
    longer = triage(TriageKind.ACCEPTED, days=90)
    second = suppress(first, longer)
    assert second.finding.triage == longer
    assert second.finding.version == first.version + 1
    assert second.event.before is not None
    assert second.event.before["status"] == "suppressed"


def test_suppressing_a_resolved_finding_conflicts() -> None:
    with pytest.raises(Conflict, match="resolved"):
        suppress(tracked(FindingStatus.RESOLVED), triage())


# -- unsuppress -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param(FindingStatus.SUPPRESSED, FindingStatus.OPEN, id="suppressed-to-open"),
        pytest.param(FindingStatus.RESOLVED, FindingStatus.RESOLVED, id="resolved-stays"),
    ],
)
def test_unsuppress_withdraws_the_decision(status: FindingStatus, expected: FindingStatus) -> None:
    before = tracked(status, triage())
    change = unsuppress(before, by="bob", now=T0 + DAY, reason="fixed the allowlist")
    assert change.finding.status is expected
    assert change.finding.triage is None
    assert change.finding.version == before.version + 1
    assert change.event.kind is EventKind.UNSUPPRESSED
    assert change.event.after == {
        "status": expected.value,
        "by": "bob",
        "reason": "fixed the allowlist",
    }


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"by": "bob", "now": T0}, Conflict, id="no-triage"),
        pytest.param({"by": "", "now": T0}, ValidationError, id="no-author"),
        pytest.param(
            {"by": "bob", "now": datetime(2026, 3, 2)},
            InputError,
            id="naive-now",
        ),
    ],
)
def test_unsuppress_refuses(kwargs: dict[str, object], error: type[Exception]) -> None:
    finding = tracked() if error is Conflict else tracked(FindingStatus.SUPPRESSED, triage())
    with pytest.raises(error):
        unsuppress(finding, **kwargs)  # type: ignore[arg-type]


# -- expiry -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "decision", "now", "expected"),
    [
        pytest.param(FindingStatus.OPEN, None, T0 + 99 * DAY, None, id="no-triage"),
        pytest.param(
            FindingStatus.SUPPRESSED, triage(days=None), T0 + 999 * DAY, None, id="permanent"
        ),
        pytest.param(FindingStatus.SUPPRESSED, triage(days=30), T0 + 29 * DAY, None, id="active"),
        pytest.param(
            FindingStatus.SUPPRESSED,
            triage(TriageKind.ACCEPTED, days=30),
            T0 + 30 * DAY,
            FindingStatus.OPEN,
            id="suppressed-expires-open",
        ),
        pytest.param(
            FindingStatus.RESOLVED,
            triage(days=30),
            T0 + 40 * DAY,
            FindingStatus.RESOLVED,
            id="resolved-loses-triage",
        ),
    ],
)
def test_expire_triage(
    status: FindingStatus,
    decision: Triage | None,
    now: datetime,
    expected: FindingStatus | None,
) -> None:
    before = tracked(status, decision)
    change = expire_triage(before, now)
    if expected is None:
        assert change is None
        return
    assert change is not None
    assert change.finding.status is expected
    assert change.finding.triage is None
    assert change.finding.version == before.version + 1
    assert change.event.kind is EventKind.TRIAGE_EXPIRED
    assert not change.event.is_regression
    assert change.event.before is not None
    assert change.event.before["status"] == status.value
    assert change.event.after == {"status": expected.value}


# -- invariants -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"status": FindingStatus.RESOLVED}, "resolved_at", id="resolved-no-date"),
        pytest.param({"resolved_at": T0}, "resolved_at", id="open-with-date"),
        pytest.param({"status": FindingStatus.SUPPRESSED}, "without a triage", id="bare-suppress"),
        pytest.param({"triage": triage()}, "open finding cannot carry a triage", id="triaged-open"),
        pytest.param({"version": 0}, "version", id="version-zero"),
    ],
)
def test_tracked_finding_refuses_inconsistent_state(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        replace(tracked(), **changes)  # type: ignore[arg-type]


def test_first_sighting_is_new_version_one_with_its_probe_keys() -> None:
    f = TrackedFinding.first(make_finding(), endpoint_id=3, run_id=12, now=T0)
    assert (f.status, f.version, f.first_seen_run, f.last_seen_run) == (
        FindingStatus.NEW,
        1,
        12,
        12,
    )
    assert f.probe_keys == ("simple:null:0",)
    assert f.fingerprint == make_finding().fingerprint


@pytest.mark.parametrize(
    ("kind", "regression", "transition"),
    [
        pytest.param(EventKind.FINDING_RESOLVED, True, None, id="resolved-is-no-regression"),
        pytest.param(EventKind.NOT_VERIFIED, True, None, id="not-verified-is-no-regression"),
        pytest.param(EventKind.RULE_CHANGE, False, None, id="rule-change-needs-transition"),
        pytest.param(
            EventKind.FINDING_NEW, False, EventKind.FINDING_NEW, id="transition-only-on-rule-change"
        ),
    ],
)
def test_event_refuses_inconsistent_labels(
    kind: EventKind, regression: bool, transition: EventKind | None
) -> None:
    with pytest.raises(InputError):
        Event(kind, endpoint_id=1, at=T0, is_regression=regression, transition=transition)


@pytest.mark.parametrize(
    ("not_verified_run", "status", "unverified"),
    [
        pytest.param(None, FindingStatus.OPEN, False, id="never"),
        pytest.param(1, FindingStatus.OPEN, False, id="verified-since"),
        pytest.param(2, FindingStatus.OPEN, True, id="latest-run-failed"),
        pytest.param(2, FindingStatus.RESOLVED, False, id="resolved"),
    ],
)
def test_unverified_means_live_and_not_rechecked_since(
    not_verified_run: int | None, status: FindingStatus, unverified: bool
) -> None:
    f = replace(tracked(status), not_verified_run=not_verified_run)
    assert f.unverified is unverified
