"""Endpoints: the inventory with each endpoint's effective policy, its sources, its last result."""

from __future__ import annotations

from aiohttp import web

from scanner.dashboard import pages
from scanner.dashboard.session import requires
from scanner.dashboard.views.context import (
    cursor,
    one,
    page_size,
    path_id,
    render,
    use_cases,
    with_query,
)
from scanner.db.inventory import EndpointFilter
from scanner.db.tokens import Scope

POLICY_FIELDS = (
    ("allowed_origins", "Allowed origins"),
    ("allow_credentials", "Credentials"),
    ("allowed_methods", "Methods"),
    ("allowed_headers", "Request headers"),
    ("exposed_headers", "Exposed headers"),
    ("max_age", "Preflight max-age"),
    ("public", "Public"),
)


@requires(Scope.READ)
async def list_endpoints(request: web.Request) -> web.StreamResponse:
    flt = EndpointFilter(q=one(request, "q"), owner=one(request, "owner"), tag=one(request, "tag"))
    ctx = use_cases(request)
    page = await pages.list_endpoints(ctx, flt, limit=page_size(request), cursor=cursor(request))
    context = {
        "items": page.items,
        "filters": flt,
        "choices": await pages.filter_choices(ctx),
        "next_url": with_query(request, cursor=page.next_cursor) if page.next_cursor else None,
        "first_url": with_query(request, cursor=None) if cursor(request) else None,
        "nav": "endpoints",
    }
    return await render("endpoints/list.html", request, context)


@requires(Scope.READ)
async def show_endpoint(request: web.Request) -> web.StreamResponse:
    doc = await pages.endpoint_page(use_cases(request), path_id(request))
    context = {"endpoint": doc, "policy_fields": POLICY_FIELDS, "nav": "endpoints"}
    return await render("endpoints/detail.html", request, context)
