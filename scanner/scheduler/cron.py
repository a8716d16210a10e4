"""APScheduler's timer, driven by cron(8)'s reading of a schedule's crontab line.

What a cron line means -- which instants it names in which zone, across
daylight-saving changes -- is a domain rule and lives in
:mod:`scanner.core.cron`. APScheduler 3 is only the in-process timer here:
its own ``CronTrigger`` counts days of the week from Monday and ANDs the day
fields, so it is not used; :class:`CrontabTrigger` hands APScheduler the
ticks the core computes, plus the timer's jitter.

The **nominal** tick -- the time the cron says, not when a timer happened to
fire -- is what makes a run unique per tick, so every scheduler process must
compute the same one: :func:`latest_tick` is the newest tick at or before a
given moment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from apscheduler.triggers.base import BaseTrigger

from scanner.core import cron as rules


class CrontabTrigger(BaseTrigger):
    """An APScheduler trigger firing at a crontab line's ticks, up to ``jitter`` s late."""

    def __init__(self, crontab: rules.Crontab, zone: tzinfo, *, jitter: float = 0.0) -> None:
        self.crontab = crontab
        self.zone = zone
        self.jitter = int(jitter) or None

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        # As APScheduler's CronTrigger: the tick after the previous fire, but
        # never earlier than now (a late wake-up coalesces to the newest tick).
        start = now if previous_fire_time is None else min(now, previous_fire_time)
        found = rules.next_ticks(self.crontab, self.zone, start - timedelta(microseconds=1), 1)
        if not found:
            return None
        fire: datetime | None = self._apply_jitter(found[0], self.jitter, now)
        return fire

    def __str__(self) -> str:
        return f"crontab[{self.crontab.text!r}, {self.zone}]"

    def __repr__(self) -> str:
        return f"<CrontabTrigger {self.crontab.text!r} zone={self.zone!s} jitter={self.jitter}>"


def cron_trigger(cron: str, timezone: str, *, jitter: float = 0.0) -> CrontabTrigger:
    """The timer of a cron line in ``timezone``; ``InputError`` if either is bad."""
    return CrontabTrigger(rules.parse_crontab(cron), rules.parse_timezone(timezone), jitter=jitter)


def next_ticks(cron: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` nominal ticks strictly after ``after``, in UTC."""
    return list(
        rules.next_ticks(rules.parse_crontab(cron), rules.parse_timezone(timezone), after, count)
    )


def latest_tick(cron: str, timezone: str, now: datetime, *, window: timedelta) -> datetime | None:
    """The newest nominal tick in ``(now - window, now]`` (UTC), or None.

    Used by a timer that fired (jitter and loop delay make ``now`` a little
    after the tick) and by start-up catch-up (``window`` = the grace window).
    """
    tick = rules.latest_tick(
        rules.parse_crontab(cron), rules.parse_timezone(timezone), now, window=window
    )
    return None if tick is None else tick.astimezone(UTC)
