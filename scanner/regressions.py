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

from scanner.alerts.envelope import AlertEvent, EndpointRef
from scanner.core.diff import (
    EndpointSnapshot,
    HeaderLines,
    ProbeHeaders,
    diff_run,
    normalise_cors_headers,
)
from scanner.core.findings import Finding
from scanner.core.headers import Headers
from scanner.core.lifecycle import Event, EventKind
from scanner.core.plan import RANDOM_HEADER_PURPOSES
from scanner.db import findings as store
from scanner.db.hooks import OutgoingEvent, enqueue_events
from scanner.db.leases import database_time
from scanner.db.runs import RunStatus, stored_finding, stream_exchanges
from scanner.db.tables import (
    EndpointRow,
    EndpointTagRow,
    RunEndpointRow,
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
    }
)


@dataclass(frozen=True, slots=True)
class DiffOutcome:
    """What :func:`apply_run_diff` wrote.

    ``baseline_endpoints``: endpoints seen for the first time (nothing alerted
    for them). Ids are row ids of ``finding_events`` and ``hook_deliveries``.
    """

    run_id: int
    findings_changed: int
    event_ids: tuple[int, ...]
    regression_ids: tuple[int, ...]
    delivery_ids: tuple[int, ...]
    baseline_endpoints: tuple[int, ...]


# -- snapshots from stored rows ------------------------------------------------------


class StoredProbe(Protocol):
    """The columns of a stored exchange the diff reads (an ORM row or a column-only row)."""

    probe_key: str
    purpose: str | None
    origin: str
    status: int | None
    error: str | None
    request_headers: Any
    response_headers: Any


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


async def run_snapshots(session: AsyncSession, run_id: int) -> list[EndpointSnapshot]:
    """One snapshot per endpoint the run stored a result for, by endpoint id."""
    endpoints = {
        row.endpoint_id: row
        for row in (
            await session.execute(select(RunEndpointRow).where(RunEndpointRow.scan_id == run_id))
        ).scalars()
    }
    headers: dict[int, dict[str, HeaderLines]] = {e: {} for e in endpoints}
    failed: dict[int, dict[str, str]] = {e: {} for e in endpoints}
    # One endpoint's exchanges unpacked at a time; only its CORS lines are kept.
    async for exchanges in stream_exchanges(session, run_id):
        for probe in exchanges:
            if probe.endpoint_id not in endpoints:
                continue
            lines = probe_headers(probe)
            if lines is None:
                failed[probe.endpoint_id][probe.probe_key] = probe.error or "no_response"
            else:
                headers[probe.endpoint_id][probe.probe_key] = lines
    found: dict[int, list[Finding]] = {e: [] for e in endpoints}
    seen: set[str] = set()
    rows = await session.execute(
        select(RunFindingRow).where(RunFindingRow.scan_id == run_id).order_by(RunFindingRow.id)
    )
    for row in rows.scalars():
        endpoint = endpoints.get(row.endpoint_id)
        if endpoint is None or not endpoint.reachable or row.fingerprint in seen:
            continue
        seen.add(row.fingerprint)
        found[row.endpoint_id].append(stored_finding(row, endpoint.method, endpoint.url))
    return [
        EndpointSnapshot(
            endpoint_id=endpoint_id,
            probed=endpoint.reachable,
            findings=tuple(found[endpoint_id]),
            headers=headers[endpoint_id],
            failed_probes=failed[endpoint_id],
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
        for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
            async for exchanges in stream_exchanges(session, previous, chunk):
                lines = {p.probe_key: h for p in exchanges if (h := probe_headers(p)) is not None}
                if lines:
                    out[exchanges[0].endpoint_id] = lines
    return dict(out)


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
    ruleset_changed: bool = False,
) -> DiffOutcome:
    """Diff run ``run_id`` against the state before it and write the outcome (no commit).

    Call inside the transaction that finalises the run. ``now`` (default: the database
    clock) is when the run counts as finished; ``base_url`` makes alert links
    absolute. ``NotFound`` for an unknown run; ``Conflict`` when a tracked
    finding changed under us (a concurrent triage): roll back and retry.
    """
    when = now or await database_time(session)
    run = await session.get(RunRow, run_id)
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    snapshots = await run_snapshots(session, run_id)
    endpoint_ids = [s.endpoint_id for s in snapshots]
    previous = await store.load_tracked(session, endpoint_ids)
    before = await previous_headers(session, run_id, endpoint_ids)
    covered = await _previous_runs(session, run_id, endpoint_ids, reachable_only=False)
    baseline = {e for e in endpoint_ids if e not in covered}
    diff = diff_run(
        run_id=run_id,
        now=when,
        previous=previous,
        snapshots=snapshots,
        previous_headers=before,
        ruleset_changed=ruleset_changed,
    )
    finding_ids = await store.save_tracked(session, diff.findings)
    event_ids = await store.record_events(session, diff.events)
    outgoing: list[OutgoingEvent] = []
    refs = await endpoint_refs(session, run_id, {e.endpoint_id for e in diff.events})
    for event, event_id in zip(diff.events, event_ids, strict=True):
        if event.endpoint_id in baseline or not routed(event):
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
        findings_changed=len(diff.findings),
        event_ids=tuple(event_ids),
        regression_ids=tuple(
            i for e, i in zip(diff.events, event_ids, strict=True) if e.is_regression
        ),
        delivery_ids=tuple(deliveries),
        baseline_endpoints=tuple(sorted(baseline)),
    )


__all__ = [
    "DiffOutcome",
    "apply_run_diff",
    "endpoint_refs",
    "previous_headers",
    "probe_headers",
    "routed",
    "run_snapshots",
]
