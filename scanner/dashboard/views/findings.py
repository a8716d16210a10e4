"""Findings: the filtered list (shareable URLs), one finding's page, and triage."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from aiohttp import web

from scanner.core.catalogue import CATALOGUE
from scanner.core.lifecycle import FindingStatus
from scanner.core.severity import Severity
from scanner.dashboard import pages
from scanner.dashboard.session import current, requires
from scanner.dashboard.views.context import (
    cursor,
    one,
    page_size,
    path_id,
    render,
    use_cases,
    with_query,
)
from scanner.db.findings import LIVE_UNSILENCED
from scanner.db.tokens import Scope
from scanner.errors import FieldError, ValidationError
from scanner.usecases.triage import Decision

TRIAGE_ACTIONS = ("suppressed", "accepted", "open")
MAX_REASON = 2000


def _filters(request: web.Request) -> pages.FindingFilters:
    errors: list[FieldError] = []
    statuses: list[FindingStatus] = []
    values = request.query.getall("status", [])
    everything = "any" in values
    for value in [] if everything else values:
        for part in value.split(","):
            try:
                statuses.append(FindingStatus(part.strip()))
            except ValueError:
                errors.append(FieldError("status", f"{part.strip()!r} is not a status"))
    severity = one(request, "severity")
    min_severity = None
    if severity is not None:
        try:
            min_severity = Severity(severity)
        except ValueError:
            errors.append(FieldError("severity", f"{severity!r} is not a severity"))
    rule = one(request, "rule")
    if rule is not None and rule not in CATALOGUE:
        errors.append(FieldError("rule", f"{rule!r} is not a rule id"))
    ids: dict[str, int | None] = {}
    for name in ("endpoint", "run"):
        text = one(request, name)
        ids[name] = None
        if text is not None:
            if not text.isdigit() or int(text) > 2**31 - 1:
                errors.append(FieldError(name, "must be an id"))
            else:
                ids[name] = int(text)
    if errors:
        raise ValidationError(errors)
    return pages.FindingFilters(
        statuses=() if everything else tuple(dict.fromkeys(statuses)) or LIVE_UNSILENCED,
        min_severity=min_severity,
        owner=one(request, "owner"),
        tag=one(request, "tag"),
        rule_id=rule,
        endpoint_id=ids["endpoint"],
        run_id=ids["run"],
    )


@requires(Scope.READ)
async def list_findings(request: web.Request) -> web.StreamResponse:
    filters = _filters(request)
    ctx = use_cases(request)
    page = await pages.list_findings(ctx, filters, limit=page_size(request), cursor=cursor(request))
    choices = await pages.filter_choices(ctx)
    chosen = {s.value for s in filters.statuses}
    context = {
        "items": page.items,
        "next_url": with_query(request, cursor=page.next_cursor) if page.next_cursor else None,
        "first_url": with_query(request, cursor=None) if cursor(request) else None,
        "filters": filters,
        "statuses": [(s.value, s.value in chosen) for s in FindingStatus],
        "any_status": not filters.statuses,
        "live_only": filters.statuses == LIVE_UNSILENCED,
        "choices": choices,
        "nav": "findings",
    }
    return await render("findings/list.html", request, context)


@requires(Scope.READ)
async def show_finding(request: web.Request) -> web.StreamResponse:
    doc = await pages.finding_page(use_cases(request), path_id(request))
    context = {**doc, "nav": "findings", "today": datetime.now(UTC).date().isoformat()}
    return await render("findings/detail.html", request, context)


def _until(text: str) -> datetime | None:
    """An expiry date (``YYYY-MM-DD``): the decision holds until that day starts (UTC)."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValidationError([FieldError("until", "must be a date, e.g. 2027-01-31")]) from None
    until = datetime.combine(day, time.min, tzinfo=UTC)
    if until <= datetime.now(UTC):
        raise ValidationError([FieldError("until", "must be a date in the future")])
    return until


@requires(Scope.WRITE)
async def triage(request: web.Request) -> web.StreamResponse:
    """Suppress, accept a risk (with an expiry), or reopen; the audit log records who and why."""
    form = await request.post()
    action = form.get("action")
    if action not in TRIAGE_ACTIONS:
        raise ValidationError([FieldError("action", "choose suppress, accept or reopen")])
    reason = form.get("reason")
    reason_text = reason.strip()[:MAX_REASON] if isinstance(reason, str) else ""
    until_field = form.get("until")
    until = _until(until_field.strip() if isinstance(until_field, str) else "")
    if action == "open":
        until = None
    found = current(request)
    assert found is not None  # @requires
    finding_id = path_id(request)
    await pages.triage_finding(
        use_cases(request),
        finding_id,
        decision=Decision(action),
        reason=reason_text,
        until=until,
        actor=found.token.name,
    )
    raise web.HTTPSeeOther(f"/findings/{finding_id}?notice={action}")
