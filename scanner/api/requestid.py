"""A request id on every API request: in its log lines and echoed as ``X-Request-Id``.

A client (or the proxy in front of us) may send its own ``X-Request-Id`` so
one id follows a request across systems; we keep it when it is a plain token
of at most 128 characters, and make a new one otherwise (a header value is
attacker-controlled text that ends up in logs). The id is bound to the
logging context (:mod:`scanner.logs`) for the whole request, and one access
line is logged per request with method, path, status and duration (health
checks at debug level: probes would drown everything else).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from scanner.logs import log_context

HEADER = "X-Request-Id"
REQUEST_ID_KEY = web.RequestKey("request_id", str)
QUIET_PATHS = frozenset({"/healthz", "/readyz"})  # access lines at debug, not info
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")

access_log = logging.getLogger("scanner.api.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_request_id() -> str:
    """A fresh id: 32 hex digits."""
    return uuid.uuid4().hex


def request_id_of(request: web.Request) -> str:
    """The id of ``request`` (set by the middleware)."""
    return request[REQUEST_ID_KEY]


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind the request id for the request's log lines and log one access line at the end."""
    given = request.headers.get(HEADER, "")
    request_id = given if _ACCEPTED.match(given) else new_request_id()
    request[REQUEST_ID_KEY] = request_id
    started = time.perf_counter()
    status = 500
    with log_context(request_id=request_id):
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:  # redirects raised as exceptions, mostly
            status = exc.status
            exc.headers[HEADER] = request_id
            raise
        finally:
            elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
            # Orchestrators probe these every few seconds: at info they would drown the rest.
            level = logging.DEBUG if request.rel_url.path in QUIET_PATHS else logging.INFO
            # The path only: query strings may carry search terms and URLs.
            access_log.log(
                level,
                "%s %s %d %.1f ms",
                request.method,
                request.rel_url.path,
                status,
                elapsed_ms,
                extra={
                    "method": request.method,
                    "path": request.rel_url.path,
                    "status": status,
                    "duration_ms": elapsed_ms,
                },
            )


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every response we send carries the id, streamed ones too."""
    request_id = request.get(REQUEST_ID_KEY)
    if request_id is not None:
        response.headers[HEADER] = request_id


def install_request_ids(app: web.Application) -> None:
    """Echo the id on every response of ``app`` (the middleware goes first in its list)."""
    app.on_response_prepare.append(echo_request_id)
