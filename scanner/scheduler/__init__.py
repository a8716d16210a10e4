"""The scheduler: an in-process APScheduler 3.x timer per enabled schedule.

APScheduler is only a timer here (memory job store, ``coalesce=True``,
``max_instances=1``); coordination between processes is the database's job:
each fire plans its nominal tick through :func:`scanner.scheduler.planner.plan_tick`,
which creates at most one run per (schedule, tick). Any number of scheduler
processes may run. Jobs are re-synchronised with the ``schedules`` table
every ``schedule_reload_seconds``; missed ticks within ``catch_up_grace`` are
planned on start-up. The same periodic pass prunes probe details older than
``retention_days``.

Transient database errors (``scanner.db.transient``) never lose a tick: the
catch-up is retried until it succeeds, a tick whose planning failed is
retried with backoff for as long as it is within ``catch_up_grace``
(planning is idempotent per tick), and the periodic pass logs one line per
outage instead of one traceback per round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from scanner.db import schedules, work
from scanner.db.engine import Database
from scanner.db.runs import RunRecord
from scanner.db.transient import Outage, is_transient, retry
from scanner.db.work import RunBatching
from scanner.errors import InputError
from scanner.scheduler.cron import CrontabTrigger, cron_trigger, latest_tick, next_ticks
from scanner.scheduler.planner import catch_up, plan_tick
from scanner.settings import Settings

log = logging.getLogger("scanner.scheduler")


class Scheduler:
    """Fires every enabled schedule's ticks in this process; a runtime component."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self._db = database
        self._settings = settings
        self._plan = RunBatching.from_settings(settings)
        self._aps: AsyncIOScheduler | None = None
        # schedule id -> (cron, timezone, jitter): a change of any re-creates the job
        self._loaded: dict[int, tuple[str, str, float]] = {}
        self.planned: list[RunRecord] = []  # runs this process created (observability, tests)
        self._unusable: set[tuple[int, str, str]] = set()  # (id, cron, zone) already logged
        self._reloads = Outage("scheduler reload", log)
        self._ticks = Outage("scheduler tick", log)
        self._stop: asyncio.Event | None = None

    def _now(self) -> datetime:
        return datetime.now(UTC)

    async def run(self, stop: asyncio.Event) -> None:
        """Catch up, then fire schedules until ``stop`` is set."""
        self._aps = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(self._settings.catch_up_grace),
            },
        )
        self._aps.start()
        self._stop = stop
        try:
            grace = timedelta(seconds=self._settings.catch_up_grace)
            try:
                self.planned += await retry(
                    lambda: catch_up(self._db, self._now(), grace=grace, batching=self._plan),
                    Outage("scheduler catch-up", log),
                    stop=stop,
                )
            except Exception as exc:
                if not stop.is_set():
                    log.error("catching up missed ticks failed: %s", exc)
            while not stop.is_set():
                pause = self._settings.schedule_reload_seconds
                try:
                    await self.reload()
                    await self._prune()
                except Exception as exc:
                    if is_transient(exc):
                        # Sooner than the next reload: a deleted or changed schedule
                        # must not keep firing for a whole period.
                        pause = min(pause, self._reloads.failed(exc))
                    else:
                        log.exception("reloading schedules failed; will retry")
                else:
                    self._reloads.recovered()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
        finally:
            self._aps.shutdown(wait=False)
            self._aps = None

    async def reload(self) -> None:
        """Make the timer's jobs match the enabled schedules in the database."""
        assert self._aps is not None
        async with self._db.session() as session, session.begin():
            wanted = {s.id: s for s in await schedules.list_schedules(session, enabled_only=True)}
        for schedule_id in list(self._loaded):
            if schedule_id not in wanted or self._loaded[schedule_id] != self._timing(
                wanted[schedule_id]
            ):
                with contextlib.suppress(Exception):
                    self._aps.remove_job(f"schedule-{schedule_id}")
                del self._loaded[schedule_id]
        for schedule_id, s in wanted.items():
            if schedule_id in self._loaded:
                continue
            cron, timezone, jitter = self._timing(s)
            trigger = self._trigger(s, jitter)
            if trigger is None:
                continue
            self._aps.add_job(
                self._fire,
                trigger,
                args=[schedule_id],
                id=f"schedule-{schedule_id}",
                replace_existing=True,
            )
            self._loaded[schedule_id] = (cron, timezone, jitter)

    def _trigger(self, s: schedules.ScheduleRecord, jitter: float) -> CrontabTrigger | None:
        """The schedule's timer; None (logged once per cron line) when it cannot have one.

        Saving refuses both cases, but rows written before cron(8) rules (or by
        hand) may hold a line that no longer parses or never fires; one such
        schedule must not keep the others from firing.
        """
        try:
            trigger = cron_trigger(s.cron, s.timezone, jitter=jitter)
            fires = bool(next_ticks(s.cron, s.timezone, self._now(), 1))
            problem = None if fires else "it has no tick in the years ahead"
        except InputError as exc:
            trigger, problem = None, exc.message
        if problem is None:
            return trigger
        key = (s.id, s.cron, s.timezone)
        if key not in self._unusable:
            self._unusable.add(key)
            log.warning(
                "schedule %s (%s): not timed, %s; fix it with `cors-scanner schedules update %s "
                "--cron ...`",
                s.id,
                s.name,
                problem,
                s.id,
            )
        return None

    def _timing(self, s: schedules.ScheduleRecord) -> tuple[str, str, float]:
        jitter = self._settings.schedule_jitter if s.jitter_seconds is None else s.jitter_seconds
        return (s.cron, s.timezone, float(jitter))

    @property
    def job_ids(self) -> list[str]:
        """The timer's current job ids (one per enabled schedule)."""
        return [] if self._aps is None else sorted(j.id for j in self._aps.get_jobs())

    async def _fire(self, schedule_id: int) -> None:
        """A cron job fired (possibly jittered/late): plan its nominal tick."""
        loaded = self._loaded.get(schedule_id)
        if loaded is None:
            return
        cron, timezone, _jitter = loaded
        now = self._now()
        nominal = latest_tick(
            cron, timezone, now, window=timedelta(seconds=self._settings.catch_up_grace)
        )
        if nominal is None:
            return
        await self._tick(schedule_id, nominal)

    def fire_at(self, schedule_id: int, nominal: datetime) -> None:
        """Fire ``schedule_id``'s tick ``nominal`` once, through the timer, at that time."""
        assert self._aps is not None, "the scheduler is not running"
        self._aps.add_job(self._tick, DateTrigger(run_date=nominal), args=[schedule_id, nominal])

    async def _tick(self, schedule_id: int, nominal: datetime) -> None:
        # Planning a tick twice plans it once, so a retry after a reply lost with
        # its connection is safe; past the grace the tick would not be planned anyway.
        left = self._settings.catch_up_grace - (self._now() - nominal).total_seconds()
        try:
            run = await retry(
                lambda: plan_tick(self._db, schedule_id, nominal, self._plan),
                self._ticks,
                stop=self._stop,
                give_up_after=max(0.0, left),
            )
        except Exception:
            log.exception("schedule %s: planning the tick of %s failed", schedule_id, nominal)
            return
        if run is not None:
            self.planned.append(run)

    async def _prune(self) -> None:
        days = self._settings.retention_days
        if days <= 0:
            return
        older_than = self._now() - timedelta(days=days)
        async with self._db.session() as session, session.begin():
            pruned = await work.prune_probe_details(session, older_than=older_than)
        if pruned:
            log.info("pruned %d probe rows of runs older than %d days", pruned, days)
