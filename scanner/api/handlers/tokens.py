"""API tokens over HTTP (admin): list, create (the secret is shown once), revoke."""

from __future__ import annotations

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
    Str,
    operation,
)
from scanner.db.tables import TOKEN_NAME_LENGTH
from scanner.db.tokens import Scope
from scanner.usecases import tokens

_SCOPES = tuple(s.value for s in Scope)

TOKEN = Ref(
    name="Token",
    schema=Obj(
        properties={
            "id": Int(),
            "name": Str(),
            "prefix": Str(description="The secret's first characters, to tell tokens apart."),
            "scopes": Arr(items=Str(enum=_SCOPES)),
            "active": Bool(),
            "created_at": Str(format="date-time"),
            "created_by": Str(nullable=True),
            "last_used_at": Str(format="date-time", nullable=True),
            "revoked_at": Str(format="date-time", nullable=True),
        },
        required=frozenset(
            {
                "id",
                "name",
                "prefix",
                "scopes",
                "active",
                "created_at",
                "created_by",
                "last_used_at",
                "revoked_at",
            }
        ),
    ),
)
CREATED = Ref(
    name="TokenCreated",
    schema=Obj(
        properties={
            "token": TOKEN,
            "secret": Str(description="The bearer secret. Shown this once: store it now."),
        },
        required=frozenset({"token", "secret"}),
    ),
)
TOKEN_PAGE = page_schema("TokenPage", TOKEN)
NEW_TOKEN = Obj(
    properties={
        "name": Str(
            min_length=1,
            max_length=TOKEN_NAME_LENGTH,
            pattern=r"^[^\x00-\x1f\x7f]*$",
            description="Who or what uses the token (shown as the actor in the audit log).",
        ),
        "scopes": Arr(
            items=Str(enum=_SCOPES),
            min_items=1,
            max_items=3,
            unique=True,
            description="read, write and/or admin (admin includes write, write includes read).",
        ),
    },
    required=frozenset({"name", "scopes"}),
)
TOKEN_ID = Param("id", Int(minimum=1, maximum=MAX_ID), "The token's id.", required=True)


@operation(
    Operation(
        operation_id="listTokens",
        summary="List API tokens, revoked ones included",
        tag="tokens",
        scope=Scope.ADMIN,
        replies=(Reply(200, "Every token (one page).", TOKEN_PAGE),),
    )
)
async def list_tokens(call: Call) -> web.Response:
    found = await tokens.list_tokens(call.context)
    return web.json_response({"items": [shapes.token_json(t) for t in found], "next": None})


@operation(
    Operation(
        operation_id="createToken",
        summary="Create an API token; its secret is in this response only",
        tag="tokens",
        scope=Scope.ADMIN,
        body=NEW_TOKEN,
        replies=(
            Reply(201, "The token and its secret.", CREATED, headers={"Location": "The token."}),
        ),
    )
)
async def create_token(call: Call) -> web.Response:
    made = await tokens.create_token(
        call.context, call.body["name"], call.body["scopes"], actor=current_token(call.request).name
    )
    return web.json_response(
        shapes.token_created_json(made.token, made.secret),
        status=201,
        headers={"Location": f"/api/v1/tokens/{made.token.id}"},
    )


@operation(
    Operation(
        operation_id="getToken",
        summary="One API token",
        tag="tokens",
        scope=Scope.ADMIN,
        path_params=(TOKEN_ID,),
        replies=(Reply(200, "The token.", TOKEN),),
    )
)
async def get_token(call: Call) -> web.Response:
    return web.json_response(
        shapes.token_json(await tokens.get_token(call.context, call.path["id"]))
    )


@operation(
    Operation(
        operation_id="revokeToken",
        summary="Revoke an API token for good",
        tag="tokens",
        scope=Scope.ADMIN,
        path_params=(TOKEN_ID,),
        replies=(Reply(200, "The token, revoked.", TOKEN),),
    )
)
async def revoke_token(call: Call) -> web.Response:
    record = await tokens.revoke_token(
        call.context, call.path["id"], actor=current_token(call.request).name
    )
    return web.json_response(shapes.token_json(record))
