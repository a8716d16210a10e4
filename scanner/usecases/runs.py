"""Runs: start one, cancel one, follow them, read what one found and sent.

Starting a run plans it into work items (``scanner.db.work.plan_run``, the
same planning a schedule's tick goes through) and audits it, in one
transaction; workers then execute it. The selection is checked here and
only here: explicit ids must all exist, and a selection that matches no
endpoint is refused rather than planned into an empty run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from scanner.core.severity import Severity
from scanner.db import audit, runs, work
from scanner.db.findings import EventRecord, list_events
from scanner.db.inventory import EndpointFilter, select_endpoints
from scanner.db.pagination import Page
from scanner.db.runs import (
    FindingFilter,
    RunFindingRecord,
    RunProbeRecord,
    RunRecord,
    RunSelection,
    RunStatus,
    RunTrigger,
)
from scanner.db.work import RunProgress, WorkerRecord
from scanner.errors import FieldError, ValidationError
from scanner.reports.stored import StoredRun, load_run, open_json_report
from scanner.usecases.context import Context


@dataclass(frozen=True, slots=True)
class RunView:
    """A run with its work-level progress (items left, dead items, live workers, ETA)."""

    run: RunRecord
    progress: RunProgress


def check_selection(selection: RunSelection) -> None:
    """``ValidationError`` for a selection that names ids and a tag/owner at once."""
    if selection.endpoint_ids is not None and (
        selection.tag is not None or selection.owner is not None
    ):
        raise ValidationError(
            [FieldError("endpoint_ids", "give either endpoint_ids or tag/owner, not both")]
        )


async def start_run(
    ctx: Context, *, actor: str, selection: RunSelection, trigger: RunTrigger
) -> RunRecord:
    """Plan a run of the selected endpoints; workers execute it. Audited as ``scan.create``.

    ``ValidationError`` naming each id that does not exist, or when no
    endpoint matches (explicit ids cover disabled endpoints too; a tag, an
    owner or everything covers enabled ones).
    """
    check_selection(selection)
    async with ctx.transaction() as session:
        flt = EndpointFilter(tag=selection.tag, owner=selection.owner)
        chosen = await select_endpoints(session, flt, selection.endpoint_ids)
        ids = selection.endpoint_ids
        if ids is not None and len(chosen) < len(set(ids)):
            found = {e.id for e in chosen}
            raise ValidationError(
                FieldError(f"endpoint_ids[{i}]", f"endpoint {value} does not exist")
                for i, value in enumerate(ids)
                if value not in found
            )
        if not chosen:
            raise ValidationError(
                [FieldError("body", "no enabled endpoint matches this selection")]
            )
        planned = await work.plan_run(
            session,
            selection=selection,
            trigger=trigger,
            requested_by=actor,
            batching=ctx.batching,
        )
        assert planned is not None  # only a schedule's tick can already have its run
        await audit.record(
            session,
            actor=actor,
            action="scan.create",
            target_type="scan",
            target_id=str(planned.id),
            detail={"selection": selection.to_json(), "endpoints": len(chosen)},
        )
    return planned


async def cancel_run(ctx: Context, run_id: int, *, actor: str) -> RunRecord:
    """Cancel a queued or running run (queued items never run; items in a worker's hands
    stop at its next heartbeat). Audited as ``scan.cancel``. ``NotFound``; ``Conflict``
    when the run has finished."""
    async with ctx.transaction() as session:
        await work.cancel_run(session, run_id, reason=f"cancelled by {actor}")
        await audit.record(
            session, actor=actor, action="scan.cancel", target_type="scan", target_id=str(run_id)
        )
        return await runs.get_run(session, run_id)


async def list_runs(
    ctx: Context, *, status: RunStatus | None = None, limit: int, cursor: str | None = None
) -> Page[RunRecord]:
    """Runs, newest first, each with its findings counted by severity."""
    async with ctx.read() as session:
        page = await runs.list_runs(session, limit=limit, cursor=cursor, status=status)
        counts = await runs.severity_counts(session, [r.id for r in page.items])
    items = tuple(replace(r, severity_counts=counts.get(r.id, {})) for r in page.items)
    return Page(items, page.next_cursor)


async def show_run(ctx: Context, run_id: int) -> RunView:
    """One run with its progress and ETA; ``NotFound``."""
    async with ctx.read() as session:
        run = await runs.get_run(session, run_id)
        progress = await work.run_progress(
            session, run, stale_after=ctx.settings.worker_stale_after
        )
    return RunView(run, progress)


async def list_run_findings(
    ctx: Context, run_id: int, flt: FindingFilter, *, limit: int, cursor: str | None = None
) -> Page[RunFindingRecord]:
    """The findings one run stored, filtered; ``NotFound`` for an unknown run."""
    async with ctx.read() as session:
        return await runs.list_run_findings(session, run_id, flt, limit=limit, cursor=cursor)


async def list_run_probes(
    ctx: Context,
    run_id: int,
    *,
    endpoint_id: int | None = None,
    limit: int,
    cursor: str | None = None,
) -> Page[RunProbeRecord]:
    """Every exchange one run stored (of one endpoint, when given); ``NotFound``."""
    async with ctx.read() as session:
        return await runs.list_run_probes(
            session, run_id, endpoint_id=endpoint_id, limit=limit, cursor=cursor
        )


async def list_run_events(
    ctx: Context,
    run_id: int,
    *,
    regressions_only: bool = True,
    limit: int,
    cursor: str | None = None,
) -> Page[EventRecord]:
    """The regressions one run found (every event of it with ``regressions_only=False``)."""
    async with ctx.read() as session:
        await runs.get_run(session, run_id)
        return await list_events(
            session,
            regressions_only=regressions_only,
            run_id=run_id,
            limit=limit,
            cursor=cursor,
        )


async def load_report(ctx: Context, run_id: int) -> StoredRun:
    """A finished run as its reports render it (``scanner.reports.stored.render_run``).

    ``NotFound``; ``Conflict`` while the run is queued or running.
    """
    async with ctx.read() as session:
        return await load_run(session, run_id)


async def json_report(
    ctx: Context, run_id: int, fail_on: Severity | None
) -> tuple[bool, AsyncIterator[str]]:
    """A finished run's JSON report as (failed at ``fail_on``, its text in pieces).

    The gate and the summary are read first (``NotFound``; ``Conflict`` while
    the run is queued or running); the pieces are then rendered a few
    endpoints at a time in a read transaction of their own, so a report of any
    size streams in bounded memory.
    """
    async with ctx.transaction() as session:
        report = await open_json_report(session, run_id, fail_on)

    async def pieces() -> AsyncIterator[str]:
        async with ctx.transaction() as session:
            async for piece in replace(report, session=session).chunks():
                yield piece

    return report.failed, pieces()


async def list_workers(ctx: Context) -> list[WorkerRecord]:
    """Every registered worker process, oldest first, live or stale."""
    async with ctx.read() as session:
        return await work.list_workers(session, stale_after=ctx.settings.worker_stale_after)


__all__ = [
    "RunView",
    "cancel_run",
    "check_selection",
    "list_run_events",
    "list_run_findings",
    "list_run_probes",
    "list_runs",
    "list_workers",
    "load_report",
    "show_run",
    "start_run",
]
