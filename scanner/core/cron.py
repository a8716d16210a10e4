"""Crontab lines as cron(8) reads them, and the instants they name in a time zone.

The reference is Vixie cron as cronie ships it (``crontab(5)``, ``cron(8)``),
because that is what "cron" means to the people who write our schedules:

- Five fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12
  or ``jan``-``dec``), day of week (0-7 or ``sun``-``sat``; 0 and 7 are both
  Sunday, 1-5 is Monday to Friday). Names are three letters, any case, and
  work in ranges and lists (``mon-fri``, ``jan,jul``).
- Each field is a list of ranges: ``*``, ``N``, ``N-M`` (inclusive, low to
  high; ``N-0``/``N-sun`` in day of week reads as ``N-7``), and ``*/S`` or
  ``N-M/S`` for every S-th value of the range. cron(8) silently reads ``N/S``
  as plain ``N``; that is never what its writer meant, so it is refused here
  with the spelling that works (``N-59/S``).
- The day rule, cron's oddest and most standard: when *both* day fields are
  restricted (neither starts with ``*``) a day matches if **either** matches
  (``0 0 1,15 * 5``: the 1st, the 15th and every Friday). When either starts
  with ``*`` -- ``*/2`` included, as in cron(8) -- **both** must match.
- Macros: ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily``
  (``@midnight``), ``@hourly``, with cron(8)'s meanings. ``@reboot`` names no
  time and is refused.

Time zones and daylight-saving changes follow cron(8)'s "Daylight Saving Time
and other time changes" as if the daemon ran in the schedule's zone. cron(8)
calls a job *fixed-time* unless its minute or hour field starts with ``*``
(``@hourly`` counts as ``*``):

- A wall time skipped by a forward change of less than three hours (02:30 on
  the night Europe/Berlin goes from 02:00 to 03:00): a fixed-time tick fires
  once, at the instant of the change (03:00 local); a wildcard tick has no
  such minute and is skipped (cron(8) runs those wildcard minutes too when
  the jump is under five minutes, and so do we).
- A wall time repeated by a backward change of at most three hours (02:30 the
  night Berlin goes from 03:00 back to 02:00): a fixed-time tick fires once,
  at its first occurrence; a wildcard tick fires at both, since wildcard jobs
  are "scheduled normally" on the real clock.
- Changes of three hours or more are clock corrections to cron(8): skipped
  wall times never fire and repeated ones fire twice.

Pure: the moment to count from is always a parameter. Zone lookup goes
through :mod:`zoneinfo`, which reads the IANA database (the ``tzdata``
package when the system has none) and never the clock.
"""

from __future__ import annotations

import calendar
import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scanner.errors import InputError

FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# cron(8)'s thresholds for a change of the wall clock (cron.c: "small", "large").
SMALL_JUMP = timedelta(minutes=5)
LARGE_JUMP = timedelta(hours=3)
# How far ahead tick searches look. A cron line that fires at all fires well
# within this (the rarest, 29 February, at most 8 years apart across 2100).
SEARCH_HORIZON = timedelta(days=8 * 366)
# A schedule with no tick this far ahead is refused when saved.
FIRES_WITHIN = timedelta(days=1827)  # 5 years
_MAX_DATE = date(9999, 12, 1)  # leave room for a day or two of look-ahead
_HOUR = timedelta(hours=1)


class DayRule(StrEnum):
    """How the two day fields combine (cron(8)'s DOM_STAR/DOW_STAR rule)."""

    EITHER = "either"  # both restricted: the day of month or the day of week matches
    BOTH = "both"  # one of them starts with "*": both must match


@dataclass(frozen=True, slots=True)
class _Bounds:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # three-letter names for low, low+1, ...


_FIELDS = (
    _Bounds("minute", 0, 59),
    _Bounds("hour", 0, 23),
    _Bounds("day-of-month", 1, 31),
    _Bounds("month", 1, 12, MONTH_NAMES),
    _Bounds("day-of-week", 0, 7, WEEKDAY_NAMES),
)


@dataclass(frozen=True, slots=True)
class Crontab:
    """One parsed crontab time specification."""

    text: str
    minutes: tuple[int, ...]  # ascending
    hours: tuple[int, ...]  # ascending
    days: frozenset[int]  # days of month, 1-31
    months: frozenset[int]  # 1-12
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    day_rule: DayRule
    fixed_time: bool  # neither minute nor hour starts with "*" (cron(8)'s non-wildcard job)

    def day_matches(self, day_of_month: int, weekday: int) -> bool:
        """Whether the day fields accept a day (``weekday``: 0 = Sunday), the month aside."""
        in_month = day_of_month in self.days
        in_week = weekday in self.weekdays
        return in_month or in_week if self.day_rule is DayRule.EITHER else in_month and in_week


def cron_weekday(day: date) -> int:
    """The day of the week as cron counts it: 0 = Sunday ... 6 = Saturday."""
    return (day.weekday() + 1) % 7


def _bad(text: str, why: str) -> InputError:
    return InputError(f"cron {text!r}: {why}")


def _number(token: str, bounds: _Bounds, text: str) -> int:
    if token.isdigit() and token.isascii() and len(token) <= 4:
        value = int(token)
    elif bounds.names and token.lower() in bounds.names:
        value = bounds.names.index(token.lower()) + bounds.low
    else:
        names = f" or a name ({bounds.names[0]}-{bounds.names[-1]})" if bounds.names else ""
        raise _bad(text, f"{bounds.name} {token!r} is not a number{names}")
    if not bounds.low <= value <= bounds.high:
        raise _bad(text, f"{bounds.name} {value} is out of range {bounds.low}-{bounds.high}")
    return value


def _range(item: str, bounds: _Bounds, text: str) -> set[int]:
    span, slash, step_text = item.partition("/")
    if slash:
        if not (step_text.isdigit() and step_text.isascii() and len(step_text) <= 4):
            raise _bad(text, f"{bounds.name} step {step_text!r} is not a number")
        step = int(step_text)
        if step == 0:
            raise _bad(text, f"{bounds.name} step must be at least 1")
    else:
        step = 1
    if span == "*":
        low, high = bounds.low, bounds.high
    elif "-" in span:
        first, _, last = span.partition("-")
        low, high = _number(first, bounds, text), _number(last, bounds, text)
        if bounds.name == "day-of-week" and high == 0 and low > 0:
            high = 7  # "fri-sun": Sunday is also 7, the end of the week
        if low > high:
            raise _bad(
                text,
                f"{bounds.name} range {span} runs backwards: cron ranges go from low to high "
                f"(write {span.split('-')[0]}-{bounds.high},{bounds.low}-{span.split('-')[1]})",
            )
    else:
        value = _number(span, bounds, text)
        if slash:
            raise _bad(
                text,
                f"{bounds.name} {item!r}: cron(8) reads a step after a single value as that "
                f"value alone; write {span}-{bounds.high}/{step} for every {step} from {span}",
            )
        return {value}
    return set(range(low, high + 1, step))


def _field(spec: str, bounds: _Bounds, text: str) -> set[int]:
    values: set[int] = set()
    for item in spec.split(","):
        if not item:
            raise _bad(text, f"{bounds.name} {spec!r} has an empty list item")
        values |= _range(item, bounds, text)
    return values


@lru_cache(maxsize=1024)
def parse_crontab(text: str) -> Crontab:
    """Parse a five-field crontab time (or a macro); ``InputError`` naming what is wrong."""
    line = " ".join(text.split())
    spec = line
    if line.startswith("@"):
        if line.lower() == "@reboot":
            raise _bad(text, "@reboot names no time of day; a schedule needs one")
        if line.lower() not in MACROS:
            known = ", ".join(sorted(MACROS))
            raise _bad(text, f"unknown macro {line!r} (known: {known})")
        spec = MACROS[line.lower()]
    fields = spec.split()
    if len(fields) != 5:
        raise _bad(
            text,
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}",
        )
    minute, hour, dom, month, dow = (
        _field(f, b, text) for f, b in zip(fields, _FIELDS, strict=True)
    )
    if 7 in dow:
        dow = (dow - {7}) | {0}
    wildcard_time = fields[0].startswith("*") or fields[1].startswith("*")
    return Crontab(
        text=line,
        minutes=tuple(sorted(minute)),
        hours=tuple(sorted(hour)),
        days=frozenset(dom),
        months=frozenset(month),
        weekdays=frozenset(dow),
        day_rule=(
            DayRule.BOTH
            if fields[2].startswith("*") or fields[4].startswith("*")
            else DayRule.EITHER
        ),
        fixed_time=not wildcard_time,
    )


def parse_timezone(name: str) -> ZoneInfo:
    """An IANA time zone; ``InputError`` naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"unknown time zone {name!r}: use an IANA name like UTC or Europe/Paris"
        ) from None


def never_fires_reason(crontab: Crontab) -> str | None:
    """Why the calendar can never match the day fields, if that is the case (else None).

    Only the always-true case is explained here (a day of month that none of
    the months has, with the day of week unrestricted); anything rarer is
    found by searching ticks.
    """
    if crontab.day_rule is DayRule.EITHER or len(crontab.weekdays) < 7:
        return None
    longest = {m: 29 if m == 2 else calendar.monthrange(2001, m)[1] for m in crontab.months}
    if any(d <= longest[m] for m in crontab.months for d in crontab.days):
        return None
    months = ", ".join(calendar.month_name[m] for m in sorted(crontab.months))
    days = ",".join(str(d) for d in sorted(crontab.days))
    return f"no day {days} exists in {months}"


# -- ticks --------------------------------------------------------------------


def _dates(crontab: Crontab, start: date, end: date) -> Iterator[date]:
    """Every local date in [start, end] the day fields match, skipping whole months."""
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        if month in crontab.months:
            length = calendar.monthrange(year, month)[1]
            first = start.day if (year, month) == (start.year, start.month) else 1
            last = min(length, end.day) if (year, month) == (end.year, end.month) else length
            weekday_of_first = cron_weekday(date(year, month, 1))
            for day in range(first, last + 1):
                if crontab.day_matches(day, (weekday_of_first + day - 1) % 7):
                    yield date(year, month, day)
        month += 1
        if month == 13:
            year, month = year + 1, 1


def _offsets(wall: datetime, zone: tzinfo) -> tuple[timedelta, timedelta]:
    """UTC offsets of a naive wall time read before (fold=0) and after (fold=1) a change."""
    early = wall.replace(tzinfo=zone).utcoffset()
    late = wall.replace(tzinfo=zone, fold=1).utcoffset()
    if early is None or late is None:
        raise InputError(f"time zone {zone!r} gives no UTC offset")
    return early, late


def _transition(wall: datetime, zone: tzinfo, before: timedelta, after: timedelta) -> datetime:
    """The instant (naive UTC) of the forward change that skips the wall time ``wall``."""
    # The skipped wall times are [T + before, T + after), so T is in
    # (wall - after, wall - before]; zone data changes on whole seconds.
    low, high = wall - after, wall - before
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) // 2
        middle = middle.replace(microsecond=0)
        if middle <= low:
            middle = low + timedelta(seconds=1)
        offset = middle.replace(tzinfo=UTC).astimezone(zone).utcoffset()
        if offset == after:
            high = middle
        else:
            low = middle
    return high


def _wall_instants(
    crontab: Crontab, wall: datetime, zone: tzinfo, before: timedelta, after: timedelta
) -> tuple[datetime, ...]:
    """The naive-UTC instants at which the tick of one wall time fires (cron(8)'s DST rules)."""
    if before == after:
        return (wall - before,)
    if before > after:  # a backward change: this wall time happens twice
        first, second = wall - before, wall - after
        if crontab.fixed_time and before - after <= LARGE_JUMP:
            return (first,)
        return (first, second)
    jump = after - before  # a forward change skipped this wall time
    if jump >= LARGE_JUMP:
        return ()
    if crontab.fixed_time or jump < SMALL_JUMP:
        return (_transition(wall, zone, before, after),)
    return ()


def _hour_instants(
    crontab: Crontab,
    top: datetime,
    zone: tzinfo,
    low: datetime,
    high: datetime,
    start: tuple[timedelta, timedelta],
    end: tuple[timedelta, timedelta],
) -> list[datetime]:
    """The instants (naive UTC) in ``(low, high]`` of one local hour's ticks (``top`` = hh:00;
    ``start``/``end``: the offsets of ``top`` and of the next hour's top)."""
    if start[0] == start[1] == end[0] == end[1]:
        # No change of offset within this hour (zones change at most once an
        # hour), so its instants are plain arithmetic and a whole hour can be
        # skipped at once.
        base = top - start[0]
        if base + _HOUR <= low or base > high:
            return []
        return [i for m in crontab.minutes if low < (i := base + timedelta(minutes=m)) <= high]
    out: list[datetime] = []
    for minute in crontab.minutes:
        wall = top + timedelta(minutes=minute)
        out += (
            i for i in _wall_instants(crontab, wall, zone, *_offsets(wall, zone)) if low < i <= high
        )
    return out


def ticks(crontab: Crontab, zone: tzinfo, after: datetime, until: datetime) -> Iterator[datetime]:
    """The instants (aware, UTC) the line fires at in ``(after, until]``, ascending, once each."""
    low = after.astimezone(UTC).replace(tzinfo=None)
    high = until.astimezone(UTC).replace(tzinfo=None)
    if high <= low:
        return
    # A local date's ticks can land a day away from it in UTC, and a repeated
    # hour interleaves two passes: look a day either side, hour by hour, and
    # release an instant only once no later wall time can still produce an
    # earlier one (instants only go back within a repeated interval, whose
    # second pass is later, so the earliest reading of an hour's top bounds
    # every instant from that hour on).
    first = min(after.astimezone(zone).date() - timedelta(days=1), _MAX_DATE)
    last = min(until.astimezone(zone).date() + timedelta(days=1), _MAX_DATE)
    pending: list[datetime] = []
    previous: datetime | None = None
    known: dict[datetime, tuple[timedelta, timedelta]] = {}  # consecutive hours share a top

    def offsets(wall: datetime) -> tuple[timedelta, timedelta]:
        found = known.get(wall)
        if found is None:
            if len(known) > 64:
                known.clear()
            found = known[wall] = _offsets(wall, zone)
        return found

    for day in _dates(crontab, first, last):
        for hour in crontab.hours:
            top = datetime(day.year, day.month, day.day, hour)
            start = offsets(top)
            floor = top - max(start)
            while pending and pending[0] < floor:
                instant = heapq.heappop(pending)
                if instant != previous:
                    yield instant.replace(tzinfo=UTC)
                previous = instant
            if floor > high:
                return
            end = offsets(top + _HOUR)
            for instant in _hour_instants(crontab, top, zone, low, high, start, end):
                heapq.heappush(pending, instant)
    while pending:
        instant = heapq.heappop(pending)
        if instant != previous:
            yield instant.replace(tzinfo=UTC)
        previous = instant


def next_ticks(
    crontab: Crontab,
    zone: tzinfo,
    after: datetime,
    count: int,
    *,
    horizon: timedelta = SEARCH_HORIZON,
) -> tuple[datetime, ...]:
    """The next ``count`` ticks strictly after ``after`` within ``horizon`` (UTC, ascending)."""
    found: list[datetime] = []
    if count <= 0:
        return ()
    for tick in ticks(crontab, zone, after, _clamped(after, horizon)):
        found.append(tick)
        if len(found) == count:
            break
    return tuple(found)


def latest_tick(
    crontab: Crontab, zone: tzinfo, now: datetime, *, window: timedelta
) -> datetime | None:
    """The newest tick in ``(now - window, now]`` (UTC), or None."""
    latest: datetime | None = None
    for tick in ticks(crontab, zone, now - window, now):
        latest = tick
    return latest


def _clamped(after: datetime, horizon: timedelta) -> datetime:
    limit = datetime(_MAX_DATE.year, _MAX_DATE.month, 1, tzinfo=UTC)
    return limit if limit - after.astimezone(UTC) < horizon else after + horizon


def first_tick(
    crontab: Crontab, zone: tzinfo, now: datetime, *, within: timedelta = FIRES_WITHIN
) -> datetime:
    """The first tick after ``now``; ``InputError`` when there is none ``within`` (5 years).

    A line that never fires is almost always a mistake (``0 0 31 4,6,9,11 *``:
    those months have no 31st), and searching for its ticks is all cost and
    no result, so saving one is refused.
    """
    found = next_ticks(crontab, zone, now, 1, horizon=within)
    if found:
        return found[0]
    why = never_fires_reason(crontab) or f"no tick in {zone} within the next {_years(within)}"
    raise _bad(crontab.text, f"never fires: {why}")


def _years(span: timedelta) -> str:
    return f"{round(span.days / 365.25)} years"


# -- the cached entry point the adapters use ------------------------------------------


@lru_cache(maxsize=4096)
def _upcoming(cron: str, timezone: str, minute: datetime, count: int) -> tuple[datetime, ...]:
    return next_ticks(parse_crontab(cron), parse_timezone(timezone), minute, count)


def upcoming_ticks(cron: str, timezone: str, after: datetime, count: int) -> tuple[datetime, ...]:
    """The next ``count`` ticks after ``after``, memoised per (cron, zone, minute).

    Ticks fall on whole minutes except a fixed-time tick moved to a
    daylight-saving change, which falls on the change's second: the search
    starts at the minute ``after`` is in, one extra tick covers such an
    instant between that minute and ``after``, and the answer is trimmed to
    ticks strictly after ``after``.
    """
    moment = after.astimezone(UTC)
    minute = moment.replace(second=0, microsecond=0)
    found = _upcoming(cron, timezone, minute, count + 1)
    return tuple(t for t in found if t > moment)[:count]


def upcoming_cache_info() -> tuple[int, int, int]:
    """(hits, misses, entries) of :func:`upcoming_ticks`'s memo (observability, tests)."""
    info = _upcoming.cache_info()
    return info.hits, info.misses, info.currsize
