"""A run compared with the previous run of the same scope: finding transitions and events.

``diff_run`` takes the tracked findings as they stood before the run, one
``EndpointSnapshot`` per endpoint the run covered, and the CORS headers the
previous run saw, and returns every tracked finding the run changed (version
bumped, ready for an optimistic-concurrency update) and the events to log and
alert on. Transitions, per fingerprint:

======================================  ==========================  =======================
before → this run                        after                       event (regression?)
======================================  ==========================  =======================
unknown, seen                            NEW                         finding.new (yes)
NEW / OPEN / REOPENED, seen              OPEN                        none
RESOLVED, seen                           REOPENED, reopen_count + 1  finding.reopened (yes)
SUPPRESSED, seen, triage active          SUPPRESSED                  none
SUPPRESSED, seen, triage expired         OPEN                        finding.triage_expired
RESOLVED + triage, seen, active          SUPPRESSED, reopen_count+1  finding.reopened (no)
RESOLVED + triage, seen, expired         REOPENED                    triage_expired, reopened
live, absent, re-verified                RESOLVED (triage kept)      finding.resolved (no)
live, absent, not re-verified            unchanged, not_verified     finding.not_verified (no)
endpoint not in this run                 untouched                   none
======================================  ==========================  =======================

A severity change of a seen finding adds finding.severity_raised (a
regression unless the finding is suppressed) or finding.severity_lowered,
unless the finding reopened (the reopening carries its old state).

One root cause, one event: per endpoint and run, the CORS response headers
that changed for a probe both runs sent (header drift) travel inside the
event of the finding change they caused: the most severe new, reopened or
raised finding, else the most severe resolution (a fix is good news, never a
regression), else a lowered severity. They add ``probes`` (header lines per
probe key) to ``before`` and ``after`` and ``changed_total`` to ``after``.
Only drift with no finding change is its own regression.header_drift,
informational: no severity, never a regression. A legitimate origin newly
blocked is the finding.new or finding.reopened of rule legit_origin_blocked.

Reachability: an endpoint none of whose probes got an answer
(``probed`` False: DNS failure, refused, host unresponsive, every probe
failed) adds endpoint.unreachable when it answered in its previous run (or
has none); one that answers again after such a run adds endpoint.reachable.

"Re-verified" means the endpoint answered in this run (``probed``) and none of
the probes that proved the finding last time failed: a timeout on the one
exchange that showed a reflected origin says nothing about whether the
reflection is gone.

When the ruleset changed since the previous run, findings appear and vanish
because the rules did: every event that would be new, reopened, resolved,
severity raised/lowered, legit blocked or header drift (a scanner upgrade can
also change what a probe sends) is recorded as ``finding.rule_change`` with
``transition`` naming what it stands for, never as a regression, so an upgrade
never pages anyone. The finding states change all the same.

Evidence (``before``/``after``) is bounded: at most ``MAX_EVENT_EVIDENCE``
exchanges per finding, ``MAX_DRIFT_KEYS`` probes per drift event, header
values cut at ``MAX_VALUE_CHARS``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from scanner.core.checks import Assessment
from scanner.core.findings import Evidence, Finding
from scanner.core.headers import Headers, is_cors_header
from scanner.core.lifecycle import (
    REGRESSION_KINDS,
    Event,
    EventKind,
    FindingStatus,
    JSONObject,
    JSONValue,
    TrackedFinding,
    evidence_keys,
    require_aware,
    triage_expired_event,
)
from scanner.core.observation import Observation
from scanner.core.plan import RANDOM_HEADER_PURPOSES
from scanner.errors import InputError

HeaderLines = tuple[tuple[str, str], ...]
ProbeHeaders = Mapping[str, HeaderLines]  # probe key -> normalised CORS header lines

MAX_DRIFT_KEYS = 10
MAX_EVENT_EVIDENCE = 3
MAX_VALUE_CHARS = 512

ORIGIN_PLACEHOLDER = "{origin}"
REQUEST_HEADER_PLACEHOLDER = "{request-header}"
LEGIT_RULE = "legit_origin_blocked"

# Token lists whose order and repeats mean nothing to a browser. Servers that
# build them from a hash set reorder them from one process to the next.
_LIST_HEADERS = frozenset(
    {
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-expose-headers",
        "vary",
    }
)
_CASELESS_LISTS = frozenset(
    {"access-control-allow-headers", "access-control-expose-headers", "vary"}
)
# Vary is also about compression and content negotiation, which change with
# every proxy or framework upgrade; only the tokens that key the CORS answer
# matter here.
_CORS_VARY_TOKENS = frozenset(
    {
        "*",
        "origin",
        "access-control-request-method",
        "access-control-request-headers",
        "access-control-request-private-network",
    }
)

_RULE_CHANGE_KINDS = frozenset(
    {
        EventKind.FINDING_NEW,
        EventKind.FINDING_REOPENED,
        EventKind.FINDING_RESOLVED,
        EventKind.SEVERITY_RAISED,
        EventKind.SEVERITY_LOWERED,
        EventKind.LEGIT_ORIGIN_BLOCKED,
        EventKind.HEADER_DRIFT,
    }
)


def normalise_cors_headers(
    headers: Headers, *, origin: str, random_header_names: Iterable[str] = ()
) -> HeaderLines:
    """The CORS response header lines of one exchange, comparable across runs.

    Names are lowercased; values lose surrounding whitespace; the request's
    Origin becomes ``{origin}`` wherever it appears (attacker origins carry a
    random token per run) and, in token lists, a name in
    ``random_header_names`` (the reflection preflight's random header) becomes
    ``{request-header}``. Token lists (Allow-Methods, Allow-Headers,
    Expose-Headers, Vary) are merged into one line per name, deduplicated and
    sorted; Vary keeps only its CORS tokens and is left out without any.
    Other headers keep one line per line received, since a repeated
    Access-Control-Allow-Origin is itself a defect. Lines are sorted by name,
    received order kept within a name. Values are cut at ``MAX_VALUE_CHARS``.
    """
    randoms = {n.lower() for n in random_header_names}
    lists: dict[str, dict[str, None]] = {}
    lines: list[tuple[str, str]] = []
    for name, raw in headers:
        lowered = name.lower()
        if not is_cors_header(lowered):
            continue
        value = raw.strip(" \t")
        if origin:
            value = value.replace(origin, ORIGIN_PLACEHOLDER)
        if lowered not in _LIST_HEADERS:
            lines.append((lowered, _cut(value)))
            continue
        tokens = lists.setdefault(lowered, {})
        for token in (t.strip(" \t") for t in value.split(",")):
            if not token:
                continue
            if lowered in _CASELESS_LISTS:
                token = token.lower()
            if token.lower() in randoms:
                token = REQUEST_HEADER_PLACEHOLDER
            if lowered == "vary" and token not in _CORS_VARY_TOKENS:
                continue
            tokens.setdefault(token, None)
    for lowered, tokens in lists.items():
        if lowered == "vary" and not tokens:
            continue
        lines.append((lowered, _cut(", ".join(sorted(tokens)))))
    lines.sort(key=lambda line: line[0])
    return tuple(lines)


def probe_header_lines(observation: Observation) -> HeaderLines:
    """``normalise_cors_headers`` for one observation (empty when it got no response)."""
    if not observation.ok:
        return ()
    request = observation.request
    randoms: tuple[str, ...] = ()
    if request.purpose in RANDOM_HEADER_PURPOSES:
        # The reflection preflight asks for a header named after the run's
        # random token; a server that echoes it is the same server every run.
        randoms = tuple(name for name, _ in request.cors_request.headers)
    return normalise_cors_headers(
        observation.headers, origin=request.origin.value, random_header_names=randoms
    )


@dataclass(frozen=True, slots=True)
class EndpointSnapshot:
    """What one run learnt about one endpoint, as the diff needs it.

    ``probed``: at least one probe got a response; when False, nothing about
    this endpoint may change state (and it cannot have findings).
    ``headers``: probe key -> normalised CORS response header lines, for the
    probes that got a response. ``failed_probes``: probe key -> ``ProbeError``
    value, for the probes that did not. Treat the mappings as read-only.
    """

    endpoint_id: int
    probed: bool
    findings: tuple[Finding, ...] = ()
    headers: ProbeHeaders = field(default_factory=dict, hash=False)
    failed_probes: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.probed and self.findings:
            raise InputError(f"endpoint {self.endpoint_id} has findings but was not probed")


def snapshot_from_assessment(endpoint_id: int, assessment: Assessment) -> EndpointSnapshot:
    """The snapshot of one endpoint's assessment in this run."""
    headers: dict[str, HeaderLines] = {}
    failed: dict[str, str] = {}
    for result in assessment.probes:
        obs = result.observation
        if obs.ok:
            headers[obs.request.key] = probe_header_lines(obs)
        else:
            failed[obs.request.key] = obs.error.value if obs.error else "no_response"
    return EndpointSnapshot(
        endpoint_id=endpoint_id,
        probed=assessment.reachable,
        findings=assessment.findings,
        headers=headers,
        failed_probes=failed,
    )


@dataclass(frozen=True, slots=True)
class RunDiff:
    """The outcome of comparing one run with the previous one.

    ``findings``: every tracked finding the run created or changed, version
    bumped, sorted by (endpoint id, fingerprint); findings it did not change
    are absent. ``events``: sorted by (endpoint id, kind, fingerprint).
    """

    findings: tuple[TrackedFinding, ...]
    events: tuple[Event, ...]

    @property
    def regressions(self) -> tuple[Event, ...]:
        """The events that should alert someone."""
        return tuple(e for e in self.events if e.is_regression)


def diff_run(
    *,
    run_id: int,
    now: datetime,
    previous: Mapping[str, TrackedFinding],
    snapshots: Sequence[EndpointSnapshot],
    previous_headers: Mapping[int, ProbeHeaders],
    ruleset_changed: bool = False,
    previous_reachable: Mapping[int, bool] | None = None,
) -> RunDiff:
    """Compare run ``run_id`` (finished at ``now``) with the state before it.

    ``previous``: the tracked findings by fingerprint, at least those of the
    endpoints in ``snapshots`` (others are ignored). ``snapshots``: one per
    endpoint this run covered; endpoints without one are out of scope and
    untouched. ``previous_headers``: endpoint id -> the previous run's
    ``EndpointSnapshot.headers``; an endpoint missing there gets no drift
    check. ``ruleset_changed``: the run used another ruleset than the previous
    run (see the module docstring). ``previous_reachable``: endpoint id ->
    whether its previous run got an answer from it; an endpoint missing there
    (never scanned) counts as reachable, so a new endpoint that is down is
    news. Pure: the inputs are not modified.

    Raises ``InputError`` for a naive ``now``, a ``previous`` key that is not
    its finding's fingerprint, an endpoint given twice, or a fingerprint found
    twice in one run.
    """
    require_aware(now)
    for key, tracked in previous.items():
        if key != tracked.fingerprint:
            raise InputError(f"previous[{key!r}] holds finding {tracked.fingerprint}")
    differ = _Differ(run_id, now, previous_headers, previous_reachable or {})
    scope: dict[int, EndpointSnapshot] = {}
    seen: set[str] = set()
    for snapshot in snapshots:
        if snapshot.endpoint_id in scope:
            raise InputError(f"endpoint {snapshot.endpoint_id} appears twice in the run")
        scope[snapshot.endpoint_id] = snapshot
        for finding in snapshot.findings:
            fp = finding.fingerprint
            if fp in seen:
                raise InputError(f"finding {fp} ({finding.rule_id}) appears twice in the run")
            seen.add(fp)
            differ.seen(snapshot, finding, previous.get(fp))
    for tracked in previous.values():
        covering = scope.get(tracked.endpoint_id)
        if covering is not None and tracked.fingerprint not in seen:
            differ.absent(covering, tracked)
    for snapshot in scope.values():
        differ.drift(snapshot)
        differ.reachability(snapshot)
    events = differ.events
    if ruleset_changed:
        events = [_as_rule_change(e) for e in events]
    return RunDiff(
        findings=tuple(sorted(differ.findings, key=lambda f: (f.endpoint_id, f.fingerprint))),
        events=tuple(
            sorted(
                events,
                key=lambda e: (
                    e.endpoint_id,
                    e.kind.value,
                    e.fingerprint or "",
                    e.transition.value if e.transition else "",
                ),
            )
        ),
    )


class _Differ:
    """The state of one diff: the run's facts and what it produced so far."""

    def __init__(
        self,
        run_id: int,
        now: datetime,
        previous_headers: Mapping[int, ProbeHeaders],
        previous_reachable: Mapping[int, bool],
    ) -> None:
        self.run_id = run_id
        self.now = now
        self.previous_headers = previous_headers
        self.previous_reachable = previous_reachable
        self.findings: list[TrackedFinding] = []
        self.events: list[Event] = []
        # endpoint id -> indices in ``events`` of what ``emit`` added for it, so
        # folding an endpoint's drift never scans the whole run's events.
        self.emitted: dict[int, list[int]] = {}

    def emit(
        self,
        kind: EventKind,
        endpoint_id: int,
        *,
        finding: TrackedFinding | None = None,
        before: JSONObject | None = None,
        after: JSONObject | None = None,
        regression: bool = False,
    ) -> None:
        self.emitted.setdefault(endpoint_id, []).append(len(self.events))
        self.events.append(
            Event(
                kind=kind,
                endpoint_id=endpoint_id,
                at=self.now,
                fingerprint=finding.fingerprint if finding else None,
                rule_id=finding.rule_id if finding else None,
                severity=finding.severity if finding else None,
                before=before,
                after=after,
                is_regression=regression,
                run_id=self.run_id,
            )
        )

    # -- a finding this run saw ------------------------------------------------

    def seen(
        self, snapshot: EndpointSnapshot, finding: Finding, prev: TrackedFinding | None
    ) -> None:
        endpoint_id = snapshot.endpoint_id
        if prev is None:
            tracked = TrackedFinding.first(
                finding, endpoint_id=endpoint_id, run_id=self.run_id, now=self.now
            )
            self.findings.append(tracked)
            self.emit(
                EventKind.FINDING_NEW,
                endpoint_id,
                finding=tracked,
                before=self._headers_before(endpoint_id, tracked.probe_keys) or None,
                after=_finding_json(finding),
                regression=True,
            )
            return

        expired = prev.triage is not None and not prev.triage.active(self.now)
        triage = None if expired else prev.triage
        reopened = prev.status is FindingStatus.RESOLVED
        if triage is not None:
            status = FindingStatus.SUPPRESSED
        elif reopened:
            status = FindingStatus.REOPENED
        else:
            status = FindingStatus.OPEN
        tracked = replace(
            prev,
            endpoint_id=endpoint_id,
            rule_id=finding.rule_id,
            origin_class=finding.origin_class,
            severity=finding.severity,
            status=status,
            title=finding.title,
            summary=finding.summary,
            last_seen_run=self.run_id,
            last_seen_at=self.now,
            resolved_at=None,
            reopen_count=prev.reopen_count + (1 if reopened else 0),
            reopened_at=self.now if reopened else prev.reopened_at,
            triage=triage,
            version=prev.version + 1,
            probe_keys=evidence_keys(finding),
        )
        self.findings.append(tracked)
        silenced = status is FindingStatus.SUPPRESSED
        if expired:
            self.events.append(
                triage_expired_event(prev, tracked, now=self.now, run_id=self.run_id)
            )
        if reopened:
            self.emit(
                EventKind.FINDING_REOPENED,
                endpoint_id,
                finding=tracked,
                before={
                    "finding": prev.as_json(),
                    **self._headers_before(endpoint_id, tracked.probe_keys),
                },
                after=_finding_json(finding),
                regression=not silenced,
            )
        if finding.severity != prev.severity and not reopened:
            raised = finding.severity > prev.severity
            self.emit(
                EventKind.SEVERITY_RAISED if raised else EventKind.SEVERITY_LOWERED,
                endpoint_id,
                finding=tracked,
                before={"severity": prev.severity.value, "summary": prev.summary},
                after={"severity": finding.severity.value, "summary": finding.summary},
                regression=raised and not silenced,
            )

    # -- a finding this run did not see ------------------------------------------

    def absent(self, snapshot: EndpointSnapshot, prev: TrackedFinding) -> None:
        expired = prev.triage is not None and not prev.triage.active(self.now)
        triage = None if expired else prev.triage
        status = prev.status
        if expired and status is FindingStatus.SUPPRESSED:
            status = FindingStatus.OPEN
        if status is FindingStatus.RESOLVED:
            # Still gone: nothing to re-verify, only a decision that may have run out.
            if expired:
                tracked = replace(prev, triage=None, version=prev.version + 1)
                self.findings.append(tracked)
                self.events.append(
                    triage_expired_event(prev, tracked, now=self.now, run_id=self.run_id)
                )
            return
        failed = [k for k in prev.probe_keys if k in snapshot.failed_probes]
        verified = snapshot.probed and not failed
        if verified:
            tracked = replace(
                prev,
                status=FindingStatus.RESOLVED,
                resolved_at=self.now,
                triage=triage,
                version=prev.version + 1,
            )
        else:
            tracked = replace(
                prev,
                status=status,
                triage=triage,
                not_verified_run=self.run_id,
                version=prev.version + 1,
            )
        self.findings.append(tracked)
        if expired:
            self.events.append(
                triage_expired_event(prev, tracked, now=self.now, run_id=self.run_id)
            )
        if verified:
            self.emit(
                EventKind.FINDING_RESOLVED,
                snapshot.endpoint_id,
                finding=tracked,
                before={"finding": prev.as_json()},
                after={
                    "status": tracked.status.value,
                    "probes": _bounded_lines(
                        {k: snapshot.headers[k] for k in prev.probe_keys if k in snapshot.headers}
                    ),
                },
            )
            return
        errors = (
            {k: snapshot.failed_probes[k] for k in failed}
            if snapshot.probed
            else dict(snapshot.failed_probes)
        )
        shown = sorted(errors)[:MAX_DRIFT_KEYS]
        self.emit(
            EventKind.NOT_VERIFIED,
            snapshot.endpoint_id,
            finding=tracked,
            after={
                "status": tracked.status.value,
                "probed": snapshot.probed,
                "failed_probes": {k: errors[k] for k in shown},
                "failed_total": len(errors),
            },
        )

    # -- the endpoint's headers ------------------------------------------------

    def drift(self, snapshot: EndpointSnapshot) -> None:
        before = self.previous_headers.get(snapshot.endpoint_id)
        if not before or not snapshot.probed:
            return
        changed = sorted(
            key
            for key, lines in snapshot.headers.items()
            if key in before and _lines(before[key]) != _lines(lines)
        )
        if not changed:
            return
        shown = changed[:MAX_DRIFT_KEYS]
        old = _bounded_lines({k: before[k] for k in shown})
        new = _bounded_lines({k: snapshot.headers[k] for k in shown})
        cause = self._drift_cause(snapshot.endpoint_id)
        if cause is None:
            self.emit(
                EventKind.HEADER_DRIFT,
                snapshot.endpoint_id,
                before={"probes": old},
                after={"probes": new, "changed_total": len(changed)},
            )
            return
        event = self.events[cause]
        self.events[cause] = replace(
            event,
            before={**(event.before or {}), "probes": _merged(event.before, old)},
            after={
                **(event.after or {}),
                "probes": _merged(event.after, new),
                "changed_total": len(changed),
            },
        )

    def _drift_cause(self, endpoint_id: int) -> int | None:
        """The index of the event that explains this endpoint's drift (None: drift alone)."""
        mine = self.emitted.get(endpoint_id, ())
        for kinds in _DRIFT_CAUSES:
            found = [i for i in mine if self.events[i].kind in kinds]
            if found:
                # The most severe change explains the headers best; ties: the first.
                return max(found, key=lambda i: (_rank(self.events[i]), -i))
        return None

    # -- whether the endpoint answered --------------------------------------------

    def reachability(self, snapshot: EndpointSnapshot) -> None:
        answered_before = self.previous_reachable.get(snapshot.endpoint_id, True)
        if not snapshot.probed and answered_before:
            errors: dict[str, int] = {}
            for error in snapshot.failed_probes.values():
                errors[error] = errors.get(error, 0) + 1
            shown = sorted(snapshot.failed_probes)[:MAX_DRIFT_KEYS]
            causes = ", ".join(f"{n} {e}" for e, n in sorted(errors.items()))
            total = len(snapshot.failed_probes)
            self.emit(
                EventKind.ENDPOINT_UNREACHABLE,
                snapshot.endpoint_id,
                after={
                    "probed": False,
                    "summary": f"none of {total} probes got an answer ({causes or 'no probe'})",
                    "errors": dict(sorted(errors.items())),
                    "failed_probes": {k: snapshot.failed_probes[k] for k in shown},
                    "failed_total": total,
                },
            )
        elif snapshot.probed and not answered_before:
            answered = len(snapshot.headers)
            total = answered + len(snapshot.failed_probes)
            self.emit(
                EventKind.ENDPOINT_REACHABLE,
                snapshot.endpoint_id,
                before={"probed": False},
                after={
                    "probed": True,
                    "summary": f"{answered} of {total} probes got an answer",
                    "answered_total": answered,
                    "failed_total": len(snapshot.failed_probes),
                },
            )

    def _headers_before(self, endpoint_id: int, keys: Sequence[str]) -> dict[str, JSONValue]:
        """How the previous run answered the probes that prove a finding now."""
        before = self.previous_headers.get(endpoint_id) or {}
        found = {k: before[k] for k in keys if k in before}
        return {"probes": _bounded_lines(found)} if found else {}


# Which events the drift of their endpoint folds into, tier by tier.
_DRIFT_CAUSES = (
    frozenset(REGRESSION_KINDS),
    frozenset({EventKind.FINDING_RESOLVED}),
    frozenset({EventKind.SEVERITY_LOWERED}),
)


def _rank(event: Event) -> int:
    return event.severity.rank if event.severity is not None else -1


def _as_rule_change(event: Event) -> Event:
    if event.kind not in _RULE_CHANGE_KINDS:
        return event
    return replace(event, kind=EventKind.RULE_CHANGE, transition=event.kind, is_regression=False)


def _merged(evidence: JSONObject | None, probes: Mapping[str, JSONValue]) -> dict[str, JSONValue]:
    """``evidence["probes"]`` with ``probes`` added (both bounded, as _bounded_lines)."""
    current = evidence.get("probes") if evidence else None
    out: dict[str, JSONValue] = dict(current) if isinstance(current, Mapping) else {}
    for key, lines in probes.items():
        out.setdefault(key, lines)
    return {k: out[k] for k in sorted(out)[:MAX_DRIFT_KEYS]}


def _lines(lines: Iterable[Sequence[str]]) -> HeaderLines:
    # Stored snapshots come back from JSON as lists; compare them as tuples.
    return tuple((str(line[0]), str(line[1])) for line in lines)


def _bounded_lines(probes: Mapping[str, Iterable[Sequence[str]]]) -> dict[str, JSONValue]:
    keys = sorted(probes)[:MAX_DRIFT_KEYS]
    return {k: _lines(probes[k]) for k in keys}


def _finding_json(finding: Finding) -> dict[str, JSONValue]:
    return {
        "severity": finding.severity.value,
        "title": finding.title,
        "summary": finding.summary,
        "credentialed": finding.credentialed,
        "evidence": tuple(_evidence_json(e) for e in finding.evidence[:MAX_EVENT_EVIDENCE]),
        "evidence_total": len(finding.evidence),
    }


def _evidence_json(e: Evidence) -> dict[str, JSONValue]:
    return {
        "probe": e.probe_key,
        "origin": _cut(e.origin),
        "origin_kind": e.origin_kind,
        "method": e.method,
        "url": _cut(e.url),
        "status": e.status,
        "error": e.error,
        "verdict": _cut(e.verdict),
        "response_headers": tuple(
            (name, _cut(value)) for name, value in e.response_headers if is_cors_header(name)
        ),
    }


def _cut(text: str) -> str:
    if len(text) <= MAX_VALUE_CHARS:
        return text
    return f"{text[:MAX_VALUE_CHARS]}…[{len(text) - MAX_VALUE_CHARS} more characters]"


__all__ = [
    "MAX_DRIFT_KEYS",
    "MAX_EVENT_EVIDENCE",
    "MAX_VALUE_CHARS",
    "ORIGIN_PLACEHOLDER",
    "REQUEST_HEADER_PLACEHOLDER",
    "EndpointSnapshot",
    "Event",
    "EventKind",
    "HeaderLines",
    "ProbeHeaders",
    "RunDiff",
    "diff_run",
    "is_cors_header",
    "normalise_cors_headers",
    "probe_header_lines",
    "snapshot_from_assessment",
]
