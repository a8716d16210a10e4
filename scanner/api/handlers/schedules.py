"""Schedules: cron-timed runs over REST (list, create, show, change, remove).

A schedule is a five-field cron line in an IANA time zone, an endpoint
selection (``{}`` = every enabled endpoint, or ``tag`` and/or ``owner``), an
enabled flag and an optional timer spread (``jitter_seconds``; null = the
service's ``CORS_SCANNER_SCHEDULE_JITTER``). Cron and time zone are checked
field by field, so one answer names every bad field. Running schedulers pick
changes up within ``CORS_SCANNER_SCHEDULE_RELOAD_SECONDS``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from scanner.api.app import DATABASE
from scanner.api.auth import current_token
from scanner.api.handlers.system import iso
from scanner.api.paging import PAGE_PARAMS, page_json, page_limit, page_schema
from scanner.api.schemas import (
    MAX_ID,
    Arr,
    Bool,
    Call,
    Int,
    Obj,
    Operation,
    Param,
    Ref,
    Reply,
    Str,
    operation,
    problem_reply,
)
from scanner.core import cron as cron_rules
from scanner.db import audit
from scanner.db import schedules as store
from scanner.db.runs import RunSelection
from scanner.db.schedules import MAX_JITTER_SECONDS, ScheduleInput, ScheduleRecord
from scanner.db.tables import NAME_LENGTH
from scanner.db.tokens import Scope
from scanner.errors import InputError

NEXT_TICKS = 3  # enough to see the rhythm of a schedule at a glance


def _check_cron(text: str) -> None:
    # Checked in UTC on its own, so a bad cron and a bad zone are reported as
    # two fields; the store checks the pair again (a line could fire only in
    # a zone's skipped hour).
    cron_rules.first_tick(cron_rules.parse_crontab(text), UTC, datetime.now(UTC))


def _check_timezone(text: str) -> None:
    cron_rules.parse_timezone(text)


def _ticks(records: Sequence[ScheduleRecord], now: datetime) -> list[tuple[datetime, ...]]:
    """Each schedule's next ticks (memoised per minute); none for a line stored before
    cron(8) rules that no longer parses."""
    out: list[tuple[datetime, ...]] = []
    for s in records:
        try:
            out.append(cron_rules.upcoming_ticks(s.cron, s.timezone, now, NEXT_TICKS))
        except InputError:
            out.append(())
    return out


async def schedules_json(records: Sequence[ScheduleRecord]) -> list[dict[str, Any]]:
    """Schedules as the API shows them. Ticks are computed in a worker thread: cheap
    and cached, but a page of them is still no work for the event loop."""
    now = datetime.now(UTC)
    ticks = await asyncio.to_thread(_ticks, records, now)
    return [schedule_json(s, t) for s, t in zip(records, ticks, strict=True)]


_TIME = Str(format="date-time")

SCHEDULE_SELECTION = Obj(
    description=(
        "Which enabled endpoints each run scans: `{}` for all of them, or those with "
        "`tag` and/or `owner`."
    ),
    properties={
        "tag": Str(min_length=1, max_length=100),
        "owner": Str(min_length=1, max_length=200),
    },
)

SCHEDULE = Ref(
    name="Schedule",
    schema=Obj(
        properties={
            "id": Int(),
            "name": Str(),
            "cron": Str(
                description=(
                    "Five fields as cron(8) reads them: minute hour day-of-month month "
                    "day-of-week (0 and 7 = Sunday, names allowed), or a macro such as "
                    "`@daily`."
                )
            ),
            "timezone": Str(description="IANA time zone the cron line is read in."),
            "selection": SCHEDULE_SELECTION,
            "enabled": Bool(),
            "jitter_seconds": Int(
                nullable=True, description="Timer spread; null = the service default."
            ),
            "last_planned_for": Str(
                format="date-time", nullable=True, description="The newest tick already planned."
            ),
            "next_ticks": Arr(items=_TIME, description="The next nominal ticks (UTC)."),
            "created_at": _TIME,
            "updated_at": _TIME,
        },
        required=frozenset(
            {
                "id",
                "name",
                "cron",
                "timezone",
                "selection",
                "enabled",
                "jitter_seconds",
                "last_planned_for",
                "next_ticks",
                "created_at",
                "updated_at",
            }
        ),
    ),
)

_FIELDS: dict[str, Any] = {
    "name": Str(min_length=1, max_length=NAME_LENGTH, strip=True),
    "cron": Str(
        min_length=1, max_length=200, strip=True, semantic=_check_cron, example="0 2 * * *"
    ),
    "timezone": Str(
        min_length=1, max_length=64, strip=True, semantic=_check_timezone, example="UTC"
    ),
    "selection": SCHEDULE_SELECTION,
    "enabled": Bool(),
    "jitter_seconds": Int(
        minimum=0,
        maximum=MAX_JITTER_SECONDS,
        nullable=True,
        description="Spread the timer by up to this many seconds (null: the service default).",
    ),
}

SCHEDULE_CREATE = Ref(
    name="ScheduleCreate",
    schema=Obj(
        description="`timezone` defaults to UTC, `selection` to `{}` (all), `enabled` to true.",
        properties=_FIELDS,
        required=frozenset({"name", "cron"}),
    ),
)
SCHEDULE_UPDATE = Ref(
    name="ScheduleUpdate",
    schema=Obj(
        description="The fields to change; the others stay.",
        properties=_FIELDS,
        min_properties=1,
    ),
)
SCHEDULE_PAGE = page_schema("SchedulePage", SCHEDULE)
SCHEDULE_ID = Param("id", Int(minimum=1, maximum=MAX_ID), "The schedule's id.", required=True)


def schedule_json(s: ScheduleRecord, next_ticks: Sequence[datetime]) -> dict[str, Any]:
    """A schedule as the API shows it, with its next ticks."""
    return {
        "id": s.id,
        "name": s.name,
        "cron": s.cron,
        "timezone": s.timezone,
        "selection": s.selection.to_json(),
        "enabled": s.enabled,
        "jitter_seconds": s.jitter_seconds,
        "last_planned_for": iso(s.last_planned_for),
        "next_ticks": [iso(t) for t in next_ticks],
        "created_at": iso(s.created_at),
        "updated_at": iso(s.updated_at),
    }


def _selection(body: dict[str, Any]) -> RunSelection | None:
    if "selection" not in body:
        return None
    doc = body["selection"]
    return RunSelection(tag=doc.get("tag"), owner=doc.get("owner"))


def _input(body: dict[str, Any]) -> ScheduleInput:
    return ScheduleInput(
        name=body.get("name"),
        cron=body.get("cron"),
        timezone=body.get("timezone"),
        selection=_selection(body),
        enabled=body.get("enabled"),
        jitter_seconds=body.get("jitter_seconds"),
        reset_jitter="jitter_seconds" in body and body["jitter_seconds"] is None,
    )


def _audit_detail(s: ScheduleRecord) -> dict[str, Any]:
    return {
        "name": s.name,
        "cron": s.cron,
        "timezone": s.timezone,
        "selection": s.selection.to_json(),
        "enabled": s.enabled,
        "jitter_seconds": s.jitter_seconds,
    }


# -- handlers ------------------------------------------------------------------


@operation(
    Operation(
        operation_id="listSchedules",
        summary="Schedules, by id",
        tag="schedules",
        scope=Scope.READ,
        query=PAGE_PARAMS,
        replies=(Reply(200, "One page of schedules.", SCHEDULE_PAGE),),
    )
)
async def list_schedules(call: Call) -> web.Response:
    async with call.request.app[DATABASE].session() as session, session.begin():
        page = await store.page_schedules(
            session, limit=page_limit(call), cursor=call.query.get("cursor")
        )
    items = await schedules_json(page.items)
    return web.json_response(page_json(call.request, items, page.next_cursor))


@operation(
    Operation(
        operation_id="createSchedule",
        summary="Add a schedule",
        tag="schedules",
        scope=Scope.WRITE,
        body=SCHEDULE_CREATE,
        replies=(
            Reply(201, "The schedule.", SCHEDULE, headers={"Location": "The schedule's URL."}),
            problem_reply(409, "A schedule with this name exists."),
        ),
    )
)
async def create_schedule(call: Call) -> web.Response:
    token = current_token(call.request)
    async with call.request.app[DATABASE].session() as session, session.begin():
        record = await store.create_schedule(session, _input(call.body))
        await audit.record(
            session,
            actor=token.name,
            action="schedule.create",
            target_type="schedule",
            target_id=str(record.id),
            detail=_audit_detail(record),
        )
    [doc] = await schedules_json([record])
    return web.json_response(
        doc,
        status=201,
        headers={"Location": f"/api/v1/schedules/{record.id}"},
    )


@operation(
    Operation(
        operation_id="getSchedule",
        summary="One schedule and its next ticks",
        tag="schedules",
        scope=Scope.READ,
        path_params=(SCHEDULE_ID,),
        replies=(Reply(200, "The schedule.", SCHEDULE),),
    )
)
async def get_schedule(call: Call) -> web.Response:
    async with call.request.app[DATABASE].session() as session, session.begin():
        record = await store.get_schedule(session, call.path["id"])
    [doc] = await schedules_json([record])
    return web.json_response(doc)


@operation(
    Operation(
        operation_id="updateSchedule",
        summary="Change a schedule's timing, selection or state",
        tag="schedules",
        scope=Scope.WRITE,
        path_params=(SCHEDULE_ID,),
        body=SCHEDULE_UPDATE,
        replies=(
            Reply(200, "The schedule.", SCHEDULE),
            problem_reply(409, "The name is taken."),
        ),
    )
)
async def update_schedule(call: Call) -> web.Response:
    token = current_token(call.request)
    async with call.request.app[DATABASE].session() as session, session.begin():
        record = await store.update_schedule(session, call.path["id"], _input(call.body))
        await audit.record(
            session,
            actor=token.name,
            action="schedule.update",
            target_type="schedule",
            target_id=str(record.id),
            detail={"fields": sorted(call.body), **_audit_detail(record)},
        )
    [doc] = await schedules_json([record])
    return web.json_response(doc)


@operation(
    Operation(
        operation_id="deleteSchedule",
        summary="Remove a schedule (its past runs stay)",
        tag="schedules",
        scope=Scope.WRITE,
        path_params=(SCHEDULE_ID,),
        replies=(Reply(204, "Removed."),),
    )
)
async def delete_schedule(call: Call) -> web.Response:
    token = current_token(call.request)
    async with call.request.app[DATABASE].session() as session, session.begin():
        await store.delete_schedule(session, call.path["id"])
        await audit.record(
            session,
            actor=token.name,
            action="schedule.delete",
            target_type="schedule",
            target_id=str(call.path["id"]),
        )
    return web.Response(status=204)
