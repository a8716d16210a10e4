"""Schedules over HTTP: CRUD, every bad field named at once, scopes, audit, paging, pickup."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from scanner.core import cron as cron_rules
from scanner.db.tables import ScheduleRow
from scanner.scheduler import Scheduler
from tests.api.client import Api, api_settings

SCHEDULES = "/api/v1/schedules"


async def test_schedule_lifecycle(api: Api) -> None:
    created = await api.post(
        SCHEDULES,
        {
            "name": " weekly-spa ",
            "cron": "30 3 * * 1",
            "timezone": "Europe/Paris",
            "selection": {"tag": "spa"},
            "jitter_seconds": 120,
        },
        token="write",
    )
    assert created.status == 201, created.text
    schedule = created.body
    assert created.headers["Location"] == f"{SCHEDULES}/{schedule['id']}"
    assert schedule["name"] == "weekly-spa"
    assert schedule["timezone"] == "Europe/Paris"
    assert schedule["selection"] == {"tag": "spa"}
    assert schedule["enabled"] is True
    assert schedule["jitter_seconds"] == 120
    assert schedule["last_planned_for"] is None
    # 03:30 in Paris on Mondays is 01:30 or 02:30 UTC, depending on summer time.
    assert len(schedule["next_ticks"]) == 3
    assert all(t.endswith(("T01:30:00Z", "T02:30:00Z")) for t in schedule["next_ticks"])

    shown = await api.get(f"{SCHEDULES}/{schedule['id']}", token="read")
    assert shown.status == 200
    assert shown.body["cron"] == "30 3 * * 1"

    patched = await api.patch(
        f"{SCHEDULES}/{schedule['id']}",
        {"enabled": False, "timezone": "UTC", "selection": {}, "jitter_seconds": None},
        token="write",
    )
    assert patched.status == 200, patched.text
    assert patched.body["enabled"] is False
    assert patched.body["selection"] == {}
    assert patched.body["jitter_seconds"] is None  # back to the service default
    assert all(t.endswith("T03:30:00Z") for t in patched.body["next_ticks"])
    assert patched.body["cron"] == "30 3 * * 1"  # untouched fields stay

    listed = await api.walk(SCHEDULES, token="read")
    names = [s["name"] for s in listed]
    assert names == ["nightly", "weekly-spa"]  # a fresh database has the nightly schedule

    assert (await api.delete(f"{SCHEDULES}/{schedule['id']}", token="write")).status == 204
    assert (await api.get(f"{SCHEDULES}/{schedule['id']}")).status == 404
    assert (await api.delete(f"{SCHEDULES}/{schedule['id']}")).status == 404

    audit = (await api.get("/api/v1/audit")).body["items"]
    entries = [(e["action"], e["target_id"], e["actor"]) for e in audit]
    sid = str(schedule["id"])
    assert entries[:3] == [
        ("schedule.delete", sid, "write-bot"),
        ("schedule.update", sid, "write-bot"),
        ("schedule.create", sid, "write-bot"),
    ]


async def test_validation_names_every_bad_field(api: Api) -> None:
    reply = await api.post(
        SCHEDULES,
        {
            "cron": "61 * * *",
            "timezone": "Mars/Olympus",
            "jitter_seconds": -1,
            "selection": {"tag": "spa", "endpoint_ids": [1]},
            "colour": "blue",
        },
    )
    assert reply.status == 422, reply.text
    assert sorted(reply.fields()) == [
        "colour",
        "cron",
        "jitter_seconds",
        "name",
        "selection.endpoint_ids",
        "timezone",
    ]
    messages = {e["field"]: e["message"] for e in reply.problem["errors"]}
    assert "5 fields" in messages["cron"]
    assert "Mars/Olympus" in messages["timezone"]
    assert messages["colour"] == "is not a known field"

    # A cron line with five fields but a value out of range is refused too.
    bad_value = await api.post(SCHEDULES, {"name": "x", "cron": "61 * * * *"})
    assert bad_value.status == 422
    assert bad_value.fields() == ["cron"]

    nightly = (await api.get(SCHEDULES)).body["items"][0]
    patch = await api.patch(f"{SCHEDULES}/{nightly['id']}", {"timezone": "Nowhere/Land"})
    assert patch.status == 422
    assert patch.fields() == ["timezone"]
    empty = await api.patch(f"{SCHEDULES}/{nightly['id']}", {})
    assert empty.status == 422
    # Nothing was stored by the refused requests.
    assert [s["name"] for s in await api.walk(SCHEDULES)] == ["nightly"]
    assert (await api.get(f"{SCHEDULES}/{nightly['id']}")).body["timezone"] == "UTC"


async def test_names_are_unique_and_scopes_are_enforced(api: Api) -> None:
    body: dict[str, Any] = {"name": "hourly", "cron": "0 * * * *"}
    assert (await api.post(SCHEDULES, body, token="read")).status == 403
    first = await api.post(SCHEDULES, body, token="write")
    assert first.status == 201
    again = await api.post(SCHEDULES, body, token="write")
    assert again.status == 409
    assert "hourly" in again.problem["detail"]
    rename = await api.patch(f"{SCHEDULES}/{first.body['id']}", {"name": "nightly"})
    assert rename.status == 409
    assert (await api.delete(f"{SCHEDULES}/{first.body['id']}", token="read")).status == 403
    assert (await api.get(SCHEDULES, token=None)).status == 401


async def test_pages_walk_every_schedule_once(api: Api) -> None:
    for i in range(5):
        assert (await api.post(SCHEDULES, {"name": f"s{i}", "cron": f"{i} 1 * * *"})).status == 201
    first = await api.get(SCHEDULES, params={"limit": "2"})
    assert len(first.body["items"]) == 2
    assert first.body["next"] is not None
    walked = await api.walk(SCHEDULES, params={"limit": "2"})
    assert [s["name"] for s in walked] == ["nightly", "s0", "s1", "s2", "s3", "s4"]


async def test_a_running_scheduler_picks_up_api_changes(api: Api) -> None:
    settings = api_settings(api.database, schedule_reload_seconds=0.1)
    scheduler = Scheduler(api.database, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    try:

        async def jobs_become(expected: list[str]) -> None:
            async with asyncio.timeout(10):
                while scheduler.job_ids != expected:  # noqa: ASYNC110 - polling state
                    await asyncio.sleep(0.05)

        nightly = (await api.get(SCHEDULES)).body["items"][0]["id"]
        await jobs_become([f"schedule-{nightly}"])
        created = await api.post(SCHEDULES, {"name": "off", "cron": "0 4 * * *", "enabled": False})
        assert created.status == 201
        sid = created.body["id"]
        await asyncio.sleep(0.3)
        assert scheduler.job_ids == [f"schedule-{nightly}"]  # disabled: no timer
        assert (await api.patch(f"{SCHEDULES}/{sid}", {"enabled": True})).status == 200
        await jobs_become(sorted([f"schedule-{nightly}", f"schedule-{sid}"]))
        assert (await api.delete(f"{SCHEDULES}/{nightly}")).status == 204
        await jobs_become([f"schedule-{sid}"])
    finally:
        stop.set()
        await task


# -- cron(8) semantics and never-firing lines (issues 12 and 13) -------------------------


async def test_weekdays_and_the_day_rule_are_cron8s(api: Api) -> None:
    cases = {
        "0 2 * * 0": {6},  # Sunday (date.weekday() counts Monday as 0)
        "0 2 * * 7": {6},
        "0 2 * * sun": {6},
        "0 2 * * 1-5": {0, 1, 2, 3, 4},
        "0 2 * * MON-fri": {0, 1, 2, 3, 4},
    }
    for n, (cron, weekdays) in enumerate(cases.items()):
        created = await api.post(SCHEDULES, {"name": f"w{n}", "cron": cron})
        assert created.status == 201, created.text
        days = {datetime.fromisoformat(t).weekday() for t in created.body["next_ticks"]}
        assert days <= weekdays, cron
        assert created.body["cron"] == cron  # stored as written
    # Both day fields restricted: the 13th or any Friday, as crontab(5) says.
    either = await api.post(SCHEDULES, {"name": "either", "cron": "0 0 13 * 5"})
    ticks = [datetime.fromisoformat(t) for t in either.body["next_ticks"]]
    assert all(t.day == 13 or t.weekday() == 4 for t in ticks)
    assert any(t.weekday() != 4 for t in ticks) or any(t.day != 13 for t in ticks)
    daily = await api.post(SCHEDULES, {"name": "macro", "cron": "@daily", "timezone": "UTC"})
    assert daily.status == 201
    assert all(t.endswith("T00:00:00Z") for t in daily.body["next_ticks"])


async def test_a_cron_that_never_fires_is_refused_on_create_and_update(api: Api) -> None:
    refused = await api.post(SCHEDULES, {"name": "never", "cron": "0 0 31 4,6,9,11 *"})
    assert refused.status == 422, refused.text
    assert refused.problem["type"].endswith("validation_failed") or refused.fields() == ["cron"]
    assert refused.fields() == ["cron"]
    message = refused.problem["errors"][0]["message"]
    assert "never fires" in message
    assert "no day 31 exists in April, June, September, November" in message

    nightly = (await api.get(SCHEDULES)).body["items"][0]
    patch = await api.patch(f"{SCHEDULES}/{nightly['id']}", {"cron": "0 0 30 2 *"})
    assert patch.status == 422
    assert patch.fields() == ["cron"]
    # Together with other bad fields, every one is named.
    both = await api.post(SCHEDULES, {"cron": "0 0 31 2 *", "timezone": "Nowhere/Land"})
    assert sorted(both.fields()) == ["cron", "name", "timezone"]
    assert [s["name"] for s in await api.walk(SCHEDULES)] == ["nightly"]


async def test_many_never_firing_attempts_and_many_valid_schedules(api: Api) -> None:
    never = ["0 0 31 4,6,9,11 *", "0 0 30 2 *", "0 0 31 2 *", "0 0 30,31 feb *"]
    for n in range(40):
        reply = await api.post(SCHEDULES, {"name": f"never-{n}", "cron": never[n % len(never)]})
        assert reply.status == 422
        assert reply.fields() == ["cron"]
    zones = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]
    for n in range(40):
        body = {
            "name": f"ok-{n}",
            "cron": f"{n % 60} {n % 24} * * {n % 8}",
            "timezone": zones[n % 4],
        }
        assert (await api.post(SCHEDULES, body)).status == 201
    listed = await api.walk(SCHEDULES, params={"limit": "25"})
    assert len(listed) == 41
    assert all(len(s["next_ticks"]) == 3 for s in listed)
    assert not any(s["name"].startswith("never") for s in listed)


async def test_stored_never_firing_lines_are_listed_cheaply_and_off_the_loop(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rows written before the refusal existed (or by hand): 40 lines that never fire.
    now = datetime.now(UTC)
    async with api.database.session() as s, s.begin():
        for n in range(40):
            s.add(
                ScheduleRow(
                    name=f"legacy-{n}",
                    cron="0 0 31 4,6,9,11 *",
                    timezone="Europe/Berlin",
                    selection={},
                    enabled=True,
                    created_at=now,
                    updated_at=now,
                )
            )
    threads: set[int] = set()
    compute = cron_rules.upcoming_ticks

    def recording(*args: Any) -> Any:
        threads.add(threading.get_ident())
        return compute(*args)

    monkeypatch.setattr(cron_rules, "upcoming_ticks", recording)
    before = cron_rules.upcoming_cache_info()
    loop_thread = threading.get_ident()
    pages, health = await asyncio.gather(
        asyncio.gather(*(api.walk(SCHEDULES, params={"limit": "50"}) for _ in range(3))),
        asyncio.gather(*(api.get("/healthz", token=None) for _ in range(5))),
    )
    assert all(h.status == 200 for h in health)
    for listed in pages:
        legacy = [s for s in listed if s["name"].startswith("legacy-")]
        assert len(legacy) == 40
        assert all(s["next_ticks"] == [] for s in legacy)
    # The tick computation ran in worker threads, never on the event loop...
    assert threads
    assert loop_thread not in threads
    # ...and 120 listings of the same line searched its bounded horizon once a
    # minute (twice if the test straddled a minute), not 120 times.
    hits, misses, _ = cron_rules.upcoming_cache_info()
    assert misses - before[1] <= 2 * 2  # the legacy line and the nightly
    assert hits - before[0] >= 3 * 41 - 4


async def test_a_stored_line_that_no_longer_parses_does_not_break_listing_or_timers(
    api: Api,
) -> None:
    # APScheduler accepted "5/15" and "last"; cron(8) rules refuse them, and a
    # line that never fires is refused too. Stored ones still list (no ticks),
    # get no timer, and the scheduler times every other schedule.
    now = datetime.now(UTC)
    async with api.database.session() as s, s.begin():
        for name, cron in (
            ("aps-step", "5/15 * * * *"),
            ("aps-last", "0 0 last * *"),
            ("never", "0 0 31 2 *"),
        ):
            s.add(
                ScheduleRow(
                    name=name,
                    cron=cron,
                    timezone="UTC",
                    selection={},
                    enabled=True,
                    created_at=now,
                    updated_at=now,
                )
            )
    listed = {s["name"]: s for s in await api.walk(SCHEDULES)}
    assert listed["aps-step"]["next_ticks"] == []
    assert listed["never"]["next_ticks"] == []
    assert len(listed["nightly"]["next_ticks"]) == 3
    scheduler = Scheduler(api.database, api_settings(api.database, schedule_reload_seconds=60))
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    try:
        async with asyncio.timeout(10):
            while not scheduler.job_ids:  # noqa: ASYNC110 - polling state
                await asyncio.sleep(0.05)
        assert scheduler.job_ids == [f"schedule-{listed['nightly']['id']}"]
    finally:
        stop.set()
        await task
