"""The web dashboard, served by ``serve`` at ``/``: server-rendered pages over the API's layer.

Layout:

- ``routes.py``: the page table, on one screen; ``wiring.py``: the app's keys;
- ``session.py``: signing in with a token, the session cookie, CSRF;
- ``security.py``: the headers every page carries (CSP, no-store,
  frame-ancestors), the session lookup, error pages, CSP reports;
- ``pages.py``: what each page reads and changes, through the use cases
  (``scanner.usecases``) and in the API's JSON shapes (``scanner.shapes``);
- ``views/``: one module per section (overview, findings, endpoints, runs,
  alerts, sign-in), each turning a request into a template's context;
- ``charts.py``: the trend chart as SVG geometry;
- ``templates/`` and ``static/``: Jinja2 templates (autoescaped) and the one
  stylesheet and one script, shipped inside the package: no CDN, no web
  fonts, nothing fetched from elsewhere.

:func:`setup_dashboard` mounts it on the API application (``create_app``
calls it); it adds routes and one middleware that touches only the
dashboard's own requests.
"""

from __future__ import annotations

from collections import deque
from importlib.resources import files

import aiohttp_jinja2
import jinja2
from aiohttp import web

from scanner.dashboard import formatting
from scanner.dashboard.routes import add_routes
from scanner.dashboard.security import CSP_REPORTS, MAX_KEPT_REPORTS, dashboard_middleware
from scanner.dashboard.wiring import WIRING, Wiring
from scanner.throttle import FailedAuthGuard
from scanner.usecases import Context
from scanner.worker import Worker

TEMPLATES = files("scanner.dashboard") / "templates"
STATIC = files("scanner.dashboard") / "static"


def setup_dashboard(
    app: web.Application,
    *,
    context: web.AppKey[Context],
    worker: web.AppKey[Worker],
    auth_guard: web.AppKey[FailedAuthGuard] | None = None,
) -> None:
    """Mount the dashboard on ``app`` (before it starts), given the app's keys of its parts."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("scanner.dashboard", "templates"),
        autoescape=jinja2.select_autoescape(("html", "svg"), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(formatting.FILTERS)
    env.globals.update(formatting.GLOBALS)
    app[CSP_REPORTS] = deque(maxlen=MAX_KEPT_REPORTS)
    app[WIRING] = Wiring(context=context, worker=worker, auth_guard=auth_guard)
    app.middlewares.append(dashboard_middleware)
    add_routes(app, str(STATIC))


__all__ = ["setup_dashboard"]
