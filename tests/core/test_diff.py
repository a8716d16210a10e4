"""The run-to-run diff: finding transitions, regression events, header drift.

Findings are built directly where only their identity matters; where the
server's behaviour matters (drift, errors, legitimate origins) the runs go
through ``assess`` on small pure "servers" (request -> status and headers), as
in test_checks.py.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from scanner.core.checks import Assessment, assess
from scanner.core.diff import (
    MAX_DRIFT_KEYS,
    MAX_VALUE_CHARS,
    EndpointSnapshot,
    HeaderLines,
    RunDiff,
    diff_run,
    normalise_cors_headers,
    snapshot_from_assessment,
)
from scanner.core.findings import Category, Evidence, Finding
from scanner.core.headers import Headers
from scanner.core.lifecycle import (
    EventKind,
    FindingStatus,
    TrackedFinding,
    Triage,
    TriageKind,
)
from scanner.core.observation import Observation, ProbeError
from scanner.core.plan import Endpoint, PreflightPurpose, ProbeKind, ProbeRequest, plan_probes
from scanner.core.policy import Policy
from scanner.core.severity import Severity
from scanner.core.variants import probe_origins
from scanner.errors import InputError
from scanner.hostnames import default_public_suffixes

URL = "https://api.acme.com/v1/me"
APP = "https://app.acme.com"
POLICY = Policy.build(allowed_origins=[APP], allow_credentials=True)
NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
DAY = timedelta(days=1)
RUN = 5  # the run being diffed; the previous one was 4
KEY = "simple:arbitrary_origin:0"

E = EventKind
S = FindingStatus


# -- building findings by hand -----------------------------------------------------


def make_finding(
    rule_id: str = "reflect_any_origin",
    *,
    severity: Severity = Severity.HIGH,
    origin_class: str = "arbitrary_origin",
    keys: tuple[str, ...] = (KEY,),
    url: str = URL,
) -> Finding:
    evidence = tuple(
        Evidence(
            probe_key=key,
            origin="https://tok9.attacker.example",
            origin_kind=origin_class,
            method="GET",
            url=url,
            request_headers=Headers.of({"Origin": "https://tok9.attacker.example"}),
            status=200,
            response_headers=Headers.of(
                [
                    ("Content-Type", "application/json"),
                    ("Access-Control-Allow-Origin", "https://tok9.attacker.example"),
                ]
            ),
            verdict="readable without credentials",
        )
        for key in keys
    )
    return Finding(
        rule_id=rule_id,
        severity=severity,
        category=Category.EXPOSURE,
        title=rule_id.replace("_", " "),
        endpoint_method="GET",
        endpoint_url=url,
        origin_class=origin_class,
        summary=f"{rule_id} at {severity}",
        evidence=evidence,
    )


def make_tracked(
    finding: Finding,
    status: FindingStatus,
    *,
    endpoint_id: int = 1,
    triage: str | None = None,
    severity: Severity | None = None,
    reopen_count: int = 0,
) -> TrackedFinding:
    """A finding first seen in run 1 and last seen in run 4 (3 when since resolved)."""
    base = TrackedFinding.first(finding, endpoint_id=endpoint_id, run_id=1, now=NOW - 30 * DAY)
    resolved = status is S.RESOLVED
    decision = None
    if triage is not None:
        until = NOW + 10 * DAY if triage == "active" else NOW - DAY
        decision = Triage(
            TriageKind.ACCEPTED, "alice", "compensating control", NOW - 20 * DAY, until
        )
    return replace(
        base,
        status=status,
        severity=severity or finding.severity,
        last_seen_run=3 if resolved else 4,
        last_seen_at=NOW - (2 if resolved else 1) * DAY,
        resolved_at=NOW - DAY if resolved else None,
        triage=decision,
        reopen_count=reopen_count,
        version=4,
    )


def run_diff(
    previous: Collection[TrackedFinding],
    snapshots: list[EndpointSnapshot],
    previous_headers: Mapping[int, Mapping[str, HeaderLines]] | None = None,
    *,
    ruleset_changed: bool = False,
    run_id: int = RUN,
    now: datetime = NOW,
    previous_reachable: Mapping[int, bool] | None = None,
) -> RunDiff:
    # By default every endpoint answered (or not) as it did last time: tests of
    # finding transitions see no reachability events unless they ask for them.
    return diff_run(
        run_id=run_id,
        now=now,
        previous={f.fingerprint: f for f in previous},
        snapshots=snapshots,
        previous_headers=previous_headers or {},
        ruleset_changed=ruleset_changed,
        previous_reachable=(
            {s.endpoint_id: s.probed for s in snapshots}
            if previous_reachable is None
            else previous_reachable
        ),
    )


def kinds(diff: RunDiff) -> list[tuple[EventKind, bool]]:
    return [(e.kind, e.is_regression) for e in diff.events]


# -- every transition ------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    before: FindingStatus | None  # None: never seen
    present: bool
    after: FindingStatus | None  # None: untouched by the run
    events: tuple[tuple[EventKind, bool], ...] = ()
    triage: str | None = None  # "active" or "expired", before the run
    probed: bool = True
    failed: tuple[str, ...] = ()
    triaged_after: bool = False
    reopened: bool = False
    not_verified: bool = False


CASES = [
    Case("new", None, True, S.NEW, ((E.FINDING_NEW, True),)),
    Case("new-seen-again-is-open", S.NEW, True, S.OPEN),
    Case("open-stays-open", S.OPEN, True, S.OPEN),
    Case("reopened-seen-again-is-open", S.REOPENED, True, S.OPEN),
    Case(
        "resolved-seen-again-reopens",
        S.RESOLVED,
        True,
        S.REOPENED,
        ((E.FINDING_REOPENED, True),),
        reopened=True,
    ),
    Case(
        "suppressed-survives-rescan",
        S.SUPPRESSED,
        True,
        S.SUPPRESSED,
        triage="active",
        triaged_after=True,
    ),
    Case(
        "triage-expiry-opens",
        S.SUPPRESSED,
        True,
        S.OPEN,
        ((E.TRIAGE_EXPIRED, False),),
        triage="expired",
    ),
    Case(
        "resolved-with-triage-returns-silently",
        S.RESOLVED,
        True,
        S.SUPPRESSED,
        ((E.FINDING_REOPENED, False),),
        triage="active",
        triaged_after=True,
        reopened=True,
    ),
    Case(
        "resolved-with-expired-triage-reopens",
        S.RESOLVED,
        True,
        S.REOPENED,
        ((E.FINDING_REOPENED, True), (E.TRIAGE_EXPIRED, False)),
        triage="expired",
        reopened=True,
    ),
    Case("open-absent-resolves", S.OPEN, False, S.RESOLVED, ((E.FINDING_RESOLVED, False),)),
    Case("new-absent-resolves", S.NEW, False, S.RESOLVED, ((E.FINDING_RESOLVED, False),)),
    Case("reopened-absent-resolves", S.REOPENED, False, S.RESOLVED, ((E.FINDING_RESOLVED, False),)),
    Case(
        "errored-endpoint-does-not-resolve",
        S.OPEN,
        False,
        S.OPEN,
        ((E.NOT_VERIFIED, False),),
        probed=False,
        failed=(KEY, "simple:null:0"),
        not_verified=True,
    ),
    Case(
        "failed-proving-probe-does-not-resolve",
        S.OPEN,
        False,
        S.OPEN,
        ((E.NOT_VERIFIED, False),),
        failed=(KEY,),
        not_verified=True,
    ),
    Case(
        "unrelated-probe-failure-still-resolves",
        S.OPEN,
        False,
        S.RESOLVED,
        ((E.FINDING_RESOLVED, False),),
        failed=("simple:null:0",),
    ),
    Case(
        "suppressed-absent-resolves-keeping-triage",
        S.SUPPRESSED,
        False,
        S.RESOLVED,
        ((E.FINDING_RESOLVED, False),),
        triage="active",
        triaged_after=True,
    ),
    Case(
        "suppressed-on-errored-endpoint-stays",
        S.SUPPRESSED,
        False,
        S.SUPPRESSED,
        ((E.NOT_VERIFIED, False),),
        triage="active",
        probed=False,
        triaged_after=True,
        not_verified=True,
    ),
    Case(
        "expired-triage-on-errored-endpoint-opens",
        S.SUPPRESSED,
        False,
        S.OPEN,
        ((E.NOT_VERIFIED, False), (E.TRIAGE_EXPIRED, False)),
        triage="expired",
        probed=False,
        not_verified=True,
    ),
    Case(
        "expired-triage-absent-resolves",
        S.SUPPRESSED,
        False,
        S.RESOLVED,
        ((E.FINDING_RESOLVED, False), (E.TRIAGE_EXPIRED, False)),
        triage="expired",
    ),
    Case("resolved-stays-resolved", S.RESOLVED, False, None),
    Case("resolved-on-errored-endpoint-untouched", S.RESOLVED, False, None, probed=False),
    Case(
        "resolved-loses-expired-triage",
        S.RESOLVED,
        False,
        S.RESOLVED,
        ((E.TRIAGE_EXPIRED, False),),
        triage="expired",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_transition(case: Case) -> None:
    finding = make_finding()
    previous = (
        [] if case.before is None else [make_tracked(finding, case.before, triage=case.triage)]
    )
    snapshot = EndpointSnapshot(
        endpoint_id=1,
        probed=case.probed,
        findings=(finding,) if case.present else (),
        failed_probes={key: "timeout" for key in case.failed},
    )

    diff = run_diff(previous, [snapshot])

    assert kinds(diff) == list(case.events)
    assert all(e.run_id == RUN and e.at == NOW for e in diff.events)
    assert all(e.fingerprint == finding.fingerprint for e in diff.events)
    if case.after is None:
        assert diff.findings == ()
        return
    (after,) = diff.findings
    before = previous[0] if previous else None
    assert after.fingerprint == finding.fingerprint
    assert after.status is case.after
    assert after.version == (before.version + 1 if before else 1)
    assert (after.triage is not None) is case.triaged_after
    if before is not None:
        assert after.reopen_count == before.reopen_count + (1 if case.reopened else 0)
        assert (after.reopened_at == NOW) is case.reopened
        assert after.first_seen_run == 1
    assert (after.not_verified_run == RUN) is case.not_verified
    assert after.unverified is case.not_verified
    if case.present:
        assert (after.last_seen_run, after.last_seen_at) == (RUN, NOW)
    else:
        assert before is not None
        assert (after.last_seen_run, after.last_seen_at) == (
            before.last_seen_run,
            before.last_seen_at,
        )
    if case.after is S.RESOLVED:
        assert before is not None
        expected = before.resolved_at if before.status is S.RESOLVED else NOW
        assert after.resolved_at == expected
    else:
        assert after.resolved_at is None


def test_resolution_and_not_verified_events_carry_evidence() -> None:
    finding = make_finding()
    tracked = make_tracked(finding, S.OPEN)
    headers: dict[str, HeaderLines] = {KEY: (("vary", "origin"),)}

    resolved = run_diff([tracked], [EndpointSnapshot(1, True, headers=headers)])
    (event,) = resolved.events
    assert event.before is not None
    assert event.before["finding"] == tracked.as_json()
    assert event.after == {"status": "resolved", "probes": {KEY: (("vary", "origin"),)}}

    errored = run_diff(
        [tracked], [EndpointSnapshot(1, False, failed_probes={KEY: "timeout", "x:0": "reset"})]
    )
    (event,) = errored.events
    assert event.after == {
        "status": "open",
        "probed": False,
        "failed_probes": {KEY: "timeout", "x:0": "reset"},
        "failed_total": 2,
    }


def test_endpoints_outside_the_run_are_untouched() -> None:
    here = make_finding()
    elsewhere = make_finding(url="https://api.acme.com/v2/other")
    previous = [
        make_tracked(here, S.OPEN, endpoint_id=1),
        make_tracked(elsewhere, S.OPEN, endpoint_id=2),
        make_tracked(
            make_finding(url="https://x.acme.com/"), S.SUPPRESSED, endpoint_id=3, triage="expired"
        ),
    ]
    diff = run_diff(previous, [EndpointSnapshot(1, True)])
    assert [(f.endpoint_id, f.status) for f in diff.findings] == [(1, S.RESOLVED)]
    assert {e.endpoint_id for e in diff.events} == {1}


def test_a_finding_that_moved_to_a_new_endpoint_id_is_the_same_finding() -> None:
    # Deleting and re-adding an endpoint gives it a new id, not a new defect.
    finding = make_finding()
    previous = [make_tracked(finding, S.OPEN, endpoint_id=1)]
    diff = run_diff(previous, [EndpointSnapshot(1, True), EndpointSnapshot(9, True, (finding,))])
    (after,) = diff.findings
    assert (after.endpoint_id, after.status, after.first_seen_run) == (9, S.OPEN, 1)
    assert diff.events == ()


# -- severity history --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "triage", "old", "new", "events"),
    [
        pytest.param(
            S.OPEN, None, Severity.HIGH, Severity.CRITICAL,
            [(E.SEVERITY_RAISED, True)], id="raised",
        ),
        pytest.param(
            S.OPEN, None, Severity.CRITICAL, Severity.MEDIUM,
            [(E.SEVERITY_LOWERED, False)], id="lowered",
        ),
        pytest.param(
            S.SUPPRESSED, "active", Severity.MEDIUM, Severity.CRITICAL,
            [(E.SEVERITY_RAISED, False)], id="raised-while-suppressed-is-silent",
        ),
        pytest.param(
            S.RESOLVED, None, Severity.MEDIUM, Severity.HIGH,
            [(E.FINDING_REOPENED, True)], id="reopened-higher-is-one-event",
        ),
        pytest.param(S.OPEN, None, Severity.LOW, Severity.LOW, [], id="unchanged"),
    ],
)  # fmt: skip
def test_severity_changes_are_kept_as_history(
    before: FindingStatus,
    triage: str | None,
    old: Severity,
    new: Severity,
    events: list[tuple[EventKind, bool]],
) -> None:
    finding = make_finding(severity=new)
    previous = [make_tracked(finding, before, triage=triage, severity=old)]
    diff = run_diff(previous, [EndpointSnapshot(1, True, (finding,))])
    assert kinds(diff) == events
    (after,) = diff.findings
    assert after.severity is new
    for event in diff.events:
        if event.kind is E.FINDING_REOPENED:  # the old severity travels in its before
            assert event.severity is new
            assert event.before is not None
            assert event.before["finding"]["severity"] == old.value  # type: ignore[index]
        if event.kind in (E.SEVERITY_RAISED, E.SEVERITY_LOWERED):
            assert event.severity is new
            assert event.before == {"severity": old.value, "summary": previous[0].summary}
            assert event.after == {"severity": new.value, "summary": finding.summary}


# -- a story over many runs: versions and reopen counts -------------------------------------


def test_one_row_per_fingerprint_across_runs() -> None:
    finding = make_finding()
    state: dict[str, TrackedFinding] = {}
    present_in = {1: True, 2: True, 3: False, 4: False, 5: True, 6: True, 7: False, 8: True}
    seen: list[tuple[int, FindingStatus, int, int]] = []
    for run, present in present_in.items():
        snapshot = EndpointSnapshot(1, True, (finding,) if present else ())
        diff = diff_run(
            run_id=run,
            now=NOW + run * DAY,
            previous=state,
            snapshots=[snapshot],
            previous_headers={},
        )
        for tracked in diff.findings:
            previous = state.get(tracked.fingerprint)
            assert tracked.version == (previous.version + 1 if previous else 1)
            state[tracked.fingerprint] = tracked
        (current,) = state.values()
        seen.append((run, current.status, current.version, current.reopen_count))
    assert seen == [
        (1, S.NEW, 1, 0),
        (2, S.OPEN, 2, 0),
        (3, S.RESOLVED, 3, 0),
        (4, S.RESOLVED, 3, 0),  # still gone: no write at all
        (5, S.REOPENED, 4, 1),
        (6, S.OPEN, 5, 1),
        (7, S.RESOLVED, 6, 1),
        (8, S.REOPENED, 7, 2),
    ]
    assert state[finding.fingerprint].first_seen_run == 1


# -- ruleset changes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "present", "probed", "severity", "expected", "status"),
    [
        pytest.param(None, True, True, None, [(E.RULE_CHANGE, E.FINDING_NEW)], S.NEW, id="new"),
        pytest.param(
            S.OPEN, False, True, None, [(E.RULE_CHANGE, E.FINDING_RESOLVED)], S.RESOLVED,
            id="resolved",
        ),
        pytest.param(
            S.RESOLVED, True, True, None, [(E.RULE_CHANGE, E.FINDING_REOPENED)], S.REOPENED,
            id="reopened",
        ),
        pytest.param(
            S.OPEN, True, True, Severity.LOW, [(E.RULE_CHANGE, E.SEVERITY_RAISED)], S.OPEN,
            id="severity",
        ),
        pytest.param(
            S.OPEN, False, False, None, [(E.NOT_VERIFIED, None)], S.OPEN,
            id="not-verified-is-still-not-verified",
        ),
    ],
)  # fmt: skip
def test_a_ruleset_change_is_labelled_and_never_a_regression(
    before: FindingStatus | None,
    present: bool,
    probed: bool,
    severity: Severity | None,
    expected: list[tuple[EventKind, EventKind | None]],
    status: FindingStatus,
) -> None:
    finding = make_finding()
    previous = [] if before is None else [make_tracked(finding, before, severity=severity)]
    snapshot = EndpointSnapshot(1, probed, (finding,) if present else ())
    diff = run_diff(previous, [snapshot], ruleset_changed=True)
    assert [(e.kind, e.transition) for e in diff.events] == expected
    assert diff.regressions == ()
    assert [f.status for f in diff.findings] == [status]


# -- legitimate origins newly blocked ------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "triage", "ruleset_changed", "expected"),
    [
        pytest.param(
            None, None, False,
            [(E.FINDING_NEW, True)], id="new",
        ),
        pytest.param(
            S.RESOLVED, None, False,
            [(E.FINDING_REOPENED, True)], id="reopened",
        ),
        pytest.param(S.OPEN, None, False, [], id="already-known"),
        pytest.param(
            S.RESOLVED, "active", False, [(E.FINDING_REOPENED, False)], id="triaged",
        ),
        pytest.param(
            None, None, True, [(E.RULE_CHANGE, False)], id="ruleset-changed",
        ),
    ],
)  # fmt: skip
def test_legit_origin_blocked_regression(
    before: FindingStatus | None,
    triage: str | None,
    ruleset_changed: bool,
    expected: list[tuple[EventKind, bool]],
) -> None:
    key = "simple:allowed:0"
    finding = make_finding(
        "legit_origin_blocked", origin_class="allowed", keys=(key,), severity=Severity.HIGH
    )
    previous = [] if before is None else [make_tracked(finding, before, triage=triage)]
    previous_headers = {1: {key: (("access-control-allow-origin", "{origin}"),)}}
    diff = run_diff(
        previous,
        [EndpointSnapshot(1, True, (finding,))],
        previous_headers,
        ruleset_changed=ruleset_changed,
    )
    # One root cause, one event: the finding's own, with the answer that used to work.
    assert kinds(diff) == expected
    for event in diff.events:
        assert event.rule_id == "legit_origin_blocked"
        if event.is_regression or event.kind is E.RULE_CHANGE:
            assert event.before is not None
            assert event.before["probes"] == {key: (("access-control-allow-origin", "{origin}"),)}
            assert event.after is not None
            assert event.after["severity"] == "high"


# -- header normalisation -------------------------------------------------------------------


ATTACKER = "https://k3j9.attacker.example"


@pytest.mark.parametrize(
    ("lines", "randoms", "expected"),
    [
        pytest.param(
            [("Access-Control-Allow-Origin", ATTACKER)], (),
            (("access-control-allow-origin", "{origin}"),), id="echoed-origin",
        ),
        pytest.param(
            [("access-control-allow-origin", f" {ATTACKER}/ ")], (),
            (("access-control-allow-origin", "{origin}/"),), id="origin-inside-a-value",
        ),
        pytest.param(
            [("Access-Control-Allow-Methods", "PUT, GET"), ("Access-Control-Allow-Methods", "GET")],
            (), (("access-control-allow-methods", "GET, PUT"),), id="method-list-merged-sorted",
        ),
        pytest.param(
            [("Access-Control-Allow-Headers", "X-Cors-Scanner-k3j9, Content-Type")],
            ("x-cors-scanner-k3j9",),
            (("access-control-allow-headers", "content-type, {request-header}"),),
            id="random-request-header",
        ),
        pytest.param(
            [("Vary", "Accept-Encoding, Origin"), ("Vary", "Cookie")], (),
            (("vary", "origin"),), id="vary-keeps-cors-tokens",
        ),
        pytest.param([("Vary", "Accept-Encoding")], (), (), id="vary-without-cors-tokens"),
        pytest.param(
            [("Access-Control-Allow-Origin", ATTACKER), ("Access-Control-Allow-Origin", "*")], (),
            (("access-control-allow-origin", "{origin}"), ("access-control-allow-origin", "*")),
            id="duplicate-acao-kept",
        ),
        pytest.param(
            [("Set-Cookie", "s=1"), ("Content-Type", "text/html"), ("Access-Control-Max-Age", "60"),
             ("Access-Control-Allow-Private-Network", "true")],
            (),
            (("access-control-allow-private-network", "true"), ("access-control-max-age", "60")),
            id="only-cors-headers",
        ),
    ],
)  # fmt: skip
def test_normalised_cors_headers(
    lines: list[tuple[str, str]], randoms: tuple[str, ...], expected: HeaderLines
) -> None:
    got = normalise_cors_headers(Headers.of(lines), origin=ATTACKER, random_header_names=randoms)
    assert got == expected


def test_hostile_header_values_are_cut() -> None:
    got = normalise_cors_headers(
        Headers.of([("Access-Control-Allow-Origin", "x" * 100_000)]), origin=ATTACKER
    )
    ((_, value),) = got
    assert value.startswith("x" * MAX_VALUE_CHARS)
    assert len(value) < MAX_VALUE_CHARS + 50
    assert value.endswith("more characters]")


# -- runs through assess: small pure servers ------------------------------------------------

Server = Callable[[ProbeRequest], tuple[int, list[tuple[str, str]]]]


def assessed(
    server: Server,
    *,
    token: str = "tok1",
    fail: Callable[[ProbeRequest], bool] = lambda r: False,
) -> Assessment:
    endpoint = Endpoint(URL)
    origins = probe_origins(URL, POLICY, suffixes=default_public_suffixes(), token=token)
    observations = []
    for request in plan_probes(endpoint, POLICY, origins, token=token):
        if fail(request):
            observations.append(Observation(request, error=ProbeError.TIMEOUT))
            continue
        status, headers = server(request)
        observations.append(Observation(request, status=status, headers=Headers.of(headers)))
    return assess(endpoint, POLICY, observations)


def reflector(request: ProbeRequest) -> tuple[int, list[tuple[str, str]]]:
    """Trusts everyone and echoes whatever a preflight asks for."""
    headers = [
        ("Access-Control-Allow-Origin", request.headers.combined("origin") or ""),
        ("Access-Control-Allow-Credentials", "true"),
        ("Vary", "Origin"),
    ]
    if request.kind is not ProbeKind.PREFLIGHT:
        return 200, headers
    method = request.headers.combined("access-control-request-method") or ""
    names = request.headers.combined("access-control-request-headers") or ""
    headers += [("Access-Control-Allow-Methods", method), ("Access-Control-Allow-Headers", names)]
    return 204, headers


def allowlist(
    *,
    methods: str = "GET, POST",
    vary: str | None = "Origin",
    credentials: bool = True,
    echo: Callable[[str], str] = lambda o: o,
    everywhere: tuple[str, str] | None = None,
) -> Server:
    """An exact allowlist of APP, with knobs for what changes between runs."""

    def serve(request: ProbeRequest) -> tuple[int, list[tuple[str, str]]]:
        origin = request.headers.combined("origin") or ""
        headers = [("Vary", vary)] if vary else []
        if everywhere:
            headers.append(everywhere)
        if origin == APP:
            headers.append(("Access-Control-Allow-Origin", echo(origin)))
            if credentials:
                headers.append(("Access-Control-Allow-Credentials", "true"))
            if request.kind is ProbeKind.PREFLIGHT:
                headers.append(("Access-Control-Allow-Methods", methods))
        if request.kind is ProbeKind.PREFLIGHT:
            return 204, headers
        return (404 if request.kind is ProbeKind.ERROR_PATH else 200), headers

    return serve


def test_snapshot_from_assessment() -> None:
    broken = assessed(allowlist(), fail=lambda r: r.key == "simple:null:0")
    snapshot = snapshot_from_assessment(4, broken)
    assert (snapshot.endpoint_id, snapshot.probed) == (4, True)
    assert snapshot.failed_probes == {"simple:null:0": "timeout"}
    assert "simple:null:0" not in snapshot.headers
    assert snapshot.headers["simple:allowed:0"] == (
        ("access-control-allow-credentials", "true"),
        ("access-control-allow-origin", "{origin}"),
        ("vary", "origin"),
    )
    assert snapshot.findings == broken.findings

    down = snapshot_from_assessment(4, assessed(allowlist(), fail=lambda r: True))
    assert not down.probed
    assert down.findings == ()
    assert down.headers == {}
    assert len(down.failed_probes) == len(broken.probes)


def test_new_attacker_tokens_with_the_same_server_are_no_drift() -> None:
    first = snapshot_from_assessment(1, assessed(reflector, token="aaaa1"))
    second = snapshot_from_assessment(1, assessed(reflector, token="bbbb2"))
    # The tokens were really there and really normalised away.
    reflection = next(
        p.observation.request.key
        for p in assessed(reflector).probes
        if p.observation.request.purpose is PreflightPurpose.REFLECT_HEADER
    )
    assert ("access-control-allow-headers", "{request-header}") in first.headers[reflection]
    assert ("access-control-allow-origin", "{origin}") in first.headers[KEY]
    assert first.headers == second.headers

    state = {f.fingerprint: f for f in run_diff([], [first], run_id=1).findings}
    diff = diff_run(
        run_id=2,
        now=NOW,
        previous=state,
        snapshots=[second],
        previous_headers={1: first.headers},
    )
    assert diff.events == ()
    assert {f.status for f in diff.findings} == {S.OPEN}


@pytest.mark.parametrize(
    ("before", "after", "changed"),
    [
        pytest.param(
            {}, {"methods": "GET, POST, DELETE"}, {"access-control-allow-methods"},
            id="allow-methods-changed",
        ),
        pytest.param({}, {"vary": None}, {"vary"}, id="vary-origin-removed"),
        pytest.param(
            {"credentials": False}, {"credentials": True}, {"access-control-allow-credentials"},
            id="acac-added",
        ),
        pytest.param(
            {}, {"everywhere": ("Access-Control-Expose-Headers", "X-Total")},
            {"access-control-expose-headers"}, id="expose-headers-added",
        ),
        pytest.param({}, {"methods": "POST, GET"}, set(), id="reordered-methods-no-drift"),
        pytest.param({}, {"vary": "origin"}, set(), id="vary-case-no-drift"),
        pytest.param(
            {}, {"everywhere": ("Vary", "Accept-Encoding")}, set(), id="non-cors-vary-no-drift",
        ),
    ],
)  # fmt: skip
def test_header_drift(
    before: dict[str, object], after: dict[str, object], changed: set[str]
) -> None:
    first = snapshot_from_assessment(1, assessed(allowlist(**before), token="aaaa1"))  # type: ignore[arg-type]
    second = snapshot_from_assessment(1, assessed(allowlist(**after), token="bbbb2"))  # type: ignore[arg-type]
    # Findings of the first run are known (the ACAC case starts with a blocked
    # legitimate origin), so only the drift itself is new.
    previous = [make_tracked(f, S.OPEN) for f in first.findings]
    diff = run_diff(previous, [second], {1: first.headers})
    carriers = [e for e in diff.events if e.after is not None and "changed_total" in e.after]
    if not changed:
        assert carriers == []
        return
    # One event carries the drift. Alone it is informational; with a finding
    # change (Vary removed: a new finding; ACAC added: the blocked origin's
    # fix) it rides in that finding's event, with its severity.
    (event,) = carriers
    if event.kind is E.HEADER_DRIFT:
        assert not event.is_regression
        assert (event.fingerprint, event.rule_id, event.severity) == (None, None, None)
        assert len(diff.events) == 1
    else:
        assert event.severity is not None
        assert event.is_regression is (event.kind is E.FINDING_NEW)
        assert event.kind in (E.FINDING_NEW, E.FINDING_RESOLVED)
    assert event.before is not None
    assert event.after is not None
    shown_before = event.before["probes"]
    shown_after = event.after["probes"]
    assert isinstance(shown_before, dict)
    assert isinstance(shown_after, dict)
    assert shown_before.keys() <= shown_after.keys()
    assert 0 < len(shown_after) <= MAX_DRIFT_KEYS
    assert event.after["changed_total"] >= len(shown_before)  # type: ignore[operator]
    names = {
        name for key in shown_before for name, _ in set(shown_before[key]) ^ set(shown_after[key])
    }
    assert names == changed


def test_drift_is_bounded_and_skips_probes_only_one_run_sent() -> None:
    lines: dict[str, HeaderLines] = {f"simple:k:{i}": (("vary", "origin"),) for i in range(25)}
    now_lines = {k: () for k in lines} | {"preflight:new:0": (("vary", "origin"),)}
    diff = run_diff([], [EndpointSnapshot(1, True, headers=now_lines)], {1: lines})
    (event,) = diff.events
    assert event.after is not None
    assert event.after["changed_total"] == 25
    probes = event.after["probes"]
    assert isinstance(probes, dict)
    assert len(probes) == MAX_DRIFT_KEYS
    assert "preflight:new:0" not in probes


def test_no_drift_for_an_unprobed_endpoint_or_a_first_run() -> None:
    lines: dict[str, HeaderLines] = {KEY: (("vary", "origin"),)}
    down = EndpointSnapshot(1, False, failed_probes={KEY: "reset"})
    assert run_diff([], [down], {1: lines}).events == ()
    first = EndpointSnapshot(1, True, headers={KEY: ()})
    assert run_diff([], [first], {}).events == ()


def test_drift_in_a_run_with_a_new_ruleset_is_a_rule_change() -> None:
    lines: dict[str, HeaderLines] = {KEY: (("vary", "origin"),)}
    snapshot = EndpointSnapshot(1, True, headers={KEY: ()})
    diff = run_diff([], [snapshot], {1: lines}, ruleset_changed=True)
    assert [(e.kind, e.transition, e.is_regression) for e in diff.events] == [
        (E.RULE_CHANGE, E.HEADER_DRIFT, False)
    ]


def test_previous_headers_read_back_from_json_compare_equal() -> None:
    # A store keeps the snapshot's headers as JSON: tuples come back as lists.
    lines: dict[str, HeaderLines] = {KEY: (("vary", "origin"),)}
    from_json = {1: {KEY: [["vary", "origin"]]}}
    diff = run_diff([], [EndpointSnapshot(1, True, headers=lines)], from_json)  # type: ignore[arg-type]
    assert diff.events == ()


# -- whole runs through assess -------------------------------------------------------------


def test_an_endpoint_that_errored_keeps_its_findings_until_reverified() -> None:
    run1 = snapshot_from_assessment(1, assessed(reflector, token="aaaa1"))
    state = {f.fingerprint: f for f in run_diff([], [run1], run_id=1).findings}
    reflect = next(f for f in state.values() if f.rule_id == "reflect_any_origin_credentials")
    assert reflect.severity is Severity.CRITICAL

    # Run 2: every probe times out. Nothing resolves; every live finding is marked.
    run2 = snapshot_from_assessment(1, assessed(reflector, fail=lambda r: True))
    diff2 = diff_run(
        run_id=2, now=NOW, previous=state, snapshots=[run2], previous_headers={1: run1.headers}
    )
    # Silence is news: the endpoint stopped answering, and nothing resolved.
    assert {e.kind for e in diff2.events} == {E.NOT_VERIFIED, E.ENDPOINT_UNREACHABLE}
    assert len(diff2.findings) == len(state)
    assert all(f.status is S.NEW and f.not_verified_run == 2 for f in diff2.findings)
    state |= {f.fingerprint: f for f in diff2.findings}

    # Run 3: fixed, but the exchange that proved the reflection timed out.
    run3 = snapshot_from_assessment(1, assessed(allowlist(), fail=lambda r: r.key == KEY))
    assert KEY in reflect.probe_keys
    diff3 = diff_run(
        run_id=3, now=NOW, previous=state, snapshots=[run3], previous_headers={1: run1.headers}
    )
    after3 = {f.rule_id: f for f in diff3.findings}
    assert after3["reflect_any_origin_credentials"].status is S.NEW
    assert after3["reflect_any_origin_credentials"].not_verified_run == 3
    assert after3["preflight_reflects_any_header"].status is S.RESOLVED
    state |= {f.fingerprint: f for f in diff3.findings}

    # Run 4: fixed and fully answered: now it resolves.
    run4 = snapshot_from_assessment(1, assessed(allowlist()))
    diff4 = diff_run(
        run_id=4, now=NOW, previous=state, snapshots=[run4], previous_headers={1: run3.headers}
    )
    resolved = [e for e in diff4.events if e.kind is E.FINDING_RESOLVED]
    assert [e.rule_id for e in resolved] == ["reflect_any_origin_credentials"]
    assert not resolved[0].is_regression


def test_a_legitimate_origin_newly_blocked_by_a_trailing_slash() -> None:
    good = snapshot_from_assessment(1, assessed(allowlist(), token="aaaa1"))
    assert good.findings == ()
    bad = snapshot_from_assessment(1, assessed(allowlist(echo=lambda o: o + "/"), token="bbbb2"))
    diff = run_diff([], [bad], {1: good.headers}, run_id=2)
    # One root cause, one event: the new finding, carrying the drift it caused.
    (blocked,) = [e for e in diff.events if e.rule_id == "legit_origin_blocked"]
    assert [e for e in diff.events if e.after and "changed_total" in e.after] == [blocked]
    assert all(e.kind is E.FINDING_NEW for e in diff.events)
    assert (blocked.kind, blocked.rule_id, blocked.is_regression) == (
        E.FINDING_NEW,
        "legit_origin_blocked",
        True,
    )
    assert blocked.before is not None
    assert blocked.before["probes"]["simple:allowed:0"] == (  # type: ignore[index]
        ("access-control-allow-credentials", "true"),
        ("access-control-allow-origin", "{origin}"),
        ("vary", "origin"),
    )
    assert blocked.after is not None
    assert blocked.after["changed_total"] >= 1  # type: ignore[operator]
    assert ("access-control-allow-origin", "{origin}/") in blocked.after["probes"][  # type: ignore[index]
        "simple:allowed:0"
    ]
    evidence = blocked.after["evidence"]
    assert isinstance(evidence, tuple)
    assert evidence[0]["response_headers"] == (
        ("Vary", "Origin"),
        ("Access-Control-Allow-Origin", "https://app.acme.com/"),
        ("Access-Control-Allow-Credentials", "true"),
    )


# -- determinism and validation ---------------------------------------------------------


def test_the_diff_is_deterministic_and_leaves_its_inputs_alone() -> None:
    a, b, c = (make_finding(url=f"https://api.acme.com/{n}") for n in "abc")
    previous = {
        f.fingerprint: f
        for f in (
            make_tracked(a, S.OPEN, endpoint_id=1),
            make_tracked(b, S.RESOLVED, endpoint_id=2),
            make_tracked(c, S.OPEN, endpoint_id=3, severity=Severity.LOW),
        )
    }
    snapshots = [
        EndpointSnapshot(3, True, (c,), headers={KEY: (("vary", "origin"),)}),
        EndpointSnapshot(1, True, (), headers={KEY: ()}),
        EndpointSnapshot(2, True, (b,)),
    ]
    headers: dict[int, dict[str, HeaderLines]] = {1: {KEY: (("vary", "origin"),)}, 3: {KEY: ()}}
    saved = copy.deepcopy((previous, snapshots, headers))

    forward = diff_run(
        run_id=RUN, now=NOW, previous=previous, snapshots=snapshots, previous_headers=headers
    )
    backward = diff_run(
        run_id=RUN,
        now=NOW,
        previous=dict(reversed(previous.items())),
        snapshots=snapshots[::-1],
        previous_headers=headers,
    )
    assert forward == backward
    assert (previous, snapshots, headers) == saved
    # Each endpoint's drift rides in the event of the finding change that caused it.
    assert [(e.endpoint_id, e.kind) for e in forward.events] == [
        (1, E.FINDING_RESOLVED),
        (2, E.FINDING_REOPENED),
        (3, E.SEVERITY_RAISED),
    ]
    assert [e.after is not None and "changed_total" in e.after for e in forward.events] == [
        True,
        False,
        True,
    ]
    assert [f.endpoint_id for f in forward.findings] == [1, 2, 3]


def _dup_finding() -> list[EndpointSnapshot]:
    f = make_finding()
    return [EndpointSnapshot(1, True, (f,)), EndpointSnapshot(2, True, (f,))]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"now": datetime(2026, 3, 10)}, "timezone-aware", id="naive-now"),
        pytest.param(
            {"previous": {"fp1:wrong": make_tracked(make_finding(), S.OPEN)}},
            "holds finding", id="misfiled-previous",
        ),
        pytest.param(
            {"snapshots": [EndpointSnapshot(1, True), EndpointSnapshot(1, False)]},
            "twice", id="endpoint-twice",
        ),
        pytest.param({"snapshots": _dup_finding()}, "twice", id="fingerprint-twice"),
    ],
)  # fmt: skip
def test_diff_refuses_bad_input(kwargs: dict[str, object], message: str) -> None:
    values: dict[str, object] = {
        "run_id": RUN,
        "now": NOW,
        "previous": {},
        "snapshots": [],
        "previous_headers": {},
        **kwargs,
    }
    with pytest.raises(InputError, match=message):
        diff_run(**values)  # type: ignore[arg-type]


def test_an_unprobed_endpoint_cannot_have_findings() -> None:
    with pytest.raises(InputError, match="not probed"):
        EndpointSnapshot(1, False, (make_finding(),))


def test_events_are_json_ready() -> None:
    # Events go to a JSON column and into alert payloads as they are.
    legit = make_finding("legit_origin_blocked", origin_class="allowed", keys=("simple:allowed:0",))
    previous = [
        make_tracked(make_finding(), S.SUPPRESSED, triage="expired"),
        make_tracked(make_finding(url="https://api.acme.com/b"), S.OPEN, severity=Severity.LOW),
    ]
    snapshot = EndpointSnapshot(
        1,
        True,
        (legit, make_finding(url="https://api.acme.com/b")),
        headers={"simple:allowed:0": (("vary", "origin"),)},
    )
    diff = run_diff(previous, [snapshot], {1: {"simple:allowed:0": ()}})
    assert {e.kind for e in diff.events} == {
        E.FINDING_NEW,
        E.FINDING_RESOLVED,
        E.TRIAGE_EXPIRED,
        E.SEVERITY_RAISED,
    }
    for event in diff.events:
        loaded = json.loads(json.dumps({"before": event.before, "after": event.after}))
        assert loaded["after"] is not None
    expired = next(e for e in diff.events if e.kind is E.TRIAGE_EXPIRED)
    assert expired.before is not None
    assert json.loads(json.dumps(expired.before))["triage"]["by"] == "alice"


# -- one root cause, one event; silence is an event -------------------------------------------


def test_the_fix_of_a_reflection_is_one_resolution_carrying_the_drift() -> None:
    bad = snapshot_from_assessment(1, assessed(reflector, token="aaaa1"))
    state = {f.fingerprint: f for f in run_diff([], [bad], run_id=1).findings}
    fixed = snapshot_from_assessment(1, assessed(allowlist(), token="bbbb2"))
    diff = run_diff(list(state.values()), [fixed], {1: bad.headers}, run_id=2)
    assert diff.regressions == ()
    assert {e.kind for e in diff.events} == {E.FINDING_RESOLVED}
    carriers = [e for e in diff.events if e.after and "changed_total" in e.after]
    (carrier,) = carriers
    # The most severe resolution explains the headers: the credentialed reflection.
    assert (carrier.rule_id, carrier.severity) == (
        "reflect_any_origin_credentials",
        Severity.CRITICAL,
    )


def test_drift_alone_is_informational() -> None:
    lines: dict[str, HeaderLines] = {KEY: (("vary", "origin"),)}
    diff = run_diff([], [EndpointSnapshot(1, True, headers={KEY: ()})], {1: lines})
    (event,) = diff.events
    assert (event.kind, event.is_regression, event.severity) == (E.HEADER_DRIFT, False, None)
    assert diff.regressions == ()


@pytest.mark.parametrize(
    ("answered_before", "probed", "expected"),
    [
        pytest.param(True, False, [E.ENDPOINT_UNREACHABLE], id="goes-down"),
        pytest.param(None, False, [E.ENDPOINT_UNREACHABLE], id="new-endpoint-down"),
        pytest.param(False, False, [], id="still-down-said-once"),
        pytest.param(False, True, [E.ENDPOINT_REACHABLE], id="answers-again"),
        pytest.param(True, True, [], id="still-up"),
        pytest.param(None, True, [], id="new-endpoint-up"),
    ],
)  # fmt: skip
def test_losing_and_regaining_sight_of_an_endpoint(
    answered_before: bool | None, probed: bool, expected: list[EventKind]
) -> None:
    failed = {KEY: "connect", "simple:null:0": "connect", "preflight:x:0": "host_unresponsive"}
    snapshot = (
        EndpointSnapshot(1, True, headers={KEY: ()})
        if probed
        else EndpointSnapshot(1, False, failed_probes=failed)
    )
    reachable = {} if answered_before is None else {1: answered_before}
    diff = run_diff([], [snapshot], previous_reachable=reachable)
    assert [e.kind for e in diff.events] == expected
    for event in diff.events:
        assert not event.is_regression
        assert (event.fingerprint, event.severity) == (None, None)
        assert event.after is not None
        if event.kind is E.ENDPOINT_UNREACHABLE:
            assert event.after["errors"] == {"connect": 2, "host_unresponsive": 1}
            assert event.after["failed_total"] == 3
            assert "none of 3 probes got an answer" in str(event.after["summary"])


def test_reachability_events_are_never_rule_changes() -> None:
    down = EndpointSnapshot(1, False, failed_probes={KEY: "dns"})
    diff = run_diff([], [down], ruleset_changed=True, previous_reachable={})
    assert [e.kind for e in diff.events] == [E.ENDPOINT_UNREACHABLE]
