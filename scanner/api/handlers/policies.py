"""Policy layers over HTTP: the org default, per tag, per endpoint (``scanner.usecases.policies``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from scanner import shapes
from scanner.api.auth import current_token
from scanner.api.paging import page_schema
from scanner.api.schemas import (
    MAX_ID,
    Arr,
    Bool,
    Call,
    Int,
    Obj,
    Operation,
    Param,
    Ref,
    Reply,
    Schema,
    Str,
    operation,
)
from scanner.core.endpoints import TAG_LENGTH
from scanner.core.policy_layers import MAX_LIST_ITEMS, MAX_MAX_AGE, PolicyScope, policy_item
from scanner.db.tokens import Scope
from scanner.errors import FieldError, ValidationError
from scanner.hostnames import uts46_host_encoder
from scanner.usecases import policies
from scanner.usecases.policies import validate_fields


def _origin(text: str) -> None:
    policy_item("allowed_origins", text, encode_host=uts46_host_encoder)


def _method(text: str) -> None:
    policy_item("allowed_methods", text)


def _header(text: str) -> None:
    policy_item("allowed_headers", text)


def _list(item: Str, what: str) -> Arr:
    return Arr(items=item, max_items=MAX_LIST_ITEMS, nullable=True, description=what)


# The fields of a layer; null (or absent) means "inherit from the layer below".
POLICY_FIELDS: dict[str, Schema] = {
    "allowed_origins": _list(
        Str(min_length=1, max_length=300, semantic=_origin),
        "Origins the front ends use: exact `https://app.acme.com`, or `https://*.acme.com` "
        "for every subdomain. Never `*`: set `public` instead.",
    ),
    "allow_credentials": Bool(nullable=True, description="Front ends send cookies / credentials."),
    "allowed_methods": _list(Str(min_length=1, max_length=32, semantic=_method), "Methods."),
    "allowed_headers": _list(
        Str(min_length=1, max_length=200, semantic=_header), "Request headers front ends send."
    ),
    "exposed_headers": _list(
        Str(min_length=1, max_length=200, semantic=_header), "Response headers they read."
    ),
    "max_age": Int(
        minimum=0, maximum=MAX_MAX_AGE, nullable=True, description="Preflight cache, seconds."
    ),
    "public": Bool(
        nullable=True, description="Anyone may read it without credentials (`*` is right)."
    ),
}

NEW_POLICY = Obj(
    properties={
        "scope": Str(enum=tuple(s.value for s in PolicyScope)),
        "tag": Str(min_length=1, max_length=TAG_LENGTH, nullable=True),
        "endpoint_id": Int(minimum=1, maximum=MAX_ID, nullable=True),
        **POLICY_FIELDS,
    },
    required=frozenset({"scope"}),
)
PATCH_POLICY = Obj(properties=POLICY_FIELDS)

_FIELD_SHAPES: dict[str, Schema] = {
    "allowed_origins": Arr(items=Str(), nullable=True),
    "allow_credentials": Bool(nullable=True),
    "allowed_methods": Arr(items=Str(), nullable=True),
    "allowed_headers": Arr(items=Str(), nullable=True),
    "exposed_headers": Arr(items=Str(), nullable=True),
    "max_age": Int(nullable=True),
    "public": Bool(nullable=True),
}
POLICY = Ref(
    name="PolicyLayer",
    schema=Obj(
        properties={
            "id": Int(),
            "scope": Str(enum=tuple(s.value for s in PolicyScope)),
            "tag": Str(nullable=True),
            "endpoint_id": Int(nullable=True),
            **_FIELD_SHAPES,
            "created_at": Str(format="date-time"),
            "updated_at": Str(format="date-time"),
        },
        required=frozenset(
            {"id", "scope", "tag", "endpoint_id", *_FIELD_SHAPES, "created_at", "updated_at"}
        ),
    ),
)
POLICY_PAGE = page_schema("PolicyPage", POLICY)
POLICY_ID = Param("id", Int(minimum=1, maximum=MAX_ID), "The policy layer's id.", required=True)


def _policy_fields(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k in POLICY_FIELDS}


def _scope_errors(body: dict[str, Any]) -> list[FieldError]:
    scope = body.get("scope")
    errors: list[FieldError] = []
    if scope == PolicyScope.TAG and body.get("tag") is None:
        errors.append(FieldError("tag", "required when the scope is tag"))
    if scope != PolicyScope.TAG and body.get("tag") is not None:
        errors.append(FieldError("tag", "only for the tag scope"))
    if scope == PolicyScope.ENDPOINT and body.get("endpoint_id") is None:
        errors.append(FieldError("endpoint_id", "required when the scope is endpoint"))
    if scope != PolicyScope.ENDPOINT and body.get("endpoint_id") is not None:
        errors.append(FieldError("endpoint_id", "only for the endpoint scope"))
    if body.get("public") is True and body.get("allow_credentials") is True:
        errors.append(FieldError("public", "a public endpoint ('*') cannot also allow credentials"))
    return errors


@operation(
    Operation(
        operation_id="listPolicies",
        summary="List policy layers: the default, then tags, then endpoint overrides",
        tag="policies",
        scope=Scope.READ,
        replies=(Reply(200, "Every layer (one page).", POLICY_PAGE),),
    )
)
async def list_policies(call: Call) -> web.Response:
    found = await policies.list_policies(call.context)
    return web.json_response({"items": [shapes.policy_json(p) for p in found], "next": None})


@operation(
    Operation(
        operation_id="putPolicy",
        summary="Set the policy layer of a scope (created, or replaced when it exists)",
        tag="policies",
        scope=Scope.WRITE,
        description=(
            "`scope` is `default`, `tag` (with `tag`) or `endpoint` (with `endpoint_id`). "
            "Fields left out or null inherit from the layer below. 201 when the layer is "
            "new, 200 when it replaced the scope's existing layer."
        ),
        body=NEW_POLICY,
        cross_check=lambda body: [*_scope_errors(body), *_store_errors(body)],
        replies=(
            Reply(201, "Created.", POLICY, headers={"Location": "The layer's URL."}),
            Reply(200, "Replaced the existing layer of this scope.", POLICY),
        ),
    )
)
async def put_policy(call: Call) -> web.Response:
    body: dict[str, Any] = call.body
    record, created = await policies.set_policy(
        call.context,
        PolicyScope(body["scope"]),
        tag=body.get("tag"),
        endpoint_id=body.get("endpoint_id"),
        values=_policy_fields(body),
        actor=current_token(call.request).name,
    )
    headers = {"Location": f"/api/v1/policies/{record.id}"} if created else {}
    return web.json_response(
        shapes.policy_json(record), status=201 if created else 200, headers=headers
    )


@operation(
    Operation(
        operation_id="getPolicy",
        summary="One policy layer",
        tag="policies",
        scope=Scope.READ,
        path_params=(POLICY_ID,),
        replies=(Reply(200, "The layer.", POLICY),),
    )
)
async def get_policy(call: Call) -> web.Response:
    record = await policies.get_policy(call.context, call.path["id"])
    return web.json_response(shapes.policy_json(record))


@operation(
    Operation(
        operation_id="patchPolicy",
        summary="Change some fields of a policy layer (null: inherit again)",
        tag="policies",
        scope=Scope.WRITE,
        path_params=(POLICY_ID,),
        body=PATCH_POLICY,
        cross_check=lambda body: _store_errors(body),
        replies=(Reply(200, "The layer after the change.", POLICY),),
    )
)
async def patch_policy(call: Call) -> web.Response:
    record = await policies.change_policy(
        call.context,
        call.path["id"],
        _policy_fields(call.body),
        actor=current_token(call.request).name,
    )
    return web.json_response(shapes.policy_json(record))


@operation(
    Operation(
        operation_id="deletePolicy",
        summary="Remove a policy layer (its scope inherits again)",
        tag="policies",
        scope=Scope.WRITE,
        path_params=(POLICY_ID,),
        replies=(Reply(204, "Removed."),),
    )
)
async def delete_policy(call: Call) -> web.Response:
    await policies.delete_policy(
        call.context, call.path["id"], actor=current_token(call.request).name
    )
    return web.Response(status=204)


def _store_errors(body: dict[str, Any]) -> list[FieldError]:
    """The store's own verdict on the policy fields of ``body`` (for merging)."""
    try:
        validate_fields({k: v for k, v in body.items() if k in POLICY_FIELDS})
    except ValidationError as exc:
        return list(exc.errors)
    return []
