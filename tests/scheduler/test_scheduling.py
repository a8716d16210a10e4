"""Schedules fire runs: one run per tick however many schedulers, end to end in one process."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from scanner.db import schedules
from scanner.db.engine import Database
from scanner.db.runs import RunSelection
from scanner.db.schedules import ScheduleInput
from scanner.db.tables import RunRow
from scanner.db.work import RunBatching
from scanner.engine import scan_options
from scanner.errors import InputError
from scanner.hostnames import default_public_suffixes
from scanner.runtime import run_components
from scanner.scheduler import Scheduler
from scanner.scheduler.cron import cron_trigger, latest_tick, next_ticks
from scanner.scheduler.planner import catch_up, plan_tick
from scanner.settings import Settings
from scanner.worker import Worker
from tests.worker.support import add_endpoints, probe_key_counts, targets, wait_run_final


def _settings(database: Database, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "database_url": database.url,
        "lease_seconds": 5.0,
        "heartbeat_seconds": 1.0,
        "poll_seconds": 0.2,
        "schedule_jitter": 0.0,
        "retries": 0,
        "timeout": 5.0,
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


async def _schedule(database: Database, cron: str = "0 0 1 1 *", **fields: object) -> int:
    # Default: once a year, so no real tick lands during a test unless it asks for one.
    async with database.session() as session, session.begin():
        record = await schedules.create_schedule(
            session,
            ScheduleInput(name="t", cron=cron, **fields),  # type: ignore[arg-type]
        )
    return record.id


async def _runs(database: Database) -> int:
    async with database.session() as session, session.begin():
        return int((await session.execute(select(func.count()).select_from(RunRow))).scalar_one())


def test_cron_ticks_are_nominal_and_zone_aware() -> None:
    now = datetime(2026, 3, 29, 0, 30, 7, tzinfo=UTC)
    tick = latest_tick("*/5 * * * *", "UTC", now, window=timedelta(hours=1))
    assert tick == datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    # 02:00 Europe/Paris does not exist the night clocks spring forward: it fires at
    # 03:00 CEST (01:00 UTC) that night, then at 02:00 CEST (00:00 UTC).
    ticks = next_ticks("0 2 * * *", "Europe/Paris", now, 2)
    assert ticks == [
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 0, 0, tzinfo=UTC),
    ]
    with pytest.raises(InputError, match="5 fields"):
        latest_tick("* * *", "UTC", now, window=timedelta(hours=1))
    with pytest.raises(InputError, match="unknown time zone"):
        next_ticks("* * * * *", "Mars/Olympus", now, 1)


async def test_a_fresh_database_has_a_nightly_schedule(database: Database) -> None:
    async with database.session() as session, session.begin():
        found = await schedules.list_schedules(session)
    assert [(s.name, s.cron, s.timezone, s.enabled) for s in found] == [
        ("nightly", "0 2 * * *", "UTC", True)
    ]


async def test_two_schedulers_on_the_same_tick_make_one_run(database: Database) -> None:
    await add_endpoints(database, [f"http://127.0.0.1:9/{i}" for i in range(3)])
    schedule_id = await _schedule(database)
    nominal = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    plan = RunBatching.from_settings(_settings(database, batch_size=2))
    # Ten concurrent ticks of the same nominal time, each on its own connection.
    results = await asyncio.gather(
        *(plan_tick(database, schedule_id, nominal, plan) for _ in range(10))
    )
    made = [r for r in results if r is not None]
    assert len(made) == 1
    assert made[0].items_total == 2
    assert made[0].endpoints_total == 3
    assert await _runs(database) == 1
    # And the same through two APScheduler timers firing the same nominal time.
    stop = asyncio.Event()
    a, b = Scheduler(database, _settings(database)), Scheduler(database, _settings(database))
    tasks = [asyncio.create_task(s.run(stop)) for s in (a, b)]
    await asyncio.sleep(0.2)
    fire = datetime.now(UTC) + timedelta(seconds=0.5)
    a.fire_at(schedule_id, fire)
    b.fire_at(schedule_id, fire)
    await asyncio.sleep(1.5)
    stop.set()
    await asyncio.gather(*tasks)
    assert len(a.planned) + len(b.planned) == 1
    assert await _runs(database) == 2
    assert sorted(a.job_ids + b.job_ids) == []  # stopped: no timers left


async def test_catch_up_plans_a_missed_tick_within_grace_only(database: Database) -> None:
    schedule_id = await _schedule(database, cron="* * * * *")
    async with database.session() as session, session.begin():
        await schedules.update_schedule(session, 1, ScheduleInput(enabled=False))  # nightly off
    plan = RunBatching.from_settings(_settings(database))
    later = datetime.now(UTC) + timedelta(minutes=10)
    runs = await catch_up(database, later, grace=timedelta(hours=1), batching=plan)
    assert [r.schedule_id for r in runs] == [schedule_id]
    assert await catch_up(database, later, grace=timedelta(hours=1), batching=plan) == []
    assert await _runs(database) == 1


async def test_single_process_service_runs_a_scheduled_scan_end_to_end(database: Database) -> None:
    if database.dialect != "sqlite":
        pytest.skip("the embedded single-process service is the SQLite case")
    async with targets(2) as bases:
        await add_endpoints(database, [f"{b}/api/{i}" for b in bases for i in range(3)], tags=["x"])
        schedule_id = await _schedule(database, selection=RunSelection(tag="x"))
        settings = _settings(database, batch_size=2)
        scheduler = Scheduler(database, settings)
        worker = Worker(database, settings, scan_options(settings), default_public_suffixes())
        stop = asyncio.Event()
        service = asyncio.create_task(run_components([scheduler, worker], stop, signals=False))
        await asyncio.sleep(0.3)
        assert f"schedule-{schedule_id}" in scheduler.job_ids  # its cron job is loaded
        scheduler.fire_at(schedule_id, datetime.now(UTC) + timedelta(seconds=0.3))
        async with asyncio.timeout(20):
            while not scheduler.planned:  # noqa: ASYNC110 - polling state
                await asyncio.sleep(0.05)
        run = await wait_run_final(database, scheduler.planned[0].id, limit_s=30)
        stop.set()
        await service
    assert run.status == "completed", run.error
    assert run.schedule_id == schedule_id
    assert run.endpoints_done == 6
    assert run.items_total == 4
    assert run.items_remaining == 0
    assert run.finalized_at is not None
    assert set(await probe_key_counts(database, run.id)) == {1}


async def test_a_second_worker_process_on_one_sqlite_file_is_refused(database: Database) -> None:
    if database.dialect != "sqlite":
        pytest.skip("the one-worker-process rule is SQLite's")
    settings = _settings(database)
    worker = Worker(database, settings, scan_options(settings), default_public_suffixes())
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORS_SCANNER_")}
    env["CORS_SCANNER_DATABASE_URL"] = database.url
    other = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scanner",
        "worker",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(other.communicate(), 30)
    stop.set()
    await task
    assert other.returncode == 2
    assert "PostgreSQL" in err.decode()
    assert "another worker process" in err.decode()


def test_the_timer_fires_on_cron8s_days_with_jitter_after_the_tick() -> None:
    # APScheduler's own CronTrigger would fire "0 2 * * 0" on Mondays; ours on Sundays.
    trigger = cron_trigger("0 2 * * 0", "Europe/Berlin", jitter=30)
    monday = datetime(2026, 3, 2, 12, tzinfo=UTC)
    fires = []
    previous = None
    for _ in range(5):
        fire = trigger.get_next_fire_time(previous, monday if previous is None else previous)
        assert fire is not None
        fires.append(fire)
        previous = fire
    for fire in fires:
        nominal = latest_tick("0 2 * * 0", "Europe/Berlin", fire, window=timedelta(minutes=5))
        assert nominal is not None
        assert timedelta(0) <= fire - nominal <= timedelta(seconds=30)
        assert nominal.astimezone(ZoneInfo("Europe/Berlin")).weekday() == 6  # Sunday
    # The fourth Sunday is 29 March: 02:00 does not exist, the tick is 03:00 CEST.
    assert latest_tick(
        "0 2 * * 0", "Europe/Berlin", fires[3], window=timedelta(minutes=5)
    ) == datetime(2026, 3, 29, 1, tzinfo=UTC)
    # A line with no tick gives the timer no fire time at all.
    assert cron_trigger("0 0 31 2 *", "UTC").get_next_fire_time(None, monday) is None
