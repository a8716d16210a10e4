"""Scans: start one (it runs in this process), follow its progress, read findings and probes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from scanner.api.app import DATABASE, SETTINGS, WORKER
from scanner.api.auth import current_token
from scanner.api.handlers.system import iso
from scanner.api.paging import PAGE_PARAMS, page_json, page_limit, page_schema
from scanner.api.problems import Problem
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
from scanner.core.catalogue import CATALOGUE
from scanner.core.severity import Severity
from scanner.db import audit, runs, work
from scanner.db.inventory import EndpointFilter, select_endpoints
from scanner.db.runs import (
    FindingFilter,
    RunFindingRecord,
    RunProbeRecord,
    RunRecord,
    RunSelection,
    RunStatus,
    RunTrigger,
)
from scanner.db.tokens import Scope
from scanner.errors import FieldError
from scanner.settings import Settings

MAX_SELECTED_IDS = 10_000


def plan_settings(settings: Settings) -> work.PlanSettings:
    """How the API's runs are cut into work items."""
    return work.PlanSettings(batch_size=settings.batch_size, max_attempts=settings.max_attempts)


def stale_after(settings: Settings) -> float:
    """Seconds of silence after which a worker no longer counts as live."""
    return float(max(settings.lease_seconds, 3 * settings.heartbeat_seconds))


SEVERITIES = tuple(s.value for s in sorted(Severity, reverse=True))

# -- shapes --------------------------------------------------------------------

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

SCAN = Ref(
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
                    "items_total": Int(),
                    "items_remaining": Int(),
                    "eta_seconds": Num(nullable=True),
                },
                required=frozenset({"endpoints_total", "endpoints_done", "probes", "probe_errors"}),
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

SCAN_PAGE = page_schema("RunPage", SCAN)
FINDING_PAGE = page_schema("FindingPage", FINDING)
PROBE_PAGE = page_schema("ProbePage", PROBE)

SCAN_ID = Param("id", Int(minimum=1, maximum=MAX_ID), "The scan's id.", required=True)
_ENDPOINT_ID = Param(
    "endpoint_id", Int(minimum=1, maximum=MAX_ID), "Only this endpoint's.", required=False
)


def scan_json(scan: RunRecord, eta_seconds: float | None = None) -> dict[str, Any]:
    """The stable JSON shape of a scan (``eta_seconds``: see ``scanner.db.work.run_progress``)."""
    counts = {s: scan.severity_counts.get(s, 0) for s in SEVERITIES}
    return {
        "id": scan.id,
        "status": scan.status.value,
        "trigger": scan.trigger.value,
        "requested_by": scan.requested_by,
        "selection": scan.selection.to_json(),
        "progress": {
            "endpoints_total": scan.endpoints_total,
            "endpoints_done": scan.endpoints_done,
            "probes": scan.probes_total,
            "probe_errors": scan.probe_errors,
            "items_total": scan.items_total,
            "items_remaining": scan.items_remaining,
            "eta_seconds": eta_seconds,
        },
        "schedule_id": scan.schedule_id,
        "scheduled_for": iso(scan.scheduled_for),
        "findings": {"total": scan.findings_total, "by_severity": counts},
        "error": scan.error,
        "created_at": iso(scan.created_at),
        "started_at": iso(scan.started_at),
        "finished_at": iso(scan.finished_at),
    }


def finding_json(f: RunFindingRecord) -> dict[str, Any]:
    """A stored finding with its rule's explanation and fix from the catalogue."""
    rule = CATALOGUE.get(f.rule_id)
    return {
        "id": f.id,
        "scan_id": f.scan_id,
        "endpoint_id": f.endpoint_id,
        "rule_id": f.rule_id,
        "severity": f.severity.value,
        "category": f.category,
        "title": f.title,
        "summary": f.summary,
        "fingerprint": f.fingerprint,
        "origin_class": f.origin_class,
        "credentialed": f.credentialed,
        "description": rule.description if rule else None,
        "remediation": (
            {
                "generic": rule.remediation.generic,
                "express": rule.remediation.express,
                "nginx": rule.remediation.nginx,
                "apache": rule.remediation.apache,
            }
            if rule
            else None
        ),
        "cwe": rule.cwe if rule else None,
        "evidence": f.evidence,
        "created_at": iso(f.created_at),
    }


def probe_json(p: RunProbeRecord) -> dict[str, Any]:
    """A stored probe exchange."""
    return {
        "id": p.id,
        "scan_id": p.scan_id,
        "endpoint_id": p.endpoint_id,
        "key": p.probe_key,
        "kind": p.kind,
        "purpose": p.purpose,
        "origin": p.origin,
        "origin_kind": p.origin_kind,
        "method": p.method,
        "url": p.url,
        "request_headers": p.request_headers,
        "status": p.status,
        "reason": p.reason,
        "response_headers": p.response_headers,
        "error": p.error,
        "error_detail": p.error_detail,
        "elapsed_ms": p.elapsed_ms,
        "attempts": p.attempts,
        "verdict": p.verdict,
    }


def _scan_url(scan_id: int) -> str:
    return f"/api/v1/scans/{scan_id}"


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
        replies=(Reply(202, "The scan is queued.", SCAN, headers={"Location": "The scan's URL."}),),
    )
)
async def create_run(call: Call) -> web.Response:
    body: dict[str, Any] = call.body or {}
    ids: list[int] | None = body.get("endpoint_ids")
    if ids is not None and ("tag" in body or "owner" in body):
        raise Problem.validation(
            [FieldError("endpoint_ids", "give either endpoint_ids or tag/owner, not both")]
        )
    selection = RunSelection(
        endpoint_ids=None if ids is None else tuple(ids),
        tag=body.get("tag"),
        owner=body.get("owner"),
    )
    token = current_token(call.request)
    async with call.request.app[DATABASE].session() as session, session.begin():
        flt = EndpointFilter(tag=selection.tag, owner=selection.owner)
        chosen = await select_endpoints(session, flt, selection.endpoint_ids)
        if ids is not None and len(chosen) < len(ids):
            found = {e.id for e in chosen}
            raise Problem.validation(
                [
                    FieldError(f"endpoint_ids[{i}]", f"endpoint {value} does not exist")
                    for i, value in enumerate(ids)
                    if value not in found
                ]
            )
        if not chosen:
            raise Problem.validation(
                [FieldError("body", "no enabled endpoint matches this selection")]
            )
        planned = await work.plan_run(
            session,
            selection=selection,
            trigger=RunTrigger.API,
            requested_by=token.name,
            settings=plan_settings(call.request.app[SETTINGS]),
        )
        assert planned is not None  # only a schedule's tick can already exist
        scan = planned
        await audit.record(
            session,
            actor=token.name,
            action="scan.create",
            target_type="scan",
            target_id=str(scan.id),
            detail={"selection": selection.to_json(), "endpoints": len(chosen)},
        )
    if WORKER in call.request.app:
        call.request.app[WORKER].wake()
    doc = scan_json(replace(scan, severity_counts=dict.fromkeys(SEVERITIES, 0)))
    return web.json_response(doc, status=202, headers={"Location": _scan_url(scan.id)})


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
        replies=(Reply(200, "One page of scans.", SCAN_PAGE),),
    )
)
async def list_runs(call: Call) -> web.Response:
    status = call.query.get("status")
    async with call.request.app[DATABASE].session() as session, session.begin():
        page = await runs.list_runs(
            session,
            limit=page_limit(call),
            cursor=call.query.get("cursor"),
            status=None if status is None else RunStatus(status),
        )
        counts = await runs.severity_counts(session, [s.id for s in page.items])
    items = [scan_json(replace(s, severity_counts=counts.get(s.id, {}))) for s in page.items]
    return web.json_response(page_json(call.request, items, page.next_cursor))


@operation(
    Operation(
        operation_id="getScan",
        summary="One scan: status, progress, findings by severity",
        tag="scans",
        scope=Scope.READ,
        path_params=(SCAN_ID,),
        replies=(Reply(200, "The scan.", SCAN),),
    )
)
async def get_run(call: Call) -> web.Response:
    settings = call.request.app[SETTINGS]
    async with call.request.app[DATABASE].session() as session, session.begin():
        scan = await runs.get_run(session, call.path["id"])
        progress = await work.run_progress(session, scan, stale_after=stale_after(settings))
    return web.json_response(scan_json(scan, progress.eta_seconds))


@operation(
    Operation(
        operation_id="listScanFindings",
        summary="A scan's findings",
        tag="scans",
        scope=Scope.READ,
        path_params=(SCAN_ID,),
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
    async with call.request.app[DATABASE].session() as session, session.begin():
        page = await runs.list_run_findings(
            session,
            call.path["id"],
            flt,
            limit=page_limit(call),
            cursor=call.query.get("cursor"),
        )
    items = [finding_json(f) for f in page.items]
    return web.json_response(page_json(call.request, items, page.next_cursor))


@operation(
    Operation(
        operation_id="listScanProbes",
        summary="A scan's probes: every exchange, as sent and received",
        tag="scans",
        scope=Scope.READ,
        path_params=(SCAN_ID,),
        query=(_ENDPOINT_ID, *PAGE_PARAMS),
        replies=(Reply(200, "One page of probes.", PROBE_PAGE),),
    )
)
async def list_probes(call: Call) -> web.Response:
    async with call.request.app[DATABASE].session() as session, session.begin():
        page = await runs.list_run_probes(
            session,
            call.path["id"],
            endpoint_id=call.query.get("endpoint_id"),
            limit=page_limit(call),
            cursor=call.query.get("cursor"),
        )
    items = [probe_json(p) for p in page.items]
    return web.json_response(page_json(call.request, items, page.next_cursor))


@operation(
    Operation(
        operation_id="cancelScan",
        summary="Cancel a queued or running scan",
        tag="scans",
        scope=Scope.WRITE,
        path_params=(SCAN_ID,),
        replies=(
            Reply(200, "The scan, now cancelled.", SCAN),
            problem_reply(409, "The scan has already finished."),
        ),
    )
)
async def cancel_run(call: Call) -> web.Response:
    scan_id: int = call.path["id"]
    token = current_token(call.request)
    database = call.request.app[DATABASE]
    async with database.session() as session, session.begin():
        scan = await runs.get_run(session, scan_id)
    if scan.status.final:
        raise Problem("conflict", f"scan {scan_id} is already {scan.status.value}")
    async with database.session() as session, session.begin():
        # Queued items are cancelled now; items in a worker's hands stop at its next heartbeat.
        await work.cancel_run(session, scan_id, reason=f"cancelled by {token.name}")
        await audit.record(
            session,
            actor=token.name,
            action="scan.cancel",
            target_type="scan",
            target_id=str(scan_id),
        )
        scan = await runs.get_run(session, scan_id)
    return web.json_response(scan_json(scan))
