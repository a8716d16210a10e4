"""Findings across runs, their triage and history, and regressions.

A finding here is a *tracked* finding: one per fingerprint, whatever run saw
it (``/scans/{id}/findings`` lists one run's raw findings). ``PATCH`` is
triage: suppress or accept with a reason (and an expiry for an accepted
risk), or reopen; the decision is recorded with the token's name and
survives rescans.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from scanner import shapes
from scanner.api.auth import current_token
from scanner.api.paging import PAGE_PARAMS, page_json, page_limit, page_schema
from scanner.api.schemas import (
    MAX_ID,
    AnyJSON,
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
from scanner.core.lifecycle import EventKind, FindingStatus
from scanner.core.severity import Severity
from scanner.core.timestamps import parse_iso
from scanner.db.findings import FindingQuery, status_filter
from scanner.db.tokens import Scope
from scanner.errors import InputError
from scanner.shapes import SEVERITIES
from scanner.usecases import runs, triage
from scanner.usecases.triage import Decision

STATUSES = tuple(s.value for s in FindingStatus)
TRIAGE_STATUSES = tuple(d.value for d in Decision)


def _status_list(text: str) -> None:
    for part in text.split(","):
        if part.strip() not in STATUSES:
            raise InputError(
                f"each status must be one of: {', '.join(STATUSES)} (open: new+open+reopened)"
            )


_TIME = Str(format="date-time")
_MAYBE_TIME = Str(format="date-time", nullable=True)
_QUERY_TIME = Str(format="date-time", max_length=64, semantic=parse_iso)

TRIAGE = Obj(
    properties={
        "kind": Str(enum=("suppressed", "accepted")),
        "by": Str(),
        "reason": Str(),
        "at": _TIME,
        "until": _MAYBE_TIME,
    },
    required=frozenset({"kind", "by", "reason", "at", "until"}),
    nullable=True,
)

TRACKED_FINDING = Ref(
    name="TrackedFinding",
    schema=Obj(
        properties={
            "id": Int(),
            "fingerprint": Str(),
            "endpoint_id": Int(),
            "rule_id": Str(),
            "origin_class": Str(),
            "severity": Str(enum=SEVERITIES),
            "status": Str(enum=STATUSES),
            "title": Str(),
            "summary": Str(),
            "first_seen_run": Int(),
            "last_seen_run": Int(),
            "first_seen_at": _TIME,
            "last_seen_at": _TIME,
            "resolved_at": _MAYBE_TIME,
            "reopened_at": _MAYBE_TIME,
            "reopen_count": Int(),
            "not_verified_run": Int(nullable=True),
            "verified": Bool(description="False when the latest run could not re-verify it."),
            "triage": TRIAGE,
            "version": Int(),
        },
        required=frozenset(
            {
                "id",
                "fingerprint",
                "endpoint_id",
                "rule_id",
                "severity",
                "status",
                "title",
                "summary",
                "first_seen_at",
                "last_seen_at",
                "triage",
                "version",
            }
        ),
    ),
)

EVENT = Ref(
    name="FindingEvent",
    schema=Obj(
        properties={
            "id": Int(),
            "kind": Str(enum=tuple(k.value for k in EventKind)),
            "transition": Str(nullable=True),
            "finding_id": Int(nullable=True),
            "fingerprint": Str(nullable=True),
            "endpoint_id": Int(),
            "run_id": Int(nullable=True),
            "rule_id": Str(nullable=True),
            "severity": Str(enum=SEVERITIES, nullable=True),
            "is_regression": Bool(),
            "before": Obj(additional=AnyJSON(), nullable=True),
            "after": Obj(additional=AnyJSON(), nullable=True),
            "at": _TIME,
        },
        required=frozenset({"id", "kind", "endpoint_id", "is_regression", "at"}),
    ),
)

FINDING_PAGE = page_schema("TrackedFindingPage", TRACKED_FINDING)
EVENT_PAGE = page_schema("FindingEventPage", EVENT)
HISTORY = Obj(
    properties={"finding": TRACKED_FINDING, "events": Arr(items=EVENT)},
    required=frozenset({"finding", "events"}),
)

TRIAGE_BODY = Ref(
    name="TriageRequest",
    schema=Obj(
        description=(
            "Suppress (false positive or won't fix) or accept a risk (needs `until`), "
            "or reopen (`open`) a suppressed finding. `version`, when given, must be the "
            "finding's current version (409 otherwise)."
        ),
        properties={
            "status": Str(enum=TRIAGE_STATUSES),
            "reason": Str(min_length=1, max_length=2000, strip=True),
            "until": Str(format="date-time", max_length=64, semantic=parse_iso, nullable=True),
            "version": Int(minimum=1, maximum=MAX_ID),
        },
        required=frozenset({"status"}),
    ),
)

FINDING_ID = Param("id", Int(minimum=1, maximum=MAX_ID), "The finding's id.", required=True)
RUN_ID = Param("id", Int(minimum=1, maximum=MAX_ID), "The scan (run) id.", required=True)


def _time(call: Call, name: str) -> datetime | None:
    text = call.query.get(name)
    return None if text is None else parse_iso(text)


# -- handlers ------------------------------------------------------------------


@operation(
    Operation(
        operation_id="listFindings",
        summary="Tracked findings across runs",
        tag="findings",
        scope=Scope.READ,
        query=(
            Param(
                "status",
                Str(max_length=200, semantic=_status_list),
                f"Only these statuses, comma-separated ({', '.join(STATUSES)}). "
                "`open` means every live, unsilenced finding: new, open and reopened "
                "(as /metrics counts them); `new` alone is first sightings.",
            ),
            Param("severity", Str(enum=SEVERITIES), "Minimum severity (this one and above)."),
            Param("rule_id", Str(min_length=1, max_length=100), "Only this rule's findings."),
            Param("endpoint_id", Int(minimum=1, maximum=MAX_ID), "Only this endpoint's."),
            Param("tag", Str(min_length=1, max_length=100), "Only endpoints with this tag."),
            Param("owner", Str(min_length=1, max_length=200), "Only endpoints of this owner."),
            Param("first_seen_after", _QUERY_TIME, "First seen at or after."),
            Param("first_seen_before", _QUERY_TIME, "First seen before."),
            Param("last_seen_after", _QUERY_TIME, "Last seen at or after."),
            Param("last_seen_before", _QUERY_TIME, "Last seen before."),
            Param("run_id", Int(minimum=1, maximum=MAX_ID), "Only findings this run saw."),
            *PAGE_PARAMS,
        ),
        replies=(Reply(200, "One page of findings.", FINDING_PAGE),),
    )
)
async def list_findings(call: Call) -> web.Response:
    severity = call.query.get("severity")
    q = FindingQuery(
        statuses=status_filter(call.query.get("status")),
        min_severity=None if severity is None else Severity(severity),
        rule_id=call.query.get("rule_id"),
        endpoint_id=call.query.get("endpoint_id"),
        tag=call.query.get("tag"),
        owner=call.query.get("owner"),
        first_seen_after=_time(call, "first_seen_after"),
        first_seen_before=_time(call, "first_seen_before"),
        last_seen_after=_time(call, "last_seen_after"),
        last_seen_before=_time(call, "last_seen_before"),
        run_id=call.query.get("run_id"),
    )
    page = await triage.list_findings(
        call.context, q, limit=page_limit(call), cursor=call.query.get("cursor")
    )
    items = [shapes.finding_json(f) for f in page.items]
    return web.json_response(page_json(call.request, items, page.next_cursor))


@operation(
    Operation(
        operation_id="getFinding",
        summary="One tracked finding",
        tag="findings",
        scope=Scope.READ,
        path_params=(FINDING_ID,),
        replies=(Reply(200, "The finding.", TRACKED_FINDING),),
    )
)
async def get_finding(call: Call) -> web.Response:
    record = await triage.get_finding(call.context, call.path["id"])
    return web.json_response(shapes.finding_json(record))


@operation(
    Operation(
        operation_id="triageFinding",
        summary="Triage a finding: suppress, accept a risk, or reopen",
        tag="findings",
        scope=Scope.WRITE,
        path_params=(FINDING_ID,),
        body=TRIAGE_BODY,
        replies=(
            Reply(200, "The finding after the decision.", TRACKED_FINDING),
            problem_reply(409, "Resolved, nothing to reopen, or not at `version`."),
        ),
    )
)
async def triage_finding(call: Call) -> web.Response:
    body: dict[str, Any] = call.body
    until_text = body.get("until")
    record = await triage.triage(
        call.context,
        call.path["id"],
        Decision(body["status"]),
        actor=current_token(call.request).name,
        reason=body.get("reason") or "",
        until=None if until_text is None else parse_iso(until_text),
        expected_version=body.get("version"),
    )
    return web.json_response(shapes.finding_json(record))


@operation(
    Operation(
        operation_id="getFindingHistory",
        summary="A finding's history: states, triage decisions, severity changes",
        tag="findings",
        scope=Scope.READ,
        path_params=(FINDING_ID,),
        replies=(Reply(200, "The finding and its events, oldest first.", HISTORY),),
    )
)
async def finding_history(call: Call) -> web.Response:
    history = await triage.finding_history(call.context, call.path["id"])
    return web.json_response(shapes.history_json(history.finding, history.events))


@operation(
    Operation(
        operation_id="listRegressions",
        summary="Regressions, newest first",
        tag="findings",
        scope=Scope.READ,
        query=(
            Param("since", _QUERY_TIME, "Only regressions at or after this time."),
            *PAGE_PARAMS,
        ),
        replies=(Reply(200, "One page of regression events.", EVENT_PAGE),),
    )
)
async def list_regressions(call: Call) -> web.Response:
    page = await triage.list_regressions(
        call.context,
        since=_time(call, "since"),
        limit=page_limit(call),
        cursor=call.query.get("cursor"),
    )
    items = [shapes.event_json(e) for e in page.items]
    return web.json_response(page_json(call.request, items, page.next_cursor))


@operation(
    Operation(
        operation_id="listScanRegressions",
        summary="The regressions one run found",
        tag="findings",
        scope=Scope.READ,
        path_params=(RUN_ID,),
        query=(
            Param(
                "all",
                Bool(),
                "Every event of the run, not only regressions (default false).",
            ),
            *PAGE_PARAMS,
        ),
        replies=(Reply(200, "One page of the run's events.", EVENT_PAGE),),
    )
)
async def list_run_regressions(call: Call) -> web.Response:
    page = await runs.list_run_events(
        call.context,
        call.path["id"],
        regressions_only=not call.query.get("all", False),
        limit=page_limit(call),
        cursor=call.query.get("cursor"),
    )
    items = [shapes.event_json(e) for e in page.items]
    return web.json_response(page_json(call.request, items, page.next_cursor))
