"""Regressions and deliveries: the regression feed, each hook's deliveries with their attempts."""

from __future__ import annotations

from aiohttp import web

from scanner.dashboard import pages
from scanner.dashboard.session import current, requires
from scanner.dashboard.views.context import (
    cursor,
    page_size,
    path_id,
    render,
    use_cases,
    with_query,
)
from scanner.db.tokens import Scope


def _is_admin(request: web.Request) -> bool:
    found = current(request)
    return found is not None and found.token.allows(Scope.ADMIN)


@requires(Scope.READ)
async def regressions(request: web.Request) -> web.StreamResponse:
    ctx = use_cases(request)
    page = await pages.list_regressions(ctx, limit=page_size(request), cursor=cursor(request))
    context = {
        "items": page.items,
        "hooks": await pages.list_hooks(ctx, full_url=_is_admin(request)),
        "next_url": with_query(request, cursor=page.next_cursor) if page.next_cursor else None,
        "first_url": with_query(request, cursor=None) if cursor(request) else None,
        "nav": "alerts",
    }
    return await render("alerts/regressions.html", request, context)


@requires(Scope.READ)
async def hook(request: web.Request) -> web.StreamResponse:
    doc, page = await pages.hook_page(
        use_cases(request),
        path_id(request),
        limit=page_size(request),
        cursor=cursor(request),
        full_url=_is_admin(request),
    )
    context = {
        "hook": doc,
        "items": page.items,
        "next_url": with_query(request, cursor=page.next_cursor) if page.next_cursor else None,
        "first_url": with_query(request, cursor=None) if cursor(request) else None,
        "nav": "alerts",
    }
    return await render("alerts/hook.html", request, context)
