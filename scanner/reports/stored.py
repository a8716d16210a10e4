"""Reports of stored runs: a finished run rebuilt from the database and rendered in any format.

:func:`load_run` turns the stored rows of one run (``scan_endpoints``,
``scan_exchanges``, ``scan_findings``) back into the core's ``Assessment``
values, so the renderers of ``cors-scanner scan`` (JSON, SARIF, JUnit, CSV)
serve ``GET /api/v1/scans/{id}/report`` and ``cors-scanner runs report``
unchanged. The conversion, once, for both:

- findings are the stored ones, through ``scanner.db.runs.stored_finding``
  (the row-to-Finding conversion the run diff uses), so fingerprints and
  evidence are exactly what the run recorded; ``related`` is not stored and
  comes back empty;
- each probe row becomes an ``Observation`` whose request is rebuilt from what
  was stored (origin class, headers as sent, preflight method and header
  names), and its browser verdicts are recomputed by ``scanner.core.checks``
  from the policy the run used, so a JSON report shows the same verdicts
  ``/scans/{id}/probes`` stored;
- reachability is the stored per-endpoint result, not recomputed from probe
  rows: probe details of old runs are pruned after
  ``CORS_SCANNER_RETENTION_DAYS``, and a pruned run must not read as
  "unreachable". Its report then lists findings without exchanges.

Only finished runs have a report: a queued or running run is a ``Conflict``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import scanner
from scanner.core.browser import CorsRequest
from scanner.core.checks import Assessment, ProbeResult, assess
from scanner.core.headers import Headers
from scanner.core.observation import Observation, ProbeError
from scanner.core.origin import Origin
from scanner.core.plan import Endpoint, PreflightPurpose, ProbeKind, ProbeRequest, page_request
from scanner.core.policy import Policy
from scanner.core.severity import Severity
from scanner.core.variants import ProbeOrigin, VariantKind
from scanner.db.runs import RunProbeRecord, RunRecord, get_run, stored_finding, stream_exchanges
from scanner.db.tables import EndpointRow, RunEndpointRow, RunExchangeRow, RunFindingRow
from scanner.errors import Conflict, InvalidOrigin
from scanner.reports.csv import render_csv
from scanner.reports.json import FORMAT, VERSION, assessment_to_json, scan_document
from scanner.reports.junit import render_junit
from scanner.reports.sarif import render_sarif


class ReportFormat(StrEnum):
    """A report format of a stored run, with its media type and file extension."""

    JSON = "json"
    SARIF = "sarif"
    JUNIT = "junit"
    CSV = "csv"

    @property
    def media_type(self) -> str:
        """The Content-Type (without charset; every report is UTF-8 text)."""
        return _MEDIA_TYPES[self]

    @property
    def extension(self) -> str:
        return _EXTENSIONS[self]


_MEDIA_TYPES = {
    ReportFormat.JSON: "application/json",
    # The media type the SARIF 2.1.0 standard registers (§3.1).
    ReportFormat.SARIF: "application/sarif+json",
    ReportFormat.JUNIT: "application/xml",
    ReportFormat.CSV: "text/csv",
}
_EXTENSIONS = {
    ReportFormat.JSON: "json",
    ReportFormat.SARIF: "sarif",
    ReportFormat.JUNIT: "xml",
    ReportFormat.CSV: "csv",
}


@dataclass(frozen=True, slots=True)
class StoredAssessment(Assessment):
    """An ``Assessment`` rebuilt from storage: reachability is what the run recorded.

    Probe rows may have been pruned (retention) while the endpoint's result
    stays; the stored flag keeps such an endpoint reachable in every format.
    """

    stored_reachable: bool = False

    @property
    def reachable(self) -> bool:
        return self.stored_reachable


@dataclass(frozen=True, slots=True)
class StoredRun:
    """One finished run and its endpoints' assessments, in endpoint id order."""

    scan: RunRecord
    assessments: tuple[Assessment, ...]

    @property
    def started_at(self) -> datetime:
        """When the run started (its creation time if it never did: cancelled while queued)."""
        return self.scan.started_at or self.scan.created_at

    @property
    def finished_at(self) -> datetime:
        return self.scan.finished_at or self.started_at

    def failed(self, fail_on: Severity | None) -> bool:
        """A finding at or above ``fail_on`` (the CI gate); False when ``fail_on`` is None."""
        return fail_on is not None and any(
            f.severity >= fail_on for a in self.assessments for f in a.findings
        )


# -- loading -------------------------------------------------------------------


async def load_run(session: AsyncSession, scan_id: int) -> StoredRun:
    """The stored run ``scan_id`` as assessments.

    ``NotFound`` for an unknown run; ``Conflict`` while it is queued or
    running (its report would change under the reader).
    """
    scan = await get_run(session, scan_id)
    if not scan.status.final:
        raise Conflict(
            f"run {scan_id} is {scan.status.value}: its report is available once it has finished"
        )
    endpoints = list(
        (
            await session.execute(
                select(RunEndpointRow)
                .where(RunEndpointRow.scan_id == scan_id)
                .order_by(RunEndpointRow.endpoint_id)
            )
        ).scalars()
    )
    names = await _endpoint_names(session, [e.endpoint_id for e in endpoints])
    probes: dict[int, list[RunProbeRecord]] = {e.endpoint_id: [] for e in endpoints}
    async for exchanges in stream_exchanges(session, scan_id):
        for probe in exchanges:
            probes.setdefault(probe.endpoint_id, []).append(probe)
    findings: dict[int, list[RunFindingRow]] = {e.endpoint_id: [] for e in endpoints}
    for finding in (
        await session.execute(
            select(RunFindingRow).where(RunFindingRow.scan_id == scan_id).order_by(RunFindingRow.id)
        )
    ).scalars():
        findings.setdefault(finding.endpoint_id, []).append(finding)
    assessments = tuple(
        stored_assessment(
            row, probes[row.endpoint_id], findings[row.endpoint_id], names.get(row.endpoint_id)
        )
        for row in endpoints
    )
    return StoredRun(scan, assessments)


async def _endpoint_names(session: AsyncSession, ids: Sequence[int]) -> dict[int, str | None]:
    # Inventory names are not part of the run's record; deleted endpoints have none.
    if not ids:
        return {}
    rows = await session.execute(
        select(EndpointRow.id, EndpointRow.name).where(EndpointRow.id.in_(list(ids)))
    )
    return {endpoint_id: name for endpoint_id, name in rows.all()}


def stored_assessment(
    endpoint_row: RunEndpointRow,
    probe_rows: Sequence[RunProbeRecord],
    finding_rows: Sequence[RunFindingRow],
    name: str | None = None,
) -> StoredAssessment:
    """One endpoint's stored result as an Assessment (see the module docstring)."""
    endpoint = Endpoint(url=endpoint_row.url, method=endpoint_row.method, name=name)
    policy = stored_policy(endpoint_row.policy)
    observations = [_observation(row, endpoint, policy) for row in probe_rows]
    # Verdicts only: the findings assess() would derive are replaced by the stored ones.
    results: tuple[ProbeResult, ...] = assess(endpoint, policy, observations).probes
    findings = tuple(
        stored_finding(row, endpoint_row.method, endpoint_row.url) for row in finding_rows
    )
    return StoredAssessment(
        endpoint=endpoint,
        policy=policy,
        probes=results,
        findings=findings,
        unchecked=tuple(str(u) for u in endpoint_row.unchecked or ()),
        sent=endpoint_row.probe_count,
        stored_reachable=endpoint_row.reachable,
    )


def stored_policy(doc: dict[str, Any] | None) -> Policy:
    """The policy a run stored (``policy_to_json``); the empty policy for ``{}``."""
    if not doc:
        return Policy()
    return Policy.build(
        allowed_origins=doc.get("allowed_origins") or (),
        allow_credentials=bool(doc.get("allow_credentials")),
        allowed_methods=doc.get("allowed_methods") or (),
        allowed_headers=doc.get("allowed_headers") or (),
        exposed_headers=doc.get("exposed_headers") or (),
        max_age=doc.get("max_age"),
        public=bool(doc.get("public")),
    )


def _probe_origin(value: str, kind: str, policy: Policy) -> ProbeOrigin:
    # The same rules the variant collector applied when the run planned it:
    # sendable when the value serialises as an origin exactly, trusted when
    # the policy allows that origin.
    try:
        variant = VariantKind(kind)
    except ValueError:
        variant = VariantKind.CUSTOM  # a class this version does not know
    try:
        origin: Origin | None = Origin.parse(value)
    except InvalidOrigin:
        origin = None
    if origin is not None and origin.serialize() != value:
        origin = None
    trusted = origin is not None and policy.allows(origin)
    return ProbeOrigin(value, variant, trusted=trusted, browser_sendable=origin is not None)


def _preflight_request(
    origin: ProbeOrigin, headers: Headers, purpose: PreflightPurpose | None, policy: Policy
) -> CorsRequest:
    # A preflight carries the request it stands for: ACRM, and ACRH's names.
    method = (headers.combined("access-control-request-method") or "GET").strip()
    names = (headers.combined("access-control-request-headers") or "").split(",")
    asked = Headers.of((n.strip(), "1") for n in names if n.strip())
    # Only the legitimate front end's preflight stands for a credentialed request
    # (scanner.core.plan.plan_probes); every other one is sent without.
    credentials = policy.allow_credentials if purpose is PreflightPurpose.LEGITIMATE else False
    return CorsRequest(origin.value, method, asked, credentials)


def _observation(row: RunProbeRecord, endpoint: Endpoint, policy: Policy) -> Observation:
    origin = _probe_origin(row.origin, row.origin_kind, policy)
    headers = Headers.of((str(n), str(v)) for n, v in row.request_headers or ())
    kind = ProbeKind(row.kind)
    purpose = PreflightPurpose(row.purpose) if row.purpose else None
    if kind is ProbeKind.PREFLIGHT:
        cors = _preflight_request(origin, headers, purpose, policy)
    elif kind is ProbeKind.ERROR_PATH:
        cors = CorsRequest(origin.value, "GET", Headers(), credentials=True)
    else:
        cors = page_request(endpoint, policy, origin)
    request = ProbeRequest(
        key=row.probe_key,
        kind=kind,
        method=row.method,
        url=row.url,
        origin=origin,
        headers=headers,  # stored already redacted: secret values never reached the database
        cors_request=cors,
        purpose=purpose,
    )
    error: ProbeError | None = None
    if row.error is not None:
        try:
            error = ProbeError(row.error)
        except ValueError:
            error = ProbeError.OTHER
    return Observation(
        request=request,
        status=None if error is not None else row.status,
        reason=row.reason,
        headers=Headers.of((str(n), str(v)) for n, v in row.response_headers or ()),
        error=error,
        error_detail=row.error_detail,
        elapsed_ms=row.elapsed_ms,
        attempts=row.attempts,
    )


# -- rendering -----------------------------------------------------------------


def render_run(run: StoredRun, fmt: ReportFormat, fail_on: Severity | None) -> str:
    """The report text of a stored run in ``fmt``, gated at ``fail_on``.

    JSON is the ``scan --format json`` document (docs/scan-json.md) plus a
    ``run`` object naming the stored run; the others are exactly what
    ``scan --format sarif|junit|csv`` writes for the same assessments.
    """
    if fmt is not ReportFormat.JSON:
        renderer = _RENDERERS[fmt]
        return renderer(
            run.assessments, started_at=run.started_at, finished_at=run.finished_at, fail_on=fail_on
        )
    document = scan_document(
        run.assessments, started_at=run.started_at, finished_at=run.finished_at, fail_on=fail_on
    )
    document["run"] = {
        "id": run.scan.id,
        "status": run.scan.status.value,
        "trigger": run.scan.trigger.value,
        "error": run.scan.error,
    }
    return json.dumps(document, indent=2) + "\n"


_RENDERERS = {
    ReportFormat.SARIF: render_sarif,
    ReportFormat.JUNIT: render_junit,
    ReportFormat.CSV: render_csv,
}


# -- the JSON report, streamed ------------------------------------------------------

# Endpoints rebuilt at a time: a run of any size is reported in bounded memory.
_REPORT_CHUNK = 100


@dataclass(frozen=True, slots=True)
class StreamedReport:
    """The JSON report of one finished run, rendered a few endpoints at a time.

    ``failed`` (the gate) and the summary come from a first pass over the
    per-endpoint results and findings, without the exchanges; :meth:`chunks`
    then yields the very text :func:`render_run` returns for the run, while
    the session that opened it stays open.
    """

    session: AsyncSession
    scan: RunRecord
    fail_on: Severity | None
    endpoint_ids: tuple[int, ...]
    summary: dict[str, Any]
    failed: bool

    async def chunks(self) -> AsyncIterator[str]:
        run = StoredRun(self.scan, ())
        head = {
            "format": FORMAT,
            "version": VERSION,
            "tool": {"name": "cors-scanner", "version": scanner.__version__},
            "started_at": run.started_at.isoformat(),
            "finished_at": run.finished_at.isoformat(),
            "summary": self.summary,
        }
        text = json.dumps(head, indent=2)
        yield text[: -len("\n}")] + ',\n  "endpoints": ['
        first = True
        for start in range(0, len(self.endpoint_ids), _REPORT_CHUNK):
            ids = self.endpoint_ids[start : start + _REPORT_CHUNK]
            for assessment in await _load_endpoints(self.session, self.scan.id, ids):
                body = json.dumps(assessment_to_json(assessment), indent=2)
                yield ("\n" if first else ",\n") + _indent(body, 4)
                first = False
        tail = {
            "run": {
                "id": self.scan.id,
                "status": self.scan.status.value,
                "trigger": self.scan.trigger.value,
                "error": self.scan.error,
            }
        }
        yield ("]" if first else "\n  ]") + "," + json.dumps(tail, indent=2)[1:] + "\n"


async def open_json_report(
    session: AsyncSession, scan_id: int, fail_on: Severity | None
) -> StreamedReport:
    """The streamed JSON report of run ``scan_id`` (``NotFound``; ``Conflict`` unless finished)."""
    scan = await get_run(session, scan_id)
    if not scan.status.final:
        raise Conflict(
            f"run {scan_id} is {scan.status.value}: its report is available once it has finished"
        )
    with_exchanges = set(
        (
            await session.execute(
                select(RunExchangeRow.endpoint_id).where(RunExchangeRow.scan_id == scan_id)
            )
        ).scalars()
    )
    rows = (
        await session.execute(
            select(
                RunEndpointRow.endpoint_id,
                RunEndpointRow.reachable,
                RunEndpointRow.probe_count,
                RunEndpointRow.probe_errors,
            )
            .where(RunEndpointRow.scan_id == scan_id)
            .order_by(RunEndpointRow.endpoint_id)
        )
    ).all()
    severities = [
        Severity(s)
        for s in (
            await session.execute(
                select(RunFindingRow.severity)
                .join(
                    RunEndpointRow,
                    (RunEndpointRow.scan_id == RunFindingRow.scan_id)
                    & (RunEndpointRow.endpoint_id == RunFindingRow.endpoint_id),
                )
                .where(RunFindingRow.scan_id == scan_id)
            )
        ).scalars()
    ]
    failed = fail_on is not None and any(s >= fail_on for s in severities)
    summary = {
        "endpoints": len(rows),
        "reachable": sum(1 for r in rows if r.reachable),
        "unreachable": sum(1 for r in rows if not r.reachable),
        "probes": sum(r.probe_count for r in rows),
        # An assessment's errors are its failed exchanges: none once they are pruned.
        "probe_errors": sum(r.probe_errors for r in rows if r.endpoint_id in with_exchanges),
        "findings": {
            s.value: sum(1 for f in severities if f is s) for s in sorted(Severity, reverse=True)
        },
        "fail_on": fail_on.value if fail_on else None,
        "failed": failed,
    }
    return StreamedReport(
        session, scan, fail_on, tuple(r.endpoint_id for r in rows), summary, failed
    )


async def _load_endpoints(
    session: AsyncSession, scan_id: int, ids: Sequence[int]
) -> list[StoredAssessment]:
    endpoints = list(
        (
            await session.execute(
                select(RunEndpointRow)
                .where(RunEndpointRow.scan_id == scan_id, RunEndpointRow.endpoint_id.in_(ids))
                .order_by(RunEndpointRow.endpoint_id)
            )
        ).scalars()
    )
    names = await _endpoint_names(session, ids)
    probes: dict[int, list[RunProbeRecord]] = {i: [] for i in ids}
    async for exchanges in stream_exchanges(session, scan_id, ids):
        for probe in exchanges:
            probes[probe.endpoint_id].append(probe)
    findings: dict[int, list[RunFindingRow]] = {i: [] for i in ids}
    for finding in (
        await session.execute(
            select(RunFindingRow)
            .where(RunFindingRow.scan_id == scan_id, RunFindingRow.endpoint_id.in_(ids))
            .order_by(RunFindingRow.id)
        )
    ).scalars():
        findings[finding.endpoint_id].append(finding)
    out = [
        stored_assessment(
            row, probes[row.endpoint_id], findings[row.endpoint_id], names.get(row.endpoint_id)
        )
        for row in endpoints
    ]
    for row in endpoints:
        session.expunge(row)
    return out


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line for line in text.splitlines())


def report_filename(run_id: int, fmt: ReportFormat) -> str:
    """The file name a download of this report gets: ``cors-scanner-run-<id>.<ext>``."""
    return f"cors-scanner-run-{run_id}.{fmt.extension}"


__all__ = [
    "ReportFormat",
    "StoredAssessment",
    "StoredRun",
    "StreamedReport",
    "load_run",
    "open_json_report",
    "render_run",
    "report_filename",
    "stored_assessment",
    "stored_policy",
]
