"""Runs as work: planning a run into work items, its counters, finalize items, workers.

A run (a ``scans`` row) is planned in ONE transaction: the run row (for a
schedule's tick: ``INSERT … ON CONFLICT (schedule_id, scheduled_for) DO
NOTHING``, so only the inserter plans), then its ``probe_batch`` items (the
selected endpoints grouped by host, at most ``batch_size`` per item), then its
``items_total``/``items_remaining``. A crash leaves nothing or a fully planned
run. Every finished item (done or dead) decrements ``items_remaining`` under
the run's row lock; the transaction that reaches 0 enqueues the run's single
``finalize_run`` item (unique per run). The lease SQL itself lives in
``scanner.db.leases``.

The ``workers`` table lists worker processes and their heartbeats
(observability, ETA, and the one-worker-process rule on SQLite).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from scanner.core.catalogue import RULES_REVISION
from scanner.core.origin import host_key
from scanner.db.inventory import EndpointFilter, select_endpoints
from scanner.db.leases import WorkKind, WorkStatus, cancel_queued_items, database_time, db_now
from scanner.db.runs import RunRecord, RunSelection, RunStatus, RunTrigger, finish_run, get_run
from scanner.db.tables import RunExchangeRow, RunRow, WorkerRow, WorkItemRow
from scanner.errors import Conflict, NotFound
from scanner.settings import Settings

FINALIZE_KEY = "finalize"


def _insert(session: AsyncSession, table: Any) -> Any:
    if session.get_bind().dialect.name == "sqlite":
        return sqlite.insert(table)
    return postgresql.insert(table)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RunBatching:
    """How runs are cut into work: endpoints per item, claims before an item is dead.

    (Not ``scanner.core.plan.PlanSettings``, which is how one endpoint's probes are planned.)
    """

    batch_size: int = 25
    max_attempts: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> RunBatching:
        """The batching every planner of runs uses (API, CLI, scheduler): from the settings."""
        return cls(batch_size=settings.batch_size, max_attempts=settings.max_attempts)


async def plan_run(
    session: AsyncSession,
    *,
    selection: RunSelection,
    trigger: RunTrigger,
    requested_by: str | None,
    batching: RunBatching,
    schedule_id: int | None = None,
    scheduled_for: datetime | None = None,
) -> RunRecord | None:
    """Insert a queued run and all its work items; None when this tick already has its run.

    Call inside one transaction: the run and its plan commit together.
    """
    values: dict[str, Any] = {
        "status": RunStatus.QUEUED.value,
        "trigger": trigger.value,
        "requested_by": requested_by,
        "selection": selection.to_json(),
        "created_at": _now(),
        "schedule_id": schedule_id,
        "scheduled_for": scheduled_for,
        "rules_revision": RULES_REVISION,
    }
    stmt = _insert(session, RunRow).values(**values)
    if schedule_id is not None:
        # Guarantee: one run per (schedule, nominal tick), however many schedulers fire it.
        stmt = stmt.on_conflict_do_nothing(index_elements=["schedule_id", "scheduled_for"])
    run_id = (await session.execute(stmt.returning(RunRow.id))).scalar_one_or_none()
    if run_id is None:
        return None
    flt = EndpointFilter(tag=selection.tag, owner=selection.owner)
    endpoints = await select_endpoints(session, flt, selection.endpoint_ids)
    by_host: dict[str, list[int]] = {}
    for endpoint in endpoints:
        by_host.setdefault(host_key(endpoint.url), []).append(endpoint.id)
    rows: list[dict[str, Any]] = []
    # The database's clock, like every lease timestamp: claims compare available_at
    # with the database's now(), and an app clock ahead of it would delay the items.
    created = await database_time(session)
    size = max(1, batching.batch_size)
    for host, ids in by_host.items():
        for start in range(0, len(ids), size):
            rows.append(
                {
                    "run_id": run_id,
                    "kind": WorkKind.PROBE_BATCH.value,
                    "batch_key": f"batch-{len(rows) + 1:07d}",
                    "host_key": host,
                    "payload": {"endpoint_ids": ids[start : start + size]},
                    "status": WorkStatus.QUEUED.value,
                    "priority": 0,
                    "available_at": created,
                    "attempts": 0,
                    "max_attempts": batching.max_attempts,
                    "created_at": created,
                }
            )
    if rows:
        await session.execute(insert(WorkItemRow), rows)
    await session.execute(
        update(RunRow)
        .where(RunRow.id == run_id)
        .values(items_total=len(rows), items_remaining=len(rows), endpoints_total=len(endpoints))
    )
    if not rows:
        await enqueue_finalize(session, run_id)  # nothing to probe: finish at once
    return await get_run(session, run_id)


async def enqueue_finalize(session: AsyncSession, run_id: int) -> None:
    """Insert the run's ``finalize_run`` item unless it exists (it is unique per run)."""
    now = db_now(session)  # the database's clock, which claims compare with
    await session.execute(
        _insert(session, WorkItemRow)
        .values(
            run_id=run_id,
            kind=WorkKind.FINALIZE_RUN.value,
            batch_key=FINALIZE_KEY,
            host_key=f"run:{run_id}",  # never shares a politeness lock with a real host
            payload={},
            status=WorkStatus.QUEUED.value,
            priority=10,  # a finished run's results matter more than a new batch
            available_at=now,
            attempts=0,
            max_attempts=5,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["run_id", "kind", "batch_key"])
    )


async def lock_run(session: AsyncSession, run_id: int) -> RunRow | None:
    """The run row, locked for this transaction (serializes completions of one run)."""
    return await session.get(RunRow, run_id, with_for_update=True, populate_existing=True)


async def item_finished(session: AsyncSession, run_id: int) -> int:
    """One of the run's batch items is finished (done or dead): the items still to go.

    The caller holds the run's row lock, so concurrent completions serialize
    and exactly one of them sees 0 and enqueues the finalize item.
    """
    remaining = (
        await session.execute(
            update(RunRow)
            .where(RunRow.id == run_id)
            .values(
                items_remaining=func.max(RunRow.items_remaining - 1, 0)
                if session.get_bind().dialect.name == "sqlite"
                else func.greatest(RunRow.items_remaining - 1, 0)
            )
            .returning(RunRow.items_remaining)
        )
    ).scalar_one()
    if remaining == 0:
        await enqueue_finalize(session, run_id)
    return int(remaining)


async def sweep_unfinalized(session: AsyncSession) -> int:
    """Re-create missing finalize items of runs with nothing left to do; how many runs."""
    rows = await session.execute(
        select(RunRow.id).where(
            RunRow.items_remaining == 0,
            RunRow.finalized_at.is_(None),
            RunRow.status.in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value]),
        )
    )
    ids = list(rows.scalars())
    for run_id in ids:
        await enqueue_finalize(session, run_id)
    return len(ids)


async def mark_run_started(session: AsyncSession, run_ids: Sequence[int]) -> None:
    """``queued -> running`` with the start time, for runs a worker just began."""
    if not run_ids:
        return
    await session.execute(
        update(RunRow)
        .where(RunRow.id.in_(list(run_ids)), RunRow.status == RunStatus.QUEUED.value)
        .values(status=RunStatus.RUNNING.value, started_at=_now())
    )


# -- progress --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunProgress:
    """Work-level progress of a run; ``eta_seconds`` None when unknown or finished."""

    items_total: int
    items_remaining: int
    items_dead: int
    avg_item_seconds: float | None
    live_workers: int
    eta_seconds: float | None


async def run_progress(session: AsyncSession, run: RunRecord, *, stale_after: float) -> RunProgress:
    """Items left and an ETA: average item duration so far × remaining items / live workers."""
    done = await session.execute(
        select(WorkItemRow.leased_at, WorkItemRow.finished_at).where(
            WorkItemRow.run_id == run.id,
            WorkItemRow.kind == WorkKind.PROBE_BATCH.value,
            WorkItemRow.status == WorkStatus.DONE.value,
        )
    )
    durations = [
        (finished - leased).total_seconds()
        for leased, finished in done.all()
        if leased is not None and finished is not None
    ]
    dead = (
        await session.execute(
            select(func.count()).where(
                WorkItemRow.run_id == run.id, WorkItemRow.status == WorkStatus.DEAD.value
            )
        )
    ).scalar_one()
    live = len([w for w in await list_workers(session, stale_after=stale_after) if w.live])
    avg = sum(durations) / len(durations) if durations else None
    eta: float | None = None
    if not run.status.final and avg is not None:
        eta = round(avg * run.items_remaining / max(1, live), 1)
    return RunProgress(run.items_total, run.items_remaining, int(dead), avg, live, eta)


# -- retention -------------------------------------------------------------------


async def prune_probe_details(session: AsyncSession, *, older_than: datetime) -> int:
    """Delete probe exchanges (and spent work items) of runs finished before ``older_than``.

    Findings, per-endpoint results and run summaries are kept: they are what
    history, diffs and reports read. The count of probes deleted.
    """
    old_runs = select(RunRow.id).where(
        RunRow.finished_at.is_not(None), RunRow.finished_at < older_than
    )
    result = await session.execute(
        delete(RunExchangeRow)
        .where(RunExchangeRow.scan_id.in_(old_runs))
        .returning(RunExchangeRow.probe_count)
    )
    await session.execute(delete(WorkItemRow).where(WorkItemRow.run_id.in_(old_runs)))
    return sum(result.scalars().all())


# -- workers ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A registered worker process; ``live`` when its heartbeat is recent."""

    id: str
    hostname: str
    pid: int
    started_at: datetime
    last_heartbeat: datetime
    live: bool
    items_leased: int = 0  # work items it holds a lease on right now


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def register_worker(
    session: AsyncSession,
    *,
    worker_id: str,
    hostname: str,
    pid: int,
    stale_after: float,
) -> list[str]:
    """Register this worker process; on SQLite refuse a second live one.

    Returns the ids of workers known to be dead whose leases may be released
    at once (SQLite only: it is the one worker process, so nobody else can
    own them). ``Conflict`` when another worker process is live on SQLite.
    """
    now = await database_time(session)
    dead: list[str] = []
    if session.get_bind().dialect.name == "sqlite":
        # The IMMEDIATE transaction makes check-then-insert atomic across processes.
        for row in (await session.execute(select(WorkerRow))).scalars():
            fresh = row.last_heartbeat > now - timedelta(seconds=stale_after)
            gone = row.hostname == hostname and (row.pid == pid or not _pid_alive(row.pid))
            if fresh and not gone:
                raise Conflict(
                    f"another worker process (pid {row.pid} on {row.hostname}) already works on "
                    "this SQLite database, and SQLite supports only one: run several workers "
                    "against PostgreSQL (CORS_SCANNER_DATABASE_URL=postgresql+asyncpg://...), "
                    f"or stop the other one (if it died, retry in {stale_after:.0f} s)"
                )
            dead.append(row.id)
        if dead:
            await session.execute(delete(WorkerRow).where(WorkerRow.id.in_(dead)))
    session.add(
        WorkerRow(id=worker_id, hostname=hostname, pid=pid, started_at=now, last_heartbeat=now)
    )
    await session.flush()
    return dead


async def worker_heartbeat(session: AsyncSession, worker_id: str) -> None:
    """Refresh the worker's heartbeat (database clock); re-register if it was removed."""
    await session.execute(
        update(WorkerRow).where(WorkerRow.id == worker_id).values(last_heartbeat=db_now(session))
    )


async def prune_dead_workers(session: AsyncSession, *, older_than: float) -> int:
    """Remove workers silent for over ``older_than`` seconds (database clock); how many.

    A worker killed without its graceful stop never deregisters; after this
    retention it no longer clutters the list. Its leases expired long before.
    """
    result = await session.execute(
        delete(WorkerRow)
        .where(WorkerRow.last_heartbeat < db_now(session, -older_than))
        .returning(WorkerRow.id)
    )
    return len(result.scalars().all())


async def deregister_worker(session: AsyncSession, worker_id: str) -> None:
    """Remove the worker (graceful stop)."""
    await session.execute(delete(WorkerRow).where(WorkerRow.id == worker_id))


async def list_workers(session: AsyncSession, *, stale_after: float) -> list[WorkerRecord]:
    """Every registered worker, oldest first, ``live`` when seen within ``stale_after`` s."""
    now = await database_time(session)
    rows = (await session.execute(select(WorkerRow).order_by(WorkerRow.started_at))).scalars()
    held: dict[str | None, int] = {
        holder: int(count)
        for holder, count in await session.execute(
            select(WorkItemRow.leased_by, func.count())
            .where(WorkItemRow.status == WorkStatus.LEASED, WorkItemRow.leased_by.is_not(None))
            .group_by(WorkItemRow.leased_by)
        )
    }
    return [
        WorkerRecord(
            id=r.id,
            hostname=r.hostname,
            pid=r.pid,
            started_at=r.started_at,
            last_heartbeat=r.last_heartbeat,
            live=r.last_heartbeat > now - timedelta(seconds=stale_after),
            items_leased=held.get(r.id, 0),
        )
        for r in rows
    ]


async def cancel_run(session: AsyncSession, run_id: int, *, reason: str) -> RunRecord:
    """Cancel a run: it becomes ``cancelled`` and its queued items will never run.

    Items being worked on stop at their holder's next heartbeat. ``Conflict``
    when the run had already finished.
    """
    run = await lock_run(session, run_id)
    if run is None:
        raise NotFound(f"scan {run_id} does not exist")
    if not await finish_run(session, run_id, RunStatus.CANCELLED, error=reason):
        raise Conflict(f"scan {run_id} is already {run.status}")
    await cancel_queued_items(session, run_id, reason=reason)
    return await get_run(session, run_id)
