"""Leases: every claim / heartbeat / complete / release / dead-letter statement on work rows.

The pattern (service design §5.4), shared by run work items and, later, the
alert outbox (issue 5 adds ``claim_deliveries``/``complete_delivery`` in its
own section below, over the same lease columns: ``status``, ``available_at``,
``attempts``, ``max_attempts``, ``leased_by``, ``lease_token``,
``lease_expires_at``, ``last_error``):

1. **Claim** = one short transaction: select claimable rows (queued and
   available, or leased with an expired lease) ``FOR UPDATE SKIP LOCKED``, stamp
   them ``leased`` with the worker's id, a fresh random token and
   ``lease_expires_at = now() + lease``, ``attempts += 1``, and commit at once.
   No row lock is held while the work itself (network I/O) runs.
2. **Heartbeat** extends the lease ``WHERE id = … AND lease_token = …``; 0 rows
   means the lease was lost (someone re-claimed it, or it was dead-lettered or
   cancelled): the holder must stop.
3. **Complete** sets ``done`` under the same token predicate, in the same
   transaction that stores the results; 0 rows = roll everything back. A batch
   may be *executed* twice after a stall, but it is *committed* once.
4. **Release** (graceful shutdown, retryable failure) puts a row back to
   ``queued``; **dead** ends it after ``max_attempts``.

Every timestamp compared or written here is the **database's** clock
(:func:`db_now`), so clock skew between worker machines does not matter.

SQLite variant: SQLAlchemy renders no ``FOR UPDATE`` on SQLite, but every
transaction there begins ``BEGIN IMMEDIATE`` (``scanner.db.engine``), so the
claim's select-then-update holds the one write lock from its first statement
and is atomic. Several worker *processes* on one SQLite file are refused
(``scanner.db.work.register_worker``).

PostgreSQL variant: the claim also takes a transaction-scoped advisory lock so
claims run one at a time. Claims are a few milliseconds, and without it two
concurrent claims could each lease a different item of the same host (neither
sees the other's uncommitted lease), breaking per-host politeness across
workers. ``pg_advisory_xact_lock`` is released by COMMIT, so it is safe behind
transaction-pooling proxies (unlike session advisory locks, §5.4 point 9).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Interval, and_, bindparam, exists, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from scanner.db.counters import count_delivery_attempt
from scanner.db.hooks import AttemptLog, ClaimedDelivery, DeliveryStatus, disable_hook
from scanner.db.tables import DeliveryAttemptRow, HookRow, RunRow, WorkItemRow
from scanner.db.tables import HookDeliveryRow as D

# Any constant, distinct from the migration lock: serializes claims on PostgreSQL.
_CLAIM_LOCK = 0x636C61696D  # "claim"
# How many candidates one claim looks at per slot: some are skipped for politeness.
_CANDIDATES_PER_SLOT = 4
ERROR_LIMIT = 2000  # characters of last_error kept


class WorkStatus(StrEnum):
    """Where a work item is; ``done``, ``dead`` and ``cancelled`` are final."""

    QUEUED = "queued"
    LEASED = "leased"
    DONE = "done"
    DEAD = "dead"
    CANCELLED = "cancelled"


class WorkKind(StrEnum):
    """What a work item does."""

    PROBE_BATCH = "probe_batch"  # payload {"endpoint_ids": [...]}, all of one host
    FINALIZE_RUN = "finalize_run"  # computes the run's totals once its last batch is in


@dataclass(frozen=True, slots=True)
class Lease:
    """A claimed work item: what to do, and the token that proves we still own it."""

    item_id: int
    run_id: int
    kind: WorkKind
    host_key: str
    payload: dict[str, Any]
    token: str
    worker_id: str
    attempts: int
    max_attempts: int
    # Who held the item before this claim, when it was re-claimed from an expired lease.
    previous_holder: str | None = None

    @property
    def endpoint_ids(self) -> tuple[int, ...]:
        """The endpoints of a ``probe_batch`` item (empty for other kinds)."""
        return tuple(int(i) for i in self.payload.get("endpoint_ids", ()))


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    """After a heartbeat: items whose lease is gone, and items whose run has finished."""

    lost: frozenset[int]
    run_closed: frozenset[int]


def new_lease_token() -> str:
    """A fresh, unguessable fencing token."""
    return secrets.token_hex(16)


def db_now(session: AsyncSession, plus_seconds: float = 0.0) -> ColumnElement[datetime]:
    """The database's current time (UTC), optionally ``plus_seconds`` later, as SQL.

    SQLite stores timestamps as naive UTC text with six fractional digits
    (what ``UTCDateTime`` writes), so its expression renders the same format
    and compares correctly as text.
    """
    if session.get_bind().dialect.name == "sqlite":
        args: list[Any] = [literal("%Y-%m-%d %H:%M:%f"), literal("now")]
        if plus_seconds:
            args.append(literal(f"{plus_seconds:+.3f} seconds"))
        return cast("ColumnElement[datetime]", func.strftime(*args).concat(literal("000")))
    if plus_seconds:
        return func.now() + bindparam(None, timedelta(seconds=plus_seconds), type_=Interval())
    return func.now()


async def database_time(session: AsyncSession) -> datetime:
    """The database's clock now, as a timezone-aware UTC datetime."""
    from datetime import UTC

    value = (await session.execute(select(db_now(session)))).scalar_one()
    if isinstance(value, str):  # SQLite: our own text format
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- work items ------------------------------------------------------------------


def _claimable(session: AsyncSession) -> ColumnElement[bool]:
    now = db_now(session)
    return or_(
        and_(WorkItemRow.status == WorkStatus.QUEUED.value, WorkItemRow.available_at <= now),
        # An expired lease with attempts left: its holder died or stalled.
        and_(
            WorkItemRow.status == WorkStatus.LEASED.value,
            WorkItemRow.lease_expires_at <= now,
            WorkItemRow.attempts < WorkItemRow.max_attempts,
        ),
    )


async def claim_work(
    session: AsyncSession, *, worker_id: str, limit: int, lease_seconds: float
) -> list[Lease]:
    """Lease up to ``limit`` work items, at most one per host; run in its own transaction.

    The caller commits right after: the claim must be one short transaction.
    """
    if limit <= 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        # Guarantee: claims are serialized, so the live-host check below sees every
        # committed lease and two claims never lease one host at the same time.
        await session.execute(select(func.pg_advisory_xact_lock(_CLAIM_LOCK)))
    other = aliased(WorkItemRow)
    host_busy = exists().where(
        other.host_key == WorkItemRow.host_key,
        other.id != WorkItemRow.id,
        other.status == WorkStatus.LEASED.value,
        other.lease_expires_at > db_now(session),
    )
    # Guarantee: returns only claimable rows of hosts nobody holds a live lease on;
    # rows another transaction has locked (being completed or heartbeaten) are
    # skipped, not waited for (SKIP LOCKED; on SQLite the IMMEDIATE write lock
    # already excludes everyone).
    candidates = await session.execute(
        select(WorkItemRow.id, WorkItemRow.host_key, WorkItemRow.status, WorkItemRow.leased_by)
        .where(_claimable(session), ~host_busy)
        .order_by(WorkItemRow.priority.desc(), WorkItemRow.id)
        .limit(limit * _CANDIDATES_PER_SLOT)
        .with_for_update(skip_locked=True, of=WorkItemRow)
    )
    chosen: dict[int, str | None] = {}  # item id -> the holder of its expired lease
    hosts: set[str] = set()
    for item_id, host_key, status, holder in candidates.all():
        if host_key in hosts:
            continue  # one item per host at a time: per-host politeness
        hosts.add(host_key)
        chosen[item_id] = holder if status == WorkStatus.LEASED.value else None
        if len(chosen) == limit:
            break
    leases: list[Lease] = []
    for item_id, previous_holder in chosen.items():
        token = new_lease_token()
        # Guarantee: the row becomes ours under a fresh token with an expiry on the
        # database clock; the claimable predicate is re-checked so a row that
        # changed since the select is not taken.
        row = (
            await session.execute(
                update(WorkItemRow)
                .where(WorkItemRow.id == item_id, _claimable(session))
                .values(
                    status=WorkStatus.LEASED.value,
                    leased_by=worker_id,
                    lease_token=token,
                    leased_at=db_now(session),
                    lease_expires_at=db_now(session, lease_seconds),
                    attempts=WorkItemRow.attempts + 1,
                )
                .returning(
                    WorkItemRow.run_id,
                    WorkItemRow.kind,
                    WorkItemRow.host_key,
                    WorkItemRow.payload,
                    WorkItemRow.attempts,
                    WorkItemRow.max_attempts,
                )
            )
        ).one_or_none()
        if row is None:
            continue
        leases.append(
            Lease(
                item_id=item_id,
                run_id=row.run_id,
                kind=WorkKind(row.kind),
                host_key=row.host_key,
                payload=row.payload,
                token=token,
                worker_id=worker_id,
                attempts=row.attempts,
                max_attempts=row.max_attempts,
                previous_holder=previous_holder,
            )
        )
    return leases


async def release_unknown_leases(
    session: AsyncSession, worker_id: str, *, known: Sequence[int]
) -> int:
    """Put back, attempt refunded, items leased to ``worker_id`` other than ``known``; how many.

    For a worker whose claim failed after it may have committed (the reply was
    lost with the connection): it holds leases it never heard of, which would
    otherwise sit until they expire and then cost their items an attempt.
    """
    # Guarantee: only the named worker's leases on items it does not work on
    # are touched, and the attempt the lost claim counted is given back.
    result = await session.execute(
        update(WorkItemRow)
        .where(
            WorkItemRow.status == WorkStatus.LEASED.value,
            WorkItemRow.leased_by == worker_id,
            WorkItemRow.id.not_in(list(known)),
        )
        .values(
            status=WorkStatus.QUEUED.value,
            lease_token=None,
            lease_expires_at=None,
            leased_by=None,
            available_at=db_now(session),
            attempts=_minus_one(session, WorkItemRow.attempts),
        )
        .returning(WorkItemRow.id)
    )
    return len(result.scalars().all())


def _minus_one(session: AsyncSession, column: Any) -> ColumnElement[int]:
    if _is_sqlite(session):
        return cast("ColumnElement[int]", func.max(column - 1, 0))
    return cast("ColumnElement[int]", func.greatest(column - 1, 0))


async def renew_leases(
    session: AsyncSession, leases: Sequence[Lease], *, lease_seconds: float
) -> HeartbeatResult:
    """Extend each lease we still hold; report lost ones and those whose run has finished."""
    lost: set[int] = set()
    held: dict[int, int] = {}
    for lease in leases:
        # Guarantee: only the current holder (matching token, still leased) extends
        # the lease; 0 rows = the lease was lost and the holder must stop.
        row = (
            await session.execute(
                update(WorkItemRow)
                .where(
                    WorkItemRow.id == lease.item_id,
                    WorkItemRow.lease_token == lease.token,
                    WorkItemRow.status == WorkStatus.LEASED.value,
                )
                .values(lease_expires_at=db_now(session, lease_seconds))
                .returning(WorkItemRow.run_id)
            )
        ).scalar_one_or_none()
        if row is None:
            lost.add(lease.item_id)
        else:
            held[lease.item_id] = row
    closed: set[int] = set()
    if held:
        final = ("completed", "failed", "cancelled")
        # Guarantee: none (read-only); a cancelled run's items are abandoned.
        ended = await session.execute(
            select(RunRow.id).where(RunRow.id.in_(set(held.values())), RunRow.status.in_(final))
        )
        ended_runs = set(ended.scalars())
        closed = {item for item, run in held.items() if run in ended_runs}
    return HeartbeatResult(frozenset(lost), frozenset(closed))


async def _update_held(session: AsyncSession, lease: Lease, values: Mapping[str, Any]) -> bool:
    """Apply ``values`` to the item only while ``lease`` still holds it; False if it does not.

    The token changes on every claim and a finished item is no longer
    'leased', so at most one such update per claim ever matches.
    """
    row = (
        await session.execute(
            update(WorkItemRow)
            .where(
                WorkItemRow.id == lease.item_id,
                WorkItemRow.lease_token == lease.token,
                WorkItemRow.status == WorkStatus.LEASED.value,
            )
            .values(**values)
            .returning(WorkItemRow.id)
        )
    ).scalar_one_or_none()
    return row is not None


async def hold_lease(session: AsyncSession, lease: Lease) -> bool:
    """True while we still hold the item; its row then stays locked until the caller commits.

    For a partial result stored in the same transaction: it belongs to the
    current claim, or nothing is stored.
    """
    # Guarantee: matches only while this claim's token is current, and the row
    # lock makes a concurrent re-claim wait for our commit (then see the results).
    return await _update_held(session, lease, {"lease_token": lease.token})


async def complete_lease(session: AsyncSession, lease: Lease) -> bool:
    """Mark the item done if we still hold it; False = lease lost, caller must roll back.

    Call inside the transaction that stores the item's results, so both land or neither.
    """
    # Guarantee: exactly one completion per item commits.
    return await _update_held(
        session,
        lease,
        {
            "status": WorkStatus.DONE.value,
            "finished_at": db_now(session),
            "lease_expires_at": None,
            "last_error": None,
        },
    )


async def release_lease(
    session: AsyncSession,
    lease: Lease,
    *,
    error: str | None = None,
    delay_seconds: float = 0.0,
    refund_attempt: bool = False,
) -> bool:
    """Give the item back (status ``queued``, available after ``delay_seconds``).

    ``refund_attempt`` for a graceful shutdown: the item was not at fault, so the
    claim does not count towards ``max_attempts``. False when we no longer held it.
    """
    values: dict[str, Any] = {
        "status": WorkStatus.QUEUED.value,
        "leased_by": None,
        "lease_token": None,
        "lease_expires_at": None,
        "available_at": db_now(session, delay_seconds),
    }
    if error is not None:
        values["last_error"] = error[:ERROR_LIMIT]
    if refund_attempt:
        values["attempts"] = _minus_one(session, WorkItemRow.attempts)
    # Guarantee: only the holder releases, and at most once (the token is cleared).
    return await _update_held(session, lease, values)


async def kill_lease(session: AsyncSession, lease: Lease, *, error: str) -> bool:
    """Mark a held item ``dead`` (its holder gave up after its last attempt); False if lost."""
    # Guarantee: only the holder dead-letters its own item, once.
    return await _update_held(session, lease, _closed(session, WorkStatus.DEAD, error))


async def abandon_lease(session: AsyncSession, lease: Lease, *, reason: str) -> bool:
    """Mark a held item ``cancelled`` (its run was cancelled); False if we no longer held it."""
    # Guarantee: only the holder closes its own item, once.
    return await _update_held(session, lease, _closed(session, WorkStatus.CANCELLED, reason))


def _closed(session: AsyncSession, status: WorkStatus, why: str) -> dict[str, Any]:
    return {
        "status": status.value,
        "last_error": why[:ERROR_LIMIT],
        "lease_expires_at": None,
        "finished_at": db_now(session),
    }


async def exhausted_items(session: AsyncSession, *, limit: int = 100) -> list[tuple[int, int]]:
    """(item id, run id) of items whose lease expired on their last attempt: to dead-letter."""
    # Guarantee: none (read-only, no locks); mark_exhausted_dead re-checks each row.
    rows = await session.execute(
        select(WorkItemRow.id, WorkItemRow.run_id)
        .where(
            WorkItemRow.status == WorkStatus.LEASED.value,
            WorkItemRow.lease_expires_at <= db_now(session),
            WorkItemRow.attempts >= WorkItemRow.max_attempts,
        )
        .order_by(WorkItemRow.id)
        .limit(limit)
    )
    return [(int(i), int(r)) for i, r in rows.all()]


async def mark_exhausted_dead(
    session: AsyncSession, item_id: int, *, error: str
) -> tuple[int, dict[str, Any], str | None] | None:
    """Dead-letter one item whose last lease expired: (run id, payload, last error), or None.

    None when the item changed meanwhile (its holder completed it after all,
    or another reaper got there first).
    """
    # Guarantee: an item is dead-lettered at most once, and only while its last
    # lease is still expired (a late heartbeat or completion that won keeps it).
    row = (
        await session.execute(
            update(WorkItemRow)
            .where(
                WorkItemRow.id == item_id,
                WorkItemRow.status == WorkStatus.LEASED.value,
                WorkItemRow.lease_expires_at <= db_now(session),
                WorkItemRow.attempts >= WorkItemRow.max_attempts,
            )
            .values(
                status=WorkStatus.DEAD.value,
                last_error=func.coalesce(WorkItemRow.last_error, error),
                lease_token=None,
                lease_expires_at=None,
                finished_at=db_now(session),
            )
            .returning(WorkItemRow.run_id, WorkItemRow.payload, WorkItemRow.last_error)
        )
    ).one_or_none()
    if row is None:
        return None
    return int(row.run_id), row.payload, row.last_error


async def cancel_queued_items(session: AsyncSession, run_id: int, *, reason: str) -> int:
    """Cancel a run's items nobody holds; how many. Held items stop at their next heartbeat."""
    # Guarantee: queued items of the run will never be claimed again.
    result = await session.execute(
        update(WorkItemRow)
        .where(WorkItemRow.run_id == run_id, WorkItemRow.status == WorkStatus.QUEUED.value)
        .values(status=WorkStatus.CANCELLED.value, last_error=reason[:ERROR_LIMIT])
        .returning(WorkItemRow.id)
    )
    return len(result.scalars().all())


async def release_worker_leases(session: AsyncSession, worker_ids: Sequence[str]) -> int:
    """Put every item leased by ``worker_ids`` (known dead) back to queued; how many.

    For the SQLite single worker process at start-up: a previous process that
    died cannot come back for its items, so there is no need to wait out
    their leases. The attempt still counts (the item may be what killed it).
    """
    if not worker_ids:
        return 0
    # Guarantee: only items of the named (dead) workers are touched.
    result = await session.execute(
        update(WorkItemRow)
        .where(
            WorkItemRow.status == WorkStatus.LEASED.value,
            WorkItemRow.leased_by.in_(list(worker_ids)),
            WorkItemRow.attempts < WorkItemRow.max_attempts,
        )
        .values(
            status=WorkStatus.QUEUED.value,
            lease_token=None,
            lease_expires_at=None,
            leased_by=None,
            available_at=db_now(session),
        )
        .returning(WorkItemRow.id)
    )
    return len(result.scalars().all())


def _is_sqlite(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "sqlite"


# -- alert deliveries (issue 5) ----------------------------------------------------
# claim_deliveries / complete_delivery follow the same pattern over the outbox table.
#
# The outbox rows (``hook_deliveries``) use the same columns under the names
# the delivery log shows: ``next_attempt_at`` plays ``available_at``; there is
# no ``max_attempts`` (a delivery gives up after a time, ``retry.decide``).
# Delivery is at least once: a dispatcher that dies mid-send leaves a lease
# that expires, and the next claim sends the same ``msg_id`` again.


def _delivery_due(session: AsyncSession) -> ColumnElement[bool]:
    now = db_now(session)
    return or_(
        and_(D.status == DeliveryStatus.QUEUED.value, D.next_attempt_at <= now),
        # The holder died or stalled past its lease: send again, same msg_id.
        and_(D.status == DeliveryStatus.LEASED.value, D.lease_expires_at <= now),
    )


async def claim_deliveries(
    session: AsyncSession,
    *,
    worker_id: str,
    limit: int,
    lease_seconds: float,
    in_flight: Mapping[int, int] | None = None,
    max_per_hook: int = 1,
) -> list[ClaimedDelivery]:
    """Lease up to ``limit`` due deliveries of enabled hooks, oldest due first.

    ``in_flight``: how many deliveries of each hook the caller is already
    sending; no hook gets more than ``max_per_hook`` at once, so one slow
    receiver never holds the slots of the others. Commit right after.
    """
    if limit <= 0:
        return []
    busy = dict(in_flight or {})
    full = [hook for hook, n in busy.items() if n >= max_per_hook]
    query = (
        select(D.id, D.hook_id)
        .join(HookRow, HookRow.id == D.hook_id)
        .where(_delivery_due(session), HookRow.enabled.is_(True))
        .order_by(D.next_attempt_at, D.id)
        .limit(limit * _CANDIDATES_PER_SLOT)
        # Guarantee: rows another dispatcher is claiming or completing are
        # skipped, not waited for (SQLite: the IMMEDIATE write lock).
        .with_for_update(skip_locked=True, of=D)
    )
    if full:
        query = query.where(D.hook_id.not_in(full))
    chosen: list[int] = []
    for delivery_id, hook_id in (await session.execute(query)).all():
        if busy.get(hook_id, 0) >= max_per_hook:
            continue
        busy[hook_id] = busy.get(hook_id, 0) + 1
        chosen.append(delivery_id)
        if len(chosen) == limit:
            break
    claimed: list[ClaimedDelivery] = []
    for delivery_id in chosen:
        token = new_lease_token()
        # Guarantee: the row becomes ours under a fresh token, re-checking it is
        # still due (it may have changed since the select).
        row = (
            await session.execute(
                update(D)
                .where(D.id == delivery_id, _delivery_due(session))
                .values(
                    status=DeliveryStatus.LEASED.value,
                    lease_token=token,
                    leased_by=worker_id[:200],
                    lease_expires_at=db_now(session, lease_seconds),
                )
                .returning(
                    D.hook_id,
                    D.msg_id,
                    D.events,
                    D.body,
                    D.event_type,
                    D.attempts,
                    D.first_attempted_at,
                )
                .execution_options(synchronize_session=False)
            )
        ).one_or_none()
        if row is None:
            continue
        claimed.append(
            ClaimedDelivery(
                id=delivery_id,
                hook_id=row.hook_id,
                lease_token=token,
                msg_id=row.msg_id,
                events=row.events,
                body=row.body,
                event_type=row.event_type,
                attempts=row.attempts,
                first_attempted_at=row.first_attempted_at,
            )
        )
    return claimed


async def complete_delivery(
    session: AsyncSession,
    claimed: ClaimedDelivery,
    attempt: AttemptLog,
    *,
    status: DeliveryStatus,
    next_attempt_at: datetime | None = None,
    last_error: str | None = None,
    disable_hook_reason: str | None = None,
    now: datetime,
) -> bool:
    """Log one attempt and move the delivery to ``status``; False when the lease was lost meanwhile.

    The caller (alerting's retry policy) decides: ``status`` ``queued`` with
    ``next_attempt_at`` to retry, or a final one; ``disable_hook_reason``
    disables the hook too (its receiver said 410). The attempt is logged
    either way (it happened); the delivery and the hook are only changed by
    the delivery's current holder.
    """
    if status is DeliveryStatus.LEASED:
        raise ValueError("complete_delivery: a completed delivery is not leased")
    if status is DeliveryStatus.QUEUED and next_attempt_at is None:
        raise ValueError("complete_delivery: a retry needs next_attempt_at")
    attempt_no = claimed.attempts + 1
    values: dict[str, Any] = {
        "status": status.value,
        "attempts": attempt_no,
        "first_attempted_at": claimed.first_attempted_at or attempt.started_at,
        "lease_token": None,
        "leased_by": None,
        "lease_expires_at": None,
        "last_error": last_error[:ERROR_LIMIT] if last_error is not None else None,
    }
    if status is DeliveryStatus.DELIVERED:
        values["delivered_at"] = now
    elif status is DeliveryStatus.QUEUED:
        values["next_attempt_at"] = next_attempt_at
    # Guarantee: only the holder of the current token moves the delivery on.
    owned = (
        await session.execute(
            update(D)
            .where(
                D.id == claimed.id,
                D.lease_token == claimed.lease_token,
                D.status == DeliveryStatus.LEASED.value,
            )
            .values(**values)
            .returning(D.id)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none() is not None
    # Guarantee: none needed (read-only): attempt numbers are unique per
    # delivery, so two holders logging at once fail one insert, never duplicate.
    latest = (
        await session.execute(
            select(func.max(DeliveryAttemptRow.attempt)).where(
                DeliveryAttemptRow.delivery_id == claimed.id
            )
        )
    ).scalar_one()
    session.add(
        DeliveryAttemptRow(
            delivery_id=claimed.id,
            # A holder that lost its lease logs after whatever the new one logged.
            attempt=max(attempt_no, (latest or 0) + 1),
            started_at=attempt.started_at,
            duration_ms=attempt.duration_ms,
            status=attempt.status,
            outcome=attempt.outcome,
            reason=attempt.reason[:ERROR_LIMIT],
            response_excerpt=attempt.response_excerpt,
            error=attempt.error,
            error_detail=attempt.error_detail,
        )
    )
    await session.flush()
    # Prometheus counters (metrics, cron stream): counted in the attempt's own
    # transaction so that deleting the hook later cannot take them back.
    await count_delivery_attempt(
        session,
        hook_id=claimed.hook_id,
        outcome=attempt.outcome,
        final=status.value if owned and status is not DeliveryStatus.QUEUED else None,
    )
    if owned and disable_hook_reason is not None:
        # Guarantee: only the delivery's current holder disables the hook (a fenced
        # late attempt cannot undo a re-enable made meanwhile).
        await disable_hook(session, claimed.hook_id, disable_hook_reason, now=now)
    return owned


async def release_deliveries(session: AsyncSession, claims: Sequence[ClaimedDelivery]) -> int:
    """Give held deliveries back at once (a graceful stop); how many were still ours."""
    count = 0
    for claimed in claims:
        # Guarantee: only the holder releases, once (the token is cleared).
        row = (
            await session.execute(
                update(D)
                .where(
                    D.id == claimed.id,
                    D.lease_token == claimed.lease_token,
                    D.status == DeliveryStatus.LEASED.value,
                )
                .values(
                    status=DeliveryStatus.QUEUED.value,
                    lease_token=None,
                    leased_by=None,
                    lease_expires_at=None,
                    next_attempt_at=db_now(session),
                )
                .returning(D.id)
                .execution_options(synchronize_session=False)
            )
        ).scalar_one_or_none()
        count += row is not None
    return count
