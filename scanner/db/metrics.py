"""The queries behind ``GET /metrics``: fleet-wide facts, read from the database at scrape time.

Any API process can answer for the whole fleet, because runs, probes,
findings, work items, workers and deliveries all live in the database
(``shared/docs/service-design.md`` §4.3); nothing is held in process memory,
so scraping one API process is enough and a restart loses nothing.

What each figure is, and which kind of Prometheus metric it may become:

- **Totals that only grow** from rows that are never deleted: finished runs
  by trigger and outcome, run durations, probes sent, regressions recorded.
- **Totals whose rows can be deleted** (a hook's deliveries and attempts go
  with the hook): read from the running totals of :mod:`scanner.db.counters`.
- **Current states**: active runs, findings by status, work items, live
  workers, pending deliveries.
- **Windows**: latency of the probes of runs created, and of delivery
  attempts started, in the last ``window``; they rise and fall.

Buckets are counted in SQL; no probe or attempt row leaves the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Float, and_, case, cast, extract, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from scanner.db.counters import DELIVERIES, DELIVERY_ATTEMPTS, Labels, read_counter
from scanner.db.hooks import DeliveryStatus
from scanner.db.leases import WorkStatus, database_time
from scanner.db.runs import RunStatus
from scanner.db.tables import (
    DeliveryAttemptRow,
    FindingEventRow,
    HookDeliveryRow,
    HookRow,
    RunExchangeRow,
    RunRow,
    ScheduleRow,
    TrackedFindingRow,
    WorkerRow,
    WorkItemRow,
)

FINAL_RUNS = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
ACTIVE_RUNS = (RunStatus.QUEUED, RunStatus.RUNNING)
WORK_STATES = (WorkStatus.QUEUED, WorkStatus.LEASED, WorkStatus.DEAD)
PENDING_DELIVERIES = (DeliveryStatus.QUEUED, DeliveryStatus.LEASED)


@dataclass(frozen=True, slots=True)
class Buckets:
    """A distribution: observations at or under each bound (cumulative), their sum and count."""

    bounds: tuple[float, ...]  # seconds, ascending
    cumulative: tuple[int, ...]  # same length as bounds
    total: float  # seconds
    count: int

    @classmethod
    def empty(cls, bounds: Sequence[float]) -> Buckets:
        return cls(tuple(bounds), tuple(0 for _ in bounds), 0.0, 0)


@dataclass(frozen=True, slots=True)
class FleetFacts:
    """Everything ``/metrics`` reports about the fleet, at one moment (database clock)."""

    now: datetime
    runs_finished: dict[tuple[str, str], int]  # (trigger, outcome) -> runs
    runs_active: dict[str, int]  # status -> runs
    run_durations: dict[str, Buckets]  # trigger -> durations of every finished run
    last_completed: dict[str, datetime]  # schedule name -> newest completed run's finish
    probes_sent: int
    probe_errors: int
    recent_probes: dict[str, Buckets]  # probe kind -> latency, runs created in the window
    findings: dict[tuple[str, str], int]  # (severity, status) -> tracked findings
    regressions: dict[str, int]  # rule id ("none" without one) -> regression events
    work_items: dict[str, int]  # state -> items
    workers_alive: int
    deliveries_final: dict[Labels, int]  # monotonic counter (channel, outcome)
    delivery_attempts: dict[Labels, int]  # monotonic counter (channel, outcome)
    deliveries_pending: dict[tuple[str, str], int]  # (channel, state) -> deliveries
    recent_attempts: dict[str, Buckets]  # channel -> latency, attempts started in the window


async def fleet_facts(
    session: AsyncSession,
    *,
    worker_stale_after: float,
    run_bounds: Sequence[float],
    latency_bounds: Sequence[float],
    window: timedelta,
) -> FleetFacts:
    """Read every figure in one transaction of the caller's."""
    now = await database_time(session)
    since = now - window
    runs_finished, runs_active = await _run_counts(session)
    sent, errors = await _probe_totals(session)
    return FleetFacts(
        now=now,
        runs_finished=runs_finished,
        runs_active=runs_active,
        run_durations=await _histogram(
            session,
            _seconds_between(session, RunRow.started_at, RunRow.finished_at),
            run_bounds,
            [RunRow.started_at.is_not(None), RunRow.finished_at.is_not(None)],
            RunRow.trigger,
        ),
        last_completed=await _last_completed(session),
        probes_sent=sent,
        probe_errors=errors,
        recent_probes=await _probe_latency(session, latency_bounds, since),
        findings=await _grouped2(
            session, TrackedFindingRow.severity, TrackedFindingRow.status, TrackedFindingRow.id
        ),
        regressions=await _regressions(session),
        work_items=await _work_items(session),
        workers_alive=await _workers_alive(session, now, worker_stale_after),
        deliveries_final=await read_counter(session, DELIVERIES),
        delivery_attempts=await read_counter(session, DELIVERY_ATTEMPTS),
        deliveries_pending=await _pending_deliveries(session),
        recent_attempts=await _histogram(
            session,
            DeliveryAttemptRow.duration_ms,
            latency_bounds,
            [
                DeliveryAttemptRow.delivery_id == HookDeliveryRow.id,
                HookDeliveryRow.hook_id == HookRow.id,
                DeliveryAttemptRow.started_at >= since,
            ],
            HookRow.kind,
            scale=1000.0,
        ),
    )


_Column = ColumnElement[Any] | InstrumentedAttribute[Any]


def _seconds_between(session: AsyncSession, start: Any, end: Any) -> ColumnElement[Any]:
    # Timestamp arithmetic differs by backend; SQLite stores ISO text that
    # julianday() reads (microseconds included).
    if session.get_bind().dialect.name == "postgresql":
        return cast(extract("epoch", end - start), Float)
    # julianday() is a double in days: ~20 µs of noise, rounded off at the millisecond.
    return func.round((func.julianday(end) - func.julianday(start)) * 86400.0, 3)


async def _histogram(
    session: AsyncSession,
    value: _Column,
    bounds: Sequence[float],
    where: Sequence[ColumnElement[bool]],
    group: _Column,
    *,
    scale: float = 1.0,
) -> dict[str, Buckets]:
    """Buckets per group, counted in SQL; ``scale`` converts ``value`` to seconds."""
    columns: list[Any] = [func.sum(case((value <= bound * scale, 1), else_=0)) for bound in bounds]
    columns += [func.sum(cast(value, Float)), func.count()]
    query = select(group, *columns).where(and_(*where)).group_by(group)
    out: dict[str, Buckets] = {}
    for row in (await session.execute(query)).all():
        values = row[1:]
        out[row[0]] = Buckets(
            bounds=tuple(bounds),
            cumulative=tuple(int(v or 0) for v in values[: len(bounds)]),
            total=float(values[-2] or 0.0) / scale,
            count=int(values[-1] or 0),
        )
    return out


async def _probe_latency(
    session: AsyncSession, bounds: Sequence[float], since: datetime
) -> dict[str, Buckets]:
    """Probe latency per kind, runs created since ``since``, from the exchanges' timings.

    Timings are a small JSON list per endpoint (no SQL over JSON that works on
    both databases), so they are bucketed here, streamed a few hundred rows at a time.
    """
    counts: dict[str, list[int]] = {}
    totals: dict[str, float] = {}
    rows = await session.stream(
        select(RunExchangeRow.timings)
        .join(RunRow, RunRow.id == RunExchangeRow.scan_id)
        .where(RunRow.created_at >= since)
        .execution_options(yield_per=500)
    )
    async for (timings,) in rows:
        for kind, values in (timings or {}).items():
            cumulative = counts.setdefault(kind, [0] * (len(bounds) + 1))
            for ms in values:
                seconds = float(ms) / 1000.0
                totals[kind] = totals.get(kind, 0.0) + seconds
                cumulative[-1] += 1
                for i, bound in enumerate(bounds):
                    if seconds <= bound:
                        cumulative[i] += 1
    return {
        kind: Buckets(tuple(bounds), tuple(c[:-1]), totals.get(kind, 0.0), c[-1])
        for kind, c in counts.items()
    }


async def _run_counts(session: AsyncSession) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    finished: dict[tuple[str, str], int] = {}
    active: dict[str, int] = {}
    rows = await session.execute(
        select(RunRow.trigger, RunRow.status, func.count()).group_by(RunRow.trigger, RunRow.status)
    )
    final = {s.value for s in FINAL_RUNS}
    for trigger, status, count in rows.all():
        if status in final:
            finished[(trigger, status)] = int(count)
        else:
            active[status] = active.get(status, 0) + int(count)
    return finished, active


async def _last_completed(session: AsyncSession) -> dict[str, datetime]:
    rows = await session.execute(
        select(ScheduleRow.name, func.max(RunRow.finished_at))
        .join(RunRow, RunRow.schedule_id == ScheduleRow.id)
        .where(RunRow.status == RunStatus.COMPLETED.value)
        .group_by(ScheduleRow.name)
    )
    return {name: _aware(finished) for name, finished in rows.all() if finished is not None}


def _aware(value: datetime | str) -> datetime:
    # func.max() over a timestamp comes back untyped on SQLite: the stored text (UTC).
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


async def _probe_totals(session: AsyncSession) -> tuple[int, int]:
    totals = (
        await session.execute(select(func.sum(RunRow.probes_total), func.sum(RunRow.probe_errors)))
    ).one()
    return int(totals[0] or 0), int(totals[1] or 0)


async def _grouped2(
    session: AsyncSession, a: _Column, b: _Column, counted: _Column
) -> dict[tuple[str, str], int]:
    rows = await session.execute(select(a, b, func.count(counted)).group_by(a, b))
    return {(x, y): int(n) for x, y, n in rows.all()}


async def _regressions(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(FindingEventRow.rule_id, func.count())
        .where(FindingEventRow.is_regression.is_(True))
        .group_by(FindingEventRow.rule_id)
    )
    out: dict[str, int] = {}
    for rule, count in rows.all():
        out[rule or "none"] = out.get(rule or "none", 0) + int(count)
    return out


async def _work_items(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(WorkItemRow.status, func.count())
        .where(WorkItemRow.status.in_([s.value for s in WORK_STATES]))
        .group_by(WorkItemRow.status)
    )
    return {status: int(count) for status, count in rows.all()}


async def _workers_alive(session: AsyncSession, now: datetime, stale_after: float) -> int:
    live = await session.execute(
        select(func.count()).where(WorkerRow.last_heartbeat > now - timedelta(seconds=stale_after))
    )
    return int(live.scalar_one())


async def _pending_deliveries(session: AsyncSession) -> dict[tuple[str, str], int]:
    rows = await session.execute(
        select(HookRow.kind, HookDeliveryRow.status, func.count())
        .join(HookRow, HookRow.id == HookDeliveryRow.hook_id)
        .where(HookDeliveryRow.status.in_([s.value for s in PENDING_DELIVERIES]))
        .group_by(HookRow.kind, HookDeliveryRow.status)
    )
    return {(kind, status): int(count) for kind, status, count in rows.all()}
