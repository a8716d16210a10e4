"""How the dashboard finds the application's use-case context and worker.

The application that mounts the dashboard (``scanner.api.create_app``) owns
those objects and their keys; it hands the keys to :func:`setup_dashboard
<scanner.dashboard.setup_dashboard>`, which keeps them here, so the dashboard
never imports the API it sits beside.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from scanner.throttle import FailedAuthGuard
from scanner.usecases import Context
from scanner.worker import Worker


@dataclass(frozen=True, slots=True)
class Wiring:
    """The application's keys of what the dashboard uses."""

    context: web.AppKey[Context]
    worker: web.AppKey[Worker]
    # The API's failed-authentication guard, when it has one: sign-ins count there too.
    auth_guard: web.AppKey[FailedAuthGuard] | None = None


WIRING = web.AppKey("dashboard_wiring", Wiring)


def context(app: web.Application) -> Context:
    """What the use cases run against (database, settings, clock), set when the app starts."""
    return app[app[WIRING].context]


def auth_guard(app: web.Application) -> FailedAuthGuard | None:
    """The application's failed-authentication guard, or None (no limit configured)."""
    key = app[WIRING].auth_guard
    return app[key] if key is not None and key in app else None


def wake_worker(app: web.Application) -> None:
    """Tell the embedded worker, if the app runs one, that there is work (a new run)."""
    key = app[WIRING].worker
    if key in app:
        app[key].wake()
