"""The OpenAPI 3.1 document and the human docs page, both built from the live route table.

Every route registered on the application carries the
:class:`~scanner.api.schemas.Operation` its handler validates with; the
document renders those same schema objects, so what is published is what is
enforced. Error responses are added from what an operation does: a scope
means 401/403, path parameters 404, parameters or a body 422, a body
400/413/415, a database 503.

The docs page is one self-contained HTML file (inline CSS, no scripts, no
CDN): the routes with their scopes, parameters, bodies and responses, and the
catalogue of problem codes that ``type`` links point into.
"""

from __future__ import annotations

import html
import json
from typing import Any

from aiohttp import web

import scanner
from scanner.api.problems import CODES
from scanner.api.schemas import (
    PROBLEM,
    Components,
    Operation,
    Param,
    Reply,
    operation_of,
    problem_reply,
)
from scanner.settings import Settings

OPENAPI_VERSION = "3.1.0"
SECURITY_SCHEME = "bearerToken"

TAGS = (
    ("endpoints", "The inventory of API endpoints to scan."),
    ("policies", "The CORS policy each endpoint should have: default, per tag, per endpoint."),
    ("scans", "Scans run in the server process, their progress, findings and probes."),
    ("tokens", "API tokens (admin)."),
    ("audit", "Who changed what (admin)."),
    ("system", "Health, readiness and this documentation."),
    ("findings", "Findings across runs, their triage and history, and regressions."),
    ("hooks", "Alert hooks (webhook, Slack, PagerDuty) and their delivery log."),
    ("schedules", "Cron schedules: when runs start by themselves and what they scan."),
    ("workers", "The worker processes that execute runs, live or stale."),
)


def api_operations(app: web.Application) -> list[tuple[str, str, Operation]]:
    """(method, path, operation) for every documented route, in registration order."""
    found: list[tuple[str, str, Operation]] = []
    for route in app.router.routes():
        op = operation_of(route.handler)
        if op is None:
            continue
        path = route.resource.canonical if route.resource is not None else ""
        found.append((route.method, path, op))
    return found


def build_document(app: web.Application, settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this application."""
    components = Components()
    paths: dict[str, dict[str, Any]] = {}
    for method, path, op in api_operations(app):
        paths.setdefault(path, {})[method.lower()] = _operation(op, components, settings)
    PROBLEM.json_schema(components)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "cors-scanner API",
            "version": scanner.__version__,
            "description": (
                "Manage the inventory of endpoints and their CORS policies, run scans and "
                "read their findings. Authenticate with `Authorization: Bearer <token>`; "
                "errors are RFC 9457 problem documents with a stable `code`."
            ),
        },
        "tags": [{"name": n, "description": d} for n, d in TAGS],
        "paths": paths,
        "components": {
            "schemas": components.schemas,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token (csk_...). Scopes: read, write, admin.",
                }
            },
        },
    }


def _param(param: Param, where: str, components: Components, settings: Settings) -> dict[str, Any]:
    schema = param.schema.json_schema(components)
    if where == "query" and param.name == "limit":
        # The page-size bounds are settings, not constants: publish this server's.
        schema = {**schema, "default": settings.page_size, "maximum": settings.max_page_size}
    return {
        "name": param.name,
        "in": where,
        "required": where == "path" or param.required,
        "description": param.description,
        "schema": schema,
    }


def error_replies(op: Operation) -> list[Reply]:
    """The error responses an operation can give, from what it does."""
    replies: list[Reply] = []
    if op.body is not None or op.raw_body is not None:
        replies.append(problem_reply(400, "The body is not valid JSON/UTF-8, or unreadable."))
    if op.scope is not None:
        replies.append(problem_reply(401, "No token, or an unknown or revoked one."))
        replies.append(problem_reply(403, f"The token lacks the {op.scope.value!r} scope."))
        replies.append(problem_reply(429, "Too many requests with this token; see Retry-After."))
    if op.path_params:
        replies.append(problem_reply(404, "No such object."))
    if op.body is not None or op.raw_body is not None:
        replies.append(problem_reply(413, "The body is larger than the server accepts."))
        replies.append(problem_reply(415, "The body's Content-Type is not accepted."))
    if op.query or op.body is not None or op.raw_body is not None:
        replies.append(problem_reply(422, "Invalid fields; `errors` lists every one."))
    if op.uses_database:
        replies.append(problem_reply(503, "The database is unavailable."))
    return replies


def all_replies(op: Operation) -> list[Reply]:
    own = {r.status for r in op.replies}
    return sorted(
        [*op.replies, *(r for r in error_replies(op) if r.status not in own)],
        key=lambda r: r.status,
    )


def _operation(op: Operation, components: Components, settings: Settings) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
    }
    description = op.description
    if op.scope is not None:
        description = f"{description}\n\nRequires the `{op.scope.value}` scope.".strip()
        doc["security"] = [{SECURITY_SCHEME: []}]
        doc["x-required-scope"] = op.scope.value
    else:
        doc["security"] = []
    if description:
        doc["description"] = description
    params = [_param(p, "path", components, settings) for p in op.path_params]
    params += [_param(p, "query", components, settings) for p in op.query]
    if params:
        doc["parameters"] = params
    if op.body is not None:
        doc["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": op.body.json_schema(components)}},
        }
    elif op.raw_body is not None:
        doc["requestBody"] = {
            "required": True,
            "description": op.raw_body.description,
            # A file, not a value: CSV is text; a JSON or YAML document may hold anything
            # (the importer reports what it cannot use, row by row).
            "content": {
                m: {"schema": {"type": "string"} if m.startswith("text/csv") else {}}
                for m in op.raw_body.media_types
            },
        }
    responses: dict[str, Any] = {}
    for reply in all_replies(op):
        entry: dict[str, Any] = {"description": reply.description}
        if reply.schema is not None:
            entry["content"] = {reply.media_type: {"schema": reply.schema.json_schema(components)}}
        if reply.headers:
            entry["headers"] = {
                name: {"description": text, "required": True, "schema": {"type": "string"}}
                for name, text in reply.headers.items()
            }
        known = responses.get(str(reply.status))
        if known is not None and "content" in entry:
            # One status, several media types (a report in the format asked for).
            known.setdefault("content", {}).update(entry["content"])
            continue
        responses[str(reply.status)] = entry
    doc["responses"] = responses
    return doc


# -- the docs page -------------------------------------------------------------

_CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330}
header{background:#1d2330;color:#fff;padding:1.2rem 2rem}header h1{margin:0;font-size:1.4rem}
main{max-width:1100px;margin:0 auto;padding:1rem 2rem 4rem}
nav ul{columns:2;list-style:none;padding:0}nav a{text-decoration:none}
section.op{border:1px solid #d8dce6;border-radius:8px;margin:1.2rem 0;padding:.8rem 1rem}
.method{display:inline-block;min-width:4.2rem;font-weight:700;font-family:monospace}
.GET{color:#1769aa}.POST{color:#2e7d32}.PATCH{color:#b26a00}.DELETE{color:#c62828}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px}
pre{background:#f5f7fa;padding:.6rem;border-radius:6px;overflow:auto;max-height:24rem}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #e4e7ee;padding:.3rem;
text-align:left;vertical-align:top}.scope{float:right;font-size:12px;background:#eef1f7;
padding:.1rem .5rem;border-radius:1rem}
"""


def render_docs(document: dict[str, Any]) -> str:
    """A self-contained HTML rendering of the OpenAPI document."""
    schemas = document["components"]["schemas"]
    esc = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>{esc(document['info']['title'])}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{esc(document['info']['title'])} {esc(document['info']['version'])}</h1>",
        f"<p>{esc(document['info']['description'])}</p>",
        "<p>Machine-readable: <a style='color:#9cf' href='/api/v1/openapi.json'>"
        "/api/v1/openapi.json</a> (OpenAPI 3.1)</p></header><main>",
        "<nav><h2>Routes</h2><ul>",
    ]
    ops: list[tuple[str, str, dict[str, Any]]] = [
        (method.upper(), path, op)
        for path, methods in document["paths"].items()
        for method, op in methods.items()
    ]
    for method, path, op in ops:
        parts.append(
            f"<li><a href='#{esc(op['operationId'])}'><span class='method {method}'>{method}"
            f"</span> {esc(path)}</a></li>"
        )
    parts.append("</ul><p><a href='#problems'>Problem codes</a></p></nav>")
    for method, path, op in ops:
        parts.append(f"<section class='op' id='{esc(op['operationId'])}'>")
        scope = op.get("x-required-scope")
        parts.append(f"<span class='scope'>{'scope: ' + esc(scope) if scope else 'public'}</span>")
        parts.append(
            f"<h3><span class='method {method}'>{method}</span> <code>{esc(path)}</code></h3>"
        )
        parts.append(f"<p><strong>{esc(op['summary'])}</strong></p>")
        if op.get("description"):
            parts.append(f"<p>{esc(op['description'])}</p>")
        if op.get("parameters"):
            parts.append("<table><tr><th>parameter</th><th>in</th><th>schema</th><th></th></tr>")
            for p in op["parameters"]:
                parts.append(
                    f"<tr><td><code>{esc(p['name'])}</code>{' *' if p['required'] else ''}</td>"
                    f"<td>{esc(p['in'])}</td><td><code>{esc(json.dumps(p['schema']))}</code></td>"
                    f"<td>{esc(p['description'])}</td></tr>"
                )
            parts.append("</table>")
        body = op.get("requestBody")
        if body:
            for media, content in body["content"].items():
                shown = _inline(content["schema"], schemas)
                parts.append(f"<p>Body (<code>{esc(media)}</code>):</p>")
                parts.append(f"<pre>{esc(json.dumps(shown, indent=2))}</pre>")
        parts.append("<table><tr><th>status</th><th>meaning</th><th>body</th></tr>")
        for status, reply in op["responses"].items():
            content = reply.get("content", {})
            shape = ""
            for media, entry in content.items():
                ref = entry["schema"].get("$ref", "")
                name = ref.rsplit("/", 1)[-1] if ref else "inline"
                shape = f"<code>{esc(media)}</code> {esc(name)}"
            parts.append(
                f"<tr><td>{esc(status)}</td><td>{esc(reply['description'])}</td>"
                f"<td>{shape}</td></tr>"
            )
        parts.append("</table></section>")
    parts.append("<h2 id='schemas'>Shapes</h2>")
    for name, schema in schemas.items():
        parts.append(f"<h3 id='schema-{esc(name)}'>{esc(name)}</h3>")
        parts.append(f"<pre>{esc(json.dumps(schema, indent=2))}</pre>")
    parts.append("<h2 id='problems'>Problem codes</h2><table>")
    parts.append("<tr><th>code</th><th>status</th><th>meaning</th></tr>")
    for code in CODES.values():
        parts.append(
            f"<tr id='problem-{esc(code.code)}'><td><code>{esc(code.code)}</code></td>"
            f"<td>{code.status}</td><td><strong>{esc(code.title)}.</strong> "
            f"{esc(code.explanation)}</td></tr>"
        )
    parts.append("</table></main></body></html>")
    return "".join(parts)


def _inline(schema: dict[str, Any], schemas: dict[str, Any], depth: int = 0) -> Any:
    """A schema with ``$ref``s expanded a few levels deep, for reading."""
    if depth > 4:
        return schema
    if "$ref" in schema:
        return _inline(schemas[schema["$ref"].rsplit("/", 1)[-1]], schemas, depth + 1)
    return {
        k: (
            _inline(v, schemas, depth + 1)
            if isinstance(v, dict)
            else [_inline(i, schemas, depth + 1) if isinstance(i, dict) else i for i in v]
            if isinstance(v, list)
            else v
        )
        for k, v in schema.items()
    }
