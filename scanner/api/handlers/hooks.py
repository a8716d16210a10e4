"""Alert hooks: CRUD, secret rotation, the delivery log, redelivery and a test event.

Secrets are write-only: a hook shows ``secret_set`` and ``secret_rotated_at``,
never a secret. A webhook created without a secret gets one, returned once in
the creation response (``secret``), as is a rotated one. Hook URLs are checked
against the SSRF rules before they are saved (internal addresses refused
unless ``CORS_SCANNER_HOOK_ALLOW_LOOPBACK``/``..._PRIVATE`` allow them).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from scanner import shapes
from scanner.alerts.envelope import EventType
from scanner.api.auth import current_token
from scanner.api.paging import PAGE_PARAMS, page_json, page_limit, page_schema
from scanner.api.schemas import (
    MAX_ID,
    Arr,
    Bool,
    Call,
    Int,
    Num,
    Obj,
    Operation,
    Param,
    Ref,
    Reply,
    Str,
    operation,
    problem_reply,
)
from scanner.core.severity import Severity
from scanner.db.hooks import DeliveryStatus, HookInput, HookKind
from scanner.db.tokens import Scope
from scanner.shapes import SEVERITIES
from scanner.usecases import hooks

EVENT_TYPES = tuple(t.value for t in EventType)
_TIME = Str(format="date-time")
_MAYBE_TIME = Str(format="date-time", nullable=True)
_STRINGS = Arr(items=Str(min_length=1, max_length=200), max_items=100, unique=True)

HOOK = Ref(
    name="Hook",
    schema=Obj(
        properties={
            "id": Int(),
            "name": Str(),
            "kind": Str(enum=tuple(k.value for k in HookKind)),
            "url": Str(),
            "github_signature": Bool(),
            "event_kinds": Arr(items=Str(enum=EVENT_TYPES)),
            "min_severity": Str(enum=SEVERITIES, nullable=True),
            "tags": Arr(items=Str()),
            "owners": Arr(items=Str()),
            "enabled": Bool(),
            "disabled_reason": Str(nullable=True),
            "secret_set": Bool(description="A secret (or routing key) is set; never shown."),
            "secret_rotated_at": _MAYBE_TIME,
            "previous_secret_valid_until": _MAYBE_TIME,
            "created_by": Str(nullable=True),
            "created_at": _TIME,
            "updated_at": _TIME,
            "secret": Str(description="Only in the answer that created or rotated it: once."),
        },
        required=frozenset(
            {"id", "name", "kind", "url", "enabled", "secret_set", "created_at", "updated_at"}
        ),
    ),
)

_FIELDS: dict[str, Any] = {
    "name": Str(min_length=1, max_length=200, strip=True),
    "url": Str(min_length=1, max_length=2048, strip=True),
    "github_signature": Bool(),
    "event_kinds": Arr(items=Str(enum=EVENT_TYPES), max_items=100, unique=True),
    "min_severity": Str(enum=SEVERITIES, nullable=True),
    "tags": _STRINGS,
    "owners": _STRINGS,
    "enabled": Bool(),
}

HOOK_CREATE = Ref(
    name="HookCreate",
    schema=Obj(
        description=(
            "`secret` (webhooks, `whsec_...`) is generated when absent; `routing_key` is "
            "required for PagerDuty; `url` defaults to PagerDuty's Events API there."
        ),
        properties={
            **_FIELDS,
            "kind": Str(enum=tuple(k.value for k in HookKind)),
            "secret": Str(min_length=1, max_length=200, strip=True),
            "routing_key": Str(min_length=1, max_length=64, strip=True),
        },
        required=frozenset({"name", "kind"}),
    ),
)
HOOK_UPDATE = Ref(
    name="HookUpdate",
    schema=Obj(
        properties={**_FIELDS, "routing_key": Str(min_length=1, max_length=64, strip=True)},
        min_properties=1,
    ),
)

ATTEMPT = Obj(
    properties={
        "attempt": Int(),
        "started_at": _TIME,
        "duration_ms": Num(),
        "status": Int(nullable=True),
        "outcome": Str(),
        "reason": Str(),
        "response_excerpt": Str(),
        "error": Str(nullable=True),
        "error_detail": Str(nullable=True),
    },
    required=frozenset({"attempt", "started_at", "duration_ms", "status", "outcome"}),
)
DELIVERY = Ref(
    name="HookDelivery",
    schema=Obj(
        properties={
            "id": Int(),
            "hook_id": Int(),
            "event_id": Int(nullable=True),
            "run_id": Int(nullable=True),
            "event_type": Str(),
            "msg_id": Str(description="The webhook-id, the same on every attempt."),
            "status": Str(enum=tuple(s.value for s in DeliveryStatus)),
            "attempts": Int(),
            "next_attempt_at": _TIME,
            "first_attempted_at": _MAYBE_TIME,
            "delivered_at": _MAYBE_TIME,
            "last_error": Str(nullable=True),
            "created_at": _TIME,
            "attempt_log": Arr(items=ATTEMPT),
        },
        required=frozenset({"id", "hook_id", "event_type", "msg_id", "status", "attempts"}),
    ),
)
HOOK_LIST = Obj(properties={"items": Arr(items=HOOK)}, required=frozenset({"items"}))
DELIVERY_PAGE = page_schema("HookDeliveryPage", DELIVERY)
HOOK_ID = Param("id", Int(minimum=1, maximum=MAX_ID), "The hook's id.", required=True)
DELIVERY_ID = Param("id", Int(minimum=1, maximum=MAX_ID), "The delivery's id.", required=True)


# -- handlers ------------------------------------------------------------------


@operation(
    Operation(
        operation_id="createHook",
        summary="Add an alert hook",
        tag="hooks",
        scope=Scope.ADMIN,
        body=HOOK_CREATE,
        replies=(
            Reply(201, "The hook; `secret` is shown this once.", HOOK),
            problem_reply(409, "A hook with this name exists."),
        ),
    )
)
async def create_hook(call: Call) -> web.Response:
    body: dict[str, Any] = call.body
    severity = body.get("min_severity")
    data = HookInput(
        name=body["name"],
        kind=HookKind(body["kind"]),
        url=body.get("url"),
        secret=body.get("secret"),
        github_signature=body.get("github_signature", False),
        routing_key=body.get("routing_key"),
        event_kinds=tuple(body.get("event_kinds", ())),
        min_severity=None if severity is None else Severity(severity),
        tags=tuple(body.get("tags", ())),
        owners=tuple(body.get("owners", ())),
        enabled=body.get("enabled", True),
    )
    made = await hooks.create_hook(call.context, data, actor=current_token(call.request).name)
    return web.json_response(
        shapes.hook_json(made.hook, secret=made.secret, full_url=True),
        status=201,
        headers={"Location": f"/api/v1/hooks/{made.hook.id}"},
    )


@operation(
    Operation(
        operation_id="listHooks",
        summary="Alert hooks",
        tag="hooks",
        scope=Scope.READ,
        replies=(Reply(200, "Every hook.", HOOK_LIST),),
    )
)
async def list_hooks(call: Call) -> web.Response:
    found = await hooks.list_hooks(call.context)
    full = current_token(call.request).allows(Scope.ADMIN)
    return web.json_response({"items": [shapes.hook_json(h, full_url=full) for h in found]})


@operation(
    Operation(
        operation_id="getHook",
        summary="One alert hook",
        tag="hooks",
        scope=Scope.READ,
        path_params=(HOOK_ID,),
        replies=(Reply(200, "The hook.", HOOK),),
    )
)
async def get_hook(call: Call) -> web.Response:
    hook = await hooks.get_hook(call.context, call.path["id"])
    full = current_token(call.request).allows(Scope.ADMIN)
    return web.json_response(shapes.hook_json(hook, full_url=full))


@operation(
    Operation(
        operation_id="updateHook",
        summary="Change a hook's URL, filters or state",
        tag="hooks",
        scope=Scope.ADMIN,
        path_params=(HOOK_ID,),
        body=HOOK_UPDATE,
        replies=(Reply(200, "The hook.", HOOK), problem_reply(409, "The name is taken.")),
    )
)
async def update_hook(call: Call) -> web.Response:
    changes: dict[str, Any] = dict(call.body)
    if changes.get("min_severity") is not None:
        changes["min_severity"] = Severity(changes["min_severity"])
    hook = await hooks.update_hook(
        call.context, call.path["id"], changes, actor=current_token(call.request).name
    )
    return web.json_response(shapes.hook_json(hook, full_url=True))


@operation(
    Operation(
        operation_id="deleteHook",
        summary="Remove a hook and its delivery log",
        tag="hooks",
        scope=Scope.ADMIN,
        path_params=(HOOK_ID,),
        replies=(Reply(204, "Removed."),),
    )
)
async def delete_hook(call: Call) -> web.Response:
    await hooks.delete_hook(call.context, call.path["id"], actor=current_token(call.request).name)
    return web.Response(status=204)


@operation(
    Operation(
        operation_id="rotateHookSecret",
        summary="Give a webhook a new signing secret",
        tag="hooks",
        scope=Scope.ADMIN,
        path_params=(HOOK_ID,),
        description=(
            "Returns the new secret once. Deliveries carry signatures of both the new and "
            "the old secret until `previous_secret_valid_until` "
            "(CORS_SCANNER_HOOK_SECRET_GRACE_SECONDS), so receivers can switch without loss."
        ),
        replies=(
            Reply(200, "The hook with its new `secret`.", HOOK),
            problem_reply(409, "Not a webhook."),
        ),
    )
)
async def rotate_secret(call: Call) -> web.Response:
    rotated = await hooks.rotate_secret(
        call.context, call.path["id"], actor=current_token(call.request).name
    )
    return web.json_response(shapes.hook_json(rotated.hook, secret=rotated.secret, full_url=True))


@operation(
    Operation(
        operation_id="listHookDeliveries",
        summary="A hook's deliveries and every attempt, newest first",
        tag="hooks",
        scope=Scope.READ,
        path_params=(HOOK_ID,),
        query=(
            Param(
                "status",
                Str(enum=tuple(s.value for s in DeliveryStatus)),
                "Only deliveries in this state.",
            ),
            *PAGE_PARAMS,
        ),
        replies=(Reply(200, "One page of deliveries.", DELIVERY_PAGE),),
    )
)
async def list_deliveries(call: Call) -> web.Response:
    status = call.query.get("status")
    page = await hooks.list_deliveries(
        call.context,
        call.path["id"],
        status=None if status is None else DeliveryStatus(status),
        limit=page_limit(call),
        cursor=call.query.get("cursor"),
    )
    items = [shapes.delivery_json(d) for d in page.items]
    return web.json_response(page_json(call.request, items, page.next_cursor))


@operation(
    Operation(
        operation_id="redeliver",
        summary="Send a delivery again (same webhook-id)",
        tag="hooks",
        scope=Scope.WRITE,
        path_params=(DELIVERY_ID,),
        replies=(
            Reply(202, "Queued again.", DELIVERY),
            problem_reply(409, "It is queued or being sent already."),
        ),
    )
)
async def redeliver(call: Call) -> web.Response:
    record = await hooks.redeliver(
        call.context, call.path["id"], actor=current_token(call.request).name
    )
    return web.json_response(shapes.delivery_json(record), status=202)


@operation(
    Operation(
        operation_id="testHook",
        summary="Queue a hook.test event for this hook",
        tag="hooks",
        scope=Scope.WRITE,
        path_params=(HOOK_ID,),
        replies=(
            Reply(202, "The test delivery, queued.", DELIVERY),
            problem_reply(409, "The hook is disabled."),
        ),
    )
)
async def test_hook(call: Call) -> web.Response:
    record = await hooks.send_test_event(
        call.context, call.path["id"], actor=current_token(call.request).name
    )
    return web.json_response(shapes.delivery_json(record), status=202)
