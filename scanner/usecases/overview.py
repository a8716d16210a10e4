"""The state of the estate at a glance: what is live, its trend, coverage, the worst groups.

Reads for an overview (the dashboard's, and any API that wants one): live
findings by severity, their number per day, the endpoints the last day's
runs could not verify, the owners and tags with the worst live findings, and
per endpoint its live findings and latest result. "Live" here means present
when last scanned and not silenced: new, open or reopened
(``scanner.db.findings.LIVE_UNSILENCED``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from scanner.core.severity import Severity
from scanner.core.trend import DayCount, live_per_day
from scanner.db import findings, inventory, runs
from scanner.db.inventory import EndpointFilter, EndpointRecord
from scanner.db.runs import EndpointResult
from scanner.usecases.context import Context

COVERAGE_WINDOW = timedelta(hours=24)  # "last night": the runs of the last day
TREND_DAYS = (30, 90)
WORST_SHOWN = 5

SeverityCounts = Mapping[Severity, int]


@dataclass(frozen=True, slots=True)
class Group:
    """An owner or a tag and its live findings by severity."""

    name: str | None
    by_severity: SeverityCounts

    @property
    def total(self) -> int:
        return sum(self.by_severity.values())


@dataclass(frozen=True, slots=True)
class Coverage:
    """What the runs of the last ``COVERAGE_WINDOW`` could and could not verify."""

    checked: int  # endpoints some run of the window covered
    unverified: tuple[EndpointResult, ...]  # their latest result, not verified
    endpoints: Mapping[int, EndpointRecord]  # the unverified ones still in the inventory


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything an overview shows, as records (``scanner.shapes`` renders them)."""

    live: SeverityCounts
    trend: tuple[DayCount, ...]
    coverage: Coverage
    worst_owners: tuple[Group, ...]
    worst_tags: tuple[Group, ...]


@dataclass(frozen=True, slots=True)
class EndpointFacts:
    """Per endpoint: its live findings by severity, and its latest result (None: never run)."""

    live: Mapping[int, SeverityCounts]
    latest: Mapping[int, EndpointResult]


def _worst(
    groups: Mapping[str, SeverityCounts] | Mapping[str | None, SeverityCounts],
) -> tuple[Group, ...]:
    """Worst first: most critical findings, then most high, ... (then by name)."""
    ordered = sorted(Severity, reverse=True)
    ranked = sorted(
        (Group(name, counts) for name, counts in groups.items()),
        key=lambda g: ([-g.by_severity.get(s, 0) for s in ordered], g.name or ""),
    )
    return tuple(ranked[:WORST_SHOWN])


async def overview(ctx: Context, *, days: int) -> Overview:
    """The overview as of now, with a trend of ``days`` days (today last)."""
    now = ctx.now()
    first_day = (now - timedelta(days=days - 1)).date()
    since = datetime.combine(first_day, datetime.min.time(), tzinfo=UTC)
    async with ctx.read() as session:
        live = await findings.count_by_severity(session)
        spans = await findings.finding_spans(session, since=since)
        results = await runs.latest_endpoint_results(session, finished_since=now - COVERAGE_WINDOW)
        unverified = tuple(
            sorted((r for r in results.values() if not r.verified), key=lambda r: r.endpoint_id)
        )
        found = await inventory.select_endpoints(
            session, EndpointFilter(), [r.endpoint_id for r in unverified]
        )
        owners = await findings.count_by_owner(session)
        tags = await findings.count_by_tag(session)
    return Overview(
        live=live,
        trend=tuple(live_per_day(spans, last_day=now.date(), days=days)),
        coverage=Coverage(len(results), unverified, {e.id: e for e in found}),
        worst_owners=_worst(owners),
        worst_tags=_worst({tag: counts for tag, counts in tags.items()}),
    )


async def endpoint_facts(ctx: Context, endpoint_ids: Sequence[int]) -> EndpointFacts:
    """Live findings and latest result of each of ``endpoint_ids`` (a page of them)."""
    async with ctx.read() as session:
        live = await findings.count_by_endpoint(session, endpoint_ids)
        latest = await runs.latest_endpoint_results(session, endpoint_ids=endpoint_ids)
    return EndpointFacts(live, latest)


async def endpoints_by_id(ctx: Context, endpoint_ids: Sequence[int]) -> dict[int, EndpointRecord]:
    """The endpoints of ``endpoint_ids`` that are still in the inventory (disabled ones too)."""
    if not endpoint_ids:
        return {}
    async with ctx.read() as session:
        found = await inventory.select_endpoints(session, EndpointFilter(), endpoint_ids)
    return {e.id: e for e in found}


async def owners_and_tags(ctx: Context) -> tuple[list[str], list[str]]:
    """Every owner and every tag of the inventory, sorted (what filters can choose from)."""
    async with ctx.read() as session:
        return await inventory.owners_and_tags(session)


__all__ = [
    "COVERAGE_WINDOW",
    "TREND_DAYS",
    "Coverage",
    "EndpointFacts",
    "Group",
    "Overview",
    "endpoint_facts",
    "endpoints_by_id",
    "overview",
    "owners_and_tags",
]
