"""Tracked findings across runs, their triage, their history, and regressions.

A tracked finding is one per fingerprint, whatever run saw it. Triage is a
human decision on one: suppress it (a false positive, won't fix), accept its
risk until a date, or reopen it (withdraw the decision). The decision is
recorded with who made it and survives rescans; the lifecycle rules
themselves are ``scanner.core.lifecycle``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from scanner.alerts.envelope import AlertEvent
from scanner.alerts.outbox import OutgoingEvent, enqueue_events
from scanner.core.timestamps import iso_utc
from scanner.db import audit
from scanner.db import findings as store
from scanner.db.findings import EventRecord, FindingQuery, FindingRecord
from scanner.db.pagination import Page
from scanner.errors import FieldError, ValidationError
from scanner.regressions import endpoint_refs
from scanner.usecases.context import Context


class Decision(StrEnum):
    """A triage decision, named by the status it puts the finding in."""

    SUPPRESS = "suppressed"  # a false positive or won't fix; optional expiry
    ACCEPT = "accepted"  # an accepted risk; expiry required
    REOPEN = "open"  # withdraw a suppression or acceptance


@dataclass(frozen=True, slots=True)
class FindingHistory:
    """A finding and every event of it, oldest first."""

    finding: FindingRecord
    events: tuple[EventRecord, ...]


async def list_findings(
    ctx: Context, query: FindingQuery, *, limit: int, cursor: str | None = None
) -> Page[FindingRecord]:
    """Tracked findings matching ``query``, by id."""
    async with ctx.read() as session:
        return await store.list_findings(session, query, limit=limit, cursor=cursor)


async def get_finding(ctx: Context, finding_id: int) -> FindingRecord:
    """One tracked finding; ``NotFound``."""
    async with ctx.read() as session:
        return await store.get_finding(session, finding_id)


async def finding_history(ctx: Context, finding_id: int) -> FindingHistory:
    """A finding with its states, triage decisions and severity changes; ``NotFound``."""
    async with ctx.read() as session:
        record = await store.get_finding(session, finding_id)
        events = await store.finding_history(session, finding_id)
    return FindingHistory(record, tuple(events))


async def triage(
    ctx: Context,
    finding_id: int,
    decision: Decision,
    *,
    actor: str,
    reason: str = "",
    until: datetime | None = None,
    expected_version: int | None = None,
) -> FindingRecord:
    """Record a triage decision on a finding; audited as ``finding.<status>``, and
    delivered (``finding.suppressed`` / ``finding.unsuppressed``) to the hooks that want it.

    ``ValidationError`` when a suppression or acceptance gives no reason, or
    a reopening gives an expiry (the lifecycle refuses an acceptance without
    expiry, or an expiry in the past); ``Conflict`` when the finding is
    resolved, has no decision to withdraw, or is not at ``expected_version``.
    """
    errors: list[FieldError] = []
    if decision is not Decision.REOPEN and not reason.strip():
        errors.append(FieldError("reason", "say why"))
    if decision is Decision.REOPEN and until is not None:
        errors.append(FieldError("until", "reopening takes no expiry"))
    if errors:
        raise ValidationError(errors)
    async with ctx.transaction() as session:
        record, event = await store.triage(
            session,
            finding_id,
            status=decision.value,
            by=actor,
            reason=reason,
            until=until,
            now=ctx.now(),
            expected_version=expected_version,
        )
        await audit.record(
            session,
            actor=actor,
            action=f"finding.{decision.value}",
            target_type="finding",
            target_id=str(record.id),
            detail={"reason": reason, "until": iso_utc(until), "event": event.kind.value},
        )
        # Hooks that want triage hear it; a PagerDuty hook resolves the finding's
        # incident on a suppression (a person decided nobody is to be paged).
        refs = await endpoint_refs(session, None, [event.endpoint_id])
        alert = AlertEvent.from_core(event, endpoint=refs[event.endpoint_id], finding_id=record.id)
        await enqueue_events(session, [OutgoingEvent(alert, None)], now=ctx.now())
    return record


async def list_regressions(
    ctx: Context,
    *,
    since: datetime | None = None,
    run_id: int | None = None,
    limit: int,
    cursor: str | None = None,
) -> Page[EventRecord]:
    """Regressions, newest first (``since`` inclusive; of one run when ``run_id`` is given)."""
    async with ctx.read() as session:
        return await store.list_events(
            session, since=since, run_id=run_id, limit=limit, cursor=cursor
        )


__all__ = [
    "Decision",
    "FindingHistory",
    "finding_history",
    "get_finding",
    "list_findings",
    "list_regressions",
    "triage",
]
