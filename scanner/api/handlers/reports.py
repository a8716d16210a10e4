"""A stored run's report as a file: JSON, SARIF 2.1.0, JUnit XML or CSV.

The same documents ``cors-scanner scan --format …`` writes, rebuilt from what
the run stored (``scanner.reports.stored``), served with their media type and
a ``Content-Disposition`` file name so a CI job can ``curl -OJ`` it. The
``X-Cors-Scanner-Failed`` header says whether a finding is at or above
``fail_on``: a gate can read it without parsing the body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.payload import AsyncIterablePayload

from scanner.api.handlers.runs import RUN_ID
from scanner.api.schemas import (
    AnyJSON,
    Call,
    Obj,
    Operation,
    Param,
    Reply,
    Schema,
    Str,
    operation,
    problem_reply,
)
from scanner.core.severity import Severity
from scanner.db.tokens import Scope
from scanner.reports.stored import ReportFormat, render_run, report_filename
from scanner.shapes import SEVERITIES
from scanner.usecases import runs

DEFAULT_FAIL_ON = Severity.HIGH  # as `cors-scanner scan --fail-on`
FAILED_HEADER = "X-Cors-Scanner-Failed"

_FORMATS = tuple(f.value for f in ReportFormat)
_DOCUMENT = Obj(additional=AnyJSON())
_SCHEMAS: dict[ReportFormat, Schema] = {
    ReportFormat.JSON: _DOCUMENT,
    ReportFormat.SARIF: _DOCUMENT,
    ReportFormat.JUNIT: Str(),
    ReportFormat.CSV: Str(),
}
_HEADERS = {
    "Content-Disposition": '`attachment; filename="cors-scanner-run-<id>.<ext>"`.',
    FAILED_HEADER: "`true` when a finding is at or above `fail_on`, else `false`.",
}


@operation(
    Operation(
        operation_id="getScanReport",
        summary="A finished scan's report: JSON, SARIF, JUnit XML or CSV",
        tag="scans",
        scope=Scope.READ,
        description=(
            "The report `cors-scanner scan --format <format>` writes, for a stored run: "
            "`json` (docs/scan-json.md, plus a `run` object), `sarif` (SARIF 2.1.0, "
            "`application/sarif+json`), `junit` (JUnit XML; findings at or above `fail_on` "
            "are failures), `csv` (one row per finding). 409 while the scan is queued or "
            "running."
        ),
        path_params=(RUN_ID,),
        query=(
            Param("format", Str(enum=_FORMATS), "The report format (default json)."),
            Param(
                "fail_on",
                Str(enum=SEVERITIES),
                "The gate: findings at or above this fail (default high).",
            ),
        ),
        replies=(
            *(
                Reply(200, "The report.", _SCHEMAS[f], media_type=f.media_type, headers=_HEADERS)
                for f in ReportFormat
            ),
            problem_reply(409, "The scan has not finished yet."),
        ),
    )
)
async def run_report(call: Call) -> web.Response:
    fmt = ReportFormat(call.query.get("format", ReportFormat.JSON.value))
    fail_on = Severity(call.query.get("fail_on", DEFAULT_FAIL_ON.value))
    run_id: int = call.path["id"]
    headers = {
        "Content-Type": f"{fmt.media_type}; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{report_filename(run_id, fmt)}"',
    }
    if fmt is ReportFormat.JSON:
        # Streamed: a large run's document never sits in memory whole.
        failed, pieces = await runs.json_report(call.context, run_id, fail_on)
        response = web.Response(
            body=AsyncIterablePayload(_encoded(pieces)),
            headers={**headers, FAILED_HEADER: "true" if failed else "false"},
        )
        return response
    run = await runs.load_report(call.context, run_id)
    body = render_run(run, fmt, fail_on)
    return web.Response(
        body=body.encode("utf-8"),
        headers={**headers, FAILED_HEADER: "true" if run.failed(fail_on) else "false"},
    )


async def _encoded(pieces: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for piece in pieces:
        yield piece.encode("utf-8")
