"""Scan storage: scans, their progress, and each endpoint's probes and findings.

A scan row moves ``queued -> running -> completed | failed | cancelled``; the
three end states are final. Results are written one endpoint at a time by
:func:`save_assessment`, idempotently: saving the same endpoint of the same
scan again replaces its rows and corrects the counters, so a retried write
never counts twice. Probe documents and finding rows hold exactly what
``scanner.reports.json`` renders for ``scan --format json``, so the API, the
CLI and stored history speak one shape. An endpoint's probe documents are
stored together, compressed, in one ``scan_exchanges`` row (see
:func:`pack_exchanges`): a few KB per endpoint per run instead of ~65 KB.

Lists are keyset-paginated on ``id`` with an opaque cursor (see ``Page``).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scanner.core.catalogue import RULES_REVISION
from scanner.core.checks import Assessment
from scanner.core.diff import EndpointSnapshot, HeaderLines, snapshot_from_assessment
from scanner.core.documents import finding_to_json, policy_to_json, probe_to_json
from scanner.core.findings import Category, Evidence, Finding
from scanner.core.headers import Headers
from scanner.core.severity import Severity
from scanner.db.pagination import Page, decode_cursor, encode_cursor
from scanner.db.tables import RunEndpointRow, RunExchangeRow, RunFindingRow, RunRow
from scanner.errors import Conflict, NotFound


class RunStatus(StrEnum):
    """Where a scan is in its life; the last three are final."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class RunTrigger(StrEnum):
    """What started a scan."""

    MANUAL = "manual"  # the CLI
    SCHEDULE = "schedule"  # a schedule's tick
    API = "api"  # POST /api/v1/scans


@dataclass(frozen=True, slots=True)
class RunSelection:
    """Which endpoints a scan covers: explicit ids, or enabled endpoints matching tag/owner.

    All fields empty means every enabled endpoint.
    """

    endpoint_ids: tuple[int, ...] | None = None
    tag: str | None = None
    owner: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.endpoint_ids is not None:
            doc["endpoint_ids"] = list(self.endpoint_ids)
        if self.tag is not None:
            doc["tag"] = self.tag
        if self.owner is not None:
            doc["owner"] = self.owner
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RunSelection:
        ids = doc.get("endpoint_ids")
        return cls(
            endpoint_ids=None if ids is None else tuple(int(i) for i in ids),
            tag=doc.get("tag"),
            owner=doc.get("owner"),
        )


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One scan and its progress. ``severity_counts`` is filled by :func:`get_run` only."""

    id: int
    status: RunStatus
    trigger: RunTrigger
    requested_by: str | None
    selection: RunSelection
    endpoints_total: int
    endpoints_done: int
    probes_total: int
    probe_errors: int
    findings_total: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    severity_counts: dict[str, int] = field(default_factory=dict)
    # Runs and work (issue 4): where it came from and how much work is left.
    schedule_id: int | None = None
    scheduled_for: datetime | None = None
    items_total: int = 0
    items_remaining: int = 0
    finalized_at: datetime | None = None
    # Endpoints none of whose probes got an answer (known once the run is finalised).
    endpoints_unreachable: int = 0

    @property
    def coverage(self) -> str | None:
        """``complete``, ``partial`` (some endpoints unreachable) or ``none`` (nothing
        answered); None until the run is finalised (only then is it counted)."""
        if self.finalized_at is None:
            return None
        if self.endpoints_unreachable == 0:
            return "complete"
        if self.endpoints_unreachable >= self.endpoints_done:
            return "none"
        return "partial"


@dataclass(frozen=True, slots=True)
class RunProbeRecord:
    """One stored exchange. JSON-valued fields are what ``probe_to_json`` rendered."""

    id: int
    scan_id: int
    endpoint_id: int
    probe_key: str
    kind: str
    purpose: str | None
    origin: str
    origin_kind: str
    method: str
    url: str
    request_headers: list[Any]
    status: int | None
    reason: str | None
    response_headers: list[Any]
    error: str | None
    error_detail: str | None
    elapsed_ms: float
    attempts: int
    verdict: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class RunFindingRecord:
    """One stored finding; ``evidence`` is what ``finding_to_json`` rendered."""

    id: int
    scan_id: int
    endpoint_id: int
    rule_id: str
    severity: Severity
    category: str
    title: str
    summary: str
    fingerprint: str
    origin_class: str
    credentialed: bool
    evidence: list[Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FindingFilter:
    """Findings at or above ``min_severity``, of one rule, of one endpoint (None: any)."""

    min_severity: Severity | None = None
    rule_id: str | None = None
    endpoint_id: int | None = None


# The largest id a cursor may name: ids are 32-bit in the database, and a
# bigger literal would overflow PostgreSQL's int4 parameter instead of matching nothing.
_MAX_ID = 2**31 - 1


def _after(cursor: str | None) -> int | None:
    after = decode_cursor(cursor)
    return None if after is None else min(after, _MAX_ID)


def _now() -> datetime:
    return datetime.now(UTC)


_T = TypeVar("_T", RunRecord, RunProbeRecord, RunFindingRecord)


# -- rows to values ------------------------------------------------------------


def _scan(row: RunRow, counts: dict[str, int] | None = None) -> RunRecord:
    return RunRecord(
        id=row.id,
        status=RunStatus(row.status),
        trigger=RunTrigger(row.trigger),
        requested_by=row.requested_by,
        selection=RunSelection.from_json(row.selection or {}),
        endpoints_total=row.endpoints_total,
        endpoints_done=row.endpoints_done,
        probes_total=row.probes_total,
        probe_errors=row.probe_errors,
        findings_total=row.findings_total,
        error=row.error,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        severity_counts=counts or {},
        schedule_id=row.schedule_id,
        scheduled_for=row.scheduled_for,
        items_total=row.items_total,
        items_remaining=row.items_remaining,
        finalized_at=row.finalized_at,
        endpoints_unreachable=row.endpoints_unreachable or 0,
    )


# -- an endpoint's exchanges, packed ---------------------------------------------

# The probe document's fields, in order: what probe_to_json renders and the
# probes API serves (the ids are the row's range, not stored per probe).
_EXCHANGE_FIELDS = (
    "key",
    "kind",
    "purpose",
    "origin",
    "origin_kind",
    "method",
    "url",
    "request_headers",
    "status",
    "reason",
    "response_headers",
    "error",
    "error_detail",
    "elapsed_ms",
    "attempts",
    "verdict",
)
# Level 6 (zlib's default): level 9 saves ~3 % more for twice the CPU.
_ZLIB_LEVEL = 6


def pack_exchanges(docs: Sequence[Mapping[str, Any]]) -> bytes:
    """Probe documents as one compressed body: a list of rows in ``_EXCHANGE_FIELDS`` order.

    Rows, not objects, so the field names are not repeated; zlib then folds
    the header lines the probes of one endpoint share.
    """
    rows = [[doc.get(name) for name in _EXCHANGE_FIELDS] for doc in docs]
    return zlib.compress(json.dumps(rows, separators=(",", ":")).encode(), _ZLIB_LEVEL)


def unpack_exchanges(body: bytes) -> list[dict[str, Any]]:
    """The probe documents :func:`pack_exchanges` packed."""
    rows = json.loads(zlib.decompress(body))
    return [dict(zip(_EXCHANGE_FIELDS, row, strict=True)) for row in rows]


def _timings(docs: Iterable[Mapping[str, Any]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for doc in docs:
        out.setdefault(str(doc["kind"]), []).append(float(doc["elapsed_ms"]))
    return out


def pack_snapshot(snapshot: EndpointSnapshot) -> bytes:
    """The diff's view of one endpoint's exchanges, compressed (``scan_exchanges.snapshot``).

    Built by the core from the assessment the worker holds (the live path's
    normalised CORS lines), so finalising a run never re-reads exchanges.
    """
    doc = {
        "headers": {key: [list(line) for line in lines] for key, lines in snapshot.headers.items()},
        "failed": dict(snapshot.failed_probes),
    }
    return zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), _ZLIB_LEVEL)


def unpack_snapshot(body: bytes) -> tuple[dict[str, HeaderLines], dict[str, str]]:
    """(probe key -> normalised CORS lines, probe key -> error) of :func:`pack_snapshot`."""
    doc = json.loads(zlib.decompress(body))
    headers = {
        str(key): tuple((str(n), str(v)) for n, v in lines) for key, lines in doc["headers"].items()
    }
    return headers, {str(k): str(v) for k, v in doc["failed"].items()}


def exchange_records(row: RunExchangeRow) -> list[RunProbeRecord]:
    """The probes one ``scan_exchanges`` row holds, ids in order."""
    docs = unpack_exchanges(row.body)
    return [
        RunProbeRecord(
            id=row.first_probe_id + i,
            scan_id=row.scan_id,
            endpoint_id=row.endpoint_id,
            probe_key=d["key"],
            kind=d["kind"],
            purpose=d["purpose"],
            origin=d["origin"],
            origin_kind=d["origin_kind"],
            method=d["method"],
            url=d["url"],
            request_headers=d["request_headers"] or [],
            status=d["status"],
            reason=d["reason"],
            response_headers=d["response_headers"] or [],
            error=d["error"],
            error_detail=d["error_detail"],
            elapsed_ms=d["elapsed_ms"],
            attempts=d["attempts"],
            verdict=d["verdict"],
        )
        for i, d in enumerate(docs)
    ]


async def stream_exchanges(
    session: AsyncSession, scan_id: int, endpoint_ids: Sequence[int] | None = None
) -> AsyncIterator[list[RunProbeRecord]]:
    """Each stored endpoint's probes of a scan, one endpoint at a time, in storage order.

    Rows are fetched a few at a time: a run's exchanges never sit in memory at once.
    """
    query = (
        select(RunExchangeRow)
        .where(RunExchangeRow.scan_id == scan_id)
        .order_by(RunExchangeRow.first_probe_id)
        .execution_options(yield_per=_STREAM_ROWS)
    )
    if endpoint_ids is not None:
        query = query.where(RunExchangeRow.endpoint_id.in_(list(endpoint_ids)))
    rows = await session.stream_scalars(query)
    async for row in rows:
        yield exchange_records(row)
        session.expunge(row)


_STREAM_ROWS = 50


def _finding(row: RunFindingRow) -> RunFindingRecord:
    return RunFindingRecord(
        id=row.id,
        scan_id=row.scan_id,
        endpoint_id=row.endpoint_id,
        rule_id=row.rule_id,
        severity=Severity(row.severity),
        category=row.category,
        title=row.title,
        summary=row.summary,
        fingerprint=row.fingerprint,
        origin_class=row.origin_class,
        credentialed=row.credentialed,
        evidence=row.evidence,
        created_at=row.created_at,
    )


# -- scans ---------------------------------------------------------------------


async def create_run(
    session: AsyncSession,
    *,
    selection: RunSelection,
    trigger: RunTrigger,
    requested_by: str | None,
    endpoints_total: int,
    now: datetime | None = None,
    rules_revision: int | None = None,
) -> RunRecord:
    """Insert a queued scan, judged by ruleset ``rules_revision`` (None: this scanner's)."""
    row = RunRow(
        status=RunStatus.QUEUED.value,
        trigger=trigger.value,
        requested_by=requested_by,
        selection=selection.to_json(),
        endpoints_total=endpoints_total,
        endpoints_done=0,
        probes_total=0,
        probe_errors=0,
        findings_total=0,
        created_at=now or _now(),
        rules_revision=RULES_REVISION if rules_revision is None else rules_revision,
    )
    session.add(row)
    await session.flush()
    return _scan(row)


async def mark_running(
    session: AsyncSession,
    scan_id: int,
    *,
    endpoints_total: int | None = None,
    now: datetime | None = None,
) -> bool:
    """``queued -> running``; False when the scan is no longer queued (e.g. cancelled)."""
    values: dict[str, Any] = {"status": RunStatus.RUNNING.value, "started_at": now or _now()}
    if endpoints_total is not None:
        values["endpoints_total"] = endpoints_total
    result = await session.execute(
        update(RunRow)
        .where(RunRow.id == scan_id, RunRow.status == RunStatus.QUEUED.value)
        .values(**values)
        .returning(RunRow.id)
    )
    return result.scalar_one_or_none() is not None


async def finish_run(
    session: AsyncSession,
    scan_id: int,
    status: RunStatus,
    *,
    error: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Move an unfinished scan to a final ``status``; False when it had already finished.

    A final state is never overwritten: a cancel that races the last save
    keeps whichever landed first.
    """
    if not status.final:
        raise ValueError(f"{status} is not a final status")
    result = await session.execute(
        update(RunRow)
        .where(
            RunRow.id == scan_id,
            RunRow.status.in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value]),
        )
        .values(status=status.value, error=error, finished_at=now or _now())
        .returning(RunRow.id)
    )
    return result.scalar_one_or_none() is not None


async def fail_unfinished_runs(
    session: AsyncSession, *, reason: str, now: datetime | None = None
) -> int:
    """Mark every queued or running scan failed with ``reason``; how many were.

    For a single-process server starting up: any scan still unfinished was
    interrupted by the previous process's death and will never finish.
    """
    result = await session.execute(
        update(RunRow)
        .where(RunRow.status.in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value]))
        .values(status=RunStatus.FAILED.value, error=reason, finished_at=now or _now())
        .returning(RunRow.id)
    )
    return len(result.scalars().all())


async def get_run(session: AsyncSession, scan_id: int) -> RunRecord:
    """One scan with its findings counted by severity; ``NotFound`` when absent."""
    row = await session.get(RunRow, scan_id, populate_existing=True)
    if row is None:
        raise NotFound(f"scan {scan_id} does not exist")
    counted = await session.execute(
        select(RunFindingRow.severity, func.count())
        .where(RunFindingRow.scan_id == scan_id)
        .group_by(RunFindingRow.severity)
    )
    counts = {s.value: 0 for s in sorted(Severity, reverse=True)}
    for severity, count in counted.all():
        counts[severity] = int(count)
    return _scan(row, counts)


async def list_runs(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None = None,
    status: RunStatus | None = None,
) -> Page[RunRecord]:
    """Scans, newest first."""
    query = select(RunRow).order_by(RunRow.id.desc()).limit(limit + 1)
    after = _after(cursor)
    if after is not None:
        query = query.where(RunRow.id < after)
    if status is not None:
        query = query.where(RunRow.status == status.value)
    rows = list((await session.execute(query)).scalars())
    return _page([_scan(r) for r in rows], limit)


def _page(items: list[_T], limit: int) -> Page[_T]:
    if len(items) > limit:
        items = items[:limit]
        return Page(tuple(items), encode_cursor(items[-1].id))
    return Page(tuple(items), None)


async def _require_run(session: AsyncSession, scan_id: int) -> None:
    found = await session.execute(select(RunRow.id).where(RunRow.id == scan_id))
    if found.scalar_one_or_none() is None:
        raise NotFound(f"scan {scan_id} does not exist")


async def list_run_probes(
    session: AsyncSession,
    scan_id: int,
    *,
    endpoint_id: int | None = None,
    limit: int,
    cursor: str | None = None,
) -> Page[RunProbeRecord]:
    """A scan's probes in the order they were stored; ``NotFound`` for an unknown scan."""
    await _require_run(session, scan_id)
    after = _after(cursor) or 0
    query = (
        select(RunExchangeRow)
        .where(RunExchangeRow.scan_id == scan_id, RunExchangeRow.last_probe_id > after)
        .order_by(RunExchangeRow.first_probe_id)
    )
    if endpoint_id is not None:
        query = query.where(RunExchangeRow.endpoint_id == endpoint_id)
    items: list[RunProbeRecord] = []
    # A page spans few rows (an endpoint holds dozens of probes): fetch them a few at a time.
    for offset in range(0, 1 << 30, 8):
        rows = list((await session.execute(query.offset(offset).limit(8))).scalars())
        for row in rows:
            items.extend(p for p in exchange_records(row) if p.id > after)
        if len(rows) < 8 or len(items) > limit:
            break
    return _page(items[: limit + 1], limit)


async def list_run_findings(
    session: AsyncSession,
    scan_id: int,
    flt: FindingFilter = FindingFilter(),
    *,
    limit: int,
    cursor: str | None = None,
) -> Page[RunFindingRecord]:
    """A scan's findings in the order they were stored; ``NotFound`` for an unknown scan."""
    await _require_run(session, scan_id)
    query = (
        select(RunFindingRow)
        .where(RunFindingRow.scan_id == scan_id)
        .order_by(RunFindingRow.id)
        .limit(limit + 1)
    )
    if flt.min_severity is not None:
        wanted = [s.value for s in Severity if s >= flt.min_severity]
        query = query.where(RunFindingRow.severity.in_(wanted))
    if flt.rule_id is not None:
        query = query.where(RunFindingRow.rule_id == flt.rule_id)
    if flt.endpoint_id is not None:
        query = query.where(RunFindingRow.endpoint_id == flt.endpoint_id)
    after = _after(cursor)
    if after is not None:
        query = query.where(RunFindingRow.id > after)
    rows = list((await session.execute(query)).scalars())
    return _page([_finding(r) for r in rows], limit)


# -- results -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SavedCounts:
    """What one endpoint added to its scan's counters."""

    probes: int
    probe_errors: int
    findings: int


@dataclass(frozen=True, slots=True)
class PreparedResult:
    """One endpoint's result in its stored form, made before the transaction that stores it.

    Rendering and compressing take milliseconds per endpoint; done outside the
    transaction, they do not lengthen the time SQLite's one write lock is held.
    """

    endpoint_id: int
    assessment: Assessment
    probe_count: int
    body: bytes | None
    timings: dict[str, list[float]]
    snapshot: bytes
    findings: tuple[tuple[Finding, list[Any]], ...]


def prepare_result(endpoint_id: int, assessment: Assessment) -> PreparedResult:
    """The stored form of ``assessment`` (:func:`save_assessment` stores it)."""
    docs = [probe_to_json(p) for p in assessment.probes]
    # One root cause per fingerprint per endpoint: the first (most severe) wins.
    findings: dict[str, Finding] = {}
    for f in assessment.findings:
        findings.setdefault(f.fingerprint, f)
    return PreparedResult(
        endpoint_id=endpoint_id,
        assessment=assessment,
        probe_count=len(docs),
        body=pack_exchanges(docs) if docs else None,
        timings=_timings(docs),
        snapshot=pack_snapshot(snapshot_from_assessment(endpoint_id, assessment)),
        findings=tuple((f, finding_to_json(f)["evidence"]) for f in findings.values()),
    )


async def save_assessment(
    session: AsyncSession,
    scan_id: int,
    endpoint_id: int,
    assessment: Assessment,
    *,
    now: datetime | None = None,
    prepared: PreparedResult | None = None,
) -> SavedCounts:
    """Store one endpoint's result and advance the scan's progress counters.

    Idempotent per (scan, endpoint): a second save replaces the first's rows
    and the counters move by the difference. ``Conflict`` when the scan has
    already finished (a cancelled scan accepts no late results). ``prepared``:
    :func:`prepare_result` of the same assessment, made beforehand.
    """
    scan = await session.get(RunRow, scan_id, with_for_update=True, populate_existing=True)
    if scan is None:
        raise NotFound(f"scan {scan_id} does not exist")
    if RunStatus(scan.status).final:
        raise Conflict(f"scan {scan_id} is {scan.status}: it accepts no more results")
    created = now or _now()
    if prepared is None or prepared.assessment is not assessment:
        prepared = prepare_result(endpoint_id, assessment)

    previous = await session.get(RunEndpointRow, (scan_id, endpoint_id))
    old = SavedCounts(0, 0, 0)
    if previous is not None:
        old_findings = await session.execute(
            select(func.count()).where(
                RunFindingRow.scan_id == scan_id, RunFindingRow.endpoint_id == endpoint_id
            )
        )
        old = SavedCounts(previous.probe_count, previous.probe_errors, old_findings.scalar_one())
        for table in (RunExchangeRow, RunFindingRow):
            await session.execute(
                delete(table).where(table.scan_id == scan_id, table.endpoint_id == endpoint_id)
            )
        await session.delete(previous)
        await session.flush()

    session.add(
        RunEndpointRow(
            scan_id=scan_id,
            endpoint_id=endpoint_id,
            method=assessment.endpoint.method.upper(),
            url=assessment.endpoint.url,
            reachable=assessment.reachable,
            probe_count=assessment.probe_count,
            probe_errors=len(assessment.errors),
            policy=policy_to_json(assessment.policy),
            unchecked=list(assessment.unchecked),
        )
    )
    await session.flush()
    if prepared.body is not None:
        # Ids continue the scan's sequence: a replaced endpoint's probes get new
        # ones, so a probes cursor never skips or repeats an exchange.
        first = scan.probe_seq + 1
        scan.probe_seq += prepared.probe_count
        session.add(
            RunExchangeRow(
                scan_id=scan_id,
                endpoint_id=endpoint_id,
                first_probe_id=first,
                last_probe_id=scan.probe_seq,
                probe_count=prepared.probe_count,
                body=prepared.body,
                timings=prepared.timings,
                snapshot=prepared.snapshot,
            )
        )
    for f, evidence in prepared.findings:
        session.add(
            RunFindingRow(
                scan_id=scan_id,
                endpoint_id=endpoint_id,
                rule_id=f.rule_id,
                severity=f.severity.value,
                category=f.category.value,
                title=f.title,
                summary=f.summary,
                fingerprint=f.fingerprint,
                origin_class=f.origin_class,
                credentialed=f.credentialed,
                evidence=evidence,
                created_at=created,
            )
        )
    # The ruleset that judged it: the worker's (in a rolling upgrade, the last to store).
    scan.rules_revision = RULES_REVISION
    new = SavedCounts(assessment.probe_count, len(assessment.errors), len(prepared.findings))
    scan.endpoints_done += 0 if previous is not None else 1
    scan.probes_total += new.probes - old.probes
    scan.probe_errors += new.probe_errors - old.probe_errors
    scan.findings_total += new.findings - old.findings
    await session.flush()
    return new


async def save_results(
    session: AsyncSession,
    scan_id: int,
    results: Sequence[PreparedResult],
    *,
    now: datetime | None = None,
) -> None:
    """Store several endpoints' prepared results in a few statements, whatever their number.

    What :func:`save_assessment` does for each, but the rows of every new
    endpoint are inserted together: a worker's transaction (and SQLite's one
    write lock) then lasts a handful of round trips, not several per endpoint.
    An endpoint the scan already holds is replaced through ``save_assessment``.
    """
    scan = await session.get(RunRow, scan_id, with_for_update=True, populate_existing=True)
    if scan is None:
        raise NotFound(f"scan {scan_id} does not exist")
    if RunStatus(scan.status).final:
        raise Conflict(f"scan {scan_id} is {scan.status}: it accepts no more results")
    ids = [r.endpoint_id for r in results]
    existing = set(
        (
            await session.execute(
                select(RunEndpointRow.endpoint_id).where(
                    RunEndpointRow.scan_id == scan_id, RunEndpointRow.endpoint_id.in_(ids)
                )
            )
        ).scalars()
    )
    for result in results:
        if result.endpoint_id in existing:
            await save_assessment(
                session, scan_id, result.endpoint_id, result.assessment, now=now, prepared=result
            )
    fresh = [r for r in results if r.endpoint_id not in existing]
    if not fresh:
        return
    created = now or _now()
    rows: list[Any] = []
    for r in fresh:
        a = r.assessment
        rows.append(
            RunEndpointRow(
                scan_id=scan_id,
                endpoint_id=r.endpoint_id,
                method=a.endpoint.method.upper(),
                url=a.endpoint.url,
                reachable=a.reachable,
                probe_count=a.probe_count,
                probe_errors=len(a.errors),
                policy=policy_to_json(a.policy),
                unchecked=list(a.unchecked),
            )
        )
        if r.body is not None:
            first = scan.probe_seq + 1
            scan.probe_seq += r.probe_count
            rows.append(
                RunExchangeRow(
                    scan_id=scan_id,
                    endpoint_id=r.endpoint_id,
                    first_probe_id=first,
                    last_probe_id=scan.probe_seq,
                    probe_count=r.probe_count,
                    body=r.body,
                    timings=r.timings,
                    snapshot=r.snapshot,
                )
            )
        rows.extend(
            RunFindingRow(
                scan_id=scan_id,
                endpoint_id=r.endpoint_id,
                rule_id=f.rule_id,
                severity=f.severity.value,
                category=f.category.value,
                title=f.title,
                summary=f.summary,
                fingerprint=f.fingerprint,
                origin_class=f.origin_class,
                credentialed=f.credentialed,
                evidence=evidence,
                created_at=created,
            )
            for f, evidence in r.findings
        )
    session.add_all(rows)
    scan.rules_revision = RULES_REVISION
    scan.endpoints_done += len(fresh)
    scan.probes_total += sum(r.assessment.probe_count for r in fresh)
    scan.probe_errors += sum(len(r.assessment.errors) for r in fresh)
    scan.findings_total += sum(len(r.findings) for r in fresh)
    await session.flush()


async def save_unassessed(
    session: AsyncSession,
    scan_id: int,
    endpoint_id: int,
    *,
    method: str,
    url: str,
    reason: str,
    note: str = "not assessed",
) -> None:
    """Record an endpoint the scan could not assess at all (our fault, not the target's).

    It counts as done, unreachable, with ``"<note>: <reason>"`` in ``unchecked``,
    so the scan still finishes and the gap is visible.
    """
    scan = await session.get(RunRow, scan_id, with_for_update=True, populate_existing=True)
    if scan is None:
        raise NotFound(f"scan {scan_id} does not exist")
    if RunStatus(scan.status).final:
        raise Conflict(f"scan {scan_id} is {scan.status}: it accepts no more results")
    previous = await session.get(RunEndpointRow, (scan_id, endpoint_id))
    if previous is not None:
        return
    session.add(
        RunEndpointRow(
            scan_id=scan_id,
            endpoint_id=endpoint_id,
            method=method.upper(),
            url=url,
            reachable=False,
            probe_count=0,
            probe_errors=0,
            policy={},
            unchecked=[f"{note}: {reason}"],
        )
    )
    scan.endpoints_done += 1
    await session.flush()


async def list_run_endpoint_ids(session: AsyncSession, scan_id: int) -> set[int]:
    """Endpoints of a scan that already have a stored result."""
    rows = await session.execute(
        select(RunEndpointRow.endpoint_id).where(RunEndpointRow.scan_id == scan_id)
    )
    return set(rows.scalars())


async def severity_counts(session: AsyncSession, scan_ids: list[int]) -> dict[int, dict[str, int]]:
    """Findings per severity for each of ``scan_ids`` (every severity present, 0 when none)."""
    out = {i: {s.value: 0 for s in sorted(Severity, reverse=True)} for i in scan_ids}
    if not scan_ids:
        return out
    rows = await session.execute(
        select(RunFindingRow.scan_id, RunFindingRow.severity, func.count())
        .where(RunFindingRow.scan_id.in_(scan_ids))
        .group_by(RunFindingRow.scan_id, RunFindingRow.severity)
    )
    for scan_id, severity, count in rows.all():
        out[scan_id][severity] = int(count)
    return out


# -- stored rows as core values ------------------------------------------------------


def _stored_evidence(doc: Mapping[str, Any]) -> Evidence:
    request = doc.get("request") or {}
    response = doc.get("response") or {}
    return Evidence(
        probe_key=str(doc.get("probe", "")),
        origin=str(doc.get("origin", "")),
        origin_kind=str(doc.get("origin_kind", "")),
        method=str(request.get("method", "")),
        url=str(request.get("url", "")),
        request_headers=Headers.of((str(n), str(v)) for n, v in request.get("headers") or ()),
        status=response.get("status"),
        response_headers=Headers.of((str(n), str(v)) for n, v in response.get("headers") or ()),
        error=doc.get("error"),
        verdict=str(doc.get("verdict") or ""),
    )


def stored_finding(row: RunFindingRow, method: str, url: str) -> Finding:
    """The core finding a stored row holds (its fingerprint is the stored one)."""
    return Finding(
        rule_id=row.rule_id,
        severity=Severity(row.severity),
        category=Category(row.category),
        title=row.title,
        endpoint_method=method,
        endpoint_url=url,
        origin_class=row.origin_class,
        summary=row.summary,
        evidence=tuple(_stored_evidence(e) for e in row.evidence or ()),
        credentialed=row.credentialed,
    )


# -- each endpoint's last result (the dashboard's endpoints and coverage) --------------


@dataclass(frozen=True, slots=True)
class EndpointResult:
    """One endpoint's stored result in one finished run."""

    scan_id: int
    endpoint_id: int
    method: str
    url: str
    reachable: bool
    probe_count: int
    probe_errors: int
    unchecked: tuple[str, ...]
    finished_at: datetime

    @property
    def verified(self) -> bool:
        """The run could judge the endpoint: it answered and no probe failed.

        ``unchecked`` notes (a rule that did not apply) do not count against it;
        an endpoint a dead work item never probed is unreachable, its reason there.
        """
        return self.reachable and self.probe_errors == 0


async def latest_endpoint_results(
    session: AsyncSession,
    *,
    endpoint_ids: Sequence[int] | None = None,
    finished_since: datetime | None = None,
) -> dict[int, EndpointResult]:
    """Each endpoint's result in the newest finished run that covered it, by endpoint id.

    ``endpoint_ids``: only these; ``finished_since``: only runs finished at or
    after it (an endpoint no such run covered is absent).
    """
    stmt = (
        select(RunEndpointRow, RunRow.finished_at)
        .join(RunRow, RunRow.id == RunEndpointRow.scan_id)
        .where(RunRow.finished_at.is_not(None))
        .order_by(RunEndpointRow.scan_id.desc())
    )
    if finished_since is not None:
        stmt = stmt.where(RunRow.finished_at >= finished_since)
    chunks: list[Sequence[int] | None] = [None]
    if endpoint_ids is not None:
        ids = sorted(set(endpoint_ids))
        chunks = [ids[i : i + 500] for i in range(0, len(ids), 500)]
    out: dict[int, EndpointResult] = {}
    for chunk in chunks:
        query = stmt if chunk is None else stmt.where(RunEndpointRow.endpoint_id.in_(chunk))
        for row, finished_at in (await session.execute(query)).all():
            if row.endpoint_id in out:
                continue  # newest first: the first row of an endpoint is its latest
            assert finished_at is not None  # the query keeps finished runs only
            out[row.endpoint_id] = EndpointResult(
                scan_id=row.scan_id,
                endpoint_id=row.endpoint_id,
                method=row.method,
                url=row.url,
                reachable=row.reachable,
                probe_count=row.probe_count,
                probe_errors=row.probe_errors,
                unchecked=tuple(row.unchecked or ()),
                finished_at=finished_at,
            )
    return out
