"""API tokens and the audit log: create a token (its secret shown once), revoke one, read both.

Tokens are bearer secrets stored only as hashes (``scanner.db.tokens``).
Creating and revoking are audited, so the log says who gave whom access.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from scanner.db import audit, tokens
from scanner.db.audit import AuditRecord
from scanner.db.pagination import Page
from scanner.db.tokens import Scope, TokenRecord
from scanner.usecases.context import Context

FIRST_TOKEN_NAME = "admin"  # noqa: S105 - a name, not a secret


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just created and its secret: show the secret now, it is not stored."""

    token: TokenRecord
    secret: str


async def create_token(
    ctx: Context, name: str, scopes: Iterable[Scope | str], *, actor: str
) -> NewToken:
    """A new token with these scopes; audited as ``token.create``. ``ValidationError`` for a
    bad name or scope."""
    async with ctx.transaction() as session:
        record, secret = await tokens.create_token(session, name, scopes, created_by=actor)
        await audit.record(
            session,
            actor=actor,
            action="token.create",
            target_type="token",
            target_id=str(record.id),
            detail={"name": record.name, "scopes": sorted(s.value for s in record.scopes)},
        )
    return NewToken(record, secret)


class TokenTable(Enum):
    """What a starting ``serve`` found in the token table."""

    EMPTY = "empty"  # a first start: nobody can use the API yet
    ACTIVE = "active"  # at least one token works
    ALL_REVOKED = "all_revoked"  # tokens existed and every one was revoked: a decision, kept


@dataclass(frozen=True, slots=True)
class FirstStart:
    """The token table as ``serve`` found it, and the admin token it minted, if any."""

    table: TokenTable
    token: NewToken | None


async def first_admin_token(ctx: Context, *, actor: str, mint: bool = True) -> FirstStart:
    """Mint an admin token only when the token table is empty (a first start); audited.

    A table whose every token is revoked is left alone: revoking the last
    token is an operator's decision, and a restart must not undo it by
    handing out a new admin secret (``ALL_REVOKED``; a token is then made by
    hand with ``cors-scanner tokens create NAME --scope admin``). ``mint=False``
    reports an empty table without minting (there is nowhere safe to show a secret).
    """
    async with ctx.transaction() as session:
        existing = await tokens.list_tokens(session)
        if existing:
            active = any(t.active for t in existing)
            return FirstStart(TokenTable.ACTIVE if active else TokenTable.ALL_REVOKED, None)
        if not mint:
            return FirstStart(TokenTable.EMPTY, None)
        record, secret = await tokens.create_token(
            session, FIRST_TOKEN_NAME, [Scope.ADMIN], created_by=actor
        )
        await audit.record(
            session,
            actor=actor,
            action="token.create",
            target_type="token",
            target_id=str(record.id),
            detail={"name": record.name, "scopes": ["admin"], "reason": "first start"},
        )
    return FirstStart(TokenTable.EMPTY, NewToken(record, secret))


AUTH_FAILURE_ACTOR = "unauthenticated"


async def record_auth_failures(ctx: Context, *, address: str, failures: int) -> None:
    """Audit failed authentication from ``address`` as ``auth.failure``: ``failures``
    unknown or revoked tokens since its previous entry (the API writes at most one entry
    per address a minute)."""
    async with ctx.transaction() as session:
        await audit.record(
            session,
            actor=AUTH_FAILURE_ACTOR,
            action="auth.failure",
            target_type="client",
            target_id=address,
            detail={"failures": failures, "reason": "unknown or revoked token"},
        )


async def list_tokens(ctx: Context) -> list[TokenRecord]:
    """Every token, revoked ones included, oldest first (never their secrets)."""
    async with ctx.read() as session:
        return await tokens.list_tokens(session)


async def get_token(ctx: Context, token_id: int) -> TokenRecord:
    """One token; ``NotFound``."""
    async with ctx.read() as session:
        return await tokens.get_token(session, token_id)


async def revoke_token(ctx: Context, token_id: int, *, actor: str) -> TokenRecord:
    """Revoke a token for good (revoking twice keeps the first time); audited as
    ``token.revoke``. ``NotFound``."""
    async with ctx.transaction() as session:
        record = await tokens.revoke_token(session, token_id)
        await audit.record(
            session,
            actor=actor,
            action="token.revoke",
            target_type="token",
            target_id=str(record.id),
            detail={"name": record.name},
        )
    return record


async def list_audit(ctx: Context, *, limit: int, cursor: str | None = None) -> Page[AuditRecord]:
    """The audit log, newest first."""
    async with ctx.read() as session:
        return await audit.list_audit(session, limit=limit, cursor=cursor)


__all__ = [
    "FIRST_TOKEN_NAME",
    "FirstStart",
    "NewToken",
    "TokenTable",
    "create_token",
    "first_admin_token",
    "get_token",
    "list_audit",
    "list_tokens",
    "revoke_token",
]
