"""The life of a finding across runs: one row per fingerprint, its states and triage.

A finding is identified by its fingerprint (endpoint, rule, origin class), so
the same defect seen night after night is one ``TrackedFinding`` that moves
between states::

    (absent before) ──seen──▶ NEW ──seen──▶ OPEN ◀──seen── REOPENED
                               │             │                 ▲
                               └──absent & verified──▶ RESOLVED┘ (seen again)

    NEW / OPEN / REOPENED ──suppress()──▶ SUPPRESSED ──unsuppress() or expiry──▶ OPEN

Rules (DefectDojo's lessons, service-design.md §2):

- A finding resolves only in a run that re-verified it: its endpoint answered
  and none of the probes that proved it last time failed. Otherwise it keeps
  its state and is marked not verified in that run.
- Triage (suppressed as a false positive or won't-fix, or risk accepted) is a
  decision about the fingerprint and survives rescans: a suppressed finding
  that is seen again stays suppressed and raises no alert; one that disappears
  resolves but keeps its triage, so if it comes back before the triage expires
  it is suppressed again, silently. When the triage expires the finding is
  open again (or reopened, if it had resolved and is seen again).
- Every change bumps ``version``: the store updates a row only where the
  version it read is still current (optimistic concurrency), so a triage
  decision made while a run was being finalised is never overwritten by a
  stale copy (DefectDojo PR 12249).

The run-to-run comparison that drives these transitions is
``scanner.core.diff.diff_run``; this module holds the values, the events, and
the transitions a person triggers (suppress, unsuppress) or the clock does
(triage expiry). Nothing here reads the clock: ``now`` is always a parameter,
and every datetime must be timezone-aware.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TypeAlias

from scanner.core.findings import Finding
from scanner.core.severity import Severity
from scanner.errors import Conflict, FieldError, InputError, ValidationError

# What event evidence is made of: values json.dumps and the database's JSON
# columns accept as they are (tuples serialise as arrays).
JSONValue: TypeAlias = (
    "str | int | float | bool | Sequence[JSONValue] | Mapping[str, JSONValue] | None"
)
JSONObject: TypeAlias = Mapping[str, JSONValue]


class FindingStatus(StrEnum):
    """Where a tracked finding stands.

    NEW and REOPENED last one run: seen again, the finding is OPEN.
    """

    NEW = "new"  # first seen in the latest run that saw it
    OPEN = "open"  # seen in at least two runs in a row
    RESOLVED = "resolved"  # absent from a run that re-verified its endpoint
    REOPENED = "reopened"  # resolved before, seen again
    SUPPRESSED = "suppressed"  # present, with an active triage decision: no alerts

    @property
    def live(self) -> bool:
        """The defect is (as far as we last knew) still there."""
        return self is not FindingStatus.RESOLVED


# What people mean by "open": every finding that is there and nobody silenced,
# whether this is its first run (new), a later one (open) or its comeback
# (reopened). /metrics counts the same three as open.
OPEN_STATUSES = (FindingStatus.NEW, FindingStatus.OPEN, FindingStatus.REOPENED)
STATUS_FILTER_NAMES = tuple(s.value for s in FindingStatus)


def statuses_named(names: Sequence[str]) -> tuple[FindingStatus, ...]:
    """The statuses a filter's names select: ``open`` is new + open + reopened.

    Others name themselves (``new`` alone is only first sightings). Order
    kept, no repeats; ``InputError`` for an unknown name.
    """
    out: dict[FindingStatus, None] = {}
    for name in names:
        if name not in STATUS_FILTER_NAMES:
            raise InputError(
                f"unknown finding status {name!r}: use {', '.join(STATUS_FILTER_NAMES)}"
            )
        chosen = OPEN_STATUSES if name == FindingStatus.OPEN.value else (FindingStatus(name),)
        out.update(dict.fromkeys(chosen))
    return tuple(out)


class TriageKind(StrEnum):
    """Why a person silenced a finding."""

    SUPPRESSED = "suppressed"  # a false positive, or won't fix: may be permanent
    ACCEPTED = "accepted"  # a real risk, accepted for a while: must expire


@dataclass(frozen=True, slots=True)
class Triage:
    """A person's decision about one finding: who, why, when, and until when.

    ``until`` is exclusive: the triage is active while ``now < until``. It may
    be None (no expiry) only for ``SUPPRESSED``: an accepted risk is a bet
    that has to be looked at again, so it always carries an expiry.
    Raises ``ValidationError`` naming every bad field.
    """

    kind: TriageKind
    by: str
    reason: str
    at: datetime
    until: datetime | None = None

    def __post_init__(self) -> None:
        errors: list[FieldError] = []
        if not self.by.strip():
            errors.append(FieldError("by", "say who made the decision"))
        if not self.reason.strip():
            errors.append(FieldError("reason", "say why"))
        if not _aware(self.at):
            errors.append(FieldError("at", "must be timezone-aware"))
        if self.until is not None:
            if not _aware(self.until):
                errors.append(FieldError("until", "must be timezone-aware"))
            elif _aware(self.at) and self.until <= self.at:
                errors.append(FieldError("until", "must be later than the decision"))
        elif self.kind is TriageKind.ACCEPTED:
            errors.append(FieldError("until", "an accepted risk needs an expiry date"))
        if errors:
            raise ValidationError(errors)

    def active(self, now: datetime) -> bool:
        """The decision still holds at ``now``."""
        return self.until is None or now < self.until

    def as_json(self) -> dict[str, JSONValue]:
        """Evidence form, for events."""
        return {
            "kind": self.kind.value,
            "by": self.by,
            "reason": self.reason,
            "at": self.at.isoformat(),
            "until": self.until.isoformat() if self.until else None,
        }


@dataclass(frozen=True, slots=True)
class TrackedFinding:
    """One finding across runs, keyed by its fingerprint.

    Runs are the store's run ids; ``*_at`` are timezone-aware datetimes.
    ``probe_keys`` are the probes (``ProbeRequest.key``, stable across runs)
    whose exchanges proved it when it was last seen: if one of them fails in a
    later run, the finding's absence proves nothing, so it is not resolved.
    ``not_verified_run`` is the last run in which it could not be re-verified.
    ``resolved_at`` is set exactly when the status is RESOLVED; ``reopened_at``
    is the last time it came back (an SLA clock restarts there).
    ``version`` starts at 1 and grows by one with every change.
    """

    fingerprint: str
    endpoint_id: int
    rule_id: str
    origin_class: str
    severity: Severity
    status: FindingStatus
    title: str
    summary: str
    first_seen_run: int
    last_seen_run: int
    first_seen_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None = None
    reopen_count: int = 0
    triage: Triage | None = None
    version: int = 1
    not_verified_run: int | None = None
    reopened_at: datetime | None = None
    probe_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.resolved_at is not None) != (self.status is FindingStatus.RESOLVED):
            raise InputError(
                f"finding {self.fingerprint}: resolved_at must be set exactly when it is resolved"
            )
        if self.status is FindingStatus.SUPPRESSED and self.triage is None:
            raise InputError(f"finding {self.fingerprint}: suppressed without a triage decision")
        if self.triage is not None and self.status not in (
            FindingStatus.SUPPRESSED,
            FindingStatus.RESOLVED,
        ):
            raise InputError(
                f"finding {self.fingerprint}: a {self.status} finding cannot carry a triage decision"
            )
        if self.version < 1:
            raise InputError(f"finding {self.fingerprint}: version starts at 1")

    @classmethod
    def first(
        cls, finding: Finding, *, endpoint_id: int, run_id: int, now: datetime
    ) -> TrackedFinding:
        """A finding seen for the first time, in run ``run_id``: NEW, version 1."""
        return cls(
            fingerprint=finding.fingerprint,
            endpoint_id=endpoint_id,
            rule_id=finding.rule_id,
            origin_class=finding.origin_class,
            severity=finding.severity,
            status=FindingStatus.NEW,
            title=finding.title,
            summary=finding.summary,
            first_seen_run=run_id,
            last_seen_run=run_id,
            first_seen_at=now,
            last_seen_at=now,
            probe_keys=evidence_keys(finding),
        )

    @property
    def unverified(self) -> bool:
        """Live, but the latest run that covered it could not re-verify it."""
        return (
            self.status.live
            and self.not_verified_run is not None
            and self.not_verified_run > self.last_seen_run
        )

    def as_json(self) -> dict[str, JSONValue]:
        """Evidence form of its state, for events."""
        return {
            "status": self.status.value,
            "severity": self.severity.value,
            "summary": self.summary,
            "last_seen_run": self.last_seen_run,
            "last_seen_at": self.last_seen_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "reopen_count": self.reopen_count,
            "triage": self.triage.as_json() if self.triage else None,
        }


class EventKind(StrEnum):
    """What happened to a finding or an endpoint. Values are public (alert types)."""

    FINDING_NEW = "finding.new"
    FINDING_REOPENED = "finding.reopened"
    FINDING_RESOLVED = "finding.resolved"
    SEVERITY_RAISED = "finding.severity_raised"
    SEVERITY_LOWERED = "finding.severity_lowered"
    TRIAGE_EXPIRED = "finding.triage_expired"
    NOT_VERIFIED = "finding.not_verified"
    RULE_CHANGE = "finding.rule_change"
    SUPPRESSED = "finding.suppressed"
    UNSUPPRESSED = "finding.unsuppressed"
    # Retired: a blocked legitimate origin is the ``finding.new``/``finding.reopened``
    # of rule legit_origin_blocked (one root cause, one event); kept for history.
    LEGIT_ORIGIN_BLOCKED = "regression.legit_origin_blocked"
    # CORS headers changed with no finding changing: informational, never a regression.
    HEADER_DRIFT = "regression.header_drift"
    ENDPOINT_UNREACHABLE = "endpoint.unreachable"
    ENDPOINT_REACHABLE = "endpoint.reachable"


# The kinds that may page someone. Each is a regression only when nobody
# silenced it and the run used the same ruleset as the one before. Header
# drift is not one: drift that comes with a finding travels inside that
# finding's event, and drift alone changed nothing a browser enforces.
REGRESSION_KINDS = frozenset(
    {
        EventKind.FINDING_NEW,
        EventKind.FINDING_REOPENED,
        EventKind.SEVERITY_RAISED,
        EventKind.LEGIT_ORIGIN_BLOCKED,
    }
)

# Losing sight of an endpoint, and seeing it again: monitoring events, about no
# finding, delivered whatever severity a hook filters on.
ENDPOINT_KINDS = frozenset({EventKind.ENDPOINT_UNREACHABLE, EventKind.ENDPOINT_REACHABLE})


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, for the event log, alerts and the regression API.

    ``fingerprint``, ``rule_id`` and ``severity`` are None for endpoint events
    (header drift alone, unreachable, reachable). ``before`` and ``after`` are JSON-ready evidence (treat
    them as read-only); their shape depends on the kind. ``run_id`` is None for
    events a person or the clock caused outside a run. For ``RULE_CHANGE``,
    ``transition`` names the event it stands for (``finding.new``...): the
    same change, not alerted, because the ruleset changed in that run.
    """

    kind: EventKind
    endpoint_id: int
    at: datetime
    fingerprint: str | None = None
    rule_id: str | None = None
    severity: Severity | None = None
    before: JSONObject | None = field(default=None, hash=False)
    after: JSONObject | None = field(default=None, hash=False)
    is_regression: bool = False
    run_id: int | None = None
    transition: EventKind | None = None

    def __post_init__(self) -> None:
        if self.is_regression and self.kind not in REGRESSION_KINDS:
            raise InputError(f"a {self.kind} event is never a regression")
        if (self.transition is not None) != (self.kind is EventKind.RULE_CHANGE):
            raise InputError("transition is set exactly on rule_change events")


@dataclass(frozen=True, slots=True)
class Transition:
    """A finding after a change, and the event that records the change."""

    finding: TrackedFinding
    event: Event


def suppress(finding: TrackedFinding, triage: Triage) -> Transition:
    """Silence a live finding (NEW, OPEN, REOPENED) as of ``triage.at``.

    Re-triaging a SUPPRESSED finding replaces its decision (a new reason, a
    later expiry, another kind). A RESOLVED finding raises ``Conflict``: there
    is nothing to silence, and a decision about a defect nobody sees now would
    be taken blind; if it comes back, triage it then.
    """
    if finding.status is FindingStatus.RESOLVED:
        raise Conflict(f"finding {finding.fingerprint} is resolved: there is nothing to suppress")
    after = replace(
        finding, status=FindingStatus.SUPPRESSED, triage=triage, version=finding.version + 1
    )
    return Transition(
        after,
        _event(
            EventKind.SUPPRESSED,
            after,
            at=triage.at,
            before={"status": finding.status.value, "triage": _triage_json(finding.triage)},
            after={"status": after.status.value, "triage": triage.as_json()},
        ),
    )


def unsuppress(finding: TrackedFinding, *, by: str, now: datetime, reason: str = "") -> Transition:
    """Withdraw a finding's triage decision.

    A SUPPRESSED finding is OPEN again; a RESOLVED one stays resolved but
    would alert if it came back. A finding without triage raises ``Conflict``.
    """
    require_aware(now)
    if not by.strip():
        raise ValidationError([FieldError("by", "say who withdrew the decision")])
    if finding.triage is None:
        raise Conflict(f"finding {finding.fingerprint} has no triage decision to withdraw")
    status = FindingStatus.OPEN if finding.status is FindingStatus.SUPPRESSED else finding.status
    after = replace(finding, status=status, triage=None, version=finding.version + 1)
    return Transition(
        after,
        _event(
            EventKind.UNSUPPRESSED,
            after,
            at=now,
            before={"status": finding.status.value, "triage": finding.triage.as_json()},
            after={"status": status.value, "by": by, "reason": reason},
        ),
    )


def expire_triage(finding: TrackedFinding, now: datetime) -> Transition | None:
    """End a triage decision whose expiry has passed; None when there is none to end.

    A SUPPRESSED finding becomes OPEN (it was present when last seen); a
    RESOLVED one stays resolved and loses the decision. For the periodic sweep
    between runs; ``diff_run`` applies the same rule to the findings it covers.
    """
    require_aware(now)
    if finding.triage is None or finding.triage.active(now):
        return None
    status = FindingStatus.OPEN if finding.status is FindingStatus.SUPPRESSED else finding.status
    after = replace(finding, status=status, triage=None, version=finding.version + 1)
    return Transition(after, triage_expired_event(finding, after, now=now))


def triage_expired_event(
    before: TrackedFinding, after: TrackedFinding, *, now: datetime, run_id: int | None = None
) -> Event:
    """The TRIAGE_EXPIRED event for a finding whose decision ended at ``now``."""
    return _event(
        EventKind.TRIAGE_EXPIRED,
        after,
        at=now,
        run_id=run_id,
        before={"status": before.status.value, "triage": _triage_json(before.triage)},
        after={"status": after.status.value},
    )


def evidence_keys(finding: Finding) -> tuple[str, ...]:
    """The probe keys of a finding's evidence, in order, without repeats."""
    return tuple(dict.fromkeys(e.probe_key for e in finding.evidence))


def _event(
    kind: EventKind,
    finding: TrackedFinding,
    *,
    at: datetime,
    before: JSONObject | None,
    after: JSONObject | None,
    run_id: int | None = None,
) -> Event:
    return Event(
        kind=kind,
        endpoint_id=finding.endpoint_id,
        at=at,
        fingerprint=finding.fingerprint,
        rule_id=finding.rule_id,
        severity=finding.severity,
        before=before,
        after=after,
        run_id=run_id,
    )


def _triage_json(triage: Triage | None) -> JSONValue:
    return triage.as_json() if triage else None


def _aware(when: datetime) -> bool:
    return when.tzinfo is not None and when.tzinfo.utcoffset(when) is not None


def require_aware(when: datetime, name: str = "now") -> None:
    """Raise ``InputError`` unless ``when`` is timezone-aware (naive times are ambiguous)."""
    if not _aware(when):
        raise InputError(f"{name} must be a timezone-aware datetime")


__all__ = [
    "ENDPOINT_KINDS",
    "OPEN_STATUSES",
    "REGRESSION_KINDS",
    "STATUS_FILTER_NAMES",
    "Event",
    "EventKind",
    "FindingStatus",
    "JSONObject",
    "JSONValue",
    "TrackedFinding",
    "Transition",
    "Triage",
    "TriageKind",
    "evidence_keys",
    "expire_triage",
    "require_aware",
    "statuses_named",
    "suppress",
    "triage_expired_event",
    "unsuppress",
]
