"""Cron expressions of schedules: validation and nominal tick times.

A schedule's cron is a standard five-field crontab line evaluated in the
schedule's IANA time zone (APScheduler 3.x ``CronTrigger`` parses it). The
**nominal** tick — the time the cron says, not when a timer happened to fire
— is what makes a run unique per tick, so every scheduler process must
compute the same one: :func:`latest_tick` is the newest tick at or before a
given moment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from scanner.errors import InputError


def parse_timezone(name: str) -> ZoneInfo:
    """An IANA time zone; ``InputError`` naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"unknown time zone {name!r}: use an IANA name like UTC or Europe/Paris"
        ) from None


def cron_trigger(cron: str, timezone: str, *, jitter: float = 0.0) -> CronTrigger:
    """The APScheduler trigger of a five-field cron line in ``timezone``; ``InputError`` if bad."""
    zone = parse_timezone(timezone)
    fields = cron.split()
    if len(fields) != 5:
        raise InputError(
            f"cron {cron!r}: expected 5 fields (minute hour day-of-month month day-of-week)"
        )
    try:
        return (
            CronTrigger.from_crontab(cron, timezone=zone)
            if not jitter
            else CronTrigger(
                minute=fields[0],
                hour=fields[1],
                day=fields[2],
                month=fields[3],
                day_of_week=fields[4],
                timezone=zone,
                jitter=int(jitter),
            )
        )
    except ValueError as exc:
        raise InputError(f"cron {cron!r}: {exc}") from None


def next_ticks(cron: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` nominal ticks strictly after ``after``, in UTC."""
    trigger = cron_trigger(cron, timezone)
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


def latest_tick(cron: str, timezone: str, now: datetime, *, window: timedelta) -> datetime | None:
    """The newest nominal tick in ``(now - window, now]`` (UTC), or None.

    Used by a timer that fired (jitter and loop delay make ``now`` a little
    after the tick) and by start-up catch-up (``window`` = the grace window).
    """
    trigger = cron_trigger(cron, timezone)
    latest: datetime | None = None
    previous: datetime | None = None
    moment = now - window
    while True:
        fire = trigger.get_next_fire_time(previous, moment)
        if fire is None or fire > now:
            return latest.astimezone(UTC) if latest is not None else None
        latest = fire
        previous = fire
        moment = fire + timedelta(microseconds=1)
