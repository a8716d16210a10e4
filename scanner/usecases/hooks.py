"""Alert hooks: add, change, remove, rotate a secret, send a test, redeliver; read deliveries.

A hook's URL is checked against the SSRF rules (``scanner.ssrf``) before it
is saved, so no hook can make the service call an internal address unless
the operator allows it. Secrets are write-only: a new or rotated one is
returned once, with the hook. Every change is audited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from scanner.alerts.envelope import AlertEvent, EventType
from scanner.alerts.outbox import OutgoingEvent, enqueue_events
from scanner.db import audit
from scanner.db import hooks as store
from scanner.db.hooks import DeliveryRecord, DeliveryStatus, HookInput, HookRecord
from scanner.db.pagination import Page
from scanner.errors import Conflict
from scanner.settings import Settings
from scanner.ssrf import check_hook_url
from scanner.usecases.context import Context


@dataclass(frozen=True, slots=True)
class HookWithSecret:
    """A hook and the secret it was just given (None: none was generated), shown once."""

    hook: HookRecord
    secret: str | None


async def check_url(settings: Settings, url: str) -> None:
    """Refuse hook URLs that reach internal addresses (``UnsafeURL`` / ``InvalidURL``)."""
    await check_hook_url(
        url,
        allow_loopback=settings.hook_allow_loopback,
        allow_private=settings.hook_allow_private,
    )


# -- reads -------------------------------------------------------------------------


async def list_hooks(ctx: Context) -> list[HookRecord]:
    """Every hook, by id (never their secrets)."""
    async with ctx.read() as session:
        return await store.list_hooks(session)


async def get_hook(ctx: Context, hook_id: int) -> HookRecord:
    """One hook; ``NotFound``."""
    async with ctx.read() as session:
        return await store.get_hook(session, hook_id)


async def list_deliveries(
    ctx: Context,
    hook_id: int,
    *,
    status: DeliveryStatus | None = None,
    limit: int,
    cursor: str | None = None,
) -> Page[DeliveryRecord]:
    """A hook's deliveries, newest first, each with its attempts; ``NotFound``."""
    async with ctx.read() as session:
        return await store.list_deliveries(
            session, hook_id, status=status, limit=limit, cursor=cursor
        )


async def get_delivery(ctx: Context, delivery_id: int) -> DeliveryRecord:
    """One delivery with its attempts, oldest first; ``NotFound``."""
    async with ctx.transaction() as session:
        return await store.get_delivery(session, delivery_id)


# -- changes -------------------------------------------------------------------------


async def create_hook(ctx: Context, data: HookInput, *, actor: str) -> HookWithSecret:
    """Add a hook (a webhook without a secret gets one, returned once); audited as
    ``hook.create``. ``UnsafeURL`` for an internal address, ``Conflict`` for a taken name."""
    await check_url(ctx.settings, data.target_url)
    async with ctx.transaction() as session:
        hook, generated = await store.create_hook(session, data, by=actor, now=ctx.now())
        await audit.record(
            session,
            actor=actor,
            action="hook.create",
            target_type="hook",
            target_id=str(hook.id),
            detail={"name": hook.name, "kind": hook.kind.value},
        )
    return HookWithSecret(hook, generated)


async def update_hook(
    ctx: Context, hook_id: int, changes: Mapping[str, Any], *, actor: str
) -> HookRecord:
    """Change a hook's URL, filters or state (not its secret: :func:`rotate_secret`);
    re-enabling clears its disabled reason. Audited as ``hook.update``."""
    if "url" in changes:
        await check_url(ctx.settings, changes["url"])
    async with ctx.transaction() as session:
        hook = await store.update_hook(session, hook_id, changes, now=ctx.now())
        await audit.record(
            session,
            actor=actor,
            action="hook.update",
            target_type="hook",
            target_id=str(hook.id),
            detail={"fields": sorted(changes)},
        )
    return hook


async def delete_hook(ctx: Context, hook_id: int, *, actor: str) -> None:
    """Remove a hook and its delivery log; audited as ``hook.delete``. ``NotFound``."""
    async with ctx.transaction() as session:
        await store.delete_hook(session, hook_id)
        await audit.record(
            session, actor=actor, action="hook.delete", target_type="hook", target_id=str(hook_id)
        )


async def rotate_secret(ctx: Context, hook_id: int, *, actor: str) -> HookWithSecret:
    """Give a webhook a new signing secret (returned once); the old one keeps signing for
    ``hook_secret_grace_seconds``. Audited as ``hook.rotate_secret``; ``Conflict`` for a
    hook that is not a webhook."""
    grace = timedelta(seconds=ctx.settings.hook_secret_grace_seconds)
    async with ctx.transaction() as session:
        hook, secret = await store.rotate_secret(session, hook_id, now=ctx.now(), grace=grace)
        await audit.record(
            session,
            actor=actor,
            action="hook.rotate_secret",
            target_type="hook",
            target_id=str(hook.id),
        )
    return HookWithSecret(hook, secret)


async def send_test_event(ctx: Context, hook_id: int, *, actor: str) -> DeliveryRecord:
    """Queue a ``hook.test`` event for this hook alone; audited as ``hook.test``.

    ``Conflict`` when the hook is disabled (nothing would be sent).
    """
    now = ctx.now()
    event = AlertEvent(
        type=EventType.HOOK_TEST,
        occurred_at=now,
        title="cors-scanner test event",
        summary=f"A test of this hook, requested by {actor}.",
    )
    async with ctx.transaction() as session:
        hook = await store.get_hook(session, hook_id)
        if not hook.enabled:
            raise Conflict(f"hook {hook.id} is disabled: {hook.disabled_reason or 'by a user'}")
        [delivery_id] = await enqueue_events(
            session, [OutgoingEvent(event, None)], now=now, hooks=[hook.id]
        )
        await audit.record(
            session,
            actor=actor,
            action="hook.test",
            target_type="hook",
            target_id=str(hook.id),
            detail={"delivery_id": delivery_id},
        )
        return await store.get_delivery(session, delivery_id)


async def redeliver(ctx: Context, delivery_id: int, *, actor: str) -> DeliveryRecord:
    """Queue a delivery again now, same ``webhook-id``; audited as ``delivery.redeliver``.
    ``Conflict`` while it is queued or being sent."""
    async with ctx.transaction() as session:
        record = await store.redeliver(session, delivery_id, now=ctx.now())
        await audit.record(
            session,
            actor=actor,
            action="delivery.redeliver",
            target_type="delivery",
            target_id=str(record.id),
        )
    return record


__all__ = [
    "HookWithSecret",
    "check_url",
    "create_hook",
    "delete_hook",
    "get_delivery",
    "get_hook",
    "list_deliveries",
    "list_hooks",
    "redeliver",
    "rotate_secret",
    "send_test_event",
    "update_hook",
]
