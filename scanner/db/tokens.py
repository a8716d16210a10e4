"""API tokens: bearer secrets for the REST API, stored only as SHA-256 hashes.

A secret is ``csk_`` + 43 URL-safe characters (256 random bits); it is shown
once, when created. The database keeps its SHA-256 (a fast hash is right for
a random 256-bit secret: there is nothing to brute-force) and its first 12
characters, so people can tell tokens apart in lists.

Scopes nest: ``admin`` includes ``write``, which includes ``read``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scanner.db.tables import TOKEN_NAME_LENGTH, TOKEN_PREFIX_LENGTH, ApiTokenRow, utc_now
from scanner.errors import FieldError, NotFound, ValidationError

SECRET_PREFIX = "csk_"  # noqa: S105 - a public marker, not a secret
SECRET_BYTES = 32
MAX_SECRET_LENGTH = 256  # anything longer is not one of ours: refuse before hashing
LAST_USED_PRECISION = timedelta(minutes=1)  # don't turn every request into a write


class Scope(StrEnum):
    """What a token may do. ``admin`` ⊇ ``write`` ⊇ ``read``."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def includes(self, other: Scope) -> bool:
        """Whether holding this scope grants ``other``."""
        return self.rank >= other.rank


_RANK = {Scope.READ: 0, Scope.WRITE: 1, Scope.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored token, without its secret."""

    id: int
    name: str
    prefix: str
    scopes: frozenset[Scope]
    created_at: datetime
    created_by: str | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, needed: Scope) -> bool:
        """Whether one of the token's scopes grants ``needed`` (admin ⊇ write ⊇ read)."""
        return any(s.includes(needed) for s in self.scopes)


def hash_secret(secret: str) -> str:
    """The SHA-256 hex digest stored for a secret."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _record(row: ApiTokenRow) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        name=row.name,
        prefix=row.token_prefix,
        scopes=frozenset(Scope(s) for s in row.scopes),
        created_at=row.created_at,
        created_by=row.created_by,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


# Actors the audit log names that are not tokens: a token by one of these names would pose
# as the command line, `serve`, or an unauthenticated client there.
RESERVED_NAMES = frozenset({"cli", "serve", "unauthenticated"})


def _validate(name: object, scopes: Iterable[Scope | str]) -> tuple[str, frozenset[Scope]]:
    errors: list[FieldError] = []
    clean_name = name.strip() if isinstance(name, str) else ""
    if not clean_name:
        errors.append(FieldError("name", "a token needs a name (who or what uses it)"))
    elif clean_name.casefold() in RESERVED_NAMES:
        errors.append(
            FieldError(
                "name",
                f"{clean_name!r} is reserved: the audit log uses it for "
                f"{'the command line' if clean_name.casefold() == 'cli' else 'the service itself'}",
            )
        )
    elif len(clean_name) > TOKEN_NAME_LENGTH:
        errors.append(FieldError("name", f"at most {TOKEN_NAME_LENGTH} characters"))
    elif not clean_name.isprintable():
        errors.append(FieldError("name", "no line breaks or control characters"))
    parsed: set[Scope] = set()
    bad: list[str] = []
    for s in scopes:
        try:
            parsed.add(Scope(s))
        except ValueError:
            bad.append(repr(s))
    if bad:
        errors.append(
            FieldError("scopes", f"unknown scope {', '.join(bad)}: use read, write, admin")
        )
    elif not parsed:
        errors.append(FieldError("scopes", "give at least one of read, write, admin"))
    if errors:
        raise ValidationError(errors)
    return clean_name, frozenset(parsed)


async def create_token(
    session: AsyncSession,
    name: str,
    scopes: Iterable[Scope | str],
    *,
    created_by: str | None,
) -> tuple[TokenRecord, str]:
    """A new token and its secret. The secret is not stored: show it once."""
    clean_name, clean_scopes = _validate(name, scopes)
    secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    row = ApiTokenRow(
        name=clean_name,
        token_prefix=secret[:TOKEN_PREFIX_LENGTH],
        token_hash=hash_secret(secret),
        scopes=sorted(s.value for s in clean_scopes),
        created_at=utc_now(),
        created_by=created_by,
    )
    session.add(row)
    await session.flush()
    return _record(row), secret


async def authenticate(
    session: AsyncSession, secret: str, *, now: datetime | None = None, touch: bool = True
) -> TokenRecord | None:
    """The active token whose secret this is, or None (unknown, malformed or revoked).

    The lookup is by hash, so it takes the same path whatever the secret
    looks like; the final comparison is ``hmac.compare_digest``. With
    ``touch``, records ``last_used_at`` at most once a minute (``now``
    defaults to the clock); without it the call only reads (a read session),
    and the caller records the use with :func:`record_token_use` when
    :func:`use_is_stale` says so.
    """
    if not isinstance(secret, str) or len(secret) > MAX_SECRET_LENGTH:
        return None
    digest = hash_secret(secret)
    row = await session.scalar(select(ApiTokenRow).where(ApiTokenRow.token_hash == digest))
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    if row.revoked_at is not None:
        return None
    record = _record(row)
    moment = now or utc_now()
    if touch and use_is_stale(record, moment):
        await record_token_use(session, row.id, now=moment)
        await session.refresh(row)
        record = _record(row)
    return record


def use_is_stale(token: TokenRecord, now: datetime) -> bool:
    """Whether ``token``'s ``last_used_at`` is old enough to be written again at ``now``."""
    return token.last_used_at is None or token.last_used_at <= now - LAST_USED_PRECISION


async def record_token_use(session: AsyncSession, token_id: int, *, now: datetime) -> None:
    """Set ``last_used_at`` to ``now`` unless it was written within the last minute."""
    stale = now - LAST_USED_PRECISION
    # Conditional, so concurrent requests with one token write at most once.
    await session.execute(
        update(ApiTokenRow)
        .where(
            ApiTokenRow.id == token_id,
            (ApiTokenRow.last_used_at.is_(None)) | (ApiTokenRow.last_used_at <= stale),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )


async def active_token_hashes(session: AsyncSession) -> frozenset[str]:
    """The hashes of every token not revoked (a handful of rows: one per issued token)."""
    rows = await session.scalars(
        select(ApiTokenRow.token_hash).where(ApiTokenRow.revoked_at.is_(None))
    )
    return frozenset(rows)


async def list_tokens(session: AsyncSession) -> list[TokenRecord]:
    """Every token, revoked ones included, oldest first."""
    rows = await session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id))
    return [_record(r) for r in rows]


async def get_token(session: AsyncSession, token_id: int) -> TokenRecord:
    """One token by id; ``NotFound`` when there is none."""
    row = await session.get(ApiTokenRow, token_id)
    if row is None:
        raise NotFound(f"token {token_id} does not exist")
    return _record(row)


async def revoke_token(session: AsyncSession, token_id: int) -> TokenRecord:
    """Revoke a token for good; revoking twice keeps the first time. ``NotFound``."""
    row = await session.get(ApiTokenRow, token_id)
    if row is None:
        raise NotFound(f"token {token_id} does not exist")
    if row.revoked_at is None:
        row.revoked_at = utc_now()
        await session.flush()
    return _record(row)


async def count_active_tokens(session: AsyncSession) -> int:
    """How many tokens are not revoked (serve creates an admin token when there are none)."""
    count = await session.scalar(
        select(func.count()).select_from(ApiTokenRow).where(ApiTokenRow.revoked_at.is_(None))
    )
    return int(count or 0)
