"""What each dashboard page shows: use cases called, their records rendered by ``scanner.shapes``.

Every read goes through ``scanner.usecases`` (the layer the REST API and the
command line use) and every document is the API's JSON shape, so a page
shows exactly what ``/api/v1`` would; nothing here touches the database.
A page may call several use cases (a findings page also needs the findings'
endpoints): each is one short transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scanner import shapes
from scanner.core.browser import console_message
from scanner.core.catalogue import CATALOGUE
from scanner.core.lifecycle import FindingStatus
from scanner.core.severity import Severity
from scanner.db.findings import LIVE_UNSILENCED, FindingQuery
from scanner.db.inventory import EndpointFilter
from scanner.db.runs import FindingFilter, RunSelection, RunStatus, RunTrigger
from scanner.errors import FieldError, ValidationError
from scanner.usecases import Context, hooks, inventory, overview, runs, triage

JSON = dict[str, Any]
MAX_LISTED = 500  # a run's findings and a finding's evidence search, on one page
BLOCKED_PREFIXES = ("blocked: ", "preflight fails: ")


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of documents and the cursor of the next (None: the last page)."""

    items: list[JSON]
    next_cursor: str | None


async def _endpoints(ctx: Context, ids: list[int]) -> dict[int, JSON]:
    found = await overview.endpoints_by_id(ctx, sorted(set(ids)))
    return {i: shapes.endpoint_json(e) for i, e in found.items()}


# -- overview --------------------------------------------------------------------


async def overview_page(ctx: Context, *, days: int) -> JSON:
    """The overview and the last runs with their outcome."""
    doc = shapes.overview_json(await overview.overview(ctx, days=days))
    recent = await runs.list_runs(ctx, limit=6)
    return {**doc, "runs": [shapes.run_json(r) for r in recent.items]}


# -- findings --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FindingFilters:
    """The findings list's filters, as the shareable URL carries them."""

    statuses: tuple[FindingStatus, ...] = LIVE_UNSILENCED
    min_severity: Severity | None = None
    owner: str | None = None
    tag: str | None = None
    rule_id: str | None = None
    endpoint_id: int | None = None
    run_id: int | None = None


async def list_findings(
    ctx: Context, filters: FindingFilters, *, limit: int, cursor: str | None
) -> ListPage:
    """Tracked findings matching ``filters``, each with its endpoint (``endpoint``, or None)."""
    query = FindingQuery(
        statuses=filters.statuses or None,
        min_severity=filters.min_severity,
        owner=filters.owner,
        tag=filters.tag,
        rule_id=filters.rule_id,
        endpoint_id=filters.endpoint_id,
        run_id=filters.run_id,
    )
    page = await triage.list_findings(ctx, query, limit=limit, cursor=cursor)
    endpoints = await _endpoints(ctx, [f.finding.endpoint_id for f in page.items])
    items = [
        {**shapes.finding_json(f), "endpoint": endpoints.get(f.finding.endpoint_id)}
        for f in page.items
    ]
    return ListPage(items, page.next_cursor)


async def filter_choices(ctx: Context) -> JSON:
    """What the filters can be set to: owners, tags and rules."""
    owners, tags = await overview.owners_and_tags(ctx)
    rules = [{"id": r.id, "title": r.title} for r in sorted(CATALOGUE.values(), key=lambda r: r.id)]
    return {"owners": owners, "tags": tags, "rules": rules}


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


def _rule_json(rule_id: str) -> JSON | None:
    rule = CATALOGUE.get(rule_id)
    if rule is None:
        return None
    return {
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


async def finding_page(ctx: Context, finding_id: int) -> JSON:
    """A finding, its endpoint, its rule, the evidence of the last run that saw it, its history."""
    history = await triage.finding_history(ctx, finding_id)
    f = history.finding.finding
    endpoints = await _endpoints(ctx, [f.endpoint_id])
    seen = await runs.list_run_findings(
        ctx,
        f.last_seen_run,
        FindingFilter(rule_id=f.rule_id, endpoint_id=f.endpoint_id),
        limit=MAX_LISTED,
    )
    latest = next((x for x in seen.items if x.fingerprint == f.fingerprint), None)
    latest_doc = shapes.run_finding_json(latest) if latest else None
    if latest_doc is not None:
        latest_doc["evidence"] = [{**e, "console": console_line(e)} for e in latest_doc["evidence"]]
    return {
        "finding": shapes.finding_json(history.finding),
        "endpoint": endpoints.get(f.endpoint_id),
        "rule": _rule_json(f.rule_id),
        "latest": latest_doc,
        "history": [shapes.event_json(e) for e in history.events],
    }


async def triage_finding(
    ctx: Context,
    finding_id: int,
    *,
    decision: triage.Decision,
    reason: str,
    until: datetime | None,
    actor: str,
) -> JSON:
    """Suppress, accept a risk or reopen: the API's triage use case (audited there)."""
    record = await triage.triage(ctx, finding_id, decision, actor=actor, reason=reason, until=until)
    return shapes.finding_json(record)


# -- endpoints -------------------------------------------------------------------


def _endpoint_doc(view: inventory.EndpointView, facts: overview.EndpointFacts) -> JSON:
    e = view.endpoint
    latest = facts.latest.get(e.id)
    live = facts.live.get(e.id, {})
    return {
        **shapes.endpoint_json(e),
        "effective": shapes.effective_policy_json(e.id, view.effective),
        "live": {"total": sum(live.values()), "by_severity": shapes.severity_counts_json(live)},
        "last_result": shapes.endpoint_result_json(latest) if latest else None,
    }


async def list_endpoints(
    ctx: Context, flt: EndpointFilter, *, limit: int, cursor: str | None
) -> ListPage:
    """Endpoints with their effective policy (and sources), live findings and last result."""
    page = await inventory.list_endpoint_views(ctx, flt, limit=limit, cursor=cursor)
    facts = await overview.endpoint_facts(ctx, [v.endpoint.id for v in page.items])
    return ListPage([_endpoint_doc(v, facts) for v in page.items], page.next_cursor)


async def endpoint_page(ctx: Context, endpoint_id: int) -> JSON:
    """One endpoint with its effective policy, last result and every finding of it."""
    view = await inventory.show_endpoint(ctx, endpoint_id)
    facts = await overview.endpoint_facts(ctx, [endpoint_id])
    found = await triage.list_findings(
        ctx,
        FindingQuery(endpoint_id=endpoint_id, statuses=tuple(FindingStatus)),
        limit=MAX_LISTED,
    )
    return {**_endpoint_doc(view, facts), "findings": [shapes.finding_json(f) for f in found.items]}


# -- runs ------------------------------------------------------------------------


async def list_runs(
    ctx: Context, *, status: RunStatus | None, limit: int, cursor: str | None
) -> ListPage:
    """Runs, newest first, with findings by severity."""
    page = await runs.list_runs(ctx, status=status, limit=limit, cursor=cursor)
    return ListPage([shapes.run_json(r) for r in page.items], page.next_cursor)


async def run_progress(ctx: Context, run_id: int) -> JSON:
    """A run as ``GET /api/v1/scans/{id}`` shows it: status, progress, ETA, findings."""
    view = await runs.show_run(ctx, run_id)
    return shapes.run_json(view.run, view.progress.eta_seconds)


async def run_page(ctx: Context, run_id: int) -> JSON:
    """A run, its findings (worst first, with their endpoints) and the events of its diff."""
    doc = await run_progress(ctx, run_id)
    found = await runs.list_run_findings(ctx, run_id, FindingFilter(), limit=MAX_LISTED)
    events = await runs.list_run_events(ctx, run_id, regressions_only=False, limit=200)
    endpoints = await _endpoints(ctx, [f.endpoint_id for f in found.items])
    findings = sorted(
        (
            {**shapes.run_finding_json(f), "endpoint": endpoints.get(f.endpoint_id)}
            for f in found.items
        ),
        key=lambda f: (Severity(f["severity"]), -f["id"]),
        reverse=True,
    )
    return {
        **doc,
        "run_findings": findings,
        "events": [shapes.event_json(e) for e in events.items],
    }


async def start_run(ctx: Context, *, tag: str | None, owner: str | None, actor: str) -> JSON:
    """Plan a run of the enabled endpoints with ``tag``/``owner`` (all when neither); audited."""
    try:
        planned = await runs.start_run(
            ctx,
            actor=actor,
            selection=RunSelection(tag=tag, owner=owner),
            trigger=RunTrigger.API,
        )
    except ValidationError as exc:
        raise ValidationError(
            [FieldError("selection", "no enabled endpoint matches")]
            if any(e.field == "body" for e in exc.errors)
            else exc.errors
        ) from None
    return shapes.run_json(planned)


# -- regressions and deliveries ------------------------------------------------------


async def list_regressions(ctx: Context, *, limit: int, cursor: str | None) -> ListPage:
    """The regression feed, newest first, each with its endpoint."""
    page = await triage.list_regressions(ctx, limit=limit, cursor=cursor)
    endpoints = await _endpoints(ctx, [e.event.endpoint_id for e in page.items])
    items = [
        {**shapes.event_json(e), "endpoint": endpoints.get(e.event.endpoint_id)} for e in page.items
    ]
    return ListPage(items, page.next_cursor)


async def list_hooks(ctx: Context, *, full_url: bool) -> list[JSON]:
    """Every alert hook (never its secrets; URLs in full for admins only)."""
    return [shapes.hook_json(h, full_url=full_url) for h in await hooks.list_hooks(ctx)]


async def hook_page(
    ctx: Context, hook_id: int, *, limit: int, cursor: str | None, full_url: bool
) -> tuple[JSON, ListPage]:
    """A hook (its URL in full for admins only) and one page of its deliveries, each with
    its attempts."""
    hook = await hooks.get_hook(ctx, hook_id)
    page = await hooks.list_deliveries(ctx, hook_id, limit=limit, cursor=cursor)
    return shapes.hook_json(hook, full_url=full_url), ListPage(
        [shapes.delivery_json(d) for d in page.items], page.next_cursor
    )
