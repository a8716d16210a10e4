"""Retention: the scheduler prunes probe details of old runs, keeping findings and summaries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from scanner.db import work
from scanner.db.engine import Database
from scanner.db.runs import RunSelection, RunTrigger, get_run
from scanner.db.tables import RunEndpointRow, RunExchangeRow, RunFindingRow, RunRow, WorkItemRow
from scanner.engine import scan_options
from scanner.hostnames import default_public_suffixes
from scanner.runtime import run_components
from scanner.scheduler import Scheduler
from scanner.settings import Settings
from scanner.worker import Worker
from tests.api.targets import serve_target
from tests.worker.support import add_endpoints, wait_run_final


async def _count(database: Database, table: type, run_id: int) -> int:
    async with database.session() as session, session.begin():
        column = getattr(table, "scan_id", None) or table.run_id
        return int(
            (await session.execute(select(func.count()).where(column == run_id))).scalar_one()
        )


async def _run_to_completion(database: Database, settings: Settings) -> int:
    async with database.session() as session, session.begin():
        run = await work.plan_run(
            session,
            selection=RunSelection(),
            trigger=RunTrigger.MANUAL,
            requested_by="test",
            batching=work.RunBatching(batch_size=5, max_attempts=3),
        )
    assert run is not None
    worker = Worker(database, settings, scan_options(settings), default_public_suffixes())
    await worker.register()
    stop = asyncio.Event()
    service = asyncio.create_task(run_components([worker], stop, signals=False))
    try:
        final = await wait_run_final(database, run.id)
    finally:
        stop.set()
        await service
    assert final.status == "completed", final.error
    return run.id


async def test_old_runs_lose_probe_details_but_keep_findings_and_summaries(
    database: Database,
) -> None:
    settings = Settings(
        database_url=database.url,
        lease_seconds=5.0,
        heartbeat_seconds=1.0,
        poll_seconds=0.1,
        retries=0,
        timeout=5.0,
        retention_days=30,
        schedule_reload_seconds=0.1,
    )
    async with serve_target() as base:
        # The target reflects any origin with credentials: every run has findings.
        await add_endpoints(
            database, [f"{base}/reflect-credentials/a", f"{base}/reflect-credentials/b"]
        )
        old = await _run_to_completion(database, settings)
        recent = await _run_to_completion(database, settings)

    async with database.session() as session, session.begin():
        await session.execute(
            update(RunRow)
            .where(RunRow.id == old)
            .values(finished_at=datetime.now(UTC) - timedelta(days=31))
        )
        old_before = await get_run(session, old)
    before = {
        run: {t: await _count(database, t, run) for t in (RunExchangeRow, RunFindingRow)}
        for run in (old, recent)
    }
    assert before[old][RunExchangeRow] > 0
    assert before[old][RunFindingRow] > 0
    assert await _count(database, WorkItemRow, old) > 0

    scheduler = Scheduler(database, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    try:
        async with asyncio.timeout(10):
            while await _count(database, RunExchangeRow, old):  # noqa: ASYNC110 - polling state
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task

    # The old run: probe details and spent work items gone; the rest kept.
    assert await _count(database, RunExchangeRow, old) == 0
    assert await _count(database, WorkItemRow, old) == 0
    assert await _count(database, RunFindingRow, old) == before[old][RunFindingRow]
    assert await _count(database, RunEndpointRow, old) == 2
    async with database.session() as session, session.begin():
        old_after = await get_run(session, old)
    assert old_after.status == old_before.status
    assert old_after.probes_total == old_before.probes_total
    assert old_after.findings_total == old_before.findings_total
    assert old_after.endpoints_done == 2
    # The recent run is untouched.
    assert await _count(database, RunExchangeRow, recent) == before[recent][RunExchangeRow]
    assert await _count(database, RunFindingRow, recent) == before[recent][RunFindingRow]
