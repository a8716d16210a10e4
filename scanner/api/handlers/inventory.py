"""The endpoint inventory over HTTP: CRUD, filters, effective policy, and imports."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from scanner.api.app import DATABASE
from scanner.api.auth import current_token
from scanner.api.handlers.system import iso
from scanner.api.paging import PAGE_PARAMS, page_json, page_limit, page_schema
from scanner.api.schemas import (
    MAX_ID,
    Arr,
    Bool,
    Call,
    Int,
    Obj,
    Operation,
    Param,
    RawBody,
    Ref,
    Reply,
    Schema,
    Str,
    operation,
    problem_reply,
)
from scanner.db import audit, inventory
from scanner.db.inventory import (
    MAX_NOTES_LENGTH,
    MAX_QUERY_LENGTH,
    MAX_TAGS,
    MAX_URL_LENGTH,
    EndpointFilter,
    EndpointInput,
    EndpointRecord,
    ImportReport,
    ImportRow,
    RowError,
    normalise_method,
    normalise_tag,
    normalise_url,
)
from scanner.db.policies import POLICY_FIELDS, EffectivePolicy, effective_policy
from scanner.db.tables import METHOD_LENGTH, NAME_LENGTH, OWNER_LENGTH, TAG_LENGTH
from scanner.db.tokens import Scope
from scanner.errors import FieldError, InputError, ValidationError
from scanner.importers.documents import decode, load_json, load_yaml
from scanner.importers.openapi import parse_openapi
from scanner.importers.tabular import parse_csv, parse_json, parse_yaml
from scanner.reports.json import policy_to_json

_ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
# What the document can say about a URL; normalise_url checks the rest.
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\x00-\x20\x7f/?#@]+[^\x00-\x20\x7f#]*$"

ENDPOINT_FIELDS: dict[str, Schema] = {
    "method": Str(
        min_length=1,
        max_length=METHOD_LENGTH,
        semantic=normalise_method,
        description="HTTP method (default GET); stored upper case.",
    ),
    "url": Str(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        pattern=URL_PATTERN,
        semantic=normalise_url,
        description="Absolute http(s) URL; stored in canonical form.",
        example="https://api.example.com/v1/users",
    ),
    "name": Str(max_length=NAME_LENGTH, pattern=_ONE_LINE, nullable=True),
    "owner": Str(max_length=OWNER_LENGTH, pattern=_ONE_LINE, nullable=True),
    "tags": Arr(
        items=Str(min_length=1, max_length=TAG_LENGTH, semantic=normalise_tag),
        max_items=MAX_TAGS,
        nullable=True,
        description="Lower case letters, digits and . _ : / @ + -",
    ),
    "enabled": Bool(description="Disabled endpoints are skipped by scans of tags/owners/all."),
    "notes": Str(max_length=MAX_NOTES_LENGTH, nullable=True),
}

NEW_ENDPOINT = Obj(properties=ENDPOINT_FIELDS, required=frozenset({"url"}))
PATCH_ENDPOINT = Obj(properties=ENDPOINT_FIELDS)

ENDPOINT = Ref(
    name="Endpoint",
    schema=Obj(
        properties={
            "id": Int(),
            "method": Str(),
            "url": Str(),
            "name": Str(nullable=True),
            "owner": Str(nullable=True),
            "tags": Arr(items=Str()),
            "enabled": Bool(),
            "notes": Str(nullable=True),
            "created_at": Str(format="date-time"),
            "updated_at": Str(format="date-time"),
        },
        required=frozenset(
            {
                "id",
                "method",
                "url",
                "name",
                "owner",
                "tags",
                "enabled",
                "notes",
                "created_at",
                "updated_at",
            }
        ),
    ),
)
ENDPOINT_PAGE = page_schema("EndpointPage", ENDPOINT)

_EFFECTIVE_FIELDS: dict[str, Schema] = {
    "allowed_origins": Arr(items=Str()),
    "allow_credentials": Bool(),
    "allowed_methods": Arr(items=Str()),
    "allowed_headers": Arr(items=Str()),
    "exposed_headers": Arr(items=Str()),
    "max_age": Int(nullable=True),
    "public": Bool(),
}
EFFECTIVE = Ref(
    name="EffectivePolicy",
    schema=Obj(
        properties={
            "endpoint_id": Int(),
            "policy": Obj(properties=_EFFECTIVE_FIELDS, required=frozenset(_EFFECTIVE_FIELDS)),
            "sources": Obj(
                properties={name: Str() for name in POLICY_FIELDS},
                required=frozenset(POLICY_FIELDS),
                description=(
                    "Where each field comes from: builtin, default, tag:<tag> "
                    "(several tags merged: tag:a,tag:b) or endpoint."
                ),
            ),
        },
        required=frozenset({"endpoint_id", "policy", "sources"}),
    ),
)

ENDPOINT_ID = Param("id", Int(minimum=1, maximum=MAX_ID), "The endpoint's id.", required=True)


def endpoint_json(e: EndpointRecord) -> dict[str, Any]:
    """The stable JSON shape of an endpoint."""
    return {
        "id": e.id,
        "method": e.method,
        "url": e.url,
        "name": e.name,
        "owner": e.owner,
        "tags": list(e.tags),
        "enabled": e.enabled,
        "notes": e.notes,
        "created_at": iso(e.created_at),
        "updated_at": iso(e.updated_at),
    }


def effective_json(endpoint_id: int, eff: EffectivePolicy) -> dict[str, Any]:
    return {
        "endpoint_id": endpoint_id,
        "policy": policy_to_json(eff.policy),
        "sources": eff.sources,
    }


def _store_errors(body: dict[str, Any], *, partial: bool) -> list[FieldError]:
    # The inventory's own validator, for anything our schema does not know.
    values = dict(body)
    if partial:
        values.setdefault("url", "https://placeholder.invalid/")
    try:
        EndpointInput.validate(values)
    except ValidationError as exc:
        return list(exc.errors)
    return []


@operation(
    Operation(
        operation_id="listEndpoints",
        summary="List endpoints, filtered",
        tag="endpoints",
        scope=Scope.READ,
        query=(
            Param("tag", Str(min_length=1, max_length=TAG_LENGTH), "Only endpoints with this tag."),
            Param("owner", Str(min_length=1, max_length=OWNER_LENGTH), "Only this owner's."),
            Param("enabled", Bool(), "Only enabled (true) or disabled (false) endpoints."),
            Param(
                "q",
                Str(min_length=1, max_length=MAX_QUERY_LENGTH),
                "Case-insensitive substring of the URL or the name.",
            ),
            *PAGE_PARAMS,
        ),
        replies=(Reply(200, "One page of endpoints, in id order.", ENDPOINT_PAGE),),
    )
)
async def list_endpoints(call: Call) -> web.Response:
    flt = EndpointFilter(
        tag=call.query.get("tag"),
        owner=call.query.get("owner"),
        enabled=call.query.get("enabled"),
        q=call.query.get("q"),
    )
    async with call.request.app[DATABASE].session() as session, session.begin():
        page = await inventory.list_endpoints(
            session, flt, limit=page_limit(call), cursor=call.query.get("cursor")
        )
    items = [endpoint_json(e) for e in page.items]
    return web.json_response(page_json(call.request, items, page.next_cursor))


@operation(
    Operation(
        operation_id="createEndpoint",
        summary="Add an endpoint to the inventory",
        tag="endpoints",
        scope=Scope.WRITE,
        body=NEW_ENDPOINT,
        cross_check=lambda body: _store_errors(body, partial=False),
        replies=(
            Reply(201, "Created.", ENDPOINT, headers={"Location": "The endpoint's URL."}),
            problem_reply(409, "An endpoint with this method and URL exists."),
        ),
    )
)
async def create_endpoint(call: Call) -> web.Response:
    token = current_token(call.request)
    data = EndpointInput.validate(call.body)
    async with call.request.app[DATABASE].session() as session, session.begin():
        record = await inventory.create_endpoint(session, data)
        await audit.record(
            session,
            actor=token.name,
            action="endpoint.create",
            target_type="endpoint",
            target_id=str(record.id),
            detail={"method": record.method, "url": record.url},
        )
    return web.json_response(
        endpoint_json(record),
        status=201,
        headers={"Location": f"/api/v1/endpoints/{record.id}"},
    )


@operation(
    Operation(
        operation_id="getEndpoint",
        summary="One endpoint",
        tag="endpoints",
        scope=Scope.READ,
        path_params=(ENDPOINT_ID,),
        replies=(Reply(200, "The endpoint.", ENDPOINT),),
    )
)
async def get_endpoint(call: Call) -> web.Response:
    async with call.request.app[DATABASE].session() as session, session.begin():
        record = await inventory.get_endpoint(session, call.path["id"])
    return web.json_response(endpoint_json(record))


@operation(
    Operation(
        operation_id="updateEndpoint",
        summary="Change some fields of an endpoint (`tags` replaces the whole set)",
        tag="endpoints",
        scope=Scope.WRITE,
        path_params=(ENDPOINT_ID,),
        body=PATCH_ENDPOINT,
        cross_check=lambda body: _store_errors(body, partial=True),
        replies=(
            Reply(200, "The endpoint after the change.", ENDPOINT),
            problem_reply(409, "Another endpoint has this method and URL."),
        ),
    )
)
async def update_endpoint(call: Call) -> web.Response:
    token = current_token(call.request)
    changes: dict[str, Any] = dict(call.body)
    if "tags" in changes and changes["tags"] is None:
        changes["tags"] = []
    async with call.request.app[DATABASE].session() as session, session.begin():
        record = await inventory.update_endpoint(session, call.path["id"], changes)
        await audit.record(
            session,
            actor=token.name,
            action="endpoint.update",
            target_type="endpoint",
            target_id=str(record.id),
            detail={"changes": changes},
        )
    return web.json_response(endpoint_json(record))


@operation(
    Operation(
        operation_id="deleteEndpoint",
        summary="Remove an endpoint (its scan history stays)",
        tag="endpoints",
        scope=Scope.WRITE,
        path_params=(ENDPOINT_ID,),
        replies=(Reply(204, "Removed."),),
    )
)
async def delete_endpoint(call: Call) -> web.Response:
    token = current_token(call.request)
    async with call.request.app[DATABASE].session() as session, session.begin():
        record = await inventory.get_endpoint(session, call.path["id"])
        await inventory.delete_endpoint(session, record.id)
        await audit.record(
            session,
            actor=token.name,
            action="endpoint.delete",
            target_type="endpoint",
            target_id=str(record.id),
            detail={"method": record.method, "url": record.url},
        )
    return web.Response(status=204)


@operation(
    Operation(
        operation_id="getEffectivePolicy",
        summary="The policy an endpoint is judged by, and the source of each field",
        tag="endpoints",
        scope=Scope.READ,
        path_params=(ENDPOINT_ID,),
        replies=(Reply(200, "The effective policy.", EFFECTIVE),),
    )
)
async def get_effective_policy(call: Call) -> web.Response:
    async with call.request.app[DATABASE].session() as session, session.begin():
        record = await inventory.get_endpoint(session, call.path["id"])
        eff = await effective_policy(session, record)
    return web.json_response(effective_json(record.id, eff))


# -- import --------------------------------------------------------------------

_CSV = ("text/csv",)
_JSON = ("application/json",)
_YAML = ("application/yaml", "application/x-yaml", "text/yaml")

_KEY = Obj(properties={"method": Str(), "url": Str()}, required=frozenset({"method", "url"}))
IMPORT_REPORT = Ref(
    name="ImportReport",
    schema=Obj(
        properties={
            "dry_run": Bool(description="True: nothing was written; this is what would happen."),
            "summary": Obj(
                properties={k: Int() for k in ("created", "changed", "unchanged", "errors")},
                required=frozenset({"created", "changed", "unchanged", "errors"}),
            ),
            "created": Arr(items=_KEY),
            "changed": Arr(
                items=Obj(
                    properties={"method": Str(), "url": Str(), "fields": Arr(items=Str())},
                    required=frozenset({"method", "url", "fields"}),
                )
            ),
            "unchanged": Arr(items=_KEY),
            "errors": Arr(
                items=Obj(
                    properties={
                        "row": Int(description="CSV: the line (header = 1); else the position."),
                        "field": Str(nullable=True),
                        "message": Str(),
                    },
                    required=frozenset({"row", "field", "message"}),
                ),
                description="Rows left out; valid rows were imported all the same.",
            ),
        },
        required=frozenset({"dry_run", "summary", "created", "changed", "unchanged", "errors"}),
    ),
)


def _parse(
    raw: bytes, media: str, fmt: str, base_url: str | None
) -> tuple[list[ImportRow], list[RowError]]:
    text = decode(raw)
    if fmt == "openapi":
        if media in _CSV:
            raise InputError("an OpenAPI document is JSON or YAML, not CSV")
        document = load_json(text) if media in _JSON else load_yaml(text)
        return parse_openapi(document, base_url=base_url)
    if base_url is not None:
        raise InputError("base_url only applies to format=openapi")
    if media in _CSV:
        return parse_csv(text)
    if media in _JSON:
        return parse_json(text)
    return parse_yaml(text)


def _key(key: tuple[str, str]) -> dict[str, str]:
    return {"method": key[0], "url": key[1]}


def report_json(report: ImportReport, parse_errors: list[RowError]) -> dict[str, Any]:
    """The stable JSON shape of an import's outcome, every row accounted for."""
    fields = {(c.method, c.url): list(c.fields) for c in report.changes}
    errors = sorted([*parse_errors, *report.errors], key=lambda e: e.row)
    return {
        "dry_run": report.dry_run,
        "summary": {
            "created": len(report.created),
            "changed": len(report.changed),
            "unchanged": len(report.unchanged),
            "errors": len(errors),
        },
        "created": [_key(k) for k in report.created],
        "changed": [{**_key(k), "fields": fields.get(k, [])} for k in report.changed],
        "unchanged": [_key(k) for k in report.unchanged],
        "errors": [{"row": e.row, "field": e.field, "message": e.message} for e in errors],
    }


@operation(
    Operation(
        operation_id="importEndpoints",
        summary="Import endpoints from a CSV, JSON, YAML inventory or an OpenAPI document",
        tag="endpoints",
        scope=Scope.WRITE,
        description=(
            "The body is the file itself. Rows are upserted by method + URL: a second "
            "import of the same file changes nothing. Bad rows are listed in `errors` and "
            "never stop the valid ones. `format=openapi` reads an OpenAPI 3.x document "
            "(JSON or YAML; relative server URLs need `base_url`). `dry_run=true` reports "
            "what would happen and writes nothing. Limited to CORS_SCANNER_MAX_IMPORT_BYTES."
        ),
        query=(
            Param(
                "format",
                Str(enum=("inventory", "openapi")),
                "`inventory` (default: rows of endpoints) or `openapi`.",
            ),
            Param("dry_run", Bool(), "Report what would change, write nothing."),
            Param(
                "base_url",
                Str(
                    min_length=1,
                    max_length=MAX_URL_LENGTH,
                    pattern=URL_PATTERN,
                    semantic=normalise_url,
                ),
                "OpenAPI only: where relative server URLs point.",
            ),
        ),
        raw_body=RawBody(
            media_types=(*_CSV, *_JSON, *_YAML),
            description="The inventory file or OpenAPI document, as is.",
        ),
        replies=(
            Reply(200, "What was (or would be) created, changed, left alone.", IMPORT_REPORT),
        ),
    )
)
async def import_endpoints(call: Call) -> web.Response:
    token = current_token(call.request)
    raw = call.raw or b""
    media = call.request.content_type.lower()
    dry_run = bool(call.query.get("dry_run", False))
    # Parsing a large YAML document takes a while: keep the event loop free.
    rows, parse_errors = await asyncio.to_thread(
        _parse, raw, media, call.query.get("format", "inventory"), call.query.get("base_url")
    )
    async with call.request.app[DATABASE].session() as session, session.begin():
        report = await inventory.upsert_endpoints(session, rows, dry_run=dry_run)
        doc = report_json(report, parse_errors)
        if not dry_run:
            await audit.record(
                session,
                actor=token.name,
                action="endpoint.import",
                target_type="endpoint",
                target_id=None,
                detail={"format": call.query.get("format", "inventory"), **doc["summary"]},
            )
    return web.json_response(doc)
