"""What every page's template knows: who is signed in, what they may do, the CSRF token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from scanner.dashboard import wiring
from scanner.dashboard.session import current
from scanner.db.tokens import Scope
from scanner.settings import Settings
from scanner.usecases import Context

NOTICES = {
    "suppressed": "Finding suppressed. It left the live list; its history records the decision.",
    "accepted": "Risk accepted until the date you gave. The decision is in the audit log.",
    "open": "Finding reopened: it is live again.",
    "started": "Run queued. Its progress updates below as workers pick it up.",
    "signed-out": "You are signed out.",
}


async def page_context(request: web.Request) -> dict[str, Any]:
    """The context processor: ``me``, ``can_write``, ``csrf``, ``path``, ``notice``."""
    found = current(request)
    notice = NOTICES.get(request.query.get("notice", ""))
    return {
        "me": found.token if found is not None else None,
        "can_write": found is not None and found.token.allows(Scope.WRITE),
        "csrf": found.csrf_token if found is not None else "",
        "path": request.path,
        "notice": notice,
        "nav": "",
    }


async def render(
    template: str, request: web.Request, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    """``template`` rendered with ``context`` and what every page knows (:func:`page_context`)."""
    merged = {**await page_context(request), **context}
    return aiohttp_jinja2.render_template(template, request, merged, status=status)


def use_cases(request: web.Request) -> Context:
    """What the use cases run against."""
    return wiring.context(request.app)


def settings(request: web.Request) -> Settings:
    return wiring.context(request.app).settings


def page_size(request: web.Request) -> int:
    return settings(request).page_size


def cursor(request: web.Request) -> str | None:
    value = request.query.get("cursor")
    return value if value and len(value) <= 200 else None


def one(request: web.Request, name: str, limit: int = 200) -> str | None:
    """A single, stripped, bounded query value (None when absent or empty)."""
    value = request.query.get(name, "").strip()
    return value[:limit] or None


def path_id(request: web.Request) -> int:
    """The ``{id}`` of the path (routes match digits only)."""
    value = int(request.match_info["id"])
    if value > 2**31 - 1:
        raise web.HTTPNotFound()
    return value


def with_query(request: web.Request, **changes: str | None) -> str:
    """This page's URL with some query parameters changed (None removes one)."""
    query = request.rel_url.query.copy()
    for name, value in changes.items():
        query.popall(name, None)
        if value is not None:
            query[name] = value
    return str(request.rel_url.with_query(query))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
