"""The planner: a schedule's tick (or a manual request) becomes one fully planned run.

:func:`plan_tick` is idempotent per (schedule, nominal tick): any number of
scheduler processes may call it for the same tick and exactly one run is
created (``scanner.db.work.plan_run`` inserts with ``ON CONFLICT DO
NOTHING``, and only the inserter plans the work items, in the same
transaction). :func:`catch_up` plans, on start-up, the newest tick each
schedule missed while everything was down, if it is within the grace window.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scanner.db.engine import Database
from scanner.db.runs import RunRecord, RunSelection, RunTrigger
from scanner.db.tables import ScheduleRow
from scanner.db.work import RunBatching, plan_run
from scanner.errors import InputError
from scanner.scheduler.cron import latest_tick

log = logging.getLogger("scanner.scheduler")


async def plan_tick_in(
    session: AsyncSession, schedule_id: int, nominal: datetime, batching: RunBatching
) -> RunRecord | None:
    """Plan the run of one tick inside the caller's transaction; None if it exists (or the
    schedule is gone or disabled)."""
    schedule = await session.get(ScheduleRow, schedule_id)
    if schedule is None or not schedule.enabled:
        return None
    run = await plan_run(
        session,
        selection=RunSelection.from_json(schedule.selection or {}),
        trigger=RunTrigger.SCHEDULE,
        requested_by=f"schedule:{schedule.name}",
        batching=batching,
        schedule_id=schedule_id,
        scheduled_for=nominal,
    )
    # Only move forward: a late catch-up of an older tick must not rewind it.
    await session.execute(
        update(ScheduleRow)
        .where(
            ScheduleRow.id == schedule_id,
            (ScheduleRow.last_planned_for.is_(None)) | (ScheduleRow.last_planned_for < nominal),
        )
        .values(last_planned_for=nominal)
    )
    return run


async def plan_tick(
    database: Database, schedule_id: int, nominal: datetime, batching: RunBatching
) -> RunRecord | None:
    """Plan the run of one tick in its own transaction; None when another process did."""
    async with database.session() as session, session.begin():
        run = await plan_tick_in(session, schedule_id, nominal, batching)
    if run is not None:
        log.info(
            "schedule %s: run %s planned for %s (%d work items)",
            schedule_id,
            run.id,
            nominal.isoformat(),
            run.items_total,
        )
    return run


async def catch_up(
    database: Database, now: datetime, *, grace: timedelta, batching: RunBatching
) -> list[RunRecord]:
    """Plan each enabled schedule's newest missed tick within ``grace`` of ``now``."""
    async with database.session() as session, session.begin():
        schedules = list(
            (await session.execute(select(ScheduleRow).where(ScheduleRow.enabled))).scalars()
        )
    planned: list[RunRecord] = []
    for s in schedules:
        try:
            tick = latest_tick(s.cron, s.timezone, now, window=grace)
        except InputError:  # a stored line cron(8) rules refuse: the scheduler logs it
            continue
        if tick is None:
            continue
        # Only ticks after the schedule existed and after the last one planned.
        floor = max(s.created_at, s.last_planned_for or s.created_at)
        if tick <= floor:
            continue
        run = await plan_tick(database, s.id, tick, batching)
        if run is not None:
            log.info("schedule %s: caught up the missed tick of %s", s.name, tick.isoformat())
            planned.append(run)
    return planned
