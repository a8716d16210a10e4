"""``claim_deliveries`` on both databases: due rows only, per-hook caps, leases that expire.

Expiry is tested by moving ``lease_expires_at`` / ``next_attempt_at``, never by sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from scanner.alerts.outbox import OutgoingEvent, enqueue_events
from scanner.db import hooks
from scanner.db.engine import Database
from scanner.db.hooks import ClaimedDelivery, HookInput, HookKind
from scanner.db.leases import claim_deliveries, database_time
from scanner.db.tables import HookDeliveryRow, HookRow

PAST = datetime.now(UTC) - timedelta(minutes=5)


async def _hook_with_deliveries(database: Database, name: str, event: Any, count: int) -> int:
    async with database.session() as session, session.begin():
        hook, _secret = await hooks.create_hook(
            session,
            HookInput(name=name, kind=HookKind.WEBHOOK, url=f"https://{name}.example.test/h"),
            by="test",
            now=PAST,
        )
        for _ in range(count):
            await enqueue_events(session, [OutgoingEvent(event, None)], now=PAST, hooks=[hook.id])
    return hook.id


async def _claim(database: Database, worker: str, **kw: Any) -> list[ClaimedDelivery]:
    async with database.session() as session, session.begin():
        return await claim_deliveries(
            session, worker_id=worker, limit=kw.pop("limit", 10), lease_seconds=60, **kw
        )


async def test_no_hook_gets_more_than_its_share(database: Database, make_event: Any) -> None:
    a = await _hook_with_deliveries(database, "a", make_event(), 3)
    b = await _hook_with_deliveries(database, "b", make_event(), 3)

    first = await _claim(database, "d1", max_per_hook=2)
    assert sorted(c.hook_id for c in first) == [a, a, b, b]
    # What the caller already sends counts: hook a is full, b has room for one more.
    second = await _claim(database, "d1", max_per_hook=2, in_flight={a: 2, b: 1})
    assert [c.hook_id for c in second] == [b]
    assert len({c.lease_token for c in first + second}) == 5


async def test_a_leased_delivery_goes_to_another_dispatcher_only_once_its_lease_expired(
    database: Database, make_event: Any
) -> None:
    await _hook_with_deliveries(database, "a", make_event(), 1)
    (held,) = await _claim(database, "d1")
    assert await _claim(database, "d2") == []
    async with database.session() as session, session.begin():
        now = await database_time(session)
        await session.execute(
            update(HookDeliveryRow)
            .where(HookDeliveryRow.id == held.id)
            .values(lease_expires_at=now - timedelta(seconds=1))
        )
    (again,) = await _claim(database, "d2")
    assert again.id == held.id
    assert again.msg_id == held.msg_id  # the same webhook-id: receivers deduplicate
    assert again.lease_token != held.lease_token


async def test_deliveries_not_due_or_of_disabled_hooks_are_not_claimed(
    database: Database, make_event: Any
) -> None:
    later = await _hook_with_deliveries(database, "later", make_event(), 1)
    off = await _hook_with_deliveries(database, "off", make_event(), 1)
    async with database.session() as session, session.begin():
        now = await database_time(session)
        await session.execute(
            update(HookDeliveryRow)
            .where(HookDeliveryRow.hook_id == later)
            .values(next_attempt_at=now + timedelta(hours=1))
        )
        await session.execute(update(HookRow).where(HookRow.id == off).values(enabled=False))
    assert await _claim(database, "d1") == []
    async with database.session() as session, session.begin():
        now = await database_time(session)
        await session.execute(
            update(HookDeliveryRow)
            .where(HookDeliveryRow.hook_id == later)
            .values(next_attempt_at=now - timedelta(seconds=1))
        )
    assert [c.hook_id for c in await _claim(database, "d1")] == [later]
