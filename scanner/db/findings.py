"""Tracked findings and their event log: the store behind the diff, triage and the API.

One ``tracked_findings`` row per fingerprint holds a
``scanner.core.lifecycle.TrackedFinding``; every change is written only where
the row still has the version the change was computed from (optimistic
concurrency), so a triage decision made while a run was being finalised is
never overwritten by the run's stale copy: the loser gets ``Conflict``.
``finding_events`` is append-only: the diff's events, triage decisions and
expiries, severity changes (the severity history is the events of kinds
``finding.severity_raised``/``_lowered``).

Lists are keyset-paginated on ``id`` (newest first for events).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from scanner.core.lifecycle import (
    OPEN_STATUSES,
    Event,
    EventKind,
    FindingStatus,
    TrackedFinding,
    Transition,
    Triage,
    TriageKind,
    expire_triage,
    statuses_named,
    suppress,
    unsuppress,
)
from scanner.core.severity import Severity
from scanner.core.trend import FindingSpan
from scanner.db.pagination import Page, decode_cursor, encode_cursor
from scanner.db.tables import (
    EndpointRow,
    EndpointTagRow,
    FindingEventRow,
    RunFindingRow,
    TrackedFindingRow,
)
from scanner.errors import Conflict, NotFound

_MAX_ID = 2**31 - 1


@dataclass(frozen=True, slots=True)
class FindingRecord:
    """A tracked finding as stored: its row id and the core value."""

    id: int
    finding: TrackedFinding


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A stored event: its row id, the finding's id (when it is about one) and the core value."""

    id: int
    finding_id: int | None
    event: Event


@dataclass(frozen=True, slots=True)
class FindingQuery:
    """Filters of the findings list; None means any.

    ``min_severity``: this severity and above. ``statuses``: any of these.
    ``tag``/``owner``: of the finding's endpoint (current inventory).
    ``run_id``: findings the run saw. Datetimes are timezone-aware bounds,
    ``*_after`` inclusive and ``*_before`` exclusive.
    """

    statuses: tuple[FindingStatus, ...] | None = None
    min_severity: Severity | None = None
    rule_id: str | None = None
    endpoint_id: int | None = None
    tag: str | None = None
    owner: str | None = None
    first_seen_after: datetime | None = None
    first_seen_before: datetime | None = None
    last_seen_after: datetime | None = None
    last_seen_before: datetime | None = None
    run_id: int | None = None


# -- rows and values -------------------------------------------------------------


def _triage(row: TrackedFindingRow) -> Triage | None:
    if row.triage_kind is None:
        return None
    assert row.triage_by is not None
    assert row.triage_at is not None
    return Triage(
        kind=TriageKind(row.triage_kind),
        by=row.triage_by,
        reason=row.triage_reason or "",
        at=row.triage_at,
        until=row.triage_until,
    )


def to_tracked(row: TrackedFindingRow) -> TrackedFinding:
    """The core value of a stored row."""
    return TrackedFinding(
        fingerprint=row.fingerprint,
        endpoint_id=row.endpoint_id,
        rule_id=row.rule_id,
        origin_class=row.origin_class,
        severity=Severity(row.severity),
        status=FindingStatus(row.status),
        title=row.title,
        summary=row.summary,
        first_seen_run=row.first_seen_run,
        last_seen_run=row.last_seen_run,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        resolved_at=row.resolved_at,
        reopen_count=row.reopen_count,
        triage=_triage(row),
        version=row.version,
        not_verified_run=row.not_verified_run,
        reopened_at=row.reopened_at,
        probe_keys=tuple(row.probe_keys or ()),
    )


def _columns(finding: TrackedFinding) -> dict[str, Any]:
    triage = finding.triage
    return {
        "fingerprint": finding.fingerprint,
        "endpoint_id": finding.endpoint_id,
        "rule_id": finding.rule_id,
        "origin_class": finding.origin_class,
        "severity": finding.severity.value,
        "status": finding.status.value,
        "title": finding.title,
        "summary": finding.summary,
        "first_seen_run": finding.first_seen_run,
        "last_seen_run": finding.last_seen_run,
        "first_seen_at": finding.first_seen_at,
        "last_seen_at": finding.last_seen_at,
        "resolved_at": finding.resolved_at,
        "reopened_at": finding.reopened_at,
        "reopen_count": finding.reopen_count,
        "not_verified_run": finding.not_verified_run,
        "probe_keys": list(finding.probe_keys),
        "triage_kind": triage.kind.value if triage else None,
        "triage_by": triage.by if triage else None,
        "triage_reason": triage.reason if triage else None,
        "triage_at": triage.at if triage else None,
        "triage_until": triage.until if triage else None,
        "version": finding.version,
    }


def _event_value(row: FindingEventRow) -> Event:
    return Event(
        kind=EventKind(row.kind),
        endpoint_id=row.endpoint_id,
        at=row.at,
        fingerprint=row.fingerprint,
        rule_id=row.rule_id,
        severity=Severity(row.severity) if row.severity else None,
        before=row.before,
        after=row.after,
        is_regression=row.is_regression,
        run_id=row.run_id,
        transition=EventKind(row.transition) if row.transition else None,
    )


# -- the diff's reads and writes -----------------------------------------------------


async def load_tracked(
    session: AsyncSession, endpoint_ids: Iterable[int]
) -> dict[str, TrackedFinding]:
    """The tracked findings of these endpoints, by fingerprint."""
    ids = sorted(set(endpoint_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(TrackedFindingRow).where(TrackedFindingRow.endpoint_id.in_(ids))
    )
    return {row.fingerprint: to_tracked(row) for row in rows.scalars()}


async def save_tracked(session: AsyncSession, findings: Sequence[TrackedFinding]) -> dict[str, int]:
    """Write changed findings (version guarded); their row ids by fingerprint.

    A finding at version 1 is inserted; any other replaces the row whose
    version is one less. ``Conflict`` when a row changed meanwhile (or a
    version-1 finding already exists): the caller's transaction must roll back.
    """
    ids: dict[str, int] = {}
    for finding in findings:
        values = _columns(finding)
        if finding.version == 1:
            try:
                async with session.begin_nested():
                    result = await session.execute(
                        insert(TrackedFindingRow).values(**values).returning(TrackedFindingRow.id)
                    )
                    ids[finding.fingerprint] = result.scalar_one()
            except IntegrityError:
                raise Conflict(
                    f"finding {finding.fingerprint} was recorded meanwhile: retry"
                ) from None
            continue
        result = await session.execute(
            update(TrackedFindingRow)
            .where(
                TrackedFindingRow.fingerprint == finding.fingerprint,
                TrackedFindingRow.version == finding.version - 1,
            )
            .values(**values)
            .returning(TrackedFindingRow.id)
            .execution_options(synchronize_session=False)
        )
        found = result.scalar_one_or_none()
        if found is None:
            raise Conflict(f"finding {finding.fingerprint} changed meanwhile: retry")
        ids[finding.fingerprint] = found
    return ids


async def record_events(session: AsyncSession, events: Sequence[Event]) -> list[int]:
    """Append events to the log; their ids, in order."""
    ids: list[int] = []
    for event in events:
        result = await session.execute(
            insert(FindingEventRow)
            .values(
                kind=event.kind.value,
                transition=event.transition.value if event.transition else None,
                fingerprint=event.fingerprint,
                endpoint_id=event.endpoint_id,
                run_id=event.run_id,
                rule_id=event.rule_id,
                severity=event.severity.value if event.severity else None,
                before=_plain(event.before),
                after=_plain(event.after),
                is_regression=event.is_regression,
                at=event.at,
            )
            .returning(FindingEventRow.id)
        )
        ids.append(result.scalar_one())
    return ids


def _plain(value: Any) -> Any:
    """JSON-ready evidence with tuples as lists (what the JSON column gives back)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- queries -------------------------------------------------------------------


async def get_finding(session: AsyncSession, finding_id: int) -> FindingRecord:
    """One tracked finding; ``NotFound`` when absent."""
    row = await session.get(TrackedFindingRow, finding_id, populate_existing=True)
    if row is None:
        raise NotFound(f"finding {finding_id} does not exist")
    return FindingRecord(row.id, to_tracked(row))


def _conditions(q: FindingQuery) -> list[ColumnElement[bool]]:
    t = TrackedFindingRow
    out: list[ColumnElement[bool]] = []
    if q.statuses:
        out.append(t.status.in_([s.value for s in q.statuses]))
    if q.min_severity is not None:
        out.append(t.severity.in_([s.value for s in Severity if s >= q.min_severity]))
    if q.rule_id is not None:
        out.append(t.rule_id == q.rule_id)
    if q.endpoint_id is not None:
        out.append(t.endpoint_id == q.endpoint_id)
    if q.tag is not None:
        out.append(
            exists().where(EndpointTagRow.endpoint_id == t.endpoint_id, EndpointTagRow.tag == q.tag)
        )
    if q.owner is not None:
        out.append(exists().where(EndpointRow.id == t.endpoint_id, EndpointRow.owner == q.owner))
    if q.first_seen_after is not None:
        out.append(t.first_seen_at >= q.first_seen_after)
    if q.first_seen_before is not None:
        out.append(t.first_seen_at < q.first_seen_before)
    if q.last_seen_after is not None:
        out.append(t.last_seen_at >= q.last_seen_after)
    if q.last_seen_before is not None:
        out.append(t.last_seen_at < q.last_seen_before)
    if q.run_id is not None:
        out.append(
            exists().where(
                RunFindingRow.scan_id == q.run_id, RunFindingRow.fingerprint == t.fingerprint
            )
        )
    return out


async def list_findings(
    session: AsyncSession, q: FindingQuery, *, limit: int, cursor: str | None = None
) -> Page[FindingRecord]:
    """Tracked findings matching ``q``, by id."""
    query = select(TrackedFindingRow).order_by(TrackedFindingRow.id).limit(limit + 1)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(TrackedFindingRow.id > min(after, _MAX_ID))
    conditions = _conditions(q)
    if conditions:
        query = query.where(and_(*conditions))
    rows = list((await session.execute(query)).scalars())
    items = [FindingRecord(r.id, to_tracked(r)) for r in rows[:limit]]
    return Page(tuple(items), encode_cursor(items[-1].id) if len(rows) > limit else None)


async def _finding_ids(session: AsyncSession, fingerprints: Iterable[str]) -> dict[str, int]:
    wanted = sorted({f for f in fingerprints if f})
    if not wanted:
        return {}
    rows = await session.execute(
        select(TrackedFindingRow.fingerprint, TrackedFindingRow.id).where(
            TrackedFindingRow.fingerprint.in_(wanted)
        )
    )
    return {fp: i for fp, i in rows.all()}


async def _event_records(
    session: AsyncSession, rows: Sequence[FindingEventRow]
) -> list[EventRecord]:
    ids = await _finding_ids(session, (r.fingerprint or "" for r in rows))
    return [
        EventRecord(r.id, ids.get(r.fingerprint) if r.fingerprint else None, _event_value(r))
        for r in rows
    ]


async def finding_history(session: AsyncSession, finding_id: int) -> list[EventRecord]:
    """Every event of one finding, oldest first (its states, triage and severity history)."""
    found = await get_finding(session, finding_id)
    rows = await session.execute(
        select(FindingEventRow)
        .where(FindingEventRow.fingerprint == found.finding.fingerprint)
        .order_by(FindingEventRow.id)
    )
    return await _event_records(session, list(rows.scalars()))


async def list_events(
    session: AsyncSession,
    *,
    regressions_only: bool = True,
    since: datetime | None = None,
    run_id: int | None = None,
    limit: int,
    cursor: str | None = None,
) -> Page[EventRecord]:
    """Events (regressions by default), newest first; ``since`` inclusive."""
    e = FindingEventRow
    query = select(e).order_by(e.id.desc()).limit(limit + 1)
    if regressions_only:
        query = query.where(e.is_regression.is_(True))
    if since is not None:
        query = query.where(e.at >= since)
    if run_id is not None:
        query = query.where(e.run_id == run_id)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(e.id < min(after, _MAX_ID))
    rows = list((await session.execute(query)).scalars())
    items = await _event_records(session, rows[:limit])
    return Page(tuple(items), encode_cursor(items[-1].id) if len(rows) > limit else None)


async def events_by_id(session: AsyncSession, event_ids: Sequence[int]) -> list[EventRecord]:
    """Stored events by id, in the order given (unknown ids are skipped)."""
    if not event_ids:
        return []
    rows = await session.execute(select(FindingEventRow).where(FindingEventRow.id.in_(event_ids)))
    by_id = {r.id: r for r in rows.scalars()}
    return await _event_records(session, [by_id[i] for i in event_ids if i in by_id])


# -- triage --------------------------------------------------------------------


async def _apply(session: AsyncSession, finding_id: int, change: Transition) -> FindingRecord:
    await save_tracked(session, [change.finding])
    await record_events(session, [change.event])
    return FindingRecord(finding_id, change.finding)


async def triage(
    session: AsyncSession,
    finding_id: int,
    *,
    status: str,
    by: str,
    reason: str,
    until: datetime | None,
    now: datetime,
    expected_version: int | None = None,
) -> tuple[FindingRecord, Event]:
    """Suppress or accept (``status`` ``suppressed``/``accepted``) or reopen (``open``) a finding.

    ``ValidationError`` for a bad decision (no reason, an accepted risk without
    expiry, an expiry in the past), ``Conflict`` when the finding is resolved
    (nothing to suppress), has no decision to withdraw, or is not at
    ``expected_version``.
    """
    current = await get_finding(session, finding_id)
    finding = current.finding
    if expected_version is not None and finding.version != expected_version:
        raise Conflict(
            f"finding {finding_id} is at version {finding.version}, not {expected_version}"
        )
    if status == "open":
        change = unsuppress(finding, by=by, now=now, reason=reason)
    else:
        decision = Triage(kind=TriageKind(status), by=by, reason=reason, at=now, until=until)
        change = suppress(finding, decision)
    record = await _apply(session, finding_id, change)
    return record, change.event


async def expire_triage_decisions(session: AsyncSession, now: datetime) -> list[Event]:
    """End every triage decision whose expiry has passed (the sweep between runs)."""
    rows = await session.execute(
        select(TrackedFindingRow).where(
            TrackedFindingRow.triage_until.is_not(None), TrackedFindingRow.triage_until <= now
        )
    )
    events: list[Event] = []
    for row in list(rows.scalars()):
        change = expire_triage(to_tracked(row), now)
        if change is None:
            continue
        await _apply(session, row.id, change)
        events.append(change.event)
    return events


def status_filter(text: str | None) -> tuple[FindingStatus, ...] | None:
    """Statuses from a comma-separated list (``open``, ``new,reopened``); None for none given.

    ``open`` means new + open + reopened (``scanner.core.lifecycle.statuses_named``).
    """
    if not text:
        return None
    return statuses_named([part.strip() for part in text.split(",") if part.strip()]) or None


# -- aggregates (the dashboard's overview; any reader may use them) ---------------------

LIVE_UNSILENCED = OPEN_STATUSES
"""Present as far as the last run knew, and nobody silenced them: what needs fixing."""


async def count_by_severity(
    session: AsyncSession, statuses: Sequence[FindingStatus] = LIVE_UNSILENCED
) -> dict[Severity, int]:
    """Tracked findings in ``statuses`` per severity (every severity present, 0 when none)."""
    t = TrackedFindingRow
    rows = await session.execute(
        select(t.severity, func.count())
        .where(t.status.in_([s.value for s in statuses]))
        .group_by(t.severity)
    )
    out = dict.fromkeys(sorted(Severity, reverse=True), 0)
    for severity, count in rows.all():
        out[Severity(severity)] = int(count)
    return out


async def count_by_endpoint(
    session: AsyncSession,
    endpoint_ids: Sequence[int],
    statuses: Sequence[FindingStatus] = LIVE_UNSILENCED,
) -> dict[int, dict[Severity, int]]:
    """Tracked findings in ``statuses`` per endpoint and severity (only endpoints with some)."""
    t = TrackedFindingRow
    out: dict[int, dict[Severity, int]] = {}
    ids = sorted(set(endpoint_ids))
    for start in range(0, len(ids), 500):
        rows = await session.execute(
            select(t.endpoint_id, t.severity, func.count())
            .where(t.endpoint_id.in_(ids[start : start + 500]))
            .where(t.status.in_([s.value for s in statuses]))
            .group_by(t.endpoint_id, t.severity)
        )
        for endpoint_id, severity, count in rows.all():
            out.setdefault(endpoint_id, {})[Severity(severity)] = int(count)
    return out


async def count_by_owner(
    session: AsyncSession, statuses: Sequence[FindingStatus] = LIVE_UNSILENCED
) -> dict[str | None, dict[Severity, int]]:
    """Tracked findings in ``statuses`` per owner of their endpoint (None: no owner) and severity.

    Findings whose endpoint left the inventory are not counted: nobody owns them now.
    """
    t = TrackedFindingRow
    rows = await session.execute(
        select(EndpointRow.owner, t.severity, func.count())
        .join(EndpointRow, EndpointRow.id == t.endpoint_id)
        .where(t.status.in_([s.value for s in statuses]))
        .group_by(EndpointRow.owner, t.severity)
    )
    out: dict[str | None, dict[Severity, int]] = {}
    for owner, severity, count in rows.all():
        out.setdefault(owner, {})[Severity(severity)] = int(count)
    return out


async def count_by_tag(
    session: AsyncSession, statuses: Sequence[FindingStatus] = LIVE_UNSILENCED
) -> dict[str, dict[Severity, int]]:
    """Tracked findings in ``statuses`` per tag of their endpoint and severity (a finding counts once per tag)."""
    t = TrackedFindingRow
    rows = await session.execute(
        select(EndpointTagRow.tag, t.severity, func.count())
        .join(EndpointTagRow, EndpointTagRow.endpoint_id == t.endpoint_id)
        .where(t.status.in_([s.value for s in statuses]))
        .group_by(EndpointTagRow.tag, t.severity)
    )
    out: dict[str, dict[Severity, int]] = {}
    for tag, severity, count in rows.all():
        out.setdefault(tag, {})[Severity(severity)] = int(count)
    return out


async def finding_spans(session: AsyncSession, *, since: datetime) -> list[FindingSpan]:
    """When each finding that may have been live at or after ``since`` appeared, resolved, was silenced."""
    t = TrackedFindingRow
    rows = await session.execute(
        select(t.first_seen_at, t.resolved_at, t.triage_at, t.triage_until).where(
            (t.resolved_at.is_(None)) | (t.resolved_at >= since)
        )
    )
    return [
        FindingSpan(first_seen=first, resolved_at=resolved, silenced_from=at, silenced_until=until)
        for first, resolved, at, until in rows.all()
    ]


__all__ = [
    "LIVE_UNSILENCED",
    "EventRecord",
    "FindingQuery",
    "FindingRecord",
    "count_by_endpoint",
    "count_by_owner",
    "count_by_severity",
    "count_by_tag",
    "events_by_id",
    "expire_triage_decisions",
    "finding_history",
    "finding_spans",
    "get_finding",
    "list_events",
    "list_findings",
    "load_tracked",
    "record_events",
    "save_tracked",
    "status_filter",
    "to_tracked",
    "triage",
]
