"""The outbox's lease SQL (``scanner.db.leases``): claims, per-hook caps, skip-locked, expiry.

Leases expire by moving ``lease_expires_at`` into the past in the database,
never by sleeping. Run on SQLite and, with ``CORS_SCANNER_TEST_DATABASE_URL``,
on PostgreSQL (skip-locked is PostgreSQL's; SQLite serialises writers).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from scanner.db import hooks
from scanner.db.engine import Database
from scanner.db.hooks import AttemptLog, DeliveryStatus, HookInput, HookKind, NewDelivery
from scanner.db.leases import claim_deliveries, complete_delivery, release_deliveries
from scanner.db.tables import HookDeliveryRow

NOW = datetime(2026, 3, 1, tzinfo=UTC)
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


async def _hook_with_deliveries(database: Database, name: str, count: int) -> tuple[int, list[int]]:
    async with database.session() as session, session.begin():
        hook, _ = await hooks.create_hook(
            session,
            HookInput(name=name, kind=HookKind.WEBHOOK, url="https://hooks.example.com/in"),
            by="test",
            now=NOW,
        )
        ids = await hooks.add_deliveries(
            session,
            [
                NewDelivery(hook.id, None, "finding.new", f"msg_{name}_{i}", '{"events":[]}')
                for i in range(count)
            ],
            run_id=None,
            now=NOW,
        )
    return hook.id, ids


def _attempt(outcome: str = "success") -> AttemptLog:
    return AttemptLog(
        started_at=NOW,
        duration_ms=1.0,
        status=200,
        outcome=outcome,
        reason="200",
        response_excerpt="",
        error=None,
        error_detail=None,
    )


async def test_no_hook_gets_more_than_its_cap(database: Database) -> None:
    a, a_ids = await _hook_with_deliveries(database, "a", 3)
    b, b_ids = await _hook_with_deliveries(database, "b", 3)
    async with database.session() as session, session.begin():
        first = await claim_deliveries(
            session, worker_id="w1", limit=10, lease_seconds=60, max_per_hook=2
        )
    assert sorted(c.id for c in first) == sorted([*a_ids[:2], *b_ids[:2]])  # oldest due first
    async with database.session() as session, session.begin():
        # The caller still sends one of a's: a has room for one more, b (two in flight) none.
        second = await claim_deliveries(
            session,
            worker_id="w1",
            limit=10,
            lease_seconds=60,
            in_flight={a: 1, b: 2},
            max_per_hook=2,
        )
    assert [c.id for c in second] == [a_ids[2]]
    async with database.session() as session, session.begin():
        # The cap counts what the caller says it sends: a dispatcher sending nothing gets b's last.
        third = await claim_deliveries(session, worker_id="w2", limit=10, lease_seconds=60)
    assert [c.id for c in third] == [b_ids[2]]
    async with database.session() as session, session.begin():
        assert await claim_deliveries(session, worker_id="w3", limit=10, lease_seconds=60) == []


async def test_a_disabled_hook_is_not_claimed(database: Database) -> None:
    a, _ = await _hook_with_deliveries(database, "a", 2)
    async with database.session() as session, session.begin():
        await hooks.disable_hook(session, a, "410 Gone", now=NOW)
    async with database.session() as session, session.begin():
        assert await claim_deliveries(session, worker_id="w", limit=10, lease_seconds=60) == []


async def test_an_expired_lease_is_claimed_again_and_the_old_holder_is_fenced(
    database: Database,
) -> None:
    _, [delivery_id] = await _hook_with_deliveries(database, "a", 1)
    async with database.session() as session, session.begin():
        [old] = await claim_deliveries(session, worker_id="w1", limit=5, lease_seconds=60)
    async with database.session() as session, session.begin():
        assert await claim_deliveries(session, worker_id="w2", limit=5, lease_seconds=60) == []
    async with database.session() as session, session.begin():  # w1 stalled past its lease
        await session.execute(
            update(HookDeliveryRow)
            .where(HookDeliveryRow.id == delivery_id)
            .values(lease_expires_at=LONG_AGO)
        )
    async with database.session() as session, session.begin():
        [new] = await claim_deliveries(session, worker_id="w2", limit=5, lease_seconds=60)
    assert new.id == old.id
    assert new.msg_id == old.msg_id  # at least once, same webhook-id
    assert new.lease_token != old.lease_token
    async with database.session() as session, session.begin():
        lost = await complete_delivery(
            session,
            old,
            _attempt("retry"),
            status=DeliveryStatus.QUEUED,
            next_attempt_at=NOW,
            last_error="late",
            now=NOW,
        )
    assert lost is False
    async with database.session() as session, session.begin():
        owned = await complete_delivery(
            session, new, _attempt(), status=DeliveryStatus.DELIVERED, now=NOW
        )
    assert owned is True
    async with database.session() as session, session.begin():
        record = await hooks.get_delivery(session, delivery_id)
    assert record.status is DeliveryStatus.DELIVERED  # the late holder changed nothing
    assert record.last_error is None
    assert [a.outcome for a in record.attempt_log] == ["retry", "success"]  # both happened


async def test_released_deliveries_are_due_at_once_and_only_by_their_holder(
    database: Database,
) -> None:
    _, ids = await _hook_with_deliveries(database, "a", 2)
    async with database.session() as session, session.begin():
        claims = await claim_deliveries(
            session, worker_id="w1", limit=5, lease_seconds=3600, max_per_hook=2
        )
    async with database.session() as session, session.begin():
        assert await release_deliveries(session, claims) == 2
    async with database.session() as session, session.begin():
        assert await release_deliveries(session, claims) == 0  # the tokens are spent
        again = await claim_deliveries(
            session, worker_id="w2", limit=5, lease_seconds=60, max_per_hook=2
        )
    assert sorted(c.id for c in again) == sorted(ids)


async def test_a_disable_reason_disables_the_hook_only_for_the_holder(database: Database) -> None:
    a, _ = await _hook_with_deliveries(database, "a", 1)
    async with database.session() as session, session.begin():
        [claimed] = await claim_deliveries(session, worker_id="w", limit=5, lease_seconds=60)
    async with database.session() as session, session.begin():
        assert await complete_delivery(
            session,
            claimed,
            _attempt("disable"),
            status=DeliveryStatus.CANCELLED,
            last_error="410 Gone",
            disable_hook_reason="410 Gone: the receiver asks us to stop",
            now=NOW,
        )
    async with database.session() as session, session.begin():
        hook = await hooks.get_hook(session, a)
    assert not hook.enabled
    assert hook.disabled_reason == "410 Gone: the receiver asks us to stop"


async def test_concurrent_claims_skip_locked_rows_instead_of_waiting(database: Database) -> None:
    if database.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time (BEGIN IMMEDIATE): nothing to skip")
    _, ids = await _hook_with_deliveries(database, "a", 4)
    async with database.session() as first, first.begin():
        # One dispatcher's claim, not committed yet: its rows are locked.
        mine = await claim_deliveries(
            first, worker_id="w1", limit=2, lease_seconds=60, max_per_hook=10
        )
        assert sorted(c.id for c in mine) == ids[:2]
        async with database.session() as session, session.begin():
            theirs = await asyncio.wait_for(
                claim_deliveries(
                    session, worker_id="w2", limit=10, lease_seconds=60, max_per_hook=10
                ),
                timeout=5,  # skipped, not waited for
            )
        # Never one of the first claim's rows. (Nothing at all here: the first claim's
        # candidate select locked every row it looked at, claimed or not, until its commit.)
        assert not {c.id for c in theirs} & {c.id for c in mine}
    async with database.session() as session, session.begin():
        after = await claim_deliveries(
            session, worker_id="w2", limit=10, lease_seconds=60, max_per_hook=10
        )
    assert sorted(c.id for c in after) == ids[2:]
