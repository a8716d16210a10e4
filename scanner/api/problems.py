"""Errors as RFC 9457 problem documents (``application/problem+json``) with stable codes.

Every error the API returns has ``type``, ``title``, ``status``, ``detail``
and a machine-readable ``code`` that never changes meaning; validation errors
add ``errors: [{"field", "message"}]`` naming every bad field. ``type`` is a
link into the docs page (``/api/v1/docs#problem-<code>``), where each code is
explained.

The middleware here maps our exception tree (``scanner.errors``) and aiohttp's
own HTTP errors to problems, and turns anything unexpected into a 500 that
says nothing about internals (the traceback goes to the log).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web

from scanner.db.transient import describe, is_transient
from scanner.errors import (
    Conflict,
    DatabaseError,
    FieldError,
    InputError,
    NotFound,
    ScannerError,
    ValidationError,
)

PROBLEM_JSON = "application/problem+json"
# Seconds a client is asked to wait after a database outage: outages we ride out
# (a dropped connection, a lock) last about that long.
DATABASE_RETRY_AFTER_S = 5
DOCS_PATH = "/api/v1/docs"

log = logging.getLogger("scanner.api")


@dataclass(frozen=True, slots=True)
class ProblemCode:
    """A stable error code, its HTTP status and the title every instance carries."""

    code: str
    status: int
    title: str
    explanation: str


# The catalogue of codes, documented on the docs page. Codes are a contract:
# add new ones, never rename or repurpose one.
CODES: dict[str, ProblemCode] = {
    c.code: c
    for c in (
        ProblemCode(
            "validation_failed",
            422,
            "The request is not valid",
            "One or more fields are missing, unknown or malformed; `errors` lists every one "
            "as {field, message}.",
        ),
        ProblemCode(
            "invalid_input",
            400,
            "The input is not valid",
            "A value could not be used (an origin, URL, policy, cursor...); `detail` says which.",
        ),
        ProblemCode(
            "invalid_json",
            400,
            "The body is not valid JSON",
            "The body could not be parsed as one JSON document (syntax error, duplicate key, "
            "NaN/Infinity, or nesting deeper than the limit).",
        ),
        ProblemCode(
            "invalid_encoding",
            400,
            "The body is not valid UTF-8",
            "Request bodies must be UTF-8 encoded text.",
        ),
        ProblemCode(
            "unauthorized",
            401,
            "Authentication required",
            "Send `Authorization: Bearer <token>` with a valid, unrevoked API token.",
        ),
        ProblemCode(
            "forbidden",
            403,
            "The token lacks the required scope",
            "Reads need `read`, changes to endpoints, policies and scans need `write`, tokens "
            "and the audit log need `admin` (admin includes write, write includes read).",
        ),
        ProblemCode("not_found", 404, "Not found", "No such route or stored object."),
        ProblemCode(
            "method_not_allowed",
            405,
            "Method not allowed",
            "The route exists but not with this method; `Allow` lists the ones it has.",
        ),
        ProblemCode(
            "conflict",
            409,
            "Conflict",
            "The object already exists (e.g. an endpoint with the same method and URL) or is "
            "in a state that forbids the change (e.g. cancelling a finished scan).",
        ),
        ProblemCode(
            "body_too_large",
            413,
            "The body is too large",
            "Bodies are limited to CORS_SCANNER_MAX_BODY_BYTES (imports: "
            "CORS_SCANNER_MAX_IMPORT_BYTES).",
        ),
        ProblemCode(
            "unsupported_media_type",
            415,
            "Unsupported media type",
            "Send JSON bodies as `application/json`; imports accept text/csv, application/json "
            "and application/yaml.",
        ),
        ProblemCode(
            "rate_limited",
            429,
            "Too many requests",
            "This token made more requests than CORS_SCANNER_API_RATE_LIMIT_PER_MINUTE allows "
            "(bursts up to CORS_SCANNER_API_RATE_LIMIT_BURST); wait the `Retry-After` seconds.",
        ),
        ProblemCode(
            "internal_error",
            500,
            "Internal server error",
            "Something failed on our side; it has been logged. Retrying may help.",
        ),
        ProblemCode(
            "database_unavailable",
            503,
            "The database is unavailable",
            "The database cannot be reached, dropped the connection, is locked by a long "
            "write, or its schema is not current; retry after the `Retry-After` seconds.",
        ),
        ProblemCode(
            "not_ready",
            503,
            "Not ready",
            "The service cannot serve requests yet: see `detail` and `checks`.",
        ),
    )
}


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.code = CODES[code]
        self.detail = detail
        self.errors = tuple(errors)
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    @classmethod
    def validation(cls, errors: Sequence[FieldError]) -> Problem:
        count = len(errors)
        noun = "field is" if count == 1 else "fields are"
        return cls("validation_failed", f"{count} {noun} not valid", errors=errors)


def problem_response(problem: Problem) -> web.Response:
    """The ``application/problem+json`` response for ``problem``."""
    doc: dict[str, Any] = {
        "type": f"{DOCS_PATH}#problem-{problem.code.code}",
        "title": problem.code.title,
        "status": problem.code.status,
        "detail": problem.detail,
        "code": problem.code.code,
    }
    if problem.errors:
        doc["errors"] = [{"field": e.field, "message": e.message} for e in problem.errors]
    doc.update(problem.extra)
    return web.Response(
        status=problem.code.status,
        body=json.dumps(doc).encode(),
        content_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def from_scanner_error(exc: ScannerError) -> Problem:
    """Our exception tree mapped to codes; validation errors keep every field."""
    if isinstance(exc, ValidationError):
        return Problem.validation(exc.errors)
    if isinstance(exc, InputError):
        return Problem("invalid_input", exc.message)
    if isinstance(exc, NotFound):
        return Problem("not_found", exc.message)
    if isinstance(exc, Conflict):
        return Problem("conflict", exc.message)
    if isinstance(exc, DatabaseError):
        # The message names the database and the fix; it carries no secret
        # (Database hides passwords in URLs).
        return Problem(
            "database_unavailable",
            exc.message,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )
    log.error("unmapped scanner error: %r", exc)
    return Problem("internal_error", "the server failed to handle this request")


def from_http_exception(exc: web.HTTPException) -> Problem:
    """aiohttp's own errors (unknown route, wrong method, body too large) as problems."""
    status = exc.status
    if status == 404:
        return Problem("not_found", "no such route: see /api/v1/openapi.json")
    if status == 405:
        allowed = sorted(getattr(exc, "allowed_methods", ()) or ())
        return Problem(
            "method_not_allowed",
            f"this route does not accept {getattr(exc, 'method', 'this method')}",
            headers={"Allow": ", ".join(allowed)},
        )
    if status == 413:
        return Problem("body_too_large", "the request body is too large")
    if status == 415:
        return Problem("unsupported_media_type", exc.text or "unsupported media type")
    for code in CODES.values():
        if code.status == status:
            return Problem(code.code, exc.reason)
    return _generic(status, exc.reason)


def _generic(status: int, reason: str) -> Problem:
    # A status without a catalogue code (rare: e.g. 400 from the HTTP parser).
    problem = Problem("invalid_input", reason)
    problem.code = ProblemCode(f"http_{status}", status, HTTPStatus(status).phrase, reason)
    return problem


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into a problem document; log and hide unexpected ones."""
    try:
        return await handler(request)
    except Problem as problem:
        return problem_response(problem)
    except ScannerError as exc:
        return problem_response(from_scanner_error(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and successes raised as exceptions pass through
        return problem_response(from_http_exception(exc))
    except Exception as exc:
        if is_transient(exc):
            # The database connection failed (refused, dropped, timed out, locked too
            # long): retryable, and not a bug. The cause goes to the log only, as one
            # line without the statement or its parameters.
            log.warning(
                "database unavailable in %s %s: %s",
                request.method,
                request.rel_url.path,
                describe(exc),
            )
            return problem_response(
                Problem(
                    "database_unavailable",
                    "the database is unavailable; retry later",
                    headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
                )
            )
        log.exception("unhandled error in %s %s", request.method, request.rel_url.path)
        return problem_response(
            Problem("internal_error", "the server failed to handle this request")
        )
