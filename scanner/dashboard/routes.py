"""The dashboard's pages, on one screen. Every route is named ``dashboard.*`` (see security.py)."""

from __future__ import annotations

from aiohttp import web

from scanner.dashboard.security import CSP_REPORT_PATH, csp_report
from scanner.dashboard.views import alerts, auth, endpoints, findings, overview, runs
from scanner.dashboard.views.context import Handler

ID = "{id:[0-9]{1,10}}"


async def favicon(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/static/logo.svg")


PAGES: tuple[tuple[str, str, str, Handler], ...] = (
    ("GET", "/", "overview", overview.overview),
    ("GET", "/login", "login_form", auth.login_form),
    ("POST", "/login", "login", auth.login),
    ("POST", "/logout", "logout", auth.logout),
    ("GET", "/findings", "findings", findings.list_findings),
    ("GET", f"/findings/{ID}", "finding", findings.show_finding),
    ("POST", f"/findings/{ID}/triage", "triage", findings.triage),
    ("GET", "/endpoints", "endpoints", endpoints.list_endpoints),
    ("GET", f"/endpoints/{ID}", "endpoint", endpoints.show_endpoint),
    ("GET", "/runs", "runs", runs.list_runs),
    ("POST", "/runs", "start_run", runs.start_run),
    ("GET", f"/runs/{ID}", "run", runs.show_run),
    ("GET", f"/runs/{ID}/progress", "run_progress", runs.run_progress),
    ("GET", "/regressions", "regressions", alerts.regressions),
    ("GET", f"/hooks/{ID}", "hook", alerts.hook),
    ("POST", CSP_REPORT_PATH, "csp_report", csp_report),
    ("GET", "/favicon.ico", "favicon", favicon),
)


def add_routes(app: web.Application, static_dir: str) -> None:
    """Register every page, and the stylesheet and script under ``/static/``."""
    for method, path, name, handler in PAGES:
        app.router.add_route(method, path, handler, name=f"dashboard.{name}")
    app.router.add_static("/static/", static_dir, name="dashboard.static", append_version=False)
