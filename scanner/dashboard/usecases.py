"""What each dashboard page reads and changes, in the API's JSON shapes.

Every read returns the documents the REST API returns (``finding_json``,
``scan_json``, ... from the API's shapes) so a page shows exactly what
``/api/v1`` would, and every query is a storage function of ``scanner.db``:
nothing here writes SQL. Changes (triage, starting a run) go through the
same storage calls as the API's handlers and write the same audit entries.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from scanner.api.handlers.findings import event_json, finding_json
from scanner.api.handlers.hooks import delivery_json, hook_json
from scanner.api.handlers.inventory import effective_json, endpoint_json
from scanner.api.handlers.runs import SEVERITIES, plan_settings, scan_json, stale_after
from scanner.api.handlers.runs import finding_json as run_finding_json
from scanner.api.handlers.system import iso
from scanner.core.browser import console_message
from scanner.core.catalogue import CATALOGUE
from scanner.core.lifecycle import FindingStatus
from scanner.core.severity import Severity
from scanner.core.trend import live_per_day
from scanner.db import audit, inventory, policies, runs, work
from scanner.db import findings as store
from scanner.db import hooks as hook_store
from scanner.db.engine import Database
from scanner.db.findings import FindingQuery
from scanner.db.inventory import EndpointFilter
from scanner.db.runs import FindingFilter, RunSelection, RunStatus, RunTrigger
from scanner.errors import FieldError, ValidationError
from scanner.settings import Settings

JSON = dict[str, Any]
LIVE = tuple(s.value for s in store.LIVE_UNSILENCED)
COVERAGE_WINDOW = timedelta(hours=24)  # "last night": the runs of the last day
WORST_SHOWN = 5


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of documents and the cursor of the next (None: the last page)."""

    items: list[JSON]
    next_cursor: str | None


def _severity_doc(counts: dict[Severity, int]) -> dict[str, int]:
    return {s: counts.get(Severity(s), 0) for s in SEVERITIES}


def _ranked(groups: dict[Any, dict[Severity, int]]) -> list[JSON]:
    """Groups worst first: most critical, then high, ... (a lexicographic severity order)."""
    docs = [
        {"name": name, "by_severity": _severity_doc(c), "total": sum(c.values())}
        for name, c in groups.items()
    ]
    docs.sort(key=lambda d: ([-d["by_severity"][s] for s in SEVERITIES], str(d["name"])))
    return docs[:WORST_SHOWN]


def _endpoints_by_id(records: list[inventory.EndpointRecord]) -> dict[int, JSON]:
    return {e.id: endpoint_json(e) for e in records}


def _result_json(result: runs.EndpointResult | None) -> JSON | None:
    if result is None:
        return None
    return {
        "scan_id": result.scan_id,
        "reachable": result.reachable,
        "probes": result.probe_count,
        "probe_errors": result.probe_errors,
        "unchecked": list(result.unchecked),
        "verified": result.verified,
        "finished_at": iso(result.finished_at),
    }


# -- overview --------------------------------------------------------------------


async def overview(db: Database, *, now: datetime, days: int) -> JSON:
    """Live findings by severity, their trend over ``days``, recent runs, coverage, worst groups."""
    async with db.session() as session, session.begin():
        by_severity = await store.count_by_severity(session)
        first_day = (now - timedelta(days=days - 1)).date()
        since = datetime.combine(first_day, datetime.min.time(), tzinfo=UTC)
        spans = await store.finding_spans(session, since=since)
        recent = await runs.list_runs(session, limit=6, cursor=None)
        counts = await runs.severity_counts(session, [r.id for r in recent.items])
        results = await runs.latest_endpoint_results(session, finished_since=now - COVERAGE_WINDOW)
        unverified = [r for r in results.values() if not r.verified]
        endpoints = _endpoints_by_id(
            await inventory.select_endpoints(
                session, EndpointFilter(), [r.endpoint_id for r in unverified]
            )
        )
        owners = await store.count_by_owner(session)
        tags = await store.count_by_tag(session)
    trend = live_per_day(spans, last_day=now.date(), days=days)
    return {
        "live": {"total": sum(by_severity.values()), "by_severity": _severity_doc(by_severity)},
        "trend": [{"day": d.day.isoformat(), "live": d.live} for d in trend],
        "runs": [scan_json(replace(r, severity_counts=counts.get(r.id, {}))) for r in recent.items],
        "coverage": {
            "checked": len(results),
            "unverified": [
                {
                    "endpoint": endpoints.get(r.endpoint_id),
                    "method": r.method,
                    "url": r.url,
                    "endpoint_id": r.endpoint_id,
                    "result": _result_json(r),
                }
                for r in sorted(unverified, key=lambda r: r.endpoint_id)
            ],
        },
        "worst_owners": _ranked({k or "(no owner)": v for k, v in owners.items()}),
        "worst_tags": _ranked(dict(tags)),
    }


# -- findings --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FindingFilters:
    """The findings list's filters, as the shareable URL carries them."""

    statuses: tuple[FindingStatus, ...] = store.LIVE_UNSILENCED
    min_severity: Severity | None = None
    owner: str | None = None
    tag: str | None = None
    rule_id: str | None = None
    endpoint_id: int | None = None
    run_id: int | None = None


async def list_findings(
    db: Database, filters: FindingFilters, *, limit: int, cursor: str | None
) -> ListPage:
    """Tracked findings matching ``filters``, each with its endpoint (``endpoint``, or None)."""
    q = FindingQuery(
        statuses=filters.statuses or None,
        min_severity=filters.min_severity,
        owner=filters.owner,
        tag=filters.tag,
        rule_id=filters.rule_id,
        endpoint_id=filters.endpoint_id,
        run_id=filters.run_id,
    )
    async with db.session() as session, session.begin():
        page = await store.list_findings(session, q, limit=limit, cursor=cursor)
        endpoints = _endpoints_by_id(
            await inventory.select_endpoints(
                session, EndpointFilter(), [f.finding.endpoint_id for f in page.items]
            )
        )
    items = [
        {**finding_json(f), "endpoint": endpoints.get(f.finding.endpoint_id)} for f in page.items
    ]
    return ListPage(items, page.next_cursor)


async def filter_choices(db: Database) -> JSON:
    """What the findings filters can be set to: owners, tags and rules."""
    async with db.session() as session, session.begin():
        owners, tags = await inventory.owners_and_tags(session)
    rules = [{"id": r.id, "title": r.title} for r in sorted(CATALOGUE.values(), key=lambda r: r.id)]
    return {"owners": owners, "tags": tags, "rules": rules}


async def finding_detail(db: Database, finding_id: int) -> JSON:
    """A finding, its endpoint, its rule, the evidence of the last run that saw it, its history."""
    async with db.session() as session, session.begin():
        record = await store.get_finding(session, finding_id)
        f = record.finding
        history = await store.finding_history(session, finding_id)
        found = await inventory.select_endpoints(session, EndpointFilter(), [f.endpoint_id])
        seen = await runs.list_run_findings(
            session,
            f.last_seen_run,
            FindingFilter(rule_id=f.rule_id, endpoint_id=f.endpoint_id),
            limit=500,
            cursor=None,
        )
    latest = next((x for x in seen.items if x.fingerprint == f.fingerprint), None)
    rule = CATALOGUE.get(f.rule_id)
    latest_doc = run_finding_json(latest) if latest else None
    if latest_doc is not None:
        latest_doc["evidence"] = [{**e, "console": console_line(e)} for e in latest_doc["evidence"]]
    return {
        "finding": finding_json(record),
        "endpoint": endpoint_json(found[0]) if found else None,
        "rule": (
            {
                "id": rule.id,
                "title": rule.title,
                "cwe": rule.cwe,
                "description": rule.description,
                "remediation": {
                    "express": rule.remediation.express,
                    "nginx": rule.remediation.nginx,
                    "apache": rule.remediation.apache,
                    "generic": rule.remediation.generic,
                },
            }
            if rule
            else None
        ),
        "latest": latest_doc,
        "history": [event_json(e) for e in history],
    }


BLOCKED_PREFIXES = ("blocked: ", "preflight fails: ")


def console_line(evidence: JSON) -> str | None:
    """What Chromium's console prints for a blocked probe of this evidence (None: not blocked)."""
    verdict = str(evidence.get("verdict") or "")
    for prefix in BLOCKED_PREFIXES:
        if verdict.startswith(prefix):
            request = evidence.get("request") or {}
            return console_message(
                str(request.get("url") or ""),
                str(evidence.get("origin") or ""),
                verdict[len(prefix) :],
            )
    return None


async def triage_finding(
    db: Database,
    finding_id: int,
    *,
    status: str,
    reason: str,
    until: datetime | None,
    actor: str,
    now: datetime,
) -> JSON:
    """Suppress or accept (``status`` suppressed/accepted) or reopen (``open``); audited."""
    if status != "open" and not reason.strip():
        raise ValidationError([FieldError("reason", "say why")])
    async with db.session() as session, session.begin():
        record, event = await store.triage(
            session,
            finding_id,
            status=status,
            by=actor,
            reason=reason.strip(),
            until=until,
            now=now,
        )
        await audit.record(
            session,
            actor=actor,
            action=f"finding.{status}",
            target_type="finding",
            target_id=str(record.id),
            detail={"reason": reason.strip(), "until": iso(until), "event": event.kind.value},
        )
    return finding_json(record)


# -- endpoints -------------------------------------------------------------------


async def list_endpoints(
    db: Database, flt: EndpointFilter, *, limit: int, cursor: str | None
) -> ListPage:
    """Endpoints with their effective policy (and sources), live findings and last result."""
    async with db.session() as session, session.begin():
        page = await inventory.list_endpoints(session, flt, limit=limit, cursor=cursor)
        ids = [e.id for e in page.items]
        effective = await policies.effective_policies(session, list(page.items))
        live = await store.count_by_endpoint(session, ids)
        results = await runs.latest_endpoint_results(session, endpoint_ids=ids)
    items = [
        {
            **endpoint_json(e),
            "effective": effective_json(e.id, effective[e.id]),
            "live": {
                "total": sum(live.get(e.id, {}).values()),
                "by_severity": _severity_doc(live.get(e.id, {})),
            },
            "last_result": _result_json(results.get(e.id)),
        }
        for e in page.items
    ]
    return ListPage(items, page.next_cursor)


async def endpoint_detail(db: Database, endpoint_id: int) -> JSON:
    """One endpoint with its effective policy, last result and live findings."""
    async with db.session() as session, session.begin():
        record = await inventory.get_endpoint(session, endpoint_id)
        effective = await policies.effective_policy(session, record)
        results = await runs.latest_endpoint_results(session, endpoint_ids=[endpoint_id])
        page = await store.list_findings(
            session,
            FindingQuery(endpoint_id=endpoint_id, statuses=tuple(FindingStatus)),
            limit=200,
        )
    return {
        **endpoint_json(record),
        "effective": effective_json(record.id, effective),
        "last_result": _result_json(results.get(endpoint_id)),
        "findings": [finding_json(f) for f in page.items],
    }


# -- runs ------------------------------------------------------------------------


async def list_runs(
    db: Database, *, status: RunStatus | None, limit: int, cursor: str | None
) -> ListPage:
    """Runs, newest first, with findings by severity."""
    async with db.session() as session, session.begin():
        page = await runs.list_runs(session, limit=limit, cursor=cursor, status=status)
        counts = await runs.severity_counts(session, [s.id for s in page.items])
    items = [scan_json(replace(s, severity_counts=counts.get(s.id, {}))) for s in page.items]
    return ListPage(items, page.next_cursor)


async def run_progress(db: Database, settings: Settings, run_id: int) -> JSON:
    """A run as ``GET /api/v1/scans/{id}`` shows it: status, progress, ETA, findings."""
    async with db.session() as session, session.begin():
        scan = await runs.get_run(session, run_id)
        progress = await work.run_progress(session, scan, stale_after=stale_after(settings))
    return scan_json(scan, progress.eta_seconds)


async def run_detail(db: Database, settings: Settings, run_id: int) -> JSON:
    """A run, its findings (worst first) and the events its diff recorded."""
    doc = await run_progress(db, settings, run_id)
    async with db.session() as session, session.begin():
        found = await runs.list_run_findings(
            session, run_id, FindingFilter(), limit=500, cursor=None
        )
        events = await store.list_events(session, regressions_only=False, run_id=run_id, limit=200)
        endpoints = _endpoints_by_id(
            await inventory.select_endpoints(
                session, EndpointFilter(), [f.endpoint_id for f in found.items]
            )
        )
    findings = sorted(
        ({**run_finding_json(f), "endpoint": endpoints.get(f.endpoint_id)} for f in found.items),
        key=lambda f: (Severity(f["severity"]), -f["id"]),
        reverse=True,
    )
    return {**doc, "run_findings": findings, "events": [event_json(e) for e in events.items]}


async def start_run(
    db: Database, settings: Settings, *, tag: str | None, owner: str | None, actor: str
) -> JSON:
    """Plan a run of the enabled endpoints with ``tag``/``owner`` (all when neither); audited."""
    selection = RunSelection(tag=tag, owner=owner)
    async with db.session() as session, session.begin():
        chosen = await inventory.select_endpoints(session, EndpointFilter(tag=tag, owner=owner))
        if not chosen:
            raise ValidationError([FieldError("selection", "no enabled endpoint matches")])
        planned = await work.plan_run(
            session,
            selection=selection,
            trigger=RunTrigger.API,
            requested_by=actor,
            settings=plan_settings(settings),
        )
        assert planned is not None  # only a schedule's tick can already exist
        await audit.record(
            session,
            actor=actor,
            action="scan.create",
            target_type="scan",
            target_id=str(planned.id),
            detail={"selection": selection.to_json(), "endpoints": len(chosen)},
        )
    return scan_json(replace(planned, severity_counts=dict.fromkeys(SEVERITIES, 0)))


# -- regressions and deliveries ------------------------------------------------------


async def list_regressions(db: Database, *, limit: int, cursor: str | None) -> ListPage:
    """The regression feed, newest first, each with its endpoint."""
    async with db.session() as session, session.begin():
        page = await store.list_events(session, limit=limit, cursor=cursor)
        endpoints = _endpoints_by_id(
            await inventory.select_endpoints(
                session, EndpointFilter(), [e.event.endpoint_id for e in page.items]
            )
        )
    items = [{**event_json(e), "endpoint": endpoints.get(e.event.endpoint_id)} for e in page.items]
    return ListPage(items, page.next_cursor)


async def list_hooks(db: Database) -> list[JSON]:
    """Every alert hook (never its secrets)."""
    async with db.session() as session, session.begin():
        return [hook_json(h) for h in await hook_store.list_hooks(session)]


async def hook_deliveries(
    db: Database, hook_id: int, *, limit: int, cursor: str | None
) -> tuple[JSON, ListPage]:
    """A hook and one page of its deliveries, each with its attempts."""
    async with db.session() as session, session.begin():
        hook = await hook_store.get_hook(session, hook_id)
        page = await hook_store.list_deliveries(session, hook_id, limit=limit, cursor=cursor)
    return hook_json(hook), ListPage([delivery_json(d) for d in page.items], page.next_cursor)
