"""Schedules: cron-timed runs over REST (list, create, show, change, remove).

A schedule is a five-field cron line in an IANA time zone, an endpoint
selection (``{}`` = every enabled endpoint, or ``tag`` and/or ``owner``), an
enabled flag and an optional timer spread (``jitter_seconds``; null = the
service's ``CORS_SCANNER_SCHEDULE_JITTER``). Cron and time zone are checked
field by field, so one answer names every bad field. Running schedulers pick
changes up within ``CORS_SCANNER_SCHEDULE_RELOAD_SECONDS``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from scanner import shapes
from scanner.api.auth import current_token
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
from scanner.core.endpoints import NAME_LENGTH
from scanner.db.runs import RunSelection
from scanner.db.schedules import MAX_JITTER_SECONDS, ScheduleInput
from scanner.db.tokens import Scope
from scanner.usecases import schedules
from scanner.usecases.schedules import ScheduleView


def _check_cron(text: str) -> None:
    # Checked in UTC on its own, so a bad cron and a bad zone are reported as
    # two fields; the store checks the pair again (a line could fire only in
    # a zone's skipped hour).
    cron_rules.first_tick(cron_rules.parse_crontab(text), UTC, datetime.now(UTC))


def _check_timezone(text: str) -> None:
    cron_rules.parse_timezone(text)


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


def _json(view: ScheduleView) -> dict[str, Any]:
    return shapes.schedule_json(view.schedule, view.next_ticks)


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
    page = await schedules.list_schedules(
        call.context, limit=page_limit(call), cursor=call.query.get("cursor")
    )
    items = [_json(v) for v in page.items]
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
    view = await schedules.create_schedule(
        call.context, _input(call.body), actor=current_token(call.request).name
    )
    return web.json_response(
        _json(view), status=201, headers={"Location": f"/api/v1/schedules/{view.schedule.id}"}
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
    return web.json_response(_json(await schedules.get_schedule(call.context, call.path["id"])))


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
    view = await schedules.update_schedule(
        call.context, call.path["id"], _input(call.body), actor=current_token(call.request).name
    )
    return web.json_response(_json(view))


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
    await schedules.delete_schedule(
        call.context, call.path["id"], actor=current_token(call.request).name
    )
    return web.Response(status=204)
