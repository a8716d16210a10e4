"""API tokens over HTTP (admin): list, create (the secret is shown once), revoke."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from scanner.api.app import DATABASE
from scanner.api.auth import current_token
from scanner.api.handlers.system import iso
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
from scanner.db import audit, tokens
from scanner.db.tables import TOKEN_NAME_LENGTH
from scanner.db.tokens import Scope, TokenRecord

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


def token_json(t: TokenRecord) -> dict[str, Any]:
    """The stable JSON shape of a token (never its secret)."""
    return {
        "id": t.id,
        "name": t.name,
        "prefix": t.prefix,
        "scopes": sorted(s.value for s in t.scopes),
        "active": t.revoked_at is None,
        "created_at": iso(t.created_at),
        "created_by": t.created_by,
        "last_used_at": iso(t.last_used_at),
        "revoked_at": iso(t.revoked_at),
    }


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
    async with call.request.app[DATABASE].session() as session, session.begin():
        found = await tokens.list_tokens(session)
    return web.json_response({"items": [token_json(t) for t in found], "next": None})


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
    actor = current_token(call.request)
    async with call.request.app[DATABASE].session() as session, session.begin():
        record, secret = await tokens.create_token(
            session, call.body["name"], call.body["scopes"], created_by=actor.name
        )
        await audit.record(
            session,
            actor=actor.name,
            action="token.create",
            target_type="token",
            target_id=str(record.id),
            detail={"name": record.name, "scopes": sorted(s.value for s in record.scopes)},
        )
    return web.json_response(
        {"token": token_json(record), "secret": secret},
        status=201,
        headers={"Location": f"/api/v1/tokens/{record.id}"},
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
    async with call.request.app[DATABASE].session() as session, session.begin():
        record = await tokens.get_token(session, call.path["id"])
    return web.json_response(token_json(record))


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
    actor = current_token(call.request)
    async with call.request.app[DATABASE].session() as session, session.begin():
        record = await tokens.revoke_token(session, call.path["id"])
        await audit.record(
            session,
            actor=actor.name,
            action="token.revoke",
            target_type="token",
            target_id=str(record.id),
            detail={"name": record.name},
        )
    return web.json_response(token_json(record))
