"""Several real worker processes on PostgreSQL: exactly-once results, crash and stall safety."""

from __future__ import annotations

import asyncio
import signal

import pytest
from sqlalchemy import select

from scanner.db import leases, work
from scanner.db.engine import Database
from scanner.db.leases import WorkKind
from scanner.db.runs import RunSelection, RunTrigger
from scanner.db.tables import RunExchangeRow, WorkItemRow
from scanner.worker import batch
from tests.worker.support import (
    add_endpoints,
    items,
    probe_key_counts,
    start_worker,
    stored_probe_totals,
    targets,
    wait_run_final,
)

pytestmark = pytest.mark.postgres


def _postgres_only(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("several worker processes need PostgreSQL (SQLite allows one)")


async def _plan(database: Database, batch_size: int = 2) -> int:
    async with database.session() as session, session.begin():
        run = await work.plan_run(
            session,
            selection=RunSelection(),
            trigger=RunTrigger.MANUAL,
            requested_by="test",
            batching=work.RunBatching(batch_size=batch_size, max_attempts=3),
        )
    assert run is not None
    return run.id


async def _stop(process: asyncio.subprocess.Process) -> tuple[int, str]:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    _out, err = await asyncio.wait_for(process.communicate(), 20)
    return process.returncode or 0, err.decode()


async def test_workers_drain_a_run_exactly_once_despite_a_sigkill(database: Database) -> None:
    _postgres_only(database)
    async with targets(3) as bases:
        # Slow enough that the kill lands mid-batch; three hosts so both workers have work.
        urls = [f"{base}/api/{i}?delay=0.2" for base in bases for i in range(4)]
        endpoint_ids = await add_endpoints(database, urls)
        run_id = await _plan(database)
        victim = await start_worker(database.url)
        survivor: asyncio.subprocess.Process | None = None
        try:
            # Wait until the victim holds a lease, then kill it without any cleanup.
            # The survivor starts only then: started together, a faster-starting
            # survivor could lease every host first and leave the victim nothing.
            victim_item: int | None = None
            async with asyncio.timeout(30):
                while victim_item is None:
                    for item in await items(database, run_id):
                        if item.status == "leased" and item.leased_by is not None:
                            owners = await _worker_pids(database)
                            if owners.get(item.leased_by) == victim.pid:
                                victim_item = item.id
                    await asyncio.sleep(0.05)
            survivor = await start_worker(database.url)
            victim.send_signal(signal.SIGKILL)
            await victim.wait()

            run = await wait_run_final(database, run_id, limit_s=60)
        finally:
            code, err = await _stop(survivor) if survivor is not None else (None, "no survivor")
            if victim.returncode is None:
                victim.kill()
                await victim.wait()
    assert code == 0, err
    assert run.status == "completed", run.error
    assert run.finalized_at is not None
    assert run.endpoints_done == len(endpoint_ids)
    # Every probe committed exactly once, and as many as the results say were made.
    counts = await probe_key_counts(database, run_id)
    assert counts
    assert set(counts) == {1}
    stored, claimed = await stored_probe_totals(database, run_id)
    assert stored == claimed == run.probes_total
    all_items = await items(database, run_id)
    by_id = {i.id: i for i in all_items}
    # The killed worker's item was finished by the survivor, on a second attempt.
    assert by_id[victim_item].status == "done"
    assert by_id[victim_item].attempts == 2
    finalize = [i for i in all_items if i.kind == WorkKind.FINALIZE_RUN.value]
    assert len(finalize) == 1
    assert finalize[0].status == "done"
    assert all(i.status == "done" for i in all_items)


async def _worker_pids(database: Database) -> dict[str, int]:
    from scanner.db.tables import WorkerRow

    async with database.session() as session, session.begin():
        rows = await session.execute(select(WorkerRow.id, WorkerRow.pid))
        return {i: p for i, p in rows.all()}


async def test_sigterm_releases_leased_items_and_exits_0(database: Database) -> None:
    _postgres_only(database)
    async with targets(1) as bases:
        await add_endpoints(database, [f"{bases[0]}/slow?delay=20"])
        run_id = await _plan(database)
        process = await start_worker(database.url)
        try:
            async with asyncio.timeout(20):
                while (await items(database, run_id))[0].status != "leased":  # noqa: ASYNC110 - polling rows another process writes
                    await asyncio.sleep(0.05)
        finally:
            code, err = await _stop(process)
    assert code == 0, err
    (item,) = await items(database, run_id)
    assert item.status == "queued"
    assert item.lease_token is None
    assert item.attempts == 0  # a graceful release does not count against the item
    assert await _worker_pids(database) == {}


async def test_a_stalled_workers_late_completion_is_rejected(database: Database) -> None:
    async with targets(1) as bases:
        await add_endpoints(database, [f"{bases[0]}/a", f"{bases[0]}/b"])
        run_id = await _plan(database, batch_size=10)
        async with database.session() as session, session.begin():
            (stalled,) = await leases.claim_work(
                session, worker_id="stalled", limit=1, lease_seconds=0.2
            )
        await asyncio.sleep(0.4)  # the stalled worker's lease expires
        async with database.session() as session, session.begin():
            (fresh,) = await leases.claim_work(
                session, worker_id="fresh", limit=1, lease_seconds=30
            )
        assert fresh.item_id == stalled.item_id
        assert fresh.token != stalled.token

        from scanner.engine import Engine, scan_options
        from scanner.hostnames import default_public_suffixes
        from scanner.settings import Settings

        options = scan_options(Settings(retries=0, timeout=5))
        async with Engine(options, default_public_suffixes()) as engine:
            late = await batch.execute(database, engine, stalled)
            assert late is batch.Outcome.LOST
            # Nothing of the stalled execution was stored.
            assert await probe_key_counts(database, run_id) == []
            done = await batch.execute(database, engine, fresh)
            assert done is batch.Outcome.DONE
            again = await batch.execute(database, engine, fresh)
            assert again is batch.Outcome.LOST  # a second completion is rejected too
    counts = await probe_key_counts(database, run_id)
    assert counts
    assert set(counts) == {1}
    (item, finalize) = await items(database, run_id)
    assert item.status == "done"
    assert item.leased_by == "fresh"
    assert finalize.kind == "finalize_run"


async def test_finalize_runs_once_under_concurrent_finalizers(database: Database) -> None:
    from scanner.worker.finalize import finalize_run

    run_id = await _plan(database)  # no endpoints: finalize item at once

    async def attempt() -> bool:
        async with database.session() as session, session.begin():
            return await finalize_run(session, run_id)

    results = await asyncio.gather(*(attempt() for _ in range(4)))
    assert sorted(results) == [False, False, False, True]
    run = await wait_run_final(database, run_id, limit_s=1)
    assert run.status == "completed"
    async with database.session() as session, session.begin():
        stored = (
            await session.execute(
                select(RunExchangeRow.endpoint_id).where(RunExchangeRow.scan_id == run_id)
            )
        ).all()
        kinds = (
            (await session.execute(select(WorkItemRow.kind).where(WorkItemRow.run_id == run_id)))
            .scalars()
            .all()
        )
    assert stored == []
    assert list(kinds) == ["finalize_run"]
