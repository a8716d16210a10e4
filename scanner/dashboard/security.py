"""The dashboard's response headers, its session lookup, and its error pages.

One middleware, innermost, that acts only on the dashboard's own routes
(named ``dashboard.*``) and on unknown paths outside the API, so nothing
under ``/api/v1``, ``/healthz``, ``/readyz`` or ``/metrics`` changes:

- every response carries a strict Content-Security-Policy: scripts, styles,
  images and fetches from our own origin only, and never inline (no
  ``'unsafe-inline'``, no ``style=`` attributes, no event-handler
  attributes); forms post only to us; no page may frame us
  (``frame-ancestors 'none'``, and ``X-Frame-Options: DENY`` for old
  browsers); violations are reported to ``/csp-report``;
- pages are ``Cache-Control: no-store`` (they show what a token may see;
  no shared or back-button cache keeps them); static assets may be cached;
- errors (ours and aiohttp's) become an HTML page in the product's look
  instead of the API's problem documents.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from aiohttp import web

from scanner.dashboard import wiring
from scanner.dashboard.session import Forbidden, load_session
from scanner.dashboard.views.context import render
from scanner.errors import Conflict, InputError, NotFound, ScannerError, ValidationError

log = logging.getLogger("scanner.dashboard")

ROUTE_PREFIX = "dashboard."
API_PREFIXES = ("/api/", "/healthz", "/readyz", "/metrics")
CSP_REPORT_PATH = "/csp-report"
MAX_REPORT_BYTES = 16_384

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        f"report-uri {CSP_REPORT_PATH}",
    )
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
STATIC_CACHE = "public, max-age=3600"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _ours(request: web.Request) -> bool:
    name = request.match_info.route.name or ""
    if name.startswith(ROUTE_PREFIX):
        return True
    # An unknown path outside the API: a person typed or followed it.
    return request.match_info.http_exception is not None and not request.path.startswith(
        API_PREFIXES
    )


def _is_static(request: web.Request) -> bool:
    return (request.match_info.route.name or "") == ROUTE_PREFIX + "static"


@web.middleware
async def dashboard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Headers, session and error pages for the dashboard's routes only."""
    if not _ours(request):
        return await handler(request)
    static = _is_static(request)
    try:
        if not static:
            await load_session(request, wiring.context(request.app))
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            response = await error_page(request, exc.status, _http_message(exc))
        else:
            _secure(exc, static=False)  # redirects travel as raised, with our headers
            raise
    except ScannerError as exc:
        status, message = _scanner_error(exc)
        response = await error_page(request, status, message)
    except Exception:
        log.exception("dashboard request failed: %s %s", request.method, request.path)
        response = await error_page(
            request, 500, "The service could not complete this request. Try again in a moment."
        )
    _secure(response, static=static)
    return response


def _secure(response: web.StreamResponse, *, static: bool) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    cacheable = static and response.status == 200
    response.headers["Cache-Control"] = STATIC_CACHE if cacheable else "no-store"


def _http_message(exc: web.HTTPException) -> str:
    if isinstance(exc, Forbidden):
        return exc.message
    if exc.status == 404:
        return "There is no page here. It may have been removed, or the link is mistyped."
    if exc.status == 405:
        return "This page does not accept that kind of request."
    if exc.status == 413:
        return "That form was too large."
    return exc.reason or "Something went wrong."


def _scanner_error(exc: ScannerError) -> tuple[int, str]:
    if isinstance(exc, NotFound):
        return 404, exc.message
    if isinstance(exc, ValidationError):
        return 400, "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
    if isinstance(exc, InputError):
        return 400, exc.message
    if isinstance(exc, Conflict):
        return 409, exc.message
    log.error("dashboard request failed: %s", exc.message)
    return 500, "The service could not complete this request. Try again in a moment."


TITLES = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Conflict"}


async def error_page(request: web.Request, status: int, message: str) -> web.Response:
    """The HTML error page (signed-in navigation included when there is a session)."""
    return await render(
        "error.html",
        request,
        {"status": status, "title": TITLES.get(status, "Error"), "message": message},
        status=status,
    )


async def csp_report(request: web.Request) -> web.Response:
    """Log a Content-Security-Policy violation the browser reports (bounded; never stored)."""
    body = await request.content.read(MAX_REPORT_BYTES + 1)
    if len(body) > MAX_REPORT_BYTES:
        return web.Response(status=413)
    try:
        doc = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return web.Response(status=400)
    report = doc.get("csp-report") if isinstance(doc, dict) else None
    if isinstance(report, dict):
        log.warning(
            "content security policy violation",
            extra={
                "event": "csp.violation",
                "directive": str(report.get("violated-directive", ""))[:200],
                "blocked": str(report.get("blocked-uri", ""))[:200],
                "page": str(report.get("document-uri", ""))[:500],
            },
        )
        request.app[CSP_REPORTS].append(report)
    return web.Response(status=204)


# The newest reports of this process, for the browser test to see what was blocked.
MAX_KEPT_REPORTS = 50
CSP_REPORTS = web.AppKey("csp_reports", deque)
