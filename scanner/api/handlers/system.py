"""Liveness, readiness, the OpenAPI document and the docs page (no authentication)."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

import scanner
from scanner.api.keys import DATABASE, OPENAPI_CACHE, SETTINGS
from scanner.api.openapi import build_document, render_docs
from scanner.api.problems import Problem
from scanner.api.schemas import (
    AnyJSON,
    Call,
    Obj,
    Operation,
    Ref,
    Reply,
    Str,
    operation,
    problem_reply,
)
from scanner.errors import DatabaseError

log = logging.getLogger("scanner.api.system")

HEALTH = Ref(
    name="Health",
    schema=Obj(
        properties={"status": Str(enum=("ok",)), "version": Str()},
        required=frozenset({"status", "version"}),
    ),
)
READY = Ref(
    name="Ready",
    schema=Obj(
        properties={
            "status": Str(enum=("ready",)),
            "database": Obj(
                properties={"dialect": Str(), "schema": Str()},
                required=frozenset({"dialect", "schema"}),
            ),
        },
        required=frozenset({"status", "database"}),
    ),
)


@operation(
    Operation(
        operation_id="healthz",
        summary="Liveness: the process answers (no database access)",
        tag="system",
        scope=None,
        replies=(Reply(200, "The process is alive.", HEALTH),),
        uses_database=False,
    )
)
async def healthz(call: Call) -> web.Response:
    return web.json_response({"status": "ok", "version": scanner.__version__})


@operation(
    Operation(
        operation_id="readyz",
        summary="Readiness: the database answers and its schema is current",
        tag="system",
        scope=None,
        replies=(
            Reply(200, "Ready to serve.", READY),
            problem_reply(503, "Not ready: the database is unreachable or not migrated."),
        ),
        description="503 with a `not_ready` problem (and `checks`) otherwise.",
    )
)
async def readyz(call: Call) -> web.Response:
    database = call.request.app[DATABASE]
    try:
        status = await database.schema_status()
    except Exception as exc:  # whatever it is, the service is not ready
        # The cause (driver text, addresses, SQL) is for the operator's log: /readyz
        # answers anyone, without a token.
        cause = exc.message if isinstance(exc, DatabaseError) else f"{type(exc).__name__}: {exc}"
        log.warning("not ready: %s", cause)
        raise Problem(
            "not_ready",
            "the database is unreachable; the service's log says why",
            extra={"checks": {"database": "unreachable"}},
        ) from None
    if not status.is_current:
        raise Problem(
            "not_ready",
            f"the database schema is at {status.current or 'nothing (not migrated)'}, the code "
            f"needs {status.head}: run `cors-scanner db upgrade`",
            extra={
                "checks": {
                    "database": "reachable",
                    "schema": {"current": status.current, "head": status.head},
                }
            },
        )
    return web.json_response(
        {"status": "ready", "database": {"dialect": database.dialect, "schema": status.head}}
    )


def _document(app: web.Application) -> dict[str, Any]:
    cache = app[OPENAPI_CACHE]
    if "document" not in cache:
        cache["document"] = build_document(app, app[SETTINGS])
    document: dict[str, Any] = cache["document"]
    return document


@operation(
    Operation(
        operation_id="openapi",
        summary="This API's OpenAPI 3.1 document",
        tag="system",
        scope=None,
        replies=(Reply(200, "The OpenAPI document.", Obj(additional=AnyJSON())),),
        uses_database=False,
    )
)
async def openapi_json(call: Call) -> web.Response:
    return web.json_response(_document(call.request.app))


@operation(
    Operation(
        operation_id="docs",
        summary="Human-readable API documentation (self-contained HTML)",
        tag="system",
        scope=None,
        replies=(Reply(200, "The docs page.", Str(), media_type="text/html"),),
        uses_database=False,
    )
)
async def docs(call: Call) -> web.Response:
    cache = call.request.app[OPENAPI_CACHE]
    if "html" not in cache:
        cache["html"] = render_docs(_document(call.request.app))
    return web.Response(text=cache["html"], content_type="text/html", charset="utf-8")
