"""The endpoint inventory over HTTP: CRUD, filters, effective policy, and imports.

Each handler parses the request, calls one use case (``scanner.usecases.inventory``)
and renders its result with ``scanner.shapes``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from scanner import shapes
from scanner.api.auth import current_token
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
from scanner.core.endpoints import (
    MAX_NOTES_LENGTH,
    MAX_REQUEST_HEADER_VALUE,
    MAX_TAGS,
    MAX_URL_LENGTH,
    METHOD_LENGTH,
    NAME_LENGTH,
    OWNER_LENGTH,
    TAG_LENGTH,
    canonical_tag,
    canonical_url,
    endpoint_method,
)
from scanner.core.policy_layers import POLICY_FIELDS
from scanner.db.inventory import MAX_QUERY_LENGTH, EndpointFilter
from scanner.db.tokens import Scope
from scanner.errors import FieldError, InputError, ValidationError
from scanner.hostnames import uts46_host_encoder
from scanner.importers import ImportFormat, detect_format
from scanner.usecases import inventory
from scanner.usecases.inventory import validate_endpoint


def _url(text: str) -> str:
    return canonical_url(text, encode_host=uts46_host_encoder)


_ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
# What the document can say about a URL; canonical_url checks the rest.
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\x00-\x20\x7f/?#@]+[^\x00-\x20\x7f#]*$"

ENDPOINT_FIELDS: dict[str, Schema] = {
    "method": Str(
        min_length=1,
        max_length=METHOD_LENGTH,
        semantic=endpoint_method,
        description=(
            "HTTP method (default GET), as the front end's fetch() sends it: DELETE GET HEAD "
            "OPTIONS POST PUT in upper case, any other method exactly as written (`patch`)."
        ),
    ),
    "url": Str(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        pattern=URL_PATTERN,
        semantic=_url,
        description="Absolute http(s) URL; stored in canonical form.",
        example="https://api.example.com/v1/users",
    ),
    "name": Str(max_length=NAME_LENGTH, pattern=_ONE_LINE, nullable=True),
    "owner": Str(max_length=OWNER_LENGTH, pattern=_ONE_LINE, nullable=True),
    "tags": Arr(
        items=Str(min_length=1, max_length=TAG_LENGTH, semantic=canonical_tag),
        max_items=MAX_TAGS,
        nullable=True,
        description="Lower case letters, digits and . _ : / @ + -",
    ),
    "enabled": Bool(description="Disabled endpoints are skipped by scans of tags/owners/all."),
    "notes": Str(max_length=MAX_NOTES_LENGTH, nullable=True),
    "request_headers": Obj(
        additional=Str(max_length=MAX_REQUEST_HEADER_VALUE),
        nullable=True,
        description=(
            "Request headers the front end sends on every call (an API key, Content-Type). "
            "Their names are asked for in the legitimate preflight; their values are secrets: "
            "sent only on actual requests, shown as `[redacted]` everywhere. Giving "
            "`[redacted]` back keeps the stored value; the object replaces the whole set, "
            "null clears it."
        ),
        example={"Content-Type": "application/json", "X-Api-Key": "…"},
    ),
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
            "request_headers": Obj(
                additional=Str(), description="Header names; every value is `[redacted]`."
            ),
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
                "request_headers",
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


def _store_errors(body: dict[str, Any], *, partial: bool) -> list[FieldError]:
    # The inventory's own validator, for anything our schema does not know.
    values = dict(body)
    if partial:
        values.setdefault("url", "https://placeholder.invalid/")
    try:
        validate_endpoint(values)
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
    page = await inventory.list_endpoints(
        call.context, flt, limit=page_limit(call), cursor=call.query.get("cursor")
    )
    items = [shapes.endpoint_json(e) for e in page.items]
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
    record = await inventory.create_endpoint(
        call.context, call.body, actor=current_token(call.request).name
    )
    return web.json_response(
        shapes.endpoint_json(record),
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
    record = await inventory.get_endpoint(call.context, call.path["id"])
    return web.json_response(shapes.endpoint_json(record))


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
    record = await inventory.update_endpoint(
        call.context, call.path["id"], call.body, actor=current_token(call.request).name
    )
    return web.json_response(shapes.endpoint_json(record))


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
    await inventory.delete_endpoint(
        call.context, call.path["id"], actor=current_token(call.request).name
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
    view = await inventory.show_endpoint(call.context, call.path["id"])
    return web.json_response(shapes.effective_policy_json(view.endpoint.id, view.effective))


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


def _format(media: str, fmt: str, base_url: str | None) -> ImportFormat:
    """The import format of a body: ``format=openapi``, else its media type's."""
    if fmt == "openapi":
        if media in _CSV:
            raise InputError("an OpenAPI document is JSON or YAML, not CSV")
        return ImportFormat.OPENAPI
    if base_url is not None:
        raise InputError("base_url only applies to format=openapi")
    return detect_format(content_type=media)


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
                    semantic=_url,
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
    base_url = call.query.get("base_url")
    fmt = _format(
        call.request.content_type.lower(), call.query.get("format", "inventory"), base_url
    )
    report = await inventory.import_endpoints(
        call.context,
        call.raw or b"",
        fmt,
        actor=current_token(call.request).name,
        dry_run=bool(call.query.get("dry_run", False)),
        base_url=base_url,
    )
    return web.json_response(shapes.import_report_json(report))
