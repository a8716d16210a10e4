"""Dashboard sessions: a browser signed in with an API token, stored as a hash of its cookie.

Signing in trades a token for a random 256-bit session secret, sent to the
browser as a cookie; the database keeps only its SHA-256 (like token
secrets), the token it was opened with, a CSRF token, and an absolute
expiry. A session is valid only while

- it has not expired (``expires_at`` is absolute: no sliding renewal keeps a
  stolen cookie alive), and
- its token is still active: :func:`resume_session` reads the token on every
  request, so revoking a token ends every session opened with it at the next
  click, and deleting the token deletes them (``ON DELETE CASCADE``).

Scopes are the token's, read fresh each time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scanner.db.tables import DashboardSessionRow
from scanner.db.tokens import TokenRecord, get_token

SESSION_BYTES = 32
CSRF_BYTES = 32
MAX_SECRET_LENGTH = 128  # ours are 43 characters: anything longer is not a cookie of ours
LAST_SEEN_PRECISION = timedelta(minutes=1)  # don't turn every page view into a write


@dataclass(frozen=True, slots=True)
class DashboardSession:
    """A live session and the (active) token behind it."""

    id: int
    token: TokenRecord
    csrf_token: str
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime

    def stale(self, now: datetime) -> bool:
        """Whether ``last_seen_at`` is old enough to be worth a write (:func:`touch_session`)."""
        return self.last_seen_at <= now - LAST_SEEN_PRECISION


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


async def open_session(
    session: AsyncSession, token: TokenRecord, *, lifetime: timedelta, now: datetime
) -> tuple[DashboardSession, str]:
    """A new session for an authenticated ``token`` and its cookie secret (shown once).

    Expired sessions are deleted on the way: signing in is rare enough to
    carry the housekeeping.
    """
    await session.execute(
        delete(DashboardSessionRow)
        .where(DashboardSessionRow.expires_at <= now)
        .execution_options(synchronize_session=False)
    )
    secret = secrets.token_urlsafe(SESSION_BYTES)
    row = DashboardSessionRow(
        session_hash=_digest(secret),
        token_id=token.id,
        csrf_token=secrets.token_urlsafe(CSRF_BYTES),
        created_at=now,
        expires_at=now + lifetime,
        last_seen_at=now,
    )
    session.add(row)
    await session.flush()
    opened = DashboardSession(
        row.id, token, row.csrf_token, row.created_at, row.expires_at, row.last_seen_at
    )
    return opened, secret


async def resume_session(
    session: AsyncSession, secret: str, *, now: datetime
) -> DashboardSession | None:
    """The live session whose cookie this is, or None (unknown, expired, or token revoked).

    Reads only (page views run in read-only transactions): record activity
    with :func:`touch_session` in a write transaction of its own.
    """
    if not isinstance(secret, str) or not secret or len(secret) > MAX_SECRET_LENGTH:
        return None
    digest = _digest(secret)
    row = await session.scalar(
        select(DashboardSessionRow).where(DashboardSessionRow.session_hash == digest)
    )
    if row is None or not hmac.compare_digest(row.session_hash, digest):
        return None
    if row.expires_at <= now:
        return None
    token = await get_token(session, row.token_id)
    if not token.active:
        return None
    return DashboardSession(
        row.id, token, row.csrf_token, row.created_at, row.expires_at, row.last_seen_at
    )


async def touch_session(session: AsyncSession, session_id: int, *, now: datetime) -> None:
    """Record that the session was used at ``now`` (conditional: concurrent clicks write once)."""
    await session.execute(
        update(DashboardSessionRow)
        .where(
            DashboardSessionRow.id == session_id,
            DashboardSessionRow.last_seen_at <= now - LAST_SEEN_PRECISION,
        )
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )


async def close_session(session: AsyncSession, secret: str) -> bool:
    """End the session of this cookie (sign out); whether there was one."""
    if not isinstance(secret, str) or not secret or len(secret) > MAX_SECRET_LENGTH:
        return False
    result = await session.execute(
        delete(DashboardSessionRow)
        .where(DashboardSessionRow.session_hash == _digest(secret))
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
