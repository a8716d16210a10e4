"""Monotonic counters: running totals for Prometheus, kept where the counted thing happens.

A Prometheus counter must never go down (``rate()`` reads a fall as a
restart from zero). Totals computed at scrape time from rows fall whenever
those rows are deleted -- deleting a hook deletes its deliveries and their
attempts -- so counters whose rows can disappear are incremented here
instead, in the same transaction as the event: if the event is rolled back,
so is its count, and deleting the rows later leaves the total alone.

One row per (counter, label set) in ``metric_counters``; the increment is an
``INSERT ... ON CONFLICT DO UPDATE`` (atomic on PostgreSQL under concurrent
dispatchers, and SQLite has one writer).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from scanner.db.tables import HookRow, MetricCounterRow

DELIVERY_ATTEMPTS = "webhook_delivery_attempts"  # labels: channel, outcome
DELIVERIES = "webhook_deliveries"  # labels: channel, outcome (delivered, dead, cancelled)

Labels = tuple[tuple[str, str], ...]


def labels_key(labels: Mapping[str, str]) -> str:
    """The stored form of a label set: ``k=v`` pairs, keys sorted, comma-joined."""
    for key, value in labels.items():
        if any(c in key + value for c in ",="):
            raise ValueError(f"counter label {key}={value!r} may not contain ',' or '='")
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def parse_labels(key: str) -> Labels:
    """The label pairs of a stored key (sorted by name)."""
    if not key:
        return ()
    return tuple((k, v) for k, _, v in (pair.partition("=") for pair in key.split(",")))


async def increment(
    session: AsyncSession, name: str, labels: Mapping[str, str], by: int = 1
) -> None:
    """Add ``by`` to one counter, creating it at ``by``; in the caller's transaction."""
    if by < 0:
        raise ValueError("a counter only goes up")
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(MetricCounterRow).values(name=name, labels=labels_key(labels), value=by)
    stmt = stmt.on_conflict_do_update(
        index_elements=["name", "labels"],
        set_={"value": MetricCounterRow.value + stmt.excluded.value},
    )
    await session.execute(stmt)


async def count_delivery_attempt(
    session: AsyncSession, *, hook_id: int, outcome: str, final: str | None
) -> None:
    """Count one delivery attempt by channel and outcome and, when it ended the
    delivery, the delivery by its final state (``final``)."""
    channel = (
        await session.execute(select(HookRow.kind).where(HookRow.id == hook_id))
    ).scalar_one_or_none()
    if channel is None:  # deleted while the attempt was in flight: nothing left to count by
        return
    await increment(session, DELIVERY_ATTEMPTS, {"channel": channel, "outcome": outcome})
    if final is not None:
        await increment(session, DELIVERIES, {"channel": channel, "outcome": final})


async def read_counter(session: AsyncSession, name: str) -> dict[Labels, int]:
    """Every label set of one counter and its total."""
    rows = await session.execute(
        select(MetricCounterRow.labels, MetricCounterRow.value).where(MetricCounterRow.name == name)
    )
    return {parse_labels(key): int(value) for key, value in rows.all()}
