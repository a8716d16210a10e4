"""One claimed work item, executed: probe a batch of endpoints, or finalize a run.

Probing happens with no transaction open. Assessments are stored as they
finish, ``COMMIT_EVERY`` endpoints per transaction, each one locking the run
row and checking the lease token (``scanner.db.leases.hold_lease``) before
``scanner.db.runs.save_assessment`` (idempotent per run and endpoint): if the
token no longer matches, that transaction rolls back and the batch stops. A
re-claimed batch skips the endpoints already stored for the run, so a worker
crash costs the targets only the probes of what was not committed. The last
transaction completes the item (``complete_lease``) with the endpoints that
could not be assessed: a stalled worker's late results are never committed twice.
Lock order everywhere is run row, then item row, so completions, dead-letters
and cancels of one run cannot deadlock each other.

A transient database error in any of these transactions (the connection
dropped, SQLite's lock held too long) is retried with backoff
(``scanner.db.transient``) until it succeeds or the item is cancelled: the
probes already made are committed once the database answers, never made
again, and the item's attempts are not touched (only a target-side failure
may use one up). A retried commit whose first try did land finds its lease
done and reports it lost, which is harmless.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from scanner.core.checks import Assessment
from scanner.core.plan import Endpoint
from scanner.db import leases, runs, work
from scanner.db.engine import Database
from scanner.db.inventory import EndpointFilter, EndpointRecord, select_endpoints
from scanner.db.leases import Lease, WorkKind
from scanner.db.policies import effective_policies, effective_policy
from scanner.db.runs import RunStatus
from scanner.db.tables import WorkItemRow
from scanner.db.transient import Outage, retry
from scanner.engine import Engine, Target
from scanner.errors import ScannerError
from scanner.worker.finalize import finalize_run

log = logging.getLogger("scanner.worker")


class Outcome(StrEnum):
    """How one execution of a work item ended."""

    DONE = "done"  # results committed, item done
    LOST = "lost"  # the lease was lost: nothing committed
    RUN_CLOSED = "run_closed"  # the run had ended (cancelled): item abandoned


@dataclass(frozen=True, slots=True)
class _Resolved:
    targets: dict[int, Target]  # endpoint id -> what to probe
    unresolved: dict[int, tuple[EndpointRecord, str]]  # endpoint id -> (record, why not)


def describe(exc: BaseException) -> str:
    """An exception as a one-line ``last_error``."""
    message = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {message}"[: leases.ERROR_LIMIT]


async def execute(
    database: Database,
    engine: Engine | None,
    lease: Lease,
    *,
    public_url: str | None = None,
    outage: Outage | None = None,
) -> Outcome:
    """Run one claimed item to its committed end; exceptions mean "retry or dead-letter".

    ``public_url`` makes the links in the run's alerts absolute. ``outage``
    paces and logs the retries of transient database errors (one per worker).
    """
    db_outage = outage or Outage(f"work item {lease.item_id}", log)
    if lease.kind is WorkKind.FINALIZE_RUN:
        return await retry(lambda: _finalize(database, lease, public_url), db_outage)
    assert engine is not None, "probe batches need a scan engine"
    resolved = await retry(lambda: _resolve(database, lease.run_id, lease.endpoint_ids), db_outage)
    results = await _assess_all(engine, resolved, database, lease, db_outage)
    if isinstance(results, Outcome):
        return results
    return await retry(lambda: _commit(database, lease, resolved, results), db_outage)


async def _resolve(database: Database, run_id: int, ids: tuple[int, ...]) -> _Resolved:
    """Endpoints and effective policies as they are now (not when the run was planned).

    Endpoints the run already stored (an earlier claim of this item committed
    them before it was lost) are left out: they are not probed twice.
    """
    async with database.session() as session, session.begin():
        stored = await runs.list_run_endpoint_ids(session, run_id)
        wanted = tuple(i for i in ids if i not in stored)
        records = await select_endpoints(session, EndpointFilter(), wanted) if wanted else []
        unresolved: dict[int, tuple[EndpointRecord, str]] = {}
        try:
            policies = await effective_policies(session, records)
        except ScannerError:
            # One bad layer must not sink the batch: resolve one by one to isolate it.
            policies = {}
            for record in records:
                try:
                    policies[record.id] = await effective_policy(session, record)
                except ScannerError as exc:
                    reason = f"its policy cannot be resolved: {exc.message}"
                    unresolved[record.id] = (record, reason)
    targets = {
        r.id: Target(
            Endpoint(url=r.url, method=r.method, name=r.name, headers=r.request_headers),
            policies[r.id].policy,
        )
        for r in records
        if r.id in policies
    }
    return _Resolved(targets, unresolved)


# Endpoints stored per transaction while a batch is probed: small enough that
# a lost worker's re-claim re-probes little, large enough that a 25-endpoint
# batch is a handful of commits, not 25.
COMMIT_EVERY = 5
# ... and no more often than this per batch: on SQLite every commit takes the
# one write lock, and back-to-back commits of 16 batches starved other
# processes' transactions past their busy timeout (run_throughput.py).
MIN_COMMIT_SECONDS = 5.0


async def _assess_all(
    engine: Engine, resolved: _Resolved, database: Database, lease: Lease, db_outage: Outage
) -> dict[int, BaseException] | Outcome:
    """Assess every target at once (the prober's limits pace the requests), storing as they finish.

    The endpoints that failed with an exception, for the last commit; or the
    outcome that ended the batch early (lease lost, run closed).
    """
    tasks = {
        asyncio.create_task(engine.assess(target)): endpoint_id
        for endpoint_id, target in resolved.targets.items()
    }
    failures: dict[int, BaseException] = {}
    ready: list[tuple[int, Assessment]] = []
    pending = set(tasks)
    loop = asyncio.get_running_loop()
    last_commit = loop.time()
    try:
        while pending:
            # Wake up when a held-back group becomes due, even if nothing else finishes.
            wait = None
            if len(ready) >= COMMIT_EVERY:
                wait = max(0.0, MIN_COMMIT_SECONDS - (loop.time() - last_commit))
            done, pending = await asyncio.wait(
                pending, timeout=wait, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                endpoint_id = tasks[task]
                exc = task.exception()
                if exc is None:
                    ready.append((endpoint_id, task.result()))
                elif isinstance(exc, Exception):
                    log.error("endpoint %s could not be assessed: %s", endpoint_id, describe(exc))
                    failures[endpoint_id] = exc
                else:
                    raise exc
            due = len(ready) >= COMMIT_EVERY and loop.time() - last_commit >= MIN_COMMIT_SECONDS
            if due or (ready and not pending):
                # Idempotent per endpoint: a retry whose first try landed stores nothing twice.
                stopped = await retry(functools.partial(_store, database, lease, ready), db_outage)
                ready = []
                last_commit = loop.time()
                if stopped is not None:
                    return stopped
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    return failures


async def _store(
    database: Database, lease: Lease, ready: list[tuple[int, Assessment]]
) -> Outcome | None:
    """Commit some finished assessments under the lease; an Outcome when the batch must stop."""
    # Rendered and compressed before the transaction: the write lock is held
    # for the inserts only (SQLite has one, and readers queue behind it).
    prepared = [runs.prepare_result(endpoint_id, a) for endpoint_id, a in ready]
    async with database.session() as session, session.begin():
        run = await work.lock_run(session, lease.run_id)
        if run is None or RunStatus(run.status).final:
            await leases.abandon_lease(session, lease, reason="the run had ended")
            return Outcome.RUN_CLOSED
        if not await leases.hold_lease(session, lease):
            log.warning(
                "work item %s: lease lost while probing; the rest is left to its new holder",
                lease.item_id,
            )
            return Outcome.LOST
        await runs.save_results(session, lease.run_id, prepared)
    return None


class _Rollback(Exception):
    """Raised inside a transaction to undo it (the lease was lost)."""


async def _commit(
    database: Database,
    lease: Lease,
    resolved: _Resolved,
    failures: dict[int, BaseException],
) -> Outcome:
    try:
        async with database.session() as session, session.begin():
            run = await work.lock_run(session, lease.run_id)
            if run is None or RunStatus(run.status).final:
                await leases.abandon_lease(session, lease, reason="the run had ended")
                return Outcome.RUN_CLOSED
            if not await leases.complete_lease(session, lease):
                raise _Rollback
            for endpoint_id, failure in failures.items():
                target = resolved.targets[endpoint_id]
                await runs.save_unassessed(
                    session,
                    lease.run_id,
                    endpoint_id,
                    method=target.endpoint.method,
                    url=target.endpoint.url,
                    reason=describe(failure),
                )
            for endpoint_id, (record, reason) in resolved.unresolved.items():
                await runs.save_unassessed(
                    session,
                    lease.run_id,
                    endpoint_id,
                    method=record.method,
                    url=record.url,
                    reason=reason,
                )
            await work.item_finished(session, lease.run_id)
    except _Rollback:
        log.warning("work item %s: lease lost before completion; results discarded", lease.item_id)
        return Outcome.LOST
    return Outcome.DONE


async def _finalize(database: Database, lease: Lease, public_url: str | None) -> Outcome:
    try:
        async with database.session() as session, session.begin():
            await work.lock_run(session, lease.run_id)
            await finalize_run(session, lease.run_id, base_url=public_url)
            if not await leases.complete_lease(session, lease):
                raise _Rollback
    except _Rollback:
        return Outcome.LOST
    return Outcome.DONE


async def give_up(database: Database, lease: Lease, error: str) -> bool:
    """The holder failed on its last attempt: dead-letter the item; False if the lease was lost."""
    async with database.session() as session, session.begin():
        await work.lock_run(session, lease.run_id)
        if not await leases.kill_lease(session, lease, error=error):
            return False
        if lease.kind is WorkKind.PROBE_BATCH:
            await record_not_probed(
                session, lease.run_id, lease.endpoint_ids, lease.attempts, error
            )
            await work.item_finished(session, lease.run_id)
    return True


async def reap_exhausted(database: Database) -> int:
    """Dead-letter items whose lease expired on their last attempt; how many."""
    async with database.session() as session, session.begin():
        candidates = await leases.exhausted_items(session)
    reaped = 0
    for item_id, run_id in candidates:
        async with database.session() as session, session.begin():
            await work.lock_run(session, run_id)
            dead = await leases.mark_exhausted_dead(
                session, item_id, error="its lease expired on the last attempt"
            )
            if dead is None:
                continue
            _run, payload, last_error = dead
            ids = tuple(int(i) for i in payload.get("endpoint_ids", ()))
            if ids:
                attempts = await _attempts(session, item_id)
                reason = last_error or "its lease expired on the last attempt"
                await record_not_probed(session, run_id, ids, attempts, reason)
                await work.item_finished(session, run_id)
            reaped += 1
    return reaped


async def _attempts(session: AsyncSession, item_id: int) -> int:

    row = await session.get(WorkItemRow, item_id)
    return row.attempts if row is not None else 0


async def record_not_probed(
    session: AsyncSession, run_id: int, ids: tuple[int, ...], attempts: int, error: str
) -> None:
    """Store a dead item's endpoints as not probed (reachable false, the reason in unchecked)."""
    run = await work.lock_run(session, run_id)
    if run is None or RunStatus(run.status).final:
        return  # a cancelled run takes no more rows
    records = await select_endpoints(session, EndpointFilter(), ids)
    for record in records:
        await runs.save_unassessed(
            session,
            run_id,
            record.id,
            method=record.method,
            url=record.url,
            reason=f"work item dead after {attempts} attempts: {error}",
            note="not probed",
        )
