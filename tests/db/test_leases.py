"""The lease SQL of work items on both databases: claims, per-host politeness, expiry, refunds.

Expiry is tested by moving ``lease_expires_at`` (or ``available_at``), never by sleeping.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from scanner.db import leases, work
from scanner.db.engine import Database
from scanner.db.leases import Lease, database_time
from scanner.db.runs import RunSelection, RunTrigger
from scanner.db.tables import WorkItemRow
from tests.worker.support import add_endpoints


async def _plan(database: Database, urls: list[str], *, batch_size: int = 1) -> int:
    await add_endpoints(database, urls)
    async with database.session() as session, session.begin():
        run = await work.plan_run(
            session,
            selection=RunSelection(),
            trigger=RunTrigger.MANUAL,
            requested_by="test",
            batching=work.RunBatching(batch_size=batch_size, max_attempts=2),
        )
    assert run is not None
    return run.id


async def _claim(database: Database, worker: str, limit: int = 10) -> list[Lease]:
    async with database.session() as session, session.begin():
        return await leases.claim_work(session, worker_id=worker, limit=limit, lease_seconds=60)


async def _expire(database: Database, item_ids: list[int]) -> None:
    async with database.session() as session, session.begin():
        now = await database_time(session)
        await session.execute(
            update(WorkItemRow)
            .where(WorkItemRow.id.in_(item_ids))
            .values(lease_expires_at=now - timedelta(seconds=1))
        )


async def test_a_claim_takes_at_most_one_item_per_host(database: Database) -> None:
    await _plan(
        database,
        ["https://a.test/1", "https://a.test/2", "https://b.test/1", "https://c.test/1"],
    )
    claimed = await _claim(database, "w1")
    assert sorted(c.host_key for c in claimed) == [
        "https://a.test:443",
        "https://b.test:443",
        "https://c.test:443",
    ]
    assert all(c.attempts == 1 and c.previous_holder is None for c in claimed)
    assert len({c.token for c in claimed}) == 3


async def test_a_host_leased_by_one_worker_is_not_given_to_another(database: Database) -> None:
    await _plan(database, ["https://a.test/1", "https://a.test/2", "https://b.test/1"])
    (first,) = await _claim(database, "w1", limit=1)
    others = await _claim(database, "w2")
    # w2 gets the other host only: a.test has a live lease (w1's), whoever holds it.
    hosts = {"https://a.test:443", "https://b.test:443"}
    assert first.host_key in hosts
    assert [o.host_key for o in others] == sorted(hosts - {first.host_key})
    assert await _claim(database, "w3") == []
    # Once w1's lease expires, its host is free: its item (attempt 2) or the other one.
    await _expire(database, [first.item_id])
    again = await _claim(database, "w3")
    assert len(again) == 1
    assert again[0].host_key == first.host_key
    if again[0].item_id == first.item_id:
        assert again[0].previous_holder == "w1"
        assert again[0].attempts == 2


async def test_an_expired_lease_on_its_last_attempt_is_not_claimed_again(
    database: Database,
) -> None:
    await _plan(database, ["https://a.test/1"])
    for attempt in (1, 2):
        (lease,) = await _claim(database, f"w{attempt}")
        assert lease.attempts == attempt
        await _expire(database, [lease.item_id])
    assert await _claim(database, "w3") == []  # max_attempts=2: the reaper's now
    async with database.session() as session, session.begin():
        assert await leases.exhausted_items(session) == [(lease.item_id, lease.run_id)]


async def test_an_item_not_yet_available_waits_for_the_database_clock(database: Database) -> None:
    await _plan(database, ["https://a.test/1"])
    async with database.session() as session, session.begin():
        now = await database_time(session)
        await session.execute(update(WorkItemRow).values(available_at=now + timedelta(hours=1)))
    assert await _claim(database, "w1") == []
    async with database.session() as session, session.begin():
        now = await database_time(session)
        await session.execute(update(WorkItemRow).values(available_at=now - timedelta(seconds=1)))
    assert len(await _claim(database, "w1")) == 1


async def test_planned_items_are_available_at_once_on_the_database_clock(
    database: Database,
) -> None:
    await _plan(database, ["https://a.test/1"])
    async with database.session() as session, session.begin():
        now = await database_time(session)
        (available,) = (await session.execute(select(WorkItemRow.available_at))).scalars()
    assert available.replace(tzinfo=now.tzinfo) <= now


async def test_released_and_unknown_leases_give_their_attempt_back(database: Database) -> None:
    await _plan(database, ["https://a.test/1", "https://b.test/1"])
    held, lost = await _claim(database, "w1")
    async with database.session() as session, session.begin():
        # The claim's reply was lost for one of them: the worker only knows `held`.
        released = await leases.release_unknown_leases(session, "w1", known=[held.item_id])
        assert await leases.release_lease(session, held, refund_attempt=True)
    assert released == 1
    async with database.session() as session, session.begin():
        rows = (await session.execute(select(WorkItemRow).order_by(WorkItemRow.id))).scalars()
        assert [(r.status, r.attempts, r.leased_by) for r in rows] == [("queued", 0, None)] * 2
    # A lease that was released no longer completes.
    async with database.session() as session, session.begin():
        assert not await leases.complete_lease(session, lost)
