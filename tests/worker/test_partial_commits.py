"""A re-claimed batch re-probes only the endpoints its lost holder had not committed.

A batch of eight endpoints on one host: six answer at once, two hang until the
test lets them go. The first holder stores the finished endpoints as they
come (``COMMIT_EVERY`` at a time) and then dies (its task is cancelled); its
lease is expired by moving ``lease_expires_at``. The next claim of the same
item probes only what was not stored, and the run ends with every endpoint
stored once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from sqlalchemy import update

from scanner.db import leases, runs, work
from scanner.db.engine import Database
from scanner.db.runs import RunSelection, RunTrigger
from scanner.db.tables import WorkItemRow
from scanner.engine import Engine, scan_options
from scanner.hostnames import default_public_suffixes
from scanner.settings import Settings
from scanner.worker import batch
from tests.loopback import ServeApp
from tests.worker.support import add_endpoints, probe_key_counts


async def test_a_reclaimed_batch_skips_what_was_committed(
    database: Database, serve_app: ServeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "MIN_COMMIT_SECONDS", 0.0)  # the pacing is not under test
    hits: Counter[str] = Counter()
    release = asyncio.Event()

    async def answer(request: web.Request) -> web.Response:
        hits[request.path] += 1
        if request.path.startswith("/stall"):
            await release.wait()
        return web.Response(text="ok", headers={"Vary": "Origin"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    base = await serve_app(app)
    fast = [f"{base}/fast/{i}" for i in range(6)]
    ids = await add_endpoints(database, [*fast, f"{base}/stall/0", f"{base}/stall/1"])
    async with database.session() as session, session.begin():
        run = await work.plan_run(
            session,
            selection=RunSelection(),
            trigger=RunTrigger.MANUAL,
            requested_by="test",
            batching=work.RunBatching(batch_size=10, max_attempts=3),
        )
        assert run is not None
    async with database.session() as session, session.begin():
        (first,) = await leases.claim_work(session, worker_id="dies", limit=1, lease_seconds=30)

    options = scan_options(Settings(retries=0, timeout=30))
    async with Engine(options, default_public_suffixes()) as engine:
        holder = asyncio.create_task(batch.execute(database, engine, first))
        async with asyncio.timeout(20):
            while True:
                async with database.session() as session:
                    stored = await runs.list_run_endpoint_ids(session, run.id)
                if len(stored) >= batch.COMMIT_EVERY:
                    break
                await asyncio.sleep(0.05)
        holder.cancel()  # the worker dies mid-batch
        await asyncio.gather(holder, return_exceptions=True)
        assert stored <= set(ids[:6])
        before = Counter(hits)

        async with database.session() as session, session.begin():
            await session.execute(
                update(WorkItemRow)
                .where(WorkItemRow.id == first.item_id)
                .values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        # The dead holder's connection may still be rolling back (its row locked,
        # so SKIP LOCKED passes it over): claim until the item comes back.
        claimed: list[leases.Lease] = []
        async with asyncio.timeout(10):
            while not claimed:
                async with database.session() as session, session.begin():
                    claimed = await leases.claim_work(
                        session, worker_id="next", limit=1, lease_seconds=30
                    )
                await asyncio.sleep(0.05)
        (second,) = claimed
        assert second.item_id == first.item_id
        release.set()
        assert await batch.execute(database, engine, second) is batch.Outcome.DONE

    by_id = dict(zip(ids, [*fast, f"{base}/stall/0", f"{base}/stall/1"], strict=True))
    for endpoint_id in stored:
        path = by_id[endpoint_id].removeprefix(base)
        assert hits[path] == before[path], f"{path} was committed, yet probed again"
    for endpoint_id in set(ids) - stored:
        path = by_id[endpoint_id].removeprefix(base)
        assert hits[path] > before[path]
    async with database.session() as session:
        assert await runs.list_run_endpoint_ids(session, run.id) == set(ids)
    counts = await probe_key_counts(database, run.id)
    assert counts
    assert set(counts) == {1}
