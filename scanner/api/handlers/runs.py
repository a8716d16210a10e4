"""Runs over REST (published as ``/scans``): start one, follow its progress, read findings and probes.

Each handler parses the request, calls one use case (``scanner.usecases.runs``)
and renders its result with ``scanner.shapes``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from scanner import shapes
from scanner.api.auth import current_token
from scanner.api.keys import WORKER
from scanner.api.paging import PAGE_PARAMS, page_json, page_limit, page_schema
from scanner.api.schemas import (
    MAX_ID,
    AnyJSON,
    Arr,
    Bool,
    Call,
    Int,
    Num,
    Obj,
    Operation,
    Param,
    Ref,
    Reply,
    Str,
    operation,
    problem_reply,
)
from scanner.core.severity import Severity
from scanner.db.runs import FindingFilter, RunSelection, RunStatus, RunTrigger
from scanner.db.tokens import Scope
from scanner.shapes import SEVERITIES
from scanner.usecases import runs

MAX_SELECTED_IDS = 10_000

# -- schemas: what the OpenAPI document says of scanner.shapes' run shapes ------------

_TIME = Str(format="date-time")
_MAYBE_TIME = Str(format="date-time", nullable=True)
_HEADERS = Arr(
    items=Arr(items=Str(), min_items=2, max_items=2),
    description="Header lines in order, duplicates kept: [[name, value], ...].",
)

SELECTION = Obj(
    description=(
        "Which endpoints to scan: `endpoint_ids` (disabled ones included), or the enabled "
        "endpoints with `tag` and/or `owner`; `{}` scans every enabled endpoint."
    ),
    properties={
        "endpoint_ids": Arr(
            items=Int(minimum=1, maximum=MAX_ID),
            min_items=1,
            max_items=MAX_SELECTED_IDS,
            unique=True,
        ),
        "tag": Str(min_length=1, max_length=100),
        "owner": Str(min_length=1, max_length=200),
    },
)

RUN = Ref(
    name="Scan",
    schema=Obj(
        properties={
            "id": Int(),
            "status": Str(enum=tuple(s.value for s in RunStatus)),
            "trigger": Str(enum=tuple(t.value for t in RunTrigger)),
            "requested_by": Str(nullable=True),
            "selection": SELECTION,
            "progress": Obj(
                properties={
                    "endpoints_total": Int(),
                    "endpoints_done": Int(),
                    "probes": Int(),
                    "probe_errors": Int(),
                    "endpoints_unreachable": Int(
                        description="Endpoints none of whose probes got an answer."
                    ),
                    "items_total": Int(),
                    "items_remaining": Int(),
                    "eta_seconds": Num(nullable=True),
                },
                required=frozenset({"endpoints_total", "endpoints_done", "probes", "probe_errors"}),
            ),
            "coverage": Str(
                enum=("complete", "partial", "none"),
                nullable=True,
                description=(
                    "How much the run could verify: every endpoint answered, some did "
                    "not (see progress.endpoints_unreachable), or none did (status failed); "
                    "null until the run is finalised."
                ),
            ),
            "schedule_id": Int(nullable=True),
            "scheduled_for": _MAYBE_TIME,
            "findings": Obj(
                properties={
                    "total": Int(),
                    "by_severity": Obj(properties={s: Int() for s in SEVERITIES}),
                },
                required=frozenset({"total", "by_severity"}),
            ),
            "error": Str(nullable=True),
            "created_at": _TIME,
            "started_at": _MAYBE_TIME,
            "finished_at": _MAYBE_TIME,
        },
        required=frozenset(
            {
                "id",
                "status",
                "trigger",
                "requested_by",
                "selection",
                "progress",
                "findings",
                "error",
                "created_at",
                "started_at",
                "finished_at",
            }
        ),
    ),
)

FINDING = Ref(
    name="Finding",
    schema=Obj(
        properties={
            "id": Int(),
            "scan_id": Int(),
            "endpoint_id": Int(),
            "rule_id": Str(),
            "severity": Str(enum=SEVERITIES),
            "category": Str(),
            "title": Str(),
            "summary": Str(),
            "fingerprint": Str(),
            "origin_class": Str(),
            "credentialed": Bool(),
            "description": Str(nullable=True),
            "remediation": Obj(additional=Str(), nullable=True),
            "cwe": Int(nullable=True),
            "evidence": Arr(items=Obj(additional=AnyJSON())),
            "created_at": _TIME,
        },
        required=frozenset(
            {
                "id",
                "scan_id",
                "endpoint_id",
                "rule_id",
                "severity",
                "category",
                "title",
                "summary",
                "fingerprint",
                "origin_class",
                "credentialed",
                "evidence",
                "created_at",
            }
        ),
    ),
)

PROBE = Ref(
    name="Probe",
    schema=Obj(
        properties={
            "id": Int(),
            "scan_id": Int(),
            "endpoint_id": Int(),
            "key": Str(),
            "kind": Str(),
            "purpose": Str(nullable=True),
            "origin": Str(),
            "origin_kind": Str(),
            "method": Str(),
            "url": Str(),
            "request_headers": _HEADERS,
            "status": Int(nullable=True),
            "reason": Str(nullable=True),
            "response_headers": _HEADERS,
            "error": Str(nullable=True),
            "error_detail": Str(nullable=True),
            "elapsed_ms": Num(),
            "attempts": Int(),
            "verdict": Obj(additional=AnyJSON(), nullable=True),
        },
        required=frozenset(
            {
                "id",
                "scan_id",
                "endpoint_id",
                "key",
                "kind",
                "origin",
                "origin_kind",
                "method",
                "url",
                "request_headers",
                "status",
                "response_headers",
                "error",
                "elapsed_ms",
                "attempts",
                "verdict",
            }
        ),
    ),
)

RUN_PAGE = page_schema("RunPage", RUN)
FINDING_PAGE = page_schema("FindingPage", FINDING)
PROBE_PAGE = page_schema("ProbePage", PROBE)

RUN_ID = Param("id", Int(minimum=1, maximum=MAX_ID), "The scan's id.", required=True)
_ENDPOINT_ID = Param(
    "endpoint_id", Int(minimum=1, maximum=MAX_ID), "Only this endpoint's.", required=False
)


# -- handlers ------------------------------------------------------------------


@operation(
    Operation(
        operation_id="createScan",
        summary="Start a scan",
        tag="scans",
        scope=Scope.WRITE,
        description=(
            "Plans a run of the selected endpoints into work items, which workers execute. "
            "Answers 202 at once with the scan and its `Location`; poll it for progress."
        ),
        body=SELECTION,
        body_required=False,
        replies=(Reply(202, "The scan is queued.", RUN, headers={"Location": "The scan's URL."}),),
    )
)
async def create_run(call: Call) -> web.Response:
    body: dict[str, Any] = call.body or {}
    ids: list[int] | None = body.get("endpoint_ids")
    selection = RunSelection(
        endpoint_ids=None if ids is None else tuple(ids),
        tag=body.get("tag"),
        owner=body.get("owner"),
    )
    run = await runs.start_run(
        call.context,
        actor=current_token(call.request).name,
        selection=selection,
        trigger=RunTrigger.API,
    )
    if WORKER in call.request.app:
        call.request.app[WORKER].wake()  # planned here: our own worker need not wait to poll
    return web.json_response(
        shapes.run_json(run), status=202, headers={"Location": f"/api/v1/scans/{run.id}"}
    )


@operation(
    Operation(
        operation_id="listScans",
        summary="List scans, newest first",
        tag="scans",
        scope=Scope.READ,
        query=(
            Param(
                "status",
                Str(enum=tuple(s.value for s in RunStatus)),
                "Only scans in this state.",
            ),
            *PAGE_PARAMS,
        ),
        replies=(Reply(200, "One page of scans.", RUN_PAGE),),
    )
)
async def list_runs(call: Call) -> web.Response:
    status = call.query.get("status")
    page = await runs.list_runs(
        call.context,
        status=None if status is None else RunStatus(status),
        limit=page_limit(call),
        cursor=call.query.get("cursor"),
    )
    items = [shapes.run_json(r) for r in page.items]
    return web.json_response(page_json(call.request, items, page.next_cursor))


@operation(
    Operation(
        operation_id="getScan",
        summary="One scan: status, progress, findings by severity",
        tag="scans",
        scope=Scope.READ,
        path_params=(RUN_ID,),
        replies=(Reply(200, "The scan.", RUN),),
    )
)
async def get_run(call: Call) -> web.Response:
    view = await runs.show_run(call.context, call.path["id"])
    return web.json_response(shapes.run_json(view.run, view.progress.eta_seconds))


@operation(
    Operation(
        operation_id="listScanFindings",
        summary="A scan's findings",
        tag="scans",
        scope=Scope.READ,
        path_params=(RUN_ID,),
        query=(
            Param("severity", Str(enum=SEVERITIES), "Minimum severity (this one and above)."),
            Param("rule_id", Str(min_length=1, max_length=100), "Only this rule's findings."),
            _ENDPOINT_ID,
            *PAGE_PARAMS,
        ),
        replies=(Reply(200, "One page of findings.", FINDING_PAGE),),
    )
)
async def list_findings(call: Call) -> web.Response:
    severity = call.query.get("severity")
    flt = FindingFilter(
        min_severity=None if severity is None else Severity(severity),
        rule_id=call.query.get("rule_id"),
        endpoint_id=call.query.get("endpoint_id"),
    )
    page = await runs.list_run_findings(
        call.context, call.path["id"], flt, limit=page_limit(call), cursor=call.query.get("cursor")
    )
    items = [shapes.run_finding_json(f) for f in page.items]
    return web.json_response(page_json(call.request, items, page.next_cursor))


@operation(
    Operation(
        operation_id="listScanProbes",
        summary="A scan's probes: every exchange, as sent and received",
        tag="scans",
        scope=Scope.READ,
        path_params=(RUN_ID,),
        query=(_ENDPOINT_ID, *PAGE_PARAMS),
        replies=(Reply(200, "One page of probes.", PROBE_PAGE),),
    )
)
async def list_probes(call: Call) -> web.Response:
    page = await runs.list_run_probes(
        call.context,
        call.path["id"],
        endpoint_id=call.query.get("endpoint_id"),
        limit=page_limit(call),
        cursor=call.query.get("cursor"),
    )
    items = [shapes.probe_json(p) for p in page.items]
    return web.json_response(page_json(call.request, items, page.next_cursor))


@operation(
    Operation(
        operation_id="cancelScan",
        summary="Cancel a queued or running scan",
        tag="scans",
        scope=Scope.WRITE,
        path_params=(RUN_ID,),
        replies=(
            Reply(200, "The scan, now cancelled.", RUN),
            problem_reply(409, "The scan has already finished."),
        ),
    )
)
async def cancel_run(call: Call) -> web.Response:
    # Queued items are cancelled now; items in a worker's hands stop at its next heartbeat.
    run = await runs.cancel_run(
        call.context, call.path["id"], actor=current_token(call.request).name
    )
    return web.json_response(shapes.run_json(run))
