"""Schedules over HTTP: CRUD, every bad field named at once, scopes, audit, paging, pickup."""

from __future__ import annotations

import asyncio
from typing import Any

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
