"""Monotonic counters: atomic increments under concurrency, and the upgrade that backfills them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from scanner.db import counters
from scanner.db.engine import Database


async def test_concurrent_increments_all_count(database: Database) -> None:
    async def bump(n: int) -> None:
        async with database.session() as s, s.begin():
            await counters.increment(
                s, "example", {"outcome": "ok" if n % 2 else "no", "channel": "slack"}
            )

    await asyncio.gather(*(bump(n) for n in range(20)))
    async with database.session() as s, s.begin():
        totals = await counters.read_counter(s, "example")
        await counters.increment(s, "example", {"channel": "slack", "outcome": "ok"}, by=5)
    assert totals == {
        (("channel", "slack"), ("outcome", "ok")): 10,
        (("channel", "slack"), ("outcome", "no")): 10,
    }
    async with database.session() as s, s.begin():
        assert (await counters.read_counter(s, "example"))[
            (("channel", "slack"), ("outcome", "ok"))
        ] == 15
        with pytest.raises(ValueError, match="only goes up"):
            await counters.increment(s, "example", {}, by=-1)
        with pytest.raises(ValueError, match="may not contain"):
            await counters.increment(s, "example", {"channel": "a,b"})


async def test_an_attempt_on_a_deleted_hook_counts_nothing(database: Database) -> None:
    async with database.session() as s, s.begin():
        await counters.count_delivery_attempt(s, hook_id=999, outcome="success", final="delivered")
        assert await counters.read_counter(s, counters.DELIVERY_ATTEMPTS) == {}


async def test_the_upgrade_backfills_the_delivery_counters(empty_database: Database) -> None:
    db = empty_database
    await db.upgrade("0003_findings_and_alerts")
    now = datetime(2026, 12, 1, tzinfo=UTC)
    async with db.engine.begin() as conn:
        for hook_id, kind in ((1, "slack"), (2, "webhook")):
            await conn.execute(
                text(
                    "INSERT INTO hooks (id, name, kind, url, github_signature, event_kinds, tags,"
                    " owners, enabled, created_at, updated_at) VALUES (:id, :name, :kind,"
                    " 'https://h.example/x', false, '[]', '[]', '[]', true, :now, :now)"
                ),
                {"id": hook_id, "name": f"h{hook_id}", "kind": kind, "now": now},
            )
        deliveries = [(1, 1, "delivered"), (2, 1, "queued"), (3, 2, "dead"), (4, 2, "delivered")]
        for delivery_id, hook_id, status in deliveries:
            await conn.execute(
                text(
                    "INSERT INTO hook_deliveries (id, hook_id, event_type, msg_id, body, status,"
                    " attempts, next_attempt_at, created_at) VALUES (:id, :hook, 'hook.test',"
                    " :msg, '{}', :status, 1, :now, :now)"
                ),
                {
                    "id": delivery_id,
                    "hook": hook_id,
                    "msg": f"m{delivery_id}",
                    "status": status,
                    "now": now,
                },
            )
        attempts = [(1, 1, "retry"), (1, 2, "success"), (3, 1, "fail"), (4, 1, "success")]
        for delivery_id, attempt, outcome in attempts:
            await conn.execute(
                text(
                    "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms,"
                    " outcome, reason, response_excerpt) VALUES (:d, :a, :now, 1.0, :o, 'r', '')"
                ),
                {"d": delivery_id, "a": attempt, "o": outcome, "now": now},
            )
    await db.upgrade("head")
    async with db.session() as s, s.begin():
        final = await counters.read_counter(s, counters.DELIVERIES)
        tried = await counters.read_counter(s, counters.DELIVERY_ATTEMPTS)
    assert final == {
        (("channel", "slack"), ("outcome", "delivered")): 1,
        (("channel", "webhook"), ("outcome", "dead")): 1,
        (("channel", "webhook"), ("outcome", "delivered")): 1,
    }
    assert tried == {
        (("channel", "slack"), ("outcome", "retry")): 1,
        (("channel", "slack"), ("outcome", "success")): 1,
        (("channel", "webhook"), ("outcome", "fail")): 1,
        (("channel", "webhook"), ("outcome", "success")): 1,
    }
    await db.downgrade("0003_findings_and_alerts")
    await db.upgrade("head")
