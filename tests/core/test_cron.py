"""Cron lines mean what cron(8) means: checked against known dates over whole calendar years.

Every expectation here is written independently of ``scanner.core.cron``:
days are picked with Python's own ``date.weekday()`` (Monday = 0), instants
are literal UTC times, and the random-expression test builds both the cron
text and its meaning from the same field sets and matches them minute by
minute.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.core.cron import (
    SEARCH_HORIZON,
    DayRule,
    first_tick,
    latest_tick,
    next_ticks,
    parse_crontab,
    parse_timezone,
    ticks,
    upcoming_cache_info,
    upcoming_ticks,
)
from scanner.errors import InputError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)  # date.weekday()


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)  # type: ignore[misc]


def year_ticks(cron: str, year: int, zone: ZoneInfo | type[UTC] = UTC) -> list[datetime]:
    """Every tick of ``cron`` whose instant falls in ``year`` (UTC)."""
    crontab = parse_crontab(cron)
    start = utc(year, 1, 1) - timedelta(microseconds=1)
    return list(ticks(crontab, zone, start, utc(year, 12, 31, 23, 59, 59)))  # type: ignore[arg-type]


def expected_year(
    year: int, day: Callable[[date], bool], times: list[tuple[int, int]]
) -> list[datetime]:
    """The UTC instants of ``times`` on every day of ``year`` that ``day`` accepts."""
    out = []
    current = date(year, 1, 1)
    while current.year == year:
        if day(current):
            out += [utc(current.year, current.month, current.day, h, m) for h, m in times]
        current += timedelta(days=1)
    return sorted(out)


# -- a table of expressions over a whole leap year (2028, UTC) --------------------------

YEAR_TABLE: list[tuple[str, Callable[[date], bool], list[tuple[int, int]]]] = [
    ("0 2 * * 0", lambda d: d.weekday() == SUN, [(2, 0)]),
    ("0 2 * * 7", lambda d: d.weekday() == SUN, [(2, 0)]),
    ("0 2 * * sun", lambda d: d.weekday() == SUN, [(2, 0)]),
    ("0 2 * * 1-5", lambda d: d.weekday() <= FRI, [(2, 0)]),
    ("0 2 * * MON-fri", lambda d: d.weekday() <= FRI, [(2, 0)]),
    ("0 22 * * 5-7", lambda d: d.weekday() in (FRI, SAT, SUN), [(22, 0)]),
    ("0 22 * * fri-sun", lambda d: d.weekday() in (FRI, SAT, SUN), [(22, 0)]),
    ("0 3 * * 1-7/2", lambda d: d.weekday() in (MON, WED, FRI, SUN), [(3, 0)]),
    ("0 3 * * */2", lambda d: d.weekday() in (SUN, TUE, THU, SAT), [(3, 0)]),
    ("0 0 29 2 *", lambda d: (d.month, d.day) == (2, 29), [(0, 0)]),
    ("0 0 31 * *", lambda d: d.day == 31, [(0, 0)]),
    ("15 10 * jan,JUL *", lambda d: d.month in (1, 7), [(10, 15)]),
    ("0 12 * dec-dec sat,sun", lambda d: d.month == 12 and d.weekday() >= SAT, [(12, 0)]),
    ("0 9,17 * * mon,wed,fri", lambda d: d.weekday() in (MON, WED, FRI), [(9, 0), (17, 0)]),
    ("*/15 6 * * *", lambda d: True, [(6, 0), (6, 15), (6, 30), (6, 45)]),
    ("0 8-18/5 * * *", lambda d: True, [(8, 0), (13, 0), (18, 0)]),
    ("0,30 23 1-3,15 * *", lambda d: d.day in (1, 2, 3, 15), [(23, 0), (23, 30)]),
    # Both day fields restricted: either matches (crontab(5)'s own example).
    ("30 4 1,15 * 5", lambda d: d.day in (1, 15) or d.weekday() == FRI, [(4, 30)]),
    ("0 0 13 * fri", lambda d: d.day == 13 or d.weekday() == FRI, [(0, 0)]),
    # One day field starts with "*" (a step included): both must match.
    ("0 0 */2 * 1", lambda d: d.day % 2 == 1 and d.weekday() == MON, [(0, 0)]),
    ("0 0 1-7 * *", lambda d: d.day <= 7, [(0, 0)]),
    ("0 0 * * 1", lambda d: d.weekday() == MON, [(0, 0)]),
    # The macros.
    ("@yearly", lambda d: (d.month, d.day) == (1, 1), [(0, 0)]),
    ("@annually", lambda d: (d.month, d.day) == (1, 1), [(0, 0)]),
    ("@monthly", lambda d: d.day == 1, [(0, 0)]),
    ("@weekly", lambda d: d.weekday() == SUN, [(0, 0)]),
    ("@daily", lambda d: True, [(0, 0)]),
    ("@midnight", lambda d: True, [(0, 0)]),
    ("@hourly", lambda d: True, [(h, 0) for h in range(24)]),
]


@pytest.mark.parametrize(("cron", "day", "times"), YEAR_TABLE, ids=[r[0] for r in YEAR_TABLE])
def test_every_tick_of_a_leap_year(
    cron: str, day: Callable[[date], bool], times: list[tuple[int, int]]
) -> None:
    assert year_ticks(cron, 2028) == expected_year(2028, day, times)


@pytest.mark.parametrize(("cron", "day", "times"), YEAR_TABLE, ids=[r[0] for r in YEAR_TABLE])
def test_next_ticks_walk_the_same_calendar(
    cron: str, day: Callable[[date], bool], times: list[tuple[int, int]]
) -> None:
    # From any moment of the year, the next ticks are the calendar's next entries.
    calendar = [y for year in range(2027, 2041) for y in expected_year(year, day, times)]
    crontab = parse_crontab(cron)
    picker = random.Random(cron)
    for _ in range(25):
        after = utc(2028, 1, 1) + timedelta(seconds=picker.randrange(366 * 86400))
        # (a search looks SEARCH_HORIZON ahead: 8 years, two leap days at least)
        upcoming = [t for t in calendar if after < t <= after + SEARCH_HORIZON][:3]
        assert next_ticks(crontab, UTC, after, 3) == tuple(upcoming), after
        assert upcoming_ticks(cron, "UTC", after, 3) == tuple(upcoming), after
        previous = [t for t in calendar if t <= after]
        window = timedelta(days=8)
        newest = previous[-1] if previous and after - previous[-1] < window else None
        assert latest_tick(crontab, UTC, after, window=window) == newest


def test_known_dates() -> None:
    # Sunday as 0 and as 7, weekdays, and the first Sundays of 2026 and 2027.
    after = utc(2026, 12, 30, 12)  # a Wednesday
    assert next_ticks(parse_crontab("0 2 * * 0"), UTC, after, 2) == (
        utc(2027, 1, 3, 2),
        utc(2027, 1, 10, 2),
    )
    assert next_ticks(parse_crontab("0 2 * * 1-5"), UTC, after, 3) == (
        utc(2026, 12, 31, 2),
        utc(2027, 1, 1, 2),
        utc(2027, 1, 4, 2),
    )
    assert next_ticks(parse_crontab("* * * * 7"), UTC, utc(2026, 12, 31), 1) == (
        utc(2027, 1, 3, 0, 0),
    )
    # The leap day: 2028, then 2032.
    assert next_ticks(parse_crontab("0 0 29 2 *"), UTC, utc(2026, 3, 1), 2) == (
        utc(2028, 2, 29),
        utc(2032, 2, 29),
    )
    # 2100 is no leap year: 2096, then 2104.
    assert next_ticks(parse_crontab("0 0 29 2 *"), UTC, utc(2096, 3, 1), 1) == (utc(2104, 2, 29),)
    assert next_ticks(parse_crontab("*/15 * * * *"), UTC, utc(2026, 5, 1, 9, 7, 30), 3) == (
        utc(2026, 5, 1, 9, 15),
        utc(2026, 5, 1, 9, 30),
        utc(2026, 5, 1, 9, 45),
    )


def test_day_rules_follow_cron8() -> None:
    assert parse_crontab("0 0 1,15 * 5").day_rule is DayRule.EITHER
    assert parse_crontab("0 0 */2 * 5").day_rule is DayRule.BOTH
    assert parse_crontab("0 0 1 * *").day_rule is DayRule.BOTH
    assert parse_crontab("0 2 * * *").fixed_time
    assert not parse_crontab("*/5 2 * * *").fixed_time
    assert not parse_crontab("0 * * * *").fixed_time
    assert not parse_crontab("@hourly").fixed_time
    assert parse_crontab("@daily").fixed_time


# -- random expressions against a minute-by-minute oracle ---------------------------------


def _spec(values: list[int], star: bool, low: int, high: int) -> str:
    return "*" if star else ",".join(str(v) for v in sorted(set(values)))


@settings(max_examples=60, deadline=None)
@given(
    minutes=st.lists(st.integers(0, 59), min_size=1, max_size=4),
    hours=st.lists(st.integers(0, 23), min_size=1, max_size=3),
    days=st.lists(st.integers(1, 31), min_size=1, max_size=4),
    months=st.lists(st.integers(1, 12), min_size=1, max_size=12),
    weekdays=st.lists(st.integers(0, 7), min_size=1, max_size=3),
    stars=st.tuples(*(st.booleans() for _ in range(5))),
    start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 1)),
)
def test_random_lines_match_a_minute_by_minute_oracle(
    minutes: list[int],
    hours: list[int],
    days: list[int],
    months: list[int],
    weekdays: list[int],
    stars: tuple[bool, bool, bool, bool, bool],
    start: datetime,
) -> None:
    fields = [
        _spec(minutes, stars[0], 0, 59),
        _spec(hours, stars[1], 0, 23),
        _spec(days, stars[2], 1, 31),
        _spec(months, stars[3], 1, 12),
        _spec(weekdays, stars[4], 0, 7),
    ]
    cron = " ".join(fields)
    sundays = {0, 7}

    def fires(t: datetime) -> bool:
        if not (stars[0] or t.minute in minutes) or not (stars[1] or t.hour in hours):
            return False
        if not (stars[3] or t.month in months):
            return False
        dom = stars[2] or t.day in days
        cron_day = (t.weekday() + 1) % 7
        dow = stars[4] or cron_day in weekdays or (cron_day == 0 and bool(sundays & {*weekdays}))
        restricted = not stars[2] and not stars[4]
        return dom or dow if restricted else dom and dow

    after = start.replace(tzinfo=UTC)
    span = timedelta(days=3)
    expected = []
    moment = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while moment <= after + span:
        if fires(moment):
            expected.append(moment)
        moment += timedelta(minutes=1)
    assert list(ticks(parse_crontab(cron), UTC, after, after + span)) == expected, cron


# -- time zones and daylight-saving changes (cron(8)'s rules) -----------------------------


def day_ticks(cron: str, zone: ZoneInfo, local_day: date) -> list[str]:
    """The ticks of one local date, as local ISO times with their offsets."""
    start = datetime(local_day.year, local_day.month, local_day.day, tzinfo=zone)
    end = start + timedelta(days=1)
    found = ticks(parse_crontab(cron), zone, start - timedelta(microseconds=1), end)
    return [t.astimezone(zone).isoformat() for t in found if t < end.astimezone(UTC)]


def test_a_nightly_fires_once_on_each_day_of_a_year_with_both_changes() -> None:
    got = year_ticks("0 2 * * *", 2026, BERLIN)
    assert len(got) == 365
    assert len({t.astimezone(BERLIN).date() for t in got}) == 365
    # 02:00 does not exist on 29 March: it fires when the clock jumps, at 03:00 CEST.
    assert utc(2026, 3, 29, 1) in got
    # 02:00 happens twice on 25 October: it fires at the first one (CEST) only.
    assert utc(2026, 10, 25, 0) in got
    assert utc(2026, 10, 25, 1) not in got
    assert {t.astimezone(BERLIN).strftime("%H:%M") for t in got} == {"02:00", "03:00"}
    assert [t for t in got if t.astimezone(BERLIN).hour == 3] == [utc(2026, 3, 29, 1)]


@pytest.mark.parametrize(
    ("cron", "spring", "autumn"),
    [
        # Fixed-time lines: a skipped time fires at the change, a repeated one once.
        ("0 2 * * *", ["2026-03-29T03:00:00+02:00"], ["2026-10-25T02:00:00+02:00"]),
        ("30 2 * * *", ["2026-03-29T03:00:00+02:00"], ["2026-10-25T02:30:00+02:00"]),
        (
            "0 2,3 * * *",
            ["2026-03-29T03:00:00+02:00"],
            ["2026-10-25T02:00:00+02:00", "2026-10-25T03:00:00+01:00"],
        ),
        (
            "0,30 2 * * *",
            ["2026-03-29T03:00:00+02:00"],
            ["2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00"],
        ),
        # Wildcard lines are scheduled on the real clock: skipped minutes do not
        # exist, repeated ones happen twice.
        (
            "*/30 2 * * *",
            [],
            [
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-25T02:00:00+01:00",
                "2026-10-25T02:30:00+01:00",
            ],
        ),
        ("15 * * * *", None, None),  # checked below by count
    ],
)
def test_europe_berlin_changes(
    cron: str, spring: list[str] | None, autumn: list[str] | None
) -> None:
    if spring is None or autumn is None:
        assert len(day_ticks(cron, BERLIN, date(2026, 3, 29))) == 23
        assert len(day_ticks(cron, BERLIN, date(2026, 10, 25))) == 25
        return
    assert [
        t for t in day_ticks(cron, BERLIN, date(2026, 3, 29)) if "T02" in t or "T03" in t
    ] == spring
    assert [
        t for t in day_ticks(cron, BERLIN, date(2026, 10, 25)) if "T02" in t or "T03" in t
    ] == autumn


def test_other_zones_and_sizes_of_change() -> None:
    # New York: 02:30 is skipped on 8 March 2026 and 01:30 repeated on 1 November.
    assert day_ticks("30 2 * * *", NEW_YORK, date(2026, 3, 8)) == ["2026-03-08T03:00:00-04:00"]
    assert day_ticks("30 1 * * *", NEW_YORK, date(2026, 11, 1)) == ["2026-11-01T01:30:00-04:00"]
    # Lord Howe moves by 30 minutes: 02:00-02:30 skipped, 01:30-02:00 repeated.
    assert day_ticks("15 2 * * *", LORD_HOWE, date(2026, 10, 4)) == ["2026-10-04T02:30:00+11:00"]
    assert day_ticks("45 1 * * *", LORD_HOWE, date(2026, 4, 5)) == ["2026-04-05T01:45:00+11:00"]
    assert day_ticks("*/15 1 * * *", LORD_HOWE, date(2026, 4, 5)) == [
        "2026-04-05T01:00:00+11:00",
        "2026-04-05T01:15:00+11:00",
        "2026-04-05T01:30:00+11:00",
        "2026-04-05T01:45:00+11:00",
        "2026-04-05T01:30:00+10:30",
        "2026-04-05T01:45:00+10:30",
    ]
    # Samoa skipped 30 December 2011 (a 24-hour jump): cron(8) takes a change of
    # three hours or more as a clock correction, so that day's ticks never fire.
    apia = ZoneInfo("Pacific/Apia")
    got = next_ticks(parse_crontab("0 2 * * *"), apia, utc(2011, 12, 28), 3)
    assert [t.astimezone(apia).date() for t in got] == [
        date(2011, 12, 28),
        date(2011, 12, 29),
        date(2011, 12, 31),
    ]
    # Juneau went back a whole day in 1867 (Alaska became American): the
    # repeated day's fixed-time tick fires twice, as cron(8) runs everything
    # again after a large backward correction.
    juneau = ZoneInfo("America/Juneau")
    got = next_ticks(parse_crontab("0 12 * * *"), juneau, utc(1867, 10, 18), 2)
    assert got == (
        datetime(1867, 10, 18, 20, 57, 41, tzinfo=UTC),
        datetime(1867, 10, 19, 20, 57, 41, tzinfo=UTC),
    )
    assert {t.astimezone(juneau).date() for t in got} == {date(1867, 10, 19)}


def test_a_zone_leaves_utc_ticks_in_order_and_unique() -> None:
    for cron in ("* * * * *", "*/7 0-3 * * *", "0 2 * * *"):
        got = list(ticks(parse_crontab(cron), BERLIN, utc(2026, 10, 24, 20), utc(2026, 10, 25, 4)))
        assert got == sorted(set(got)), cron


# -- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * * *", "expected 5 fields"),
        ("0 2 * * * /usr/bin/backup", "expected 5 fields"),
        ("61 * * * *", "minute 61 is out of range 0-59"),
        ("* 24 * * *", "hour 24 is out of range 0-23"),
        ("* * 0 * *", "day-of-month 0 is out of range 1-31"),
        ("* * * 13 *", "month 13 is out of range 1-12"),
        ("* * * * 8", "day-of-week 8 is out of range 0-7"),
        ("5/15 * * * *", "write 5-59/15"),
        ("*/0 * * * *", "step must be at least 1"),
        ("*/x * * * *", "step 'x' is not a number"),
        ("* 22-2 * * *", "runs backwards"),
        ("mon * * * *", "minute 'mon' is not a number"),
        ("* * * * monday", "day-of-week 'monday' is not a number or a name (sun-sat)"),
        ("* * * * mon-", "is not a number"),
        ("1,,2 * * * *", "empty list item"),
        ("\u0663 * * * *", "is not a number"),
        ("@reboot", "@reboot names no time"),
        ("@fortnightly", "unknown macro"),
    ],
)
def test_bad_lines_are_refused_with_the_reason(cron: str, message: str) -> None:
    with pytest.raises(InputError, match=r"^cron ") as caught:
        parse_crontab(cron)
    assert message in caught.value.message


def test_spellings_cron8_accepts() -> None:
    sunday = parse_crontab("0 0 * * 0").weekdays
    assert parse_crontab("0 0 * * 7").weekdays == sunday == parse_crontab("0 0 * * SUN").weekdays
    assert parse_crontab("0 0 * * fri-sun").weekdays == {5, 6, 0}
    assert parse_crontab("0 0 * * 5-0").weekdays == {5, 6, 0}
    assert parse_crontab("0 0 * * 0-7").weekdays == set(range(7))
    assert parse_crontab("  0\t0 *  * * ").text == "0 0 * * *"
    assert parse_crontab("@DAILY").minutes == (0,)
    assert parse_crontab("00 07 * Feb-Mar *").months == {2, 3}
    assert parse_crontab("*/100 * * * *").minutes == (0,)  # as cron(8): a step past the range


def test_time_zones() -> None:
    assert parse_timezone("Europe/Berlin") == BERLIN
    for bad in ("Mars/Olympus", "../etc/passwd", ""):
        with pytest.raises(InputError, match="unknown time zone"):
            parse_timezone(bad)


# -- lines that never fire ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "why"),
    [
        ("0 0 31 4,6,9,11 *", "no day 31 exists in April, June, September, November"),
        ("0 0 30 2 *", "no day 30 exists in February"),
        ("0 0 30,31 feb *", "no day 30,31 exists in February"),
        ("0 0 31 2 */1", "no day 31 exists in February"),
    ],
)
def test_a_line_that_never_fires_is_refused(cron: str, why: str) -> None:
    crontab = parse_crontab(cron)
    assert next_ticks(crontab, UTC, utc(2026, 1, 1), 1) == ()
    with pytest.raises(InputError, match="never fires") as caught:
        first_tick(crontab, BERLIN, utc(2026, 1, 1))
    assert why in caught.value.message


def test_rare_lines_that_do_fire_are_accepted() -> None:
    now = utc(2026, 3, 1)
    assert first_tick(parse_crontab("0 0 29 2 *"), UTC, now) == utc(2028, 2, 29)
    # Both day fields restricted: any Monday of February is enough.
    assert first_tick(parse_crontab("0 0 30 2 1"), UTC, now) == utc(2027, 2, 1)
    # A step on day-of-week makes both fields count: a 13th that is a Sunday or a
    # Friday (*/5 is 0 and 5): Sunday 13 September 2026.
    assert first_tick(parse_crontab("0 0 13 * */5"), UTC, utc(2026, 3, 14)) == utc(2026, 9, 13)
    # 29 February that is a Sunday (*/7 is 0 and 7): 2032, more than 5 years away.
    with pytest.raises(InputError, match="no tick in UTC within the next 5 years"):
        first_tick(parse_crontab("0 0 29 2 */7"), UTC, now)
    assert next_ticks(parse_crontab("0 0 29 2 */7"), UTC, now, 1) == (utc(2032, 2, 29),)


def test_upcoming_ticks_are_memoised_per_minute() -> None:
    before = upcoming_cache_info()
    moment = utc(2031, 5, 6, 7, 8, 9)
    first = upcoming_ticks("17 3 * * *", "Europe/Berlin", moment, 3)
    again = upcoming_ticks("17 3 * * *", "Europe/Berlin", moment + timedelta(seconds=30), 3)
    hits, misses, _ = upcoming_cache_info()
    assert first == again == next_ticks(parse_crontab("17 3 * * *"), BERLIN, moment, 3)
    assert misses == before[1] + 1
    assert hits == before[0] + 1
    # Never-firing lines are bounded and cached too: one search per minute.
    for _ in range(40):
        assert upcoming_ticks("0 0 31 4,6,9,11 *", "UTC", moment, 3) == ()
    assert upcoming_cache_info()[1] == misses + 1
