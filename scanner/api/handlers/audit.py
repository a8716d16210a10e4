"""The audit log over HTTP (admin): every write, who made it, newest first."""

from __future__ import annotations

from aiohttp import web

from scanner import shapes
from scanner.api.paging import PAGE_PARAMS, page_json, page_limit, page_schema
from scanner.api.schemas import AnyJSON, Call, Int, Obj, Operation, Ref, Reply, Str, operation
from scanner.db.tokens import Scope
from scanner.usecases import tokens

ENTRY = Ref(
    name="AuditEntry",
    schema=Obj(
        properties={
            "id": Int(),
            "at": Str(format="date-time"),
            "actor": Str(description="The token's name, or `cli`."),
            "token_id": Int(
                nullable=True,
                description="The API token that made the change; null for the command line.",
            ),
            "action": Str(description="What was done, e.g. `endpoint.create`."),
            "target_type": Str(),
            "target_id": Str(nullable=True),
            "detail": Obj(additional=AnyJSON()),
        },
        required=frozenset(
            {"id", "at", "actor", "token_id", "action", "target_type", "target_id", "detail"}
        ),
    ),
)
AUDIT_PAGE = page_schema("AuditPage", ENTRY)


@operation(
    Operation(
        operation_id="listAudit",
        summary="The audit log, newest first",
        tag="audit",
        scope=Scope.ADMIN,
        query=PAGE_PARAMS,
        replies=(Reply(200, "One page of entries.", AUDIT_PAGE),),
    )
)
async def list_audit(call: Call) -> web.Response:
    page = await tokens.list_audit(
        call.context, limit=page_limit(call), cursor=call.query.get("cursor")
    )
    items = [shapes.audit_entry_json(e) for e in page.items]
    return web.json_response(page_json(call.request, items, page.next_cursor))
