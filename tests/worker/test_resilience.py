"""The worker and the runtime ride out database trouble; re-claims are logged; dead workers go."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

import scanner.db.engine as engine_module
from scanner.db import leases, work
from scanner.db.engine import Database
from scanner.db.leases import database_time
from scanner.db.runs import RunSelection, RunTrigger
from scanner.db.tables import RunRow, WorkerRow, WorkItemRow
from scanner.engine import scan_options
from scanner.hostnames import default_public_suffixes
from scanner.runtime import run_components
from scanner.settings import Settings
from scanner.worker import Worker
from tests.worker.support import add_endpoints, items, targets, wait_run_final


def _settings(database: Database) -> Settings:
    return Settings(
        database_url=database.url,
        lease_seconds=5.0,
        heartbeat_seconds=0.3,
        poll_seconds=0.1,
        retries=0,
        timeout=5.0,
    )


async def _plan(database: Database) -> int:
    async with database.session() as session, session.begin():
        run = await work.plan_run(
            session,
            selection=RunSelection(),
            trigger=RunTrigger.MANUAL,
            requested_by="test",
            batching=work.RunBatching(batch_size=2, max_attempts=3),
        )
    assert run is not None
    return run.id


async def _wait_final_reading(database: Database, run_id: int) -> RunRow:
    """Poll the run in read transactions: they never wait for the write lock."""
    async with asyncio.timeout(30):
        while True:
            async with database.read_session() as session, session.begin():
                run = await session.get(RunRow, run_id, populate_existing=True)
                assert run is not None
                if run.status in ("completed", "failed", "cancelled"):
                    session.expunge(run)
                    return run
            await asyncio.sleep(0.1)


class _FailsOnce:
    """A component whose first run dies of a dropped connection, as a claim's would."""

    def __init__(self) -> None:
        self.starts = 0

    async def run(self, stop: asyncio.Event) -> None:
        self.starts += 1
        if self.starts == 1:
            raise OperationalError("SELECT 1", {}, ConnectionResetError("connection reset"))
        stop.set()  # the second life: done, stop the process normally


async def test_a_component_a_transient_database_error_ended_is_started_again() -> None:
    component = _FailsOnce()
    async with asyncio.timeout(10):
        await run_components([component], signals=False)  # returns, does not raise
    assert component.starts == 2


async def test_a_component_a_bug_ended_still_ends_the_process() -> None:
    class Broken:
        async def run(self, stop: asyncio.Event) -> None:
            raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        await run_components([Broken()], signals=False)


async def test_the_worker_rides_out_a_write_lock_held_past_the_busy_timeout(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if database.dialect != "sqlite":
        pytest.skip("SQLite's one write lock (PostgreSQL: tests/worker/test_connection_loss.py)")
    # Time out after 0.3 s instead of 15 (the lock below is held for 2 s).
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 300)
    impatient = await Database.connect(database.url)
    path = make_url(database.url).database
    assert path is not None
    locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    try:
        async with targets(2) as bases:
            await add_endpoints(impatient, [f"{b}/api/{i}" for b in bases for i in range(4)])
            run_id = await _plan(impatient)
            settings = _settings(impatient)
            worker = Worker(impatient, settings, scan_options(settings), default_public_suffixes())
            stop = asyncio.Event()
            # Another writer (an import, a backup) holds the lock while the worker starts.
            await asyncio.to_thread(locker.execute, "BEGIN IMMEDIATE")
            service = asyncio.create_task(run_components([worker], stop, signals=False))
            try:
                await asyncio.sleep(2)  # the worker's register/claims fail: "database is locked"
                assert not service.done()
                locker.execute("ROLLBACK")
                run = await _wait_final_reading(database, run_id)
            finally:
                stop.set()
                await service
            work_items = await items(impatient, run_id)
    finally:
        locker.close()
        await impatient.close()
    assert run.status == "completed"
    assert {i.status for i in work_items} == {"done"}
    assert max(i.attempts for i in work_items) == 1  # the lock cost no attempt


async def test_a_reclaimed_expired_lease_is_logged_with_its_previous_holder(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    async with targets(1) as [base]:
        await add_endpoints(database, [f"{base}/a"])
        run_id = await _plan(database)
        async with database.session() as session, session.begin():
            (ghost,) = await leases.claim_work(
                session, worker_id="ghost-worker", limit=1, lease_seconds=60
            )
            # The ghost died: its lease ran out (moved, not waited for).
            now = await database_time(session)
            await session.execute(
                update(WorkItemRow)
                .where(WorkItemRow.id == ghost.item_id)
                .values(lease_expires_at=now - timedelta(seconds=1))
            )
        settings = _settings(database)
        worker = Worker(database, settings, scan_options(settings), default_public_suffixes())
        stop = asyncio.Event()
        with caplog.at_level(logging.INFO, logger="scanner.worker"):
            service = asyncio.create_task(run_components([worker], stop, signals=False))
            try:
                run = await wait_run_final(database, run_id)
            finally:
                stop.set()
                await service
    assert run.status == "completed"
    (line,) = [r.getMessage() for r in caplog.records if "expired; re-claimed" in r.getMessage()]
    assert "ghost-worker" in line
    assert f"work item {ghost.item_id}" in line
    assert "attempt 2 of 3" in line


async def test_dead_workers_are_pruned_after_the_retention(database: Database) -> None:
    async with database.session() as session, session.begin():
        now = await database_time(session)
        for worker_id, silent_for in (("long-dead", 7200), ("recently-dead", 600), ("live", 0)):
            moment = now - timedelta(seconds=silent_for)
            session.add(
                WorkerRow(
                    id=worker_id,
                    hostname="h",
                    pid=1,
                    started_at=moment,
                    last_heartbeat=moment,
                )
            )
    async with database.session() as session, session.begin():
        pruned = await work.prune_dead_workers(session, older_than=3600)
    async with database.session() as session, session.begin():
        listed = await work.list_workers(session, stale_after=60)
    assert pruned == 1
    assert sorted(w.id for w in listed) == ["live", "recently-dead"]
