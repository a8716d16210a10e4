"""Alert hooks, their outbox of deliveries, and the log of every attempt.

A hook is a receiver (generic webhook, Slack incoming webhook, PagerDuty
Events API v2) with filters (event kinds, minimum severity, endpoint tags and
owners). Secrets (the webhook signing secret, the previous one during a
rotation's grace period, PagerDuty's routing key) are stored as given and
never leave this module except to the dispatcher (:class:`HookSecrets`).

Deliveries are the outbox: :func:`add_deliveries` writes them in the caller's
transaction (the diff's); which hooks hear which event, and what each channel
sends, is alerting's (``scanner.alerts.outbox``): a row holds the events, and
the body is rendered at send time. Dispatchers claim due deliveries with a lease
(:func:`claim_deliveries`: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the
write lock of ``BEGIN IMMEDIATE`` on SQLite), send, and report with
:func:`finish_attempt`, which changes the delivery only while the lease token
is still theirs: a dispatcher that lost its lease (too slow, presumed dead)
cannot overwrite what the new holder did. Delivery is at least once, with the
same ``msg_id`` (``webhook-id``) on every attempt.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from scanner.core.hooks import (
    EVENTS_URL,
    Channel,
    EventType,
    check_routing_key,
    parse_secret,
    serialize_secret,
)
from scanner.core.severity import Severity
from scanner.db.pagination import Page, decode_cursor, encode_cursor
from scanner.db.tables import (
    NAME_LENGTH,
    OWNER_LENGTH,
    TAG_LENGTH,
    DeliveryAttemptRow,
    HookDeliveryRow,
    HookRow,
)
from scanner.errors import Conflict, FieldError, InputError, NotFound, ValidationError

_MAX_ID = 2**31 - 1
MAX_FILTER_ITEMS = 100

# One enum: a hook's kind is the channel it delivers to.
HookKind = Channel
# Bytes of a generated signing secret (Standard Webhooks allows 24 to 64).
GENERATED_SECRET_BYTES = 32


class DeliveryStatus(StrEnum):
    """Where a delivery is; the last three are final."""

    QUEUED = "queued"  # waiting for next_attempt_at
    LEASED = "leased"  # a dispatcher holds it until lease_expires_at
    DELIVERED = "delivered"
    DEAD = "dead"  # given up (permanent failure, or retried too long)
    CANCELLED = "cancelled"  # the hook was disabled by its receiver (410)


@dataclass(frozen=True, slots=True)
class HookInput:
    """A hook as given by a user, validated on construction (``ValidationError`` naming fields).

    ``secret``: the webhook signing secret (``whsec_...``; generated when
    None). ``routing_key``: PagerDuty's integration key (required there).
    ``event_kinds``: the event types it wants (empty: the defaults).
    """

    name: str
    kind: HookKind
    url: str | None = None
    secret: str | None = field(default=None, repr=False)
    github_signature: bool = False
    routing_key: str | None = field(default=None, repr=False)
    event_kinds: tuple[str, ...] = ()
    min_severity: Severity | None = None
    tags: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    enabled: bool = True

    def __post_init__(self) -> None:
        errors: list[FieldError] = []
        if not self.name.strip() or len(self.name) > NAME_LENGTH:
            errors.append(FieldError("name", f"1 to {NAME_LENGTH} characters"))
        if self.kind is not HookKind.PAGERDUTY and not self.url:
            errors.append(FieldError("url", "required"))
        if self.secret is not None:
            if self.kind is not HookKind.WEBHOOK:
                errors.append(FieldError("secret", "only webhooks are signed"))
            else:
                try:
                    parse_secret(self.secret)
                except InputError as exc:
                    errors.append(FieldError("secret", exc.message))
        if self.kind is HookKind.PAGERDUTY:
            try:
                check_routing_key(self.routing_key or "")
            except InputError as exc:
                errors.append(FieldError("routing_key", exc.message))
        elif self.routing_key is not None:
            errors.append(FieldError("routing_key", "only PagerDuty hooks have a routing key"))
        if self.github_signature and self.kind is not HookKind.WEBHOOK:
            errors.append(FieldError("github_signature", "only webhooks are signed"))
        known = {t.value for t in EventType}
        for i, kind in enumerate(self.event_kinds):
            if kind not in known:
                errors.append(FieldError(f"event_kinds[{i}]", f"unknown event type {kind!r}"))
        for name, values, limit in (
            ("event_kinds", self.event_kinds, 64),
            ("tags", self.tags, TAG_LENGTH),
            ("owners", self.owners, OWNER_LENGTH),
        ):
            if len(values) > MAX_FILTER_ITEMS:
                errors.append(FieldError(name, f"at most {MAX_FILTER_ITEMS} items"))
            for i, value in enumerate(values):
                if not value or len(value) > limit:
                    errors.append(FieldError(f"{name}[{i}]", f"1 to {limit} characters"))
        if errors:
            raise ValidationError(errors)

    @property
    def target_url(self) -> str:
        """Where deliveries go (PagerDuty's Events API unless another URL is given)."""
        return self.url or EVENTS_URL


@dataclass(frozen=True, slots=True)
class HookRecord:
    """A hook as the API shows it: never a secret, only whether one is set."""

    id: int
    name: str
    kind: HookKind
    url: str
    github_signature: bool
    event_kinds: tuple[str, ...]
    min_severity: Severity | None
    tags: tuple[str, ...]
    owners: tuple[str, ...]
    enabled: bool
    disabled_reason: str | None
    secret_set: bool
    secret_rotated_at: datetime | None
    previous_secret_until: datetime | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class HookSecrets:
    """What the dispatcher needs to sign or route: secrets, for its eyes only (``whsec_`` text)."""

    secret: str | None = field(repr=False)
    previous_secret: str | None = field(repr=False)
    previous_secret_until: datetime | None
    routing_key: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One logged attempt."""

    attempt: int
    started_at: datetime
    duration_ms: float
    status: int | None
    outcome: str
    reason: str
    response_excerpt: str
    error: str | None
    error_detail: str | None


@dataclass(frozen=True, slots=True)
class AttemptLog:
    """One attempt to log, as the sender saw it (``outcome``: ``scanner.alerts.retry.Outcome``)."""

    started_at: datetime
    duration_ms: float
    status: int | None
    outcome: str
    reason: str
    response_excerpt: str
    error: str | None
    error_detail: str | None


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A delivery and (when listed with them) its attempts, oldest first."""

    id: int
    hook_id: int
    event_id: int | None
    run_id: int | None
    event_type: str
    msg_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    first_attempted_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None
    created_at: datetime
    attempt_log: tuple[AttemptRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery a dispatcher holds: what to send, and the token that proves the lease."""

    id: int
    hook_id: int
    lease_token: str
    msg_id: str
    # The events to render (``scanner.alerts.outbox.outbox_message``), or for
    # a row queued before migration 0011 the body rendered then.
    events: str | None = field(repr=False)
    body: str | None = field(repr=False)
    event_type: str
    attempts: int
    first_attempted_at: datetime | None


# -- rows to values ------------------------------------------------------------


def _hook(row: HookRow) -> HookRecord:
    return HookRecord(
        id=row.id,
        name=row.name,
        kind=HookKind(row.kind),
        url=row.url,
        github_signature=row.github_signature,
        event_kinds=tuple(row.event_kinds or ()),
        min_severity=Severity(row.min_severity) if row.min_severity else None,
        tags=tuple(row.tags or ()),
        owners=tuple(row.owners or ()),
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        secret_set=bool(row.secret or row.routing_key),
        secret_rotated_at=row.secret_rotated_at,
        previous_secret_until=row.previous_secret_until,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _delivery(row: HookDeliveryRow, log: Sequence[AttemptRecord] = ()) -> DeliveryRecord:
    return DeliveryRecord(
        id=row.id,
        hook_id=row.hook_id,
        event_id=row.event_id,
        run_id=row.run_id,
        event_type=row.event_type,
        msg_id=row.msg_id,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        first_attempted_at=row.first_attempted_at,
        delivered_at=row.delivered_at,
        last_error=row.last_error,
        created_at=row.created_at,
        attempt_log=tuple(log),
    )


def _attempt(row: DeliveryAttemptRow) -> AttemptRecord:
    return AttemptRecord(
        attempt=row.attempt,
        started_at=row.started_at,
        duration_ms=row.duration_ms,
        status=row.status,
        outcome=row.outcome,
        reason=row.reason,
        response_excerpt=row.response_excerpt,
        error=row.error,
        error_detail=row.error_detail,
    )


# -- hooks ---------------------------------------------------------------------


async def create_hook(
    session: AsyncSession, data: HookInput, *, by: str | None, now: datetime
) -> tuple[HookRecord, str | None]:
    """Insert a hook; ``(record, secret)`` where ``secret`` is the generated one (shown once).

    A webhook given no secret gets a new one; ``Conflict`` when the name is taken.
    """
    generated: str | None = None
    secret = data.secret.strip() if data.secret else None
    if data.kind is HookKind.WEBHOOK and secret is None:
        generated = secret = serialize_secret(secrets.token_bytes(GENERATED_SECRET_BYTES))
    row = HookRow(
        name=data.name.strip(),
        kind=data.kind.value,
        url=data.target_url,
        secret=secret,
        previous_secret=None,
        previous_secret_until=None,
        secret_rotated_at=None,
        github_signature=data.github_signature,
        routing_key=data.routing_key,
        event_kinds=list(data.event_kinds),
        min_severity=data.min_severity.value if data.min_severity else None,
        tags=list(data.tags),
        owners=list(data.owners),
        enabled=data.enabled,
        disabled_reason=None,
        created_by=by,
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        raise Conflict(f"a hook named {data.name!r} already exists") from None
    return _hook(row), generated


async def _row(session: AsyncSession, hook_id: int) -> HookRow:
    row = await session.get(HookRow, hook_id, populate_existing=True)
    if row is None:
        raise NotFound(f"hook {hook_id} does not exist")
    return row


async def get_hook(session: AsyncSession, hook_id: int) -> HookRecord:
    """One hook; ``NotFound`` when absent."""
    return _hook(await _row(session, hook_id))


async def hook_secrets(session: AsyncSession, hook_id: int) -> tuple[HookRecord, HookSecrets]:
    """A hook and its secrets, for the dispatcher only."""
    row = await _row(session, hook_id)
    return _hook(row), HookSecrets(
        secret=row.secret,
        previous_secret=row.previous_secret,
        previous_secret_until=row.previous_secret_until,
        routing_key=row.routing_key,
    )


async def list_hooks(session: AsyncSession, *, enabled_only: bool = False) -> list[HookRecord]:
    """Every hook, by id."""
    query = select(HookRow).order_by(HookRow.id)
    if enabled_only:
        query = query.where(HookRow.enabled.is_(True))
    return [_hook(r) for r in (await session.execute(query)).scalars()]


async def update_hook(
    session: AsyncSession, hook_id: int, changes: Mapping[str, Any], *, now: datetime
) -> HookRecord:
    """Change a hook's settings (not its secret: see :func:`rotate_secret`).

    ``changes`` holds the fields of :class:`HookInput` to replace;
    re-enabling a hook clears its disabled reason.
    """
    row = await _row(session, hook_id)
    current = _hook(row)
    merged = HookInput(
        name=changes.get("name", current.name),
        kind=current.kind,
        url=changes.get("url", current.url),
        github_signature=changes.get("github_signature", current.github_signature),
        routing_key=changes.get("routing_key", row.routing_key),
        event_kinds=tuple(changes.get("event_kinds", current.event_kinds)),
        min_severity=changes.get("min_severity", current.min_severity),
        tags=tuple(changes.get("tags", current.tags)),
        owners=tuple(changes.get("owners", current.owners)),
        enabled=changes.get("enabled", current.enabled),
    )
    row.name = merged.name.strip()
    row.url = merged.target_url
    row.github_signature = merged.github_signature
    row.routing_key = merged.routing_key
    row.event_kinds = list(merged.event_kinds)
    row.min_severity = merged.min_severity.value if merged.min_severity else None
    row.tags = list(merged.tags)
    row.owners = list(merged.owners)
    if merged.enabled and not row.enabled:
        row.disabled_reason = None
    row.enabled = merged.enabled
    row.updated_at = now
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict(f"a hook named {merged.name!r} already exists") from None
    return _hook(row)


async def delete_hook(session: AsyncSession, hook_id: int) -> None:
    """Remove a hook and its deliveries; ``NotFound`` when absent."""
    await _row(session, hook_id)
    await session.execute(delete(HookRow).where(HookRow.id == hook_id))


async def rotate_secret(
    session: AsyncSession, hook_id: int, *, now: datetime, grace: timedelta
) -> tuple[HookRecord, str]:
    """Give a webhook a new signing secret; the old one keeps signing for ``grace``.

    Returns the new secret (shown once). ``Conflict`` for hooks that are not webhooks.
    """
    row = await _row(session, hook_id)
    if row.kind != HookKind.WEBHOOK.value:
        raise Conflict(f"hook {hook_id} is a {row.kind} hook: only webhooks have a signing secret")
    new = serialize_secret(secrets.token_bytes(GENERATED_SECRET_BYTES))
    row.previous_secret = row.secret
    row.previous_secret_until = now + grace
    row.secret = new
    row.secret_rotated_at = now
    row.updated_at = now
    await session.flush()
    return _hook(row), new


async def disable_hook(session: AsyncSession, hook_id: int, reason: str, *, now: datetime) -> None:
    """Stop delivering to a hook (its receiver said 410 Gone)."""
    await session.execute(
        update(HookRow)
        .where(HookRow.id == hook_id)
        .values(enabled=False, disabled_reason=reason, updated_at=now)
    )


# -- the outbox ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """An outbox row to write: which hook, which event, and the events to render at send time."""

    hook_id: int
    event_id: int | None
    event_type: str
    msg_id: str
    events: str = field(repr=False)


async def add_deliveries(
    session: AsyncSession, deliveries: Sequence[NewDelivery], *, run_id: int | None, now: datetime
) -> list[int]:
    """Queue ``deliveries`` now, in the caller's transaction (routing is the caller's); their ids."""
    rows = [
        HookDeliveryRow(
            hook_id=d.hook_id,
            event_id=d.event_id,
            run_id=run_id,
            event_type=d.event_type,
            msg_id=d.msg_id,
            events=d.events,
            body=None,
            status=DeliveryStatus.QUEUED.value,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for d in deliveries
    ]
    session.add_all(rows)
    await session.flush()
    return [r.id for r in rows]


async def list_deliveries(
    session: AsyncSession,
    hook_id: int,
    *,
    status: DeliveryStatus | None = None,
    limit: int,
    cursor: str | None = None,
) -> Page[DeliveryRecord]:
    """A hook's deliveries, newest first, each with its attempt log."""
    await _row(session, hook_id)
    d = HookDeliveryRow
    query = select(d).where(d.hook_id == hook_id).order_by(d.id.desc()).limit(limit + 1)
    if status is not None:
        query = query.where(d.status == status.value)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(d.id < min(after, _MAX_ID))
    rows = list((await session.execute(query)).scalars())
    shown = rows[:limit]
    logs: dict[int, list[AttemptRecord]] = {r.id: [] for r in shown}
    if shown:
        attempts = await session.execute(
            select(DeliveryAttemptRow)
            .where(DeliveryAttemptRow.delivery_id.in_(list(logs)))
            .order_by(DeliveryAttemptRow.delivery_id, DeliveryAttemptRow.attempt)
        )
        for a in attempts.scalars():
            logs[a.delivery_id].append(_attempt(a))
    items = [_delivery(r, logs[r.id]) for r in shown]
    return Page(tuple(items), encode_cursor(items[-1].id) if len(rows) > limit else None)


async def get_delivery(session: AsyncSession, delivery_id: int) -> DeliveryRecord:
    """One delivery with its attempts; ``NotFound`` when absent."""
    row = await session.get(HookDeliveryRow, delivery_id, populate_existing=True)
    if row is None:
        raise NotFound(f"delivery {delivery_id} does not exist")
    attempts = await session.execute(
        select(DeliveryAttemptRow)
        .where(DeliveryAttemptRow.delivery_id == delivery_id)
        .order_by(DeliveryAttemptRow.attempt)
    )
    return _delivery(row, [_attempt(a) for a in attempts.scalars()])


async def redeliver(session: AsyncSession, delivery_id: int, *, now: datetime) -> DeliveryRecord:
    """Queue a delivery again now, same ``msg_id``, with a fresh give-up window.

    ``Conflict`` while a dispatcher holds it or it is still queued.
    """
    row = await session.get(HookDeliveryRow, delivery_id, populate_existing=True)
    if row is None:
        raise NotFound(f"delivery {delivery_id} does not exist")
    if row.status in (DeliveryStatus.LEASED.value, DeliveryStatus.QUEUED.value):
        raise Conflict(f"delivery {delivery_id} is {row.status}: it will be sent anyway")
    row.status = DeliveryStatus.QUEUED.value
    row.next_attempt_at = now
    row.first_attempted_at = None
    row.delivered_at = None
    row.lease_token = None
    row.leased_by = None
    row.lease_expires_at = None
    await session.flush()
    return await get_delivery(session, delivery_id)


__all__ = [
    "AttemptLog",
    "AttemptRecord",
    "ClaimedDelivery",
    "DeliveryRecord",
    "DeliveryStatus",
    "HookInput",
    "HookKind",
    "HookRecord",
    "HookSecrets",
    "NewDelivery",
    "add_deliveries",
    "create_hook",
    "delete_hook",
    "disable_hook",
    "get_delivery",
    "get_hook",
    "hook_secrets",
    "list_deliveries",
    "list_hooks",
    "redeliver",
    "rotate_secret",
    "update_hook",
]
