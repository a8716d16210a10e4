"""Schedule storage: cron schedules of runs (CRUD).

A schedule is a cron line evaluated in an IANA time zone, an endpoint
selection (all / tag / owner, the same ``RunSelection`` manual scans use)
and an enabled flag. Names are unique. Cron and time zone are validated here
(``ValidationError`` naming the field, with cron(8)'s rules from
:mod:`scanner.core.cron`), so nothing invalid or never-firing is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scanner.core import cron as cron_rules
from scanner.db.pagination import Page, decode_cursor, encode_cursor
from scanner.db.runs import RunSelection
from scanner.db.tables import NAME_LENGTH, ScheduleRow
from scanner.errors import Conflict, FieldError, InputError, NotFound, ValidationError


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """One schedule as stored."""

    id: int
    name: str
    cron: str
    timezone: str
    selection: RunSelection
    enabled: bool
    jitter_seconds: int | None  # None: the service's default spread
    last_planned_for: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ScheduleInput:
    """Fields to create a schedule, or (None = unchanged) to update one."""

    name: str | None = None
    cron: str | None = None
    timezone: str | None = None
    selection: RunSelection | None = None
    enabled: bool | None = None
    jitter_seconds: int | None = None
    reset_jitter: bool = False  # update only: back to the service's default spread


MAX_JITTER_SECONDS = 3600  # more would blur which tick a fire belongs to


def _record(row: ScheduleRow) -> ScheduleRecord:
    return ScheduleRecord(
        id=row.id,
        name=row.name,
        cron=row.cron,
        timezone=row.timezone,
        selection=RunSelection.from_json(row.selection or {}),
        enabled=row.enabled,
        jitter_seconds=row.jitter_seconds,
        last_planned_for=row.last_planned_for,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _validate(data: ScheduleInput) -> None:
    if data.name is not None and not (0 < len(data.name.strip()) <= NAME_LENGTH):
        raise InputError(f"name: expected 1-{NAME_LENGTH} characters")
    if data.cron is not None or data.timezone is not None:
        check_timing(data.cron or "* * * * *", data.timezone or "UTC", now=datetime.now(UTC))
    if data.selection is not None and data.selection.endpoint_ids is not None:
        raise InputError("selection: a schedule selects by tag and/or owner (or everything)")
    if data.jitter_seconds is not None and not 0 <= data.jitter_seconds <= MAX_JITTER_SECONDS:
        raise InputError(f"jitter_seconds: expected 0-{MAX_JITTER_SECONDS}")


def check_timing(cron: str, timezone: str, *, now: datetime) -> None:
    """``ValidationError`` naming ``cron`` or ``timezone`` unless the line parses and fires.

    A line with no tick in the next five years (``0 0 31 4,6,9,11 *``) is
    refused: it is a mistake, and nothing would ever run.
    """
    errors: list[FieldError] = []
    crontab = zone = None
    try:
        crontab = cron_rules.parse_crontab(cron)
    except InputError as exc:
        errors.append(FieldError("cron", exc.message))
    try:
        zone = cron_rules.parse_timezone(timezone)
    except InputError as exc:
        errors.append(FieldError("timezone", exc.message))
    if crontab is not None and zone is not None:
        try:
            cron_rules.first_tick(crontab, zone, now)
        except InputError as exc:
            errors.append(FieldError("cron", exc.message))
    if errors:
        raise ValidationError(errors)


async def _name_taken(session: AsyncSession, name: str, other_than: int | None) -> bool:
    found = (
        await session.execute(select(ScheduleRow.id).where(ScheduleRow.name == name))
    ).scalar_one_or_none()
    return found is not None and found != other_than


async def create_schedule(session: AsyncSession, data: ScheduleInput) -> ScheduleRecord:
    """Insert a schedule (name and cron required; UTC, everything, enabled by default)."""
    if data.name is None or data.cron is None:
        raise InputError("a schedule needs a name and a cron expression")
    _validate(data)
    name = data.name.strip()
    if await _name_taken(session, name, None):
        raise Conflict(f"a schedule named {name!r} already exists")
    now = datetime.now(UTC)
    row = ScheduleRow(
        name=name,
        cron=" ".join(data.cron.split()),
        timezone=data.timezone or "UTC",
        selection=(data.selection or RunSelection()).to_json(),
        enabled=True if data.enabled is None else data.enabled,
        jitter_seconds=data.jitter_seconds,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return _record(row)


async def get_schedule(session: AsyncSession, schedule_id: int) -> ScheduleRecord:
    """One schedule; ``NotFound`` when absent."""
    row = await session.get(ScheduleRow, schedule_id, populate_existing=True)
    if row is None:
        raise NotFound(f"schedule {schedule_id} does not exist")
    return _record(row)


async def list_schedules(
    session: AsyncSession, *, enabled_only: bool = False
) -> list[ScheduleRecord]:
    """Every schedule, by id."""
    query = select(ScheduleRow).order_by(ScheduleRow.id)
    if enabled_only:
        query = query.where(ScheduleRow.enabled)
    return [_record(r) for r in (await session.execute(query)).scalars()]


async def page_schedules(
    session: AsyncSession, *, limit: int, cursor: str | None = None
) -> Page[ScheduleRecord]:
    """One page of schedules by id (keyset: stable while schedules come and go)."""
    query = select(ScheduleRow).order_by(ScheduleRow.id).limit(limit + 1)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(ScheduleRow.id > after)
    rows = [_record(r) for r in (await session.execute(query)).scalars()]
    shown = rows[:limit]
    return Page(tuple(shown), encode_cursor(shown[-1].id) if len(rows) > limit else None)


async def update_schedule(
    session: AsyncSession, schedule_id: int, data: ScheduleInput
) -> ScheduleRecord:
    """Change the given fields; ``NotFound``/``Conflict``/``InputError`` as for create."""
    row = await session.get(ScheduleRow, schedule_id, populate_existing=True)
    if row is None:
        raise NotFound(f"schedule {schedule_id} does not exist")
    _validate(
        ScheduleInput(
            name=data.name,
            cron=data.cron if data.cron is not None else (row.cron if data.timezone else None),
            timezone=data.timezone
            if data.timezone is not None
            else (row.timezone if data.cron else None),
            selection=data.selection,
            jitter_seconds=data.jitter_seconds,
        )
    )
    changes: dict[str, Any] = {}
    if data.name is not None:
        name = data.name.strip()
        if await _name_taken(session, name, schedule_id):
            raise Conflict(f"a schedule named {name!r} already exists")
        changes["name"] = name
    if data.cron is not None:
        changes["cron"] = " ".join(data.cron.split())
    if data.timezone is not None:
        changes["timezone"] = data.timezone
    if data.selection is not None:
        changes["selection"] = data.selection.to_json()
    if data.enabled is not None:
        changes["enabled"] = data.enabled
    if data.jitter_seconds is not None or data.reset_jitter:
        changes["jitter_seconds"] = data.jitter_seconds
    for key, value in changes.items():
        setattr(row, key, value)
    if changes:
        row.updated_at = datetime.now(UTC)
    await session.flush()
    return _record(row)


async def delete_schedule(session: AsyncSession, schedule_id: int) -> None:
    """Remove a schedule (its past runs stay, detached); ``NotFound`` when absent."""
    row = await session.get(ScheduleRow, schedule_id)
    if row is None:
        raise NotFound(f"schedule {schedule_id} does not exist")
    await session.delete(row)
    await session.flush()
