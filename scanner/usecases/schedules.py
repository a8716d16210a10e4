"""Schedules: cron-timed runs (add, change, remove, list with their next ticks).

A schedule is a five-field cron line in an IANA time zone, an endpoint
selection (everything, or a tag and/or an owner), an enabled flag and an
optional timer spread. Running schedulers pick changes up within
``schedule_reload_seconds``; each tick is planned into a run by
``scanner.scheduler.planner``. Every change is audited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scanner.core import cron as cron_rules
from scanner.db import audit
from scanner.db import schedules as store
from scanner.db.pagination import Page
from scanner.db.schedules import ScheduleInput, ScheduleRecord
from scanner.errors import InputError
from scanner.usecases.context import Context

NEXT_TICKS = 3  # enough to see the rhythm of a schedule at a glance


@dataclass(frozen=True, slots=True)
class ScheduleView:
    """A schedule and its next nominal ticks (UTC)."""

    schedule: ScheduleRecord
    next_ticks: tuple[datetime, ...]


def _ticks(records: Sequence[ScheduleRecord], now: datetime) -> list[tuple[datetime, ...]]:
    # Memoised per minute by the core; none for a line stored before cron(8)
    # rules that no longer parses (the scheduler logs it once).
    out: list[tuple[datetime, ...]] = []
    for s in records:
        try:
            out.append(cron_rules.upcoming_ticks(s.cron, s.timezone, now, NEXT_TICKS))
        except InputError:
            out.append(())
    return out


async def _views(records: Sequence[ScheduleRecord], now: datetime) -> list[ScheduleView]:
    """Schedules with their next ticks. The ticks are computed in a worker thread:
    cheap and cached, but a page of them is still no work for the event loop."""
    ticks = await asyncio.to_thread(_ticks, records, now)
    return [ScheduleView(s, t) for s, t in zip(records, ticks, strict=True)]


async def _view(record: ScheduleRecord, now: datetime) -> ScheduleView:
    [view] = await _views([record], now)
    return view


def _detail(s: ScheduleRecord) -> dict[str, Any]:
    return {
        "name": s.name,
        "cron": s.cron,
        "timezone": s.timezone,
        "selection": s.selection.to_json(),
        "enabled": s.enabled,
        "jitter_seconds": s.jitter_seconds,
    }


def given_fields(data: ScheduleInput) -> list[str]:
    """The fields an update sets (a reset of the spread counts as ``jitter_seconds``)."""
    names = ["name", "cron", "timezone", "selection", "enabled", "jitter_seconds"]
    given = [n for n in names if getattr(data, n) is not None]
    if data.reset_jitter and "jitter_seconds" not in given:
        given.append("jitter_seconds")
    return sorted(given)


async def list_schedules(
    ctx: Context, *, limit: int | None = None, cursor: str | None = None
) -> Page[ScheduleView]:
    """Schedules by id: one page of ``limit``, or all of them when ``limit`` is None."""
    now = ctx.now()
    async with ctx.read() as session:
        if limit is None:
            page = Page(tuple(await store.list_schedules(session)), None)
        else:
            page = await store.page_schedules(session, limit=limit, cursor=cursor)
    return Page(tuple(await _views(page.items, now)), page.next_cursor)


async def get_schedule(ctx: Context, schedule_id: int) -> ScheduleView:
    """One schedule with its next ticks; ``NotFound``."""
    async with ctx.read() as session:
        record = await store.get_schedule(session, schedule_id)
    return await _view(record, ctx.now())


async def create_schedule(ctx: Context, data: ScheduleInput, *, actor: str) -> ScheduleView:
    """Add a schedule (UTC, every enabled endpoint, enabled, by default); audited as
    ``schedule.create``. ``InputError`` for a bad cron line, zone or spread; ``Conflict``
    for a taken name."""
    async with ctx.transaction() as session:
        record = await store.create_schedule(session, data)
        await audit.record(
            session,
            actor=actor,
            action="schedule.create",
            target_type="schedule",
            target_id=str(record.id),
            detail=_detail(record),
        )
    return await _view(record, ctx.now())


async def update_schedule(
    ctx: Context, schedule_id: int, data: ScheduleInput, *, actor: str
) -> ScheduleView:
    """Change the fields ``data`` gives; audited as ``schedule.update``. As create, and
    ``NotFound``."""
    async with ctx.transaction() as session:
        record = await store.update_schedule(session, schedule_id, data)
        await audit.record(
            session,
            actor=actor,
            action="schedule.update",
            target_type="schedule",
            target_id=str(record.id),
            detail={"fields": given_fields(data), **_detail(record)},
        )
    return await _view(record, ctx.now())


async def delete_schedule(ctx: Context, schedule_id: int, *, actor: str) -> None:
    """Remove a schedule (its past runs stay); audited as ``schedule.delete``. ``NotFound``."""
    async with ctx.transaction() as session:
        await store.delete_schedule(session, schedule_id)
        await audit.record(
            session,
            actor=actor,
            action="schedule.delete",
            target_type="schedule",
            target_id=str(schedule_id),
        )


__all__ = [
    "NEXT_TICKS",
    "ScheduleView",
    "create_schedule",
    "delete_schedule",
    "get_schedule",
    "given_fields",
    "list_schedules",
    "update_schedule",
]
