"""Alert hooks: CRUD, secret rotation, the delivery log, redelivery and a test event.

Secrets are write-only: a hook shows ``secret_set`` and ``secret_rotated_at``,
never a secret. A webhook created without a secret gets one, returned once in
the creation response (``secret``), as is a rotated one. Hook URLs are checked
against the SSRF rules before they are saved (internal addresses refused
unless ``CORS_SCANNER_HOOK_ALLOW_LOOPBACK``/``..._PRIVATE`` allow them).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from scanner.alerts.envelope import AlertEvent, EventType
from scanner.api.app import DATABASE, SETTINGS
from scanner.api.auth import current_token
from scanner.api.handlers.system import iso
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
from scanner.db import audit
from scanner.db import hooks as store
from scanner.db.hooks import DeliveryRecord, DeliveryStatus, HookInput, HookKind, HookRecord
from scanner.db.tokens import Scope
from scanner.settings import Settings
from scanner.ssrf import check_hook_url

SEVERITIES = tuple(s.value for s in sorted(Severity, reverse=True))
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


def hook_json(hook: HookRecord, *, secret: str | None = None) -> dict[str, Any]:
    """A hook without its secrets (``secret`` only when just created or rotated)."""
    doc: dict[str, Any] = {
        "id": hook.id,
        "name": hook.name,
        "kind": hook.kind.value,
        "url": hook.url if hook.kind is not HookKind.SLACK else _mask(hook.url),
        "github_signature": hook.github_signature,
        "event_kinds": list(hook.event_kinds),
        "min_severity": hook.min_severity.value if hook.min_severity else None,
        "tags": list(hook.tags),
        "owners": list(hook.owners),
        "enabled": hook.enabled,
        "disabled_reason": hook.disabled_reason,
        "secret_set": hook.secret_set,
        "secret_rotated_at": iso(hook.secret_rotated_at),
        "previous_secret_valid_until": iso(hook.previous_secret_until),
        "created_by": hook.created_by,
        "created_at": iso(hook.created_at),
        "updated_at": iso(hook.updated_at),
    }
    if secret is not None:
        doc["secret"] = secret
    return doc


def _mask(url: str) -> str:
    # A Slack incoming-webhook URL is itself the credential: show where, not the key.
    head, sep, _rest = url.partition("/services/")
    return f"{head}{sep}…" if sep else url


def delivery_json(d: DeliveryRecord) -> dict[str, Any]:
    """A delivery and its attempt log (never the body: it may name secrets' receivers)."""
    return {
        "id": d.id,
        "hook_id": d.hook_id,
        "event_id": d.event_id,
        "run_id": d.run_id,
        "event_type": d.event_type,
        "msg_id": d.msg_id,
        "status": d.status.value,
        "attempts": d.attempts,
        "next_attempt_at": iso(d.next_attempt_at),
        "first_attempted_at": iso(d.first_attempted_at),
        "delivered_at": iso(d.delivered_at),
        "last_error": d.last_error,
        "created_at": iso(d.created_at),
        "attempt_log": [
            {
                "attempt": a.attempt,
                "started_at": iso(a.started_at),
                "duration_ms": a.duration_ms,
                "status": a.status,
                "outcome": a.outcome,
                "reason": a.reason,
                "response_excerpt": a.response_excerpt,
                "error": a.error,
                "error_detail": a.error_detail,
            }
            for a in d.attempt_log
        ],
    }


async def check_url(settings: Settings, url: str) -> None:
    """Refuse hook URLs that reach internal addresses (UnsafeURL / InvalidURL, a 400)."""
    await check_hook_url(
        url,
        allow_loopback=settings.hook_allow_loopback,
        allow_private=settings.hook_allow_private,
    )


def _now() -> datetime:
    return datetime.now(UTC)


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
    await check_url(call.request.app[SETTINGS], data.target_url)
    token = current_token(call.request)
    async with call.request.app[DATABASE].session() as session, session.begin():
        hook, generated = await store.create_hook(session, data, by=token.name, now=_now())
        await audit.record(
            session,
            actor=token.name,
            action="hook.create",
            target_type="hook",
            target_id=str(hook.id),
            detail={"name": hook.name, "kind": hook.kind.value},
        )
    return web.json_response(
        hook_json(hook, secret=generated),
        status=201,
        headers={"Location": f"/api/v1/hooks/{hook.id}"},
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
    async with call.request.app[DATABASE].session() as session, session.begin():
        found = await store.list_hooks(session)
    return web.json_response({"items": [hook_json(h) for h in found]})


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
    async with call.request.app[DATABASE].session() as session, session.begin():
        hook = await store.get_hook(session, call.path["id"])
    return web.json_response(hook_json(hook))


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
    if "min_severity" in changes and changes["min_severity"] is not None:
        changes["min_severity"] = Severity(changes["min_severity"])
    if "url" in changes:
        await check_url(call.request.app[SETTINGS], changes["url"])
    token = current_token(call.request)
    async with call.request.app[DATABASE].session() as session, session.begin():
        hook = await store.update_hook(session, call.path["id"], changes, now=_now())
        await audit.record(
            session,
            actor=token.name,
            action="hook.update",
            target_type="hook",
            target_id=str(hook.id),
            detail={"fields": sorted(changes)},
        )
    return web.json_response(hook_json(hook))


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
    token = current_token(call.request)
    async with call.request.app[DATABASE].session() as session, session.begin():
        await store.delete_hook(session, call.path["id"])
        await audit.record(
            session,
            actor=token.name,
            action="hook.delete",
            target_type="hook",
            target_id=str(call.path["id"]),
        )
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
    settings = call.request.app[SETTINGS]
    token = current_token(call.request)
    async with call.request.app[DATABASE].session() as session, session.begin():
        hook, secret = await store.rotate_secret(
            session,
            call.path["id"],
            now=_now(),
            grace=timedelta(seconds=settings.hook_secret_grace_seconds),
        )
        await audit.record(
            session,
            actor=token.name,
            action="hook.rotate_secret",
            target_type="hook",
            target_id=str(hook.id),
        )
    return web.json_response(hook_json(hook, secret=secret))


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
    async with call.request.app[DATABASE].session() as session, session.begin():
        page = await store.list_deliveries(
            session,
            call.path["id"],
            status=None if status is None else DeliveryStatus(status),
            limit=page_limit(call),
            cursor=call.query.get("cursor"),
        )
    items = [delivery_json(d) for d in page.items]
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
    token = current_token(call.request)
    async with call.request.app[DATABASE].session() as session, session.begin():
        record = await store.redeliver(session, call.path["id"], now=_now())
        await audit.record(
            session,
            actor=token.name,
            action="delivery.redeliver",
            target_type="delivery",
            target_id=str(record.id),
        )
    return web.json_response(delivery_json(record), status=202)


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
    from scanner.errors import Conflict

    token = current_token(call.request)
    now = _now()
    event = AlertEvent(
        type=EventType.HOOK_TEST,
        occurred_at=now,
        title="cors-scanner test event",
        summary=f"A test of this hook, requested by {token.name}.",
    )
    async with call.request.app[DATABASE].session() as session, session.begin():
        hook = await store.get_hook(session, call.path["id"])
        if not hook.enabled:
            raise Conflict(f"hook {hook.id} is disabled: {hook.disabled_reason or 'by a user'}")
        [delivery_id] = await store.enqueue_events(
            session, [store.OutgoingEvent(event, None)], now=now, hooks=[hook.id]
        )
        record = await store.get_delivery(session, delivery_id)
    return web.json_response(delivery_json(record), status=202)
