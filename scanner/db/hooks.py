"""Alert hooks, their outbox of deliveries, and the log of every attempt.

A hook is a receiver (generic webhook, Slack incoming webhook, PagerDuty
Events API v2) with filters (event kinds, minimum severity, endpoint tags and
owners). Secrets (the webhook signing secret, the previous one during a
rotation's grace period, PagerDuty's routing key) are stored as given and
never leave this module except to the dispatcher (:class:`HookSecrets`).

Deliveries are the outbox: :func:`enqueue_events` writes them in the caller's
transaction (the diff's), one per (event, matching hook), one per run for
Slack (a batch). Dispatchers claim due deliveries with a lease
(:func:`claim_deliveries`: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the
write lock of ``BEGIN IMMEDIATE`` on SQLite), send, and report with
:func:`finish_attempt`, which changes the delivery only while the lease token
is still theirs: a dispatcher that lost its lease (too slow, presumed dead)
cannot overwrite what the new holder did. Delivery is at least once, with the
same ``msg_id`` (``webhook-id``) on every attempt.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from scanner.alerts.envelope import MONITORING_TYPES, AlertEvent, EventType, webhook_payload
from scanner.alerts.pagerduty import (
    EVENTS_URL,
    RESOLVE_TYPES,
    PagerDutyTarget,
    build_pagerduty_request,
)
from scanner.alerts.signing import WebhookSecret
from scanner.alerts.slack import build_slack_request
from scanner.alerts.webhook import new_message_id
from scanner.core.diff import LEGIT_RULE
from scanner.core.lifecycle import REGRESSION_KINDS
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

# What a hook hears when it names no event kinds: every regression, the good
# news that closes them, losing and regaining sight of an endpoint, a run that
# measured nothing, and tests. Not header drift alone, nor the rest of the
# log (not_verified, rule_change...): a hook asks for those by name.
DEFAULT_EVENT_TYPES = frozenset(
    {
        *(EventType(k.value) for k in REGRESSION_KINDS),
        EventType.FINDING_RESOLVED,
        EventType.ENDPOINT_UNREACHABLE,
        EventType.ENDPOINT_REACHABLE,
        EventType.SCAN_FAILED,
    }
)
_FINDING_APPEARS = frozenset({EventType.FINDING_NEW, EventType.FINDING_REOPENED})
_SCAN_TYPES = frozenset({EventType.SCAN_FAILED, EventType.SCAN_COMPLETED})


class HookKind(StrEnum):
    """The channel a hook delivers to."""

    WEBHOOK = "webhook"
    SLACK = "slack"
    PAGERDUTY = "pagerduty"


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
                    WebhookSecret.parse(self.secret)
                except InputError as exc:
                    errors.append(FieldError("secret", exc.message))
        if self.kind is HookKind.PAGERDUTY:
            try:
                PagerDutyTarget(self.routing_key or "")
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

    def wants(self, event: AlertEvent) -> bool:
        """This hook's filters let ``event`` through (hook tests always pass).

        ``min_severity`` filters what carries a severity (findings, and drift
        riding in a finding's event) and holds back informational events
        without one (header drift alone); monitoring events (``endpoint.*``,
        ``scan.*``) pass it. A PagerDuty hook gets every resolution of the
        endpoints it covers, whatever its kinds and severity say: its triggers
        must be resolvable even after a finding's severity changed.
        """
        if event.type is EventType.HOOK_TEST:
            return True
        closes = self.kind is HookKind.PAGERDUTY and event.type in RESOLVE_TYPES
        if not closes and not self._wants_type(event):
            return False
        if self.min_severity is not None and not closes:
            if event.severity is None:
                if event.type not in MONITORING_TYPES:
                    return False
            elif event.severity < self.min_severity:
                return False
        if event.type in _SCAN_TYPES:
            return True  # a run's failure concerns every team it scanned
        endpoint = event.endpoint
        if self.tags and (endpoint is None or not set(self.tags) & set(endpoint.tags)):
            return False
        return not (self.owners and (endpoint is None or endpoint.owner not in self.owners))

    def _wants_type(self, event: AlertEvent) -> bool:
        kinds = set(self.event_kinds) or {t.value for t in DEFAULT_EVENT_TYPES}
        if event.type.value in kinds:
            return True
        # The retired regression.legit_origin_blocked: its subscribers still hear it.
        return (
            EventType.LEGIT_ORIGIN_BLOCKED.value in kinds
            and event.type in _FINDING_APPEARS
            and event.rule_id == LEGIT_RULE
        )


@dataclass(frozen=True, slots=True)
class HookSecrets:
    """What the dispatcher needs to sign or route: secrets, for its eyes only."""

    secret: str | None = field(repr=False)
    previous_secret: str | None = field(repr=False)
    previous_secret_until: datetime | None
    routing_key: str | None = field(repr=False)

    def signing_secrets(self, now: datetime) -> tuple[WebhookSecret, ...]:
        """Current secret first, then the previous one while its grace period lasts."""
        out: list[WebhookSecret] = []
        if self.secret:
            out.append(WebhookSecret.parse(self.secret))
        if (
            self.previous_secret
            and self.previous_secret_until is not None
            and now < self.previous_secret_until
        ):
            out.append(WebhookSecret.parse(self.previous_secret))
        return tuple(out)


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
    body: str = field(repr=False)
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
        generated = secret = WebhookSecret.generate().serialize()
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
    new = WebhookSecret.generate().serialize()
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
class OutgoingEvent:
    """An alert to route, with the stored event's id (None for service events)."""

    alert: AlertEvent
    event_id: int | None


def pagerduty_body(hook: HookRecord, routing_key: str, alert: AlertEvent) -> str | None:
    """The Events API message without its routing key (added at send time), or None."""
    request = build_pagerduty_request(PagerDutyTarget(routing_key, hook.url), alert)
    if request is None:
        return None
    message = json.loads(request.body)
    message.pop("routing_key", None)
    return json.dumps(message, ensure_ascii=True, separators=(",", ":"))


async def enqueue_events(
    session: AsyncSession,
    events: Sequence[OutgoingEvent],
    *,
    now: datetime,
    run_id: int | None = None,
    heading: str = "cors-scanner",
    hooks: Iterable[int] | None = None,
) -> list[int]:
    """Write the deliveries of ``events`` for every enabled hook that wants them; their ids.

    Webhooks and PagerDuty get one delivery per event; Slack one message for
    all the events it wants (a run's batch). ``hooks`` limits the hooks
    considered (a hook test). Runs in the caller's transaction.
    """
    if not events:
        return []
    query = select(HookRow).where(HookRow.enabled.is_(True)).order_by(HookRow.id)
    if hooks is not None:
        query = query.where(HookRow.id.in_(list(hooks)))
    rows = list((await session.execute(query)).scalars())
    created: list[HookDeliveryRow] = []

    def add(row: HookRow, body: str, event_type: str, event_id: int | None) -> None:
        created.append(
            HookDeliveryRow(
                hook_id=row.id,
                event_id=event_id,
                run_id=run_id,
                event_type=event_type,
                msg_id=new_message_id(),
                body=body,
                status=DeliveryStatus.QUEUED.value,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )

    for row in rows:
        hook = _hook(row)
        wanted = [e for e in events if hook.wants(e.alert)]
        if not wanted:
            continue
        if hook.kind is HookKind.SLACK:
            request = build_slack_request(hook.url, [e.alert for e in wanted], heading=heading)
            kind = wanted[0].alert.type.value if len(wanted) == 1 else "batch"
            single = wanted[0].event_id if len(wanted) == 1 else None
            add(row, request.body.decode("ascii"), kind, single)
            continue
        for item in wanted:
            if hook.kind is HookKind.WEBHOOK:
                body: str | None = webhook_payload(item.alert).decode("ascii")
            else:
                body = pagerduty_body(hook, row.routing_key or "", item.alert)
            if body is not None:
                add(row, body, item.alert.type.value, item.event_id)
    session.add_all(created)
    await session.flush()
    return [d.id for d in created]


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
    "DEFAULT_EVENT_TYPES",
    "AttemptRecord",
    "ClaimedDelivery",
    "DeliveryRecord",
    "DeliveryStatus",
    "HookInput",
    "HookKind",
    "HookRecord",
    "HookSecrets",
    "OutgoingEvent",
    "create_hook",
    "delete_hook",
    "disable_hook",
    "enqueue_events",
    "get_delivery",
    "get_hook",
    "hook_secrets",
    "list_deliveries",
    "list_hooks",
    "redeliver",
    "rotate_secret",
    "update_hook",
]
