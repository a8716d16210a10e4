"""Runs: the list, one run's live progress (polled by run-progress.js), starting one."""

from __future__ import annotations

from aiohttp import web

from scanner.dashboard import pages, wiring
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
from scanner.db.runs import RunStatus
from scanner.db.tokens import Scope
from scanner.errors import FieldError, ValidationError

POLL_MS = 1000  # how often a running run's page asks for progress


@requires(Scope.READ)
async def list_runs(request: web.Request) -> web.StreamResponse:
    text = one(request, "status")
    status = None
    if text is not None:
        try:
            status = RunStatus(text)
        except ValueError:
            raise ValidationError([FieldError("status", f"{text!r} is not a run status")]) from None
    ctx = use_cases(request)
    page = await pages.list_runs(
        ctx, status=status, limit=page_size(request), cursor=cursor(request)
    )
    context = {
        "items": page.items,
        "status": status.value if status else None,
        "statuses": [s.value for s in RunStatus],
        "choices": await pages.filter_choices(ctx),
        "next_url": with_query(request, cursor=page.next_cursor) if page.next_cursor else None,
        "first_url": with_query(request, cursor=None) if cursor(request) else None,
        "nav": "runs",
    }
    return await render("runs/list.html", request, context)


@requires(Scope.READ)
async def show_run(request: web.Request) -> web.StreamResponse:
    doc = await pages.run_page(use_cases(request), path_id(request))
    final = RunStatus(doc["status"]).final
    context = {"run": doc, "final": final, "poll_ms": POLL_MS, "nav": "runs"}
    return await render("runs/detail.html", request, context)


@requires(Scope.READ)
async def run_progress(request: web.Request) -> web.StreamResponse:
    """The run as ``GET /api/v1/scans/{id}`` returns it, for the page's poller."""
    doc = await pages.run_progress(use_cases(request), path_id(request))
    return web.json_response(doc)


@requires(Scope.WRITE)
async def start_run(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    tag = form.get("tag")
    owner = form.get("owner")
    found = current(request)
    assert found is not None  # @requires
    doc = await pages.start_run(
        use_cases(request),
        tag=tag.strip() or None if isinstance(tag, str) else None,
        owner=owner.strip() or None if isinstance(owner, str) else None,
        actor=found.token.name,
    )
    wiring.wake_worker(request.app)
    raise web.HTTPSeeOther(f"/runs/{doc['id']}?notice=started")
