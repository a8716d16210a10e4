"""The audit log: every write through the API or the CLI, who made it, on what.

Actors are token names, or ``cli`` for the command line (a reserved name no
token may take). ``token_id`` says which token: the API and the dashboard set it
for the request they authenticated (:func:`acting_token`), so every entry a
request writes names its token without each use case passing it on.
``detail`` is a JSON object describing the change (never a secret). Listed
newest first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scanner.core.timestamps import iso_utc
from scanner.db.pagination import Page, check_limit, decode_cursor, encode_cursor
from scanner.db.tables import AuditLogRow, utc_now
from scanner.errors import InputError

MAX_DETAIL_BYTES = 65_536

_ACTING_TOKEN: ContextVar[int | None] = ContextVar("cors_scanner_acting_token", default=None)


@contextmanager
def acting_token(token_id: int | None) -> Iterator[None]:
    """Entries recorded inside (this task and those it starts) name this token."""
    reset = _ACTING_TOKEN.set(token_id)
    try:
        yield
    finally:
        _ACTING_TOKEN.reset(reset)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit entry."""

    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str | None
    detail: Mapping[str, Any] = field(default_factory=dict)
    token_id: int | None = None


async def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | None,
    detail: Mapping[str, Any] | None = None,
    token_id: int | None = None,
) -> None:
    """Add an entry in the caller's transaction, so it commits (or not) with the change.
    ``token_id`` defaults to the token of :func:`acting_token`."""
    try:
        # Round-trip through JSON: datetimes and tuples are stored the same on every backend,
        # and what cannot be JSON fails here, not at commit.
        text = json.dumps(dict(detail or {}), default=_jsonable, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"audit detail is not JSON: {exc}") from None
    body = json.loads(text)
    if len(text) > MAX_DETAIL_BYTES:
        body = {"truncated": True, "keys": sorted(body)[:100]}
    session.add(
        AuditLogRow(
            at=utc_now(),
            actor=actor[:200],
            token_id=token_id if token_id is not None else _ACTING_TOKEN.get(),
            action=action[:100],
            target_type=target_type[:50],
            target_id=None if target_id is None else str(target_id)[:200],
            detail=body,
        )
    )
    await session.flush()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


async def list_audit(session: AsyncSession, *, limit: int, cursor: str | None) -> Page[AuditRecord]:
    """One page of entries, newest first, after ``cursor``."""
    check_limit(limit)
    before = decode_cursor(cursor)
    stmt = select(AuditLogRow).order_by(AuditLogRow.id.desc()).limit(limit + 1)
    if before is not None:
        stmt = stmt.where(AuditLogRow.id < before)
    rows = list(await session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    items = tuple(
        AuditRecord(
            id=r.id,
            at=r.at,
            actor=r.actor,
            action=r.action,
            target_type=r.target_type,
            target_id=r.target_id,
            detail=r.detail,
            token_id=r.token_id,
        )
        for r in rows
    )
    return Page(items=items, next_cursor=encode_cursor(rows[-1].id) if more and rows else None)
