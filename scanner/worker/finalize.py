"""Finalize a run, exactly once, when its last work item is finished.

``finalize_run`` is called by the worker that claimed the run's single
``finalize_run`` item, inside the transaction that completes that item. It
is guarded by ``UPDATE scans SET finalized_at = … WHERE finalized_at IS NULL``:
whoever else might get here (a re-claimed finalize item after a stall) finds
the run already finalised and does nothing.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scanner.db.leases import WorkKind, WorkStatus, db_now
from scanner.db.runs import RunStatus, finish_run
from scanner.db.tables import RunEndpointRow, RunFindingRow, RunRow, WorkItemRow
from scanner.regressions import announce_run, apply_run_diff, unverified_reason


async def finalize_run(session: AsyncSession, run_id: int, *, base_url: str | None = None) -> bool:
    """Compute the run's totals and end it; True when this call finalised it.

    ``base_url`` (the service's public URL) makes the links in alerts absolute.

    Status: ``completed``, or ``failed`` when every batch item died or no
    endpoint answered any probe (``scan.failed`` is then queued; otherwise
    ``scan.completed``); a cancelled run keeps ``cancelled``. The run's
    ``endpoints_unreachable`` counts the endpoints nothing answered for. Must run inside the caller's
    transaction (the finalize item's completion), so all of it lands or none.
    """
    # Guarantee: only the first caller passes; the run row stays locked until commit.
    claimed = (
        await session.execute(
            update(RunRow)
            .where(RunRow.id == run_id, RunRow.finalized_at.is_(None))
            .values(finalized_at=db_now(session))
            .returning(RunRow.id)
        )
    ).scalar_one_or_none()
    if claimed is None:
        return False
    counts = dict(
        (
            await session.execute(
                select(WorkItemRow.status, func.count())
                .where(
                    WorkItemRow.run_id == run_id,
                    WorkItemRow.kind == WorkKind.PROBE_BATCH.value,
                )
                .group_by(WorkItemRow.status)
            )
        ).all()
    )
    batches = sum(int(c) for c in counts.values())
    dead = int(counts.get(WorkStatus.DEAD.value, 0))
    endpoints_done = (
        await session.execute(select(func.count()).where(RunEndpointRow.scan_id == run_id))
    ).scalar_one()
    findings = (
        await session.execute(select(func.count()).where(RunFindingRow.scan_id == run_id))
    ).scalar_one()
    await session.execute(
        update(RunRow)
        .where(RunRow.id == run_id)
        .values(endpoints_done=endpoints_done, findings_total=findings)
    )

    # -- issue 5 hook: the regression diff and alert outbox go here, in this same
    # transaction, so findings, events and deliveries land exactly once with it.

    outcome = await apply_run_diff(session, run_id, base_url=base_url)
    await session.execute(
        update(RunRow)
        .where(RunRow.id == run_id)
        .values(endpoints_unreachable=outcome.endpoints_unreachable)
    )

    error: str | None = None
    if batches and dead == batches:
        last_error = (
            await session.execute(
                select(WorkItemRow.last_error)
                .where(WorkItemRow.run_id == run_id, WorkItemRow.status == WorkStatus.DEAD.value)
                .order_by(WorkItemRow.id.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        # The cause first: it is what an operator has to fix.
        error = last_error or f"all {batches} work item(s) died"
    elif outcome.endpoints_total and outcome.endpoints_unreachable == outcome.endpoints_total:
        # A run that measured nothing is not a clean bill of health.
        error = unverified_reason(outcome)
    status = RunStatus.FAILED if error is not None else RunStatus.COMPLETED
    if await finish_run(session, run_id, status, error=error):
        await announce_run(
            session,
            run_id,
            failed=status is RunStatus.FAILED,
            error=error,
            outcome=outcome,
            base_url=base_url,
        )
    return True
