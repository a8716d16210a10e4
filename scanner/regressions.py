"""A finished run compared with the previous one: findings, events and alerts, in one transaction.

:func:`apply_run_diff` is what run finalisation calls, inside its own
transaction: it rebuilds one ``EndpointSnapshot`` per endpoint of the run
from the stored scan rows (``scan_endpoints``, ``scan_exchanges``,
``scan_findings``), loads the tracked findings of those endpoints and the
CORS headers each endpoint answered in its previous run, runs the pure
``scanner.core.diff.diff_run``, and writes the changed findings (version
guarded), the events, and the outbox deliveries for every hook that wants
them. Nothing is committed here: if the caller's transaction rolls back,
findings, events and deliveries all vanish together, so an alert is never
sent for a diff that was not recorded, and a recorded diff never misses its
alerts.

The previous run of an endpoint is the latest finished run before this one
that covered it (of the same schedule when runs carry one) and got an answer
from it. An endpoint with no previous run is a *baseline*: its findings and
events are recorded, but nothing is alerted (the first scan of an API is an
inventory, not news).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scanner.alerts.envelope import AlertEvent, EndpointRef, EventType, api_links
from scanner.alerts.outbox import OutgoingEvent, enqueue_events
from scanner.core.diff import (
    EndpointSnapshot,
    HeaderLines,
    ProbeHeaders,
    diff_run,
    normalise_cors_headers,
)
from scanner.core.findings import Finding
from scanner.core.headers import Headers
from scanner.core.lifecycle import ENDPOINT_KINDS, Event, EventKind
from scanner.core.plan import RANDOM_HEADER_PURPOSES
from scanner.db import findings as store
from scanner.db.leases import database_time
from scanner.db.runs import RunStatus, stored_finding, stream_exchanges, unpack_snapshot
from scanner.db.tables import (
    EndpointRow,
    EndpointTagRow,
    RunEndpointRow,
    RunExchangeRow,
    RunFindingRow,
    RunRow,
)
from scanner.errors import NotFound

# Events that are news even when they are not regressions: the good news that
# closes an alert (PagerDuty resolves on it) and what a team may subscribe to.
# Regression kinds that the diff did not flag (a silenced finding) never go out.
_ROUTED_NON_REGRESSIONS = frozenset(
    {
        EventKind.FINDING_RESOLVED,
        EventKind.SEVERITY_LOWERED,
        EventKind.TRIAGE_EXPIRED,
        EventKind.NOT_VERIFIED,
        EventKind.RULE_CHANGE,
        EventKind.HEADER_DRIFT,
        *ENDPOINT_KINDS,
    }
)


@dataclass(frozen=True, slots=True)
class DiffOutcome:
    """What :func:`apply_run_diff` wrote.

    ``baseline_endpoints``: endpoints seen for the first time (nothing alerted
    for them but an outage). ``endpoints_total`` / ``endpoints_unreachable``:
    how many endpoints the run covered, and how many of them no probe got an
    answer from. Ids are row ids of ``finding_events`` and ``hook_deliveries``.
    """

    run_id: int
    findings_changed: int
    event_ids: tuple[int, ...]
    regression_ids: tuple[int, ...]
    delivery_ids: tuple[int, ...]
    baseline_endpoints: tuple[int, ...]
    endpoints_total: int = 0
    endpoints_unreachable: int = 0
    # Why the unreachable endpoints were: probe error -> how many probes had it.
    unreachable_errors: tuple[tuple[str, int], ...] = ()


# -- snapshots from stored rows ------------------------------------------------------


class StoredProbe(Protocol):
    """The fields of a stored exchange the diff reads (``scanner.db.runs.RunProbeRecord``)."""

    @property
    def probe_key(self) -> str: ...
    @property
    def purpose(self) -> str | None: ...
    @property
    def origin(self) -> str: ...
    @property
    def status(self) -> int | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def request_headers(self) -> Any: ...
    @property
    def response_headers(self) -> Any: ...


def _random_header_names(row: StoredProbe) -> tuple[str, ...]:
    # The reflection preflight asks for a header named after the run's random
    # token; the request lists it in Access-Control-Request-Headers.
    if row.purpose not in RANDOM_HEADER_PURPOSES:
        return ()
    names: list[str] = []
    for name, value in row.request_headers or ():
        if str(name).lower() == "access-control-request-headers":
            names.extend(n.strip() for n in str(value).split(",") if n.strip())
    return tuple(names)


def probe_headers(row: StoredProbe) -> HeaderLines | None:
    """The normalised CORS headers of a stored exchange; None when it got no response."""
    if row.error is not None or row.status is None:
        return None
    headers = Headers.of((str(n), str(v)) for n, v in (row.response_headers or ()))
    return normalise_cors_headers(
        headers, origin=row.origin, random_header_names=_random_header_names(row)
    )


async def _exchange_views(
    session: AsyncSession, run_id: int, endpoint_ids: Sequence[int]
) -> dict[int, tuple[dict[str, HeaderLines], dict[str, str]]]:
    """endpoint id -> (probe key -> CORS lines, probe key -> error) of a run's stored exchanges.

    From the snapshot the worker stored with them (built from the assessment it
    held); rows the migration packed have none, and are normalised from their body.
    """
    out: dict[int, tuple[dict[str, HeaderLines], dict[str, str]]] = {}
    if not endpoint_ids:
        return out
    rows = await session.execute(
        select(RunExchangeRow.endpoint_id, RunExchangeRow.snapshot).where(
            RunExchangeRow.scan_id == run_id,
            RunExchangeRow.endpoint_id.in_(list(endpoint_ids)),
        )
    )
    unpacked: list[int] = []
    for endpoint_id, snapshot in rows.all():
        if snapshot is None:
            unpacked.append(endpoint_id)
        else:
            out[endpoint_id] = unpack_snapshot(snapshot)
    if unpacked:
        async for exchanges in stream_exchanges(session, run_id, unpacked):
            headers: dict[str, HeaderLines] = {}
            failed: dict[str, str] = {}
            for probe in exchanges:
                lines = probe_headers(probe)
                if lines is None:
                    failed[probe.probe_key] = probe.error or "no_response"
                else:
                    headers[probe.probe_key] = lines
            out[exchanges[0].endpoint_id] = (headers, failed)
    return out


async def run_snapshots(
    session: AsyncSession, run_id: int, endpoint_ids: Sequence[int] | None = None
) -> list[EndpointSnapshot]:
    """One snapshot per endpoint the run stored a result for (of ``endpoint_ids``), by id."""
    query = select(RunEndpointRow).where(RunEndpointRow.scan_id == run_id)
    if endpoint_ids is not None:
        query = query.where(RunEndpointRow.endpoint_id.in_(list(endpoint_ids)))
    endpoints = {row.endpoint_id: row for row in (await session.execute(query)).scalars()}
    views = await _exchange_views(session, run_id, list(endpoints))
    found: dict[int, list[Finding]] = {e: [] for e in endpoints}
    seen: set[str] = set()
    if endpoints:
        rows = await session.execute(
            select(RunFindingRow)
            .where(
                RunFindingRow.scan_id == run_id,
                RunFindingRow.endpoint_id.in_(list(endpoints)),
            )
            .order_by(RunFindingRow.id)
        )
        for row in rows.scalars():
            endpoint = endpoints[row.endpoint_id]
            if not endpoint.reachable or row.fingerprint in seen:
                continue
            seen.add(row.fingerprint)
            found[row.endpoint_id].append(stored_finding(row, endpoint.method, endpoint.url))
    return [
        EndpointSnapshot(
            endpoint_id=endpoint_id,
            probed=endpoint.reachable,
            findings=tuple(found[endpoint_id]),
            headers=views.get(endpoint_id, ({}, {}))[0],
            failed_probes=views.get(endpoint_id, ({}, {}))[1],
        )
        for endpoint_id, endpoint in sorted(endpoints.items())
    ]


# -- the previous run ------------------------------------------------------------


def _finished(run: type[RunRow]) -> Any:
    # Runs finalised by the worker carry finalized_at (issue 4); older ones
    # only their final status.
    finalized = RunRow.__table__.c.get("finalized_at")
    done = run.status == RunStatus.COMPLETED.value
    return done if finalized is None else (done | finalized.is_not(None))


async def _previous_runs(
    session: AsyncSession, run_id: int, endpoint_ids: Sequence[int], *, reachable_only: bool
) -> dict[int, int]:
    """endpoint id -> the latest earlier finished run of the same scope that covered it."""
    if not endpoint_ids:
        return {}
    conditions = [
        RunEndpointRow.endpoint_id.in_(list(endpoint_ids)),
        RunEndpointRow.scan_id < run_id,
        _finished(RunRow),
    ]
    schedule = RunRow.__table__.c.get("schedule_id")
    if schedule is not None:
        current = (
            await session.execute(select(schedule).where(RunRow.id == run_id))
        ).scalar_one_or_none()
        if current is not None:
            conditions.append(schedule == current)
    if reachable_only:
        conditions.append(RunEndpointRow.reachable.is_(True))
    query = (
        select(RunEndpointRow.endpoint_id, func.max(RunEndpointRow.scan_id))
        .join(RunRow, RunRow.id == RunEndpointRow.scan_id)
        .where(and_(*conditions))
        .group_by(RunEndpointRow.endpoint_id)
    )
    return {endpoint: run for endpoint, run in (await session.execute(query)).all()}


async def previous_headers(
    session: AsyncSession, run_id: int, endpoint_ids: Sequence[int]
) -> dict[int, ProbeHeaders]:
    """endpoint id -> the CORS headers of its previous answered run (absent: no drift check)."""
    runs = await _previous_runs(session, run_id, endpoint_ids, reachable_only=True)
    out: dict[int, dict[str, HeaderLines]] = {}
    by_run: dict[int, list[int]] = {}
    for endpoint_id, previous in runs.items():
        by_run.setdefault(previous, []).append(endpoint_id)
    for previous, ids in sorted(by_run.items()):
        for endpoint_id, (lines, _failed) in (
            await _exchange_views(session, previous, ids)
        ).items():
            if lines:
                out[endpoint_id] = lines
    return dict(out)


async def previous_reachability(
    session: AsyncSession, run_id: int, previous: dict[int, int]
) -> dict[int, bool]:
    """endpoint id -> whether its previous run (``previous``: endpoint -> run) got an answer."""
    out: dict[int, bool] = {}
    by_run: dict[int, list[int]] = {}
    for endpoint_id, run in previous.items():
        by_run.setdefault(run, []).append(endpoint_id)
    for run, ids in by_run.items():
        rows = await session.execute(
            select(RunEndpointRow.endpoint_id, RunEndpointRow.reachable).where(
                RunEndpointRow.scan_id == run, RunEndpointRow.endpoint_id.in_(ids)
            )
        )
        out.update({endpoint_id: bool(reachable) for endpoint_id, reachable in rows.all()})
    return out


# -- endpoints as alerts name them ---------------------------------------------------


async def endpoint_refs(
    session: AsyncSession, run_id: int | None, endpoint_ids: Iterable[int]
) -> dict[int, EndpointRef]:
    """Inventory details of endpoints (the run's stored method and URL for deleted ones)."""
    ids = sorted(set(endpoint_ids))
    if not ids:
        return {}
    refs: dict[int, EndpointRef] = {}
    tags: dict[int, list[str]] = {}
    for endpoint_id, tag in (
        await session.execute(
            select(EndpointTagRow.endpoint_id, EndpointTagRow.tag)
            .where(EndpointTagRow.endpoint_id.in_(ids))
            .order_by(EndpointTagRow.tag)
        )
    ).all():
        tags.setdefault(endpoint_id, []).append(tag)
    for row in (
        await session.execute(select(EndpointRow).where(EndpointRow.id.in_(ids)))
    ).scalars():
        refs[row.id] = EndpointRef(
            row.id, row.method, row.url, row.owner, tuple(tags.get(row.id, ()))
        )
    missing = [i for i in ids if i not in refs]
    if missing and run_id is not None:
        rows = await session.execute(
            select(RunEndpointRow).where(
                RunEndpointRow.scan_id == run_id, RunEndpointRow.endpoint_id.in_(missing)
            )
        )
        for stored in rows.scalars():
            refs[stored.endpoint_id] = EndpointRef(stored.endpoint_id, stored.method, stored.url)
    for endpoint_id in ids:
        refs.setdefault(endpoint_id, EndpointRef(endpoint_id, "GET", "(deleted endpoint)"))
    return refs


def routed(event: Event) -> bool:
    """The event goes to hooks (whose filters then decide)."""
    return event.is_regression or event.kind in _ROUTED_NON_REGRESSIONS


# -- the diff ------------------------------------------------------------------


async def apply_run_diff(
    session: AsyncSession,
    run_id: int,
    *,
    now: datetime | None = None,
    base_url: str | None = None,
    ruleset_changed: bool | None = None,
) -> DiffOutcome:
    """Diff run ``run_id`` against the state before it and write the outcome (no commit).

    Call inside the transaction that finalises the run. ``now`` (default: the database
    clock) is when the run counts as finished; ``base_url`` makes alert links
    absolute. ``ruleset_changed``: None (the default) compares the ruleset
    each endpoint's previous run recorded with this run's, so differences after
    a rule change are ``finding.rule_change`` events; True or False forces it.
    ``NotFound`` for an unknown run; ``Conflict`` when a tracked finding changed
    under us (a concurrent triage): roll back and retry.
    """
    when = now or await database_time(session)
    run = await session.get(RunRow, run_id)
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    all_ids = list(
        (
            await session.execute(
                select(RunEndpointRow.endpoint_id)
                .where(RunEndpointRow.scan_id == run_id)
                .order_by(RunEndpointRow.endpoint_id)
            )
        ).scalars()
    )
    changed = 0
    event_ids: list[int] = []
    regression_ids: list[int] = []
    outgoing: list[OutgoingEvent] = []
    baseline: set[int] = set()
    endpoints_total = 0
    unreachable: list[EndpointSnapshot] = []
    # Endpoint by endpoint, a chunk at a time: the diff is per endpoint (a
    # fingerprint belongs to one), so the result is the same as one pass while
    # memory holds one chunk's snapshots, whatever the run's size. Only the
    # outgoing events are kept to the end: a Slack hook gets one message per run.
    for start in range(0, len(all_ids), _DIFF_CHUNK):
        chunk = all_ids[start : start + _DIFF_CHUNK]
        snapshots = await run_snapshots(session, run_id, chunk)
        previous = await store.load_tracked(session, chunk)
        before = await previous_headers(session, run_id, chunk)
        covered = await _previous_runs(session, run_id, chunk, reachable_only=False)
        baseline.update(e for e in chunk if e not in covered)
        reachable_before = await previous_reachability(session, run_id, covered)
        endpoints_total += len(snapshots)
        unreachable += [s for s in snapshots if not s.probed]
        if ruleset_changed is None:
            new_rules = await _new_ruleset(session, run.rules_revision, covered)
        else:
            new_rules = set(covered) if ruleset_changed else set()
        for group_changed in (False, True):
            group = [s for s in snapshots if (s.endpoint_id in new_rules) is group_changed]
            if not group:
                continue
            ids = {s.endpoint_id for s in group}
            diff = diff_run(
                run_id=run_id,
                now=when,
                previous={k: v for k, v in previous.items() if v.endpoint_id in ids},
                snapshots=group,
                previous_headers={e: h for e, h in before.items() if e in ids},
                ruleset_changed=group_changed,
                previous_reachable={e: r for e, r in reachable_before.items() if e in ids},
            )
            finding_ids = await store.save_tracked(session, diff.findings)
            ids_written = await store.record_events(session, diff.events)
            changed += len(diff.findings)
            event_ids += ids_written
            regression_ids += [
                i for e, i in zip(diff.events, ids_written, strict=True) if e.is_regression
            ]
            refs = await endpoint_refs(session, run_id, {e.endpoint_id for e in diff.events})
            for event, event_id in zip(diff.events, ids_written, strict=True):
                # A first scan is an inventory, not news; but not seeing the endpoint at all is.
                first = event.endpoint_id in baseline and event.kind not in ENDPOINT_KINDS
                if first or not routed(event):
                    continue
                fid = finding_ids.get(event.fingerprint) if event.fingerprint else None
                outgoing.append(
                    OutgoingEvent(
                        AlertEvent.from_core(
                            event,
                            endpoint=refs[event.endpoint_id],
                            base_url=base_url,
                            finding_id=fid,
                            event_id=event_id,
                        ),
                        event_id,
                    )
                )
    deliveries = await enqueue_events(
        session, outgoing, now=when, run_id=run_id, heading=f"cors-scanner run {run_id}"
    )
    return DiffOutcome(
        run_id=run_id,
        findings_changed=changed,
        event_ids=tuple(event_ids),
        regression_ids=tuple(regression_ids),
        delivery_ids=tuple(deliveries),
        baseline_endpoints=tuple(sorted(baseline)),
        endpoints_total=endpoints_total,
        endpoints_unreachable=len(unreachable),
        unreachable_errors=_error_counts(unreachable),
    )


def _error_counts(snapshots: Iterable[EndpointSnapshot]) -> tuple[tuple[str, int], ...]:
    counts: dict[str, int] = {}
    for snapshot in snapshots:
        for error in snapshot.failed_probes.values():
            counts[error] = counts.get(error, 0) + 1
    return tuple(sorted(counts.items()))


def unverified_reason(outcome: DiffOutcome) -> str:
    """Why a run that measured nothing failed, in words an operator acts on."""
    causes = ", ".join(f"{n} {error}" for error, n in outcome.unreachable_errors)
    return (
        f"no endpoint answered: none of the {outcome.endpoints_total} endpoint(s) "
        f"got an answer to any probe ({causes or 'no probe sent'})"
    )


async def announce_run(
    session: AsyncSession,
    run_id: int,
    *,
    failed: bool,
    error: str | None,
    outcome: DiffOutcome | None,
    base_url: str | None = None,
) -> list[int]:
    """Queue ``scan.failed`` or ``scan.completed`` for the hooks that want it; delivery ids.

    ``scan.failed`` is a default event (a run that measured nothing must not
    be silent); ``scan.completed`` only goes to hooks that name it.
    """
    run = await session.get(RunRow, run_id, populate_existing=True)
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    when = await database_time(session)
    kind = EventType.SCAN_FAILED if failed else EventType.SCAN_COMPLETED
    unreachable = outcome.endpoints_unreachable if outcome else 0
    total = outcome.endpoints_total if outcome else run.endpoints_done
    if failed:
        title = f"Scan {run_id} failed"
        summary = error or "the run failed"
    else:
        title = f"Scan {run_id} completed"
        summary = (
            f"{total} endpoint(s) scanned, {unreachable} unreachable, "
            f"{run.findings_total} finding(s)"
        )
    alert = AlertEvent(
        type=kind,
        occurred_at=when,
        title=title,
        summary=summary,
        scan_id=run_id,
        after={
            "status": "failed" if failed else "completed",
            "error": error,
            "schedule_id": run.schedule_id,
            "endpoints_total": total,
            "endpoints_unreachable": unreachable,
            "findings_total": run.findings_total,
            "probe_errors": run.probe_errors,
        },
        links=api_links(base_url, scan_id=run_id) if base_url is not None else (),
    )
    return await enqueue_events(
        session, [OutgoingEvent(alert, None)], now=when, run_id=run_id, heading=title
    )


async def _new_ruleset(
    session: AsyncSession, revision: int | None, previous_runs: dict[int, int]
) -> set[int]:
    """Endpoints whose previous run was judged by another ruleset than ``revision``.

    A run from before rulesets were recorded (NULL) counts as another one: it
    was made by an older scanner, so what changed may be the rules.
    """
    runs = set(previous_runs.values())
    if not runs:
        return set()
    rows = await session.execute(
        select(RunRow.id, RunRow.rules_revision).where(RunRow.id.in_(runs))
    )
    other = {run for run, rev in rows.all() if rev is None or rev != revision}
    return {endpoint for endpoint, run in previous_runs.items() if run in other}


_DIFF_CHUNK = 500


__all__ = [
    "DiffOutcome",
    "announce_run",
    "apply_run_diff",
    "endpoint_refs",
    "previous_headers",
    "previous_reachability",
    "probe_headers",
    "routed",
    "run_snapshots",
    "unverified_reason",
]
