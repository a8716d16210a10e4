"""What schedules' next ticks cost: APScheduler's CronTrigger (before) against scanner.core.cron.

    .venv/bin/python benchmarks/schedule_ticks.py [--repeat 200] [--schedules 40] [--requests 5]

Two parts, each measuring the old way and the new one side by side in one run:

1. **Per computation** (CPU µs of ``time.process_time``, best of 3): the next
   3 ticks of a table of lines, computed as ``scanner/scheduler/cron.py`` did
   before (APScheduler 3 ``CronTrigger.from_crontab`` and its
   ``get_next_fire_time`` loop; note it reads the day of week wrongly, which
   does not change its cost) and as now (``scanner.core.cron.next_ticks``,
   and the per-minute memo ``upcoming_ticks`` the API uses, warm).
2. **Served** (wall ms): the real app (``create_app`` behind ``serve``'s
   runner, SQLite in a temporary directory) with ``--schedules`` stored lines
   that never fire (``0 0 31 4,6,9,11 *`` in Europe/Berlin, written as rows,
   as an older version accepted them) plus as many valid ones. A client lists
   ``GET /api/v1/schedules?limit=100`` ``--requests`` times while a second
   task sends ``GET /healthz`` every 10 ms; the table gives the listing's
   p50/max and ``/healthz``'s max latency. "before" swaps in the old handler
   code path (APScheduler ticks, computed on the event loop); "after" is the
   code as shipped (memoised, in a worker thread).

The client shares the server's event loop and the machine is a shared 2-core
one: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from apscheduler.triggers.cron import CronTrigger

from scanner.api.app import create_app, make_runner
from scanner.api.handlers import schedules as handler
from scanner.core import cron as rules
from scanner.db.engine import Database
from scanner.db.tables import ScheduleRow
from scanner.db.tokens import Scope, create_token
from scanner.settings import Settings

LINES = [
    ("0 2 * * *", "Europe/Berlin"),
    ("*/15 * * * *", "UTC"),
    ("* * * * *", "UTC"),
    ("0 9 * * 1-5", "America/New_York"),
    ("0 0 29 2 *", "UTC"),
    ("0 0 31 4,6,9,11 *", "Europe/Berlin"),  # never fires
]
NEVER = ("0 0 31 4,6,9,11 *", "Europe/Berlin")


def old_next_ticks(cron: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    """scanner/scheduler/cron.py's next_ticks before this change (APScheduler 3)."""
    trigger = CronTrigger.from_crontab(cron, timezone=ZoneInfo(timezone))
    out: list[datetime] = []
    previous: datetime | None = None
    moment = after + timedelta(microseconds=1)
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, moment)
        if fire is None:
            break
        out.append(fire.astimezone(UTC))
        previous = fire
        moment = fire + timedelta(microseconds=1)
    return out


def new_next_ticks(cron: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    return list(
        rules.next_ticks(rules.parse_crontab(cron), rules.parse_timezone(timezone), after, count)
    )


def cpu_us(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(repeat):
            fn()
        best = min(best, (time.process_time() - start) / repeat)
    return best * 1e6


def part_one(repeat: int) -> None:
    now = datetime.now(UTC)
    print(f"1. next 3 ticks, CPU µs per computation (best of 3 x {repeat})\n")
    print(f"   {'line':<20} {'zone':<17} {'APScheduler':>12} {'core':>9} {'memo':>7} {'ratio':>8}")
    for cron, zone in LINES:
        slow_repeat = max(1, repeat // 50) if (cron, zone) == NEVER else repeat
        old = cpu_us(lambda c=cron, z=zone: old_next_ticks(c, z, now, 3), slow_repeat)
        new = cpu_us(lambda c=cron, z=zone: new_next_ticks(c, z, now, 3), repeat)
        rules.upcoming_ticks(cron, zone, now, 3)
        memo = cpu_us(lambda c=cron, z=zone: rules.upcoming_ticks(c, z, now, 3), repeat)
        print(f"   {cron:<20} {zone:<17} {old:>12.1f} {new:>9.1f} {memo:>7.1f} {old / new:>7.1f}x")
    print()


async def _old_schedules_json(records: Sequence[Any]) -> list[dict[str, Any]]:
    # The handler before: ticks computed inline, on the event loop, every time.
    now = datetime.now(UTC)
    return [
        handler.schedule_json(s, old_next_ticks(s.cron, s.timezone, now, handler.NEXT_TICKS))
        for s in records
    ]


async def serve_and_measure(
    database: Database, settings: Settings, token: str, requests: int
) -> tuple[list[float], float]:
    runner = make_runner(create_app(settings, database=database, embedded_worker=False))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    listing: list[float] = []
    health: list[float] = []
    done = asyncio.Event()
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession() as client:

            async def probe_health() -> None:
                while not done.is_set():
                    start = time.perf_counter()
                    async with client.get(f"{base}/healthz") as reply:
                        await reply.read()
                        assert reply.status == 200
                    health.append(time.perf_counter() - start)
                    await asyncio.sleep(0.01)

            prober = asyncio.create_task(probe_health())
            for _ in range(requests):
                start = time.perf_counter()
                async with client.get(
                    f"{base}/api/v1/schedules", params={"limit": "100"}, headers=headers
                ) as reply:
                    body = await reply.json()
                    assert reply.status == 200, body
                listing.append(time.perf_counter() - start)
            done.set()
            await prober
    finally:
        await runner.cleanup()
    return listing, max(health)


async def part_two(count: int, requests: int) -> None:
    print(f"2. GET /api/v1/schedules with {count} never-firing + {count} valid lines (SQLite)\n")
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite+aiosqlite:///{scratch}/bench.db"
        database = await Database.connect(url)
        await database.upgrade()
        now = datetime.now(UTC)
        async with database.session() as s, s.begin():
            for n in range(count):
                for name, (cron, zone) in (
                    (f"never-{n}", NEVER),
                    (f"ok-{n}", (f"{n % 60} {n % 24} * * {n % 7}", "Europe/Berlin")),
                ):
                    s.add(
                        ScheduleRow(
                            name=name,
                            cron=cron,
                            timezone=zone,
                            selection={},
                            enabled=True,
                            created_at=now,
                            updated_at=now,
                        )
                    )
            _, token = await create_token(s, "bench", [Scope.READ], created_by=None)
        settings = Settings(database_url=url, max_page_size=200)
        shipped = handler.schedules_json
        results = {}
        try:
            handler.schedules_json = _old_schedules_json  # type: ignore[assignment]
            results["before (APScheduler, on the loop)"] = await serve_and_measure(
                database, settings, token, requests
            )
        finally:
            handler.schedules_json = shipped  # type: ignore[assignment]
        results["after (core, memoised, in a thread)"] = await serve_and_measure(
            database, settings, token, requests
        )
        await database.close()
    print(f"   {'code path':<38} {'list p50 ms':>11} {'list max ms':>11} {'healthz max ms':>14}")
    for name, (listing, health_max) in results.items():
        print(
            f"   {name:<38} {statistics.median(listing) * 1e3:>11.1f} "
            f"{max(listing) * 1e3:>11.1f} {health_max * 1e3:>14.1f}"
        )
    (b_list, b_health), (a_list, a_health) = results.values()
    print(
        f"\n   listing p50 {statistics.median(b_list) / statistics.median(a_list):.0f}x faster, "
        f"/healthz worst case {b_health / a_health:.0f}x shorter"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--schedules", type=int, default=40)
    parser.add_argument("--requests", type=int, default=5)
    args = parser.parse_args()
    part_one(args.repeat)
    asyncio.run(part_two(args.schedules, args.requests))


if __name__ == "__main__":
    main()
