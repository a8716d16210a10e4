"""Browser sessions: signing in with an API token, resuming, signing out (audited).

A session lives as long as its token is active and its absolute lifetime
(``CORS_SCANNER_DASHBOARD_SESSION_HOURS``) has not run out; see
``scanner.db.sessions`` for what is stored and how revocation ends it.
Signing in and out are audited as ``dashboard.sign_in`` / ``dashboard.sign_out``
under the token's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from scanner.db import audit, sessions, tokens
from scanner.db.sessions import DashboardSession
from scanner.usecases.context import Context

MAX_SECRET_LENGTH = 256


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A new session and the cookie secret that names it (shown to the browser once)."""

    session: DashboardSession
    secret: str


async def sign_in(ctx: Context, token_secret: str) -> SignedIn | None:
    """A session for the token whose secret this is; None when it is unknown or revoked."""
    if not token_secret or len(token_secret) > MAX_SECRET_LENGTH:
        return None
    now = ctx.now()
    async with ctx.transaction() as session:
        token = await tokens.authenticate(session, token_secret, now=now)
        if token is None:
            return None
        lifetime = timedelta(hours=ctx.settings.dashboard_session_hours)
        opened, secret = await sessions.open_session(session, token, lifetime=lifetime, now=now)
        await audit.record(
            session,
            actor=token.name,
            action="dashboard.sign_in",
            target_type="token",
            target_id=str(token.id),
            detail={"session": opened.id, "expires_at": opened.expires_at.isoformat()},
            token_id=token.id,
        )
    return SignedIn(opened, secret)


async def resume(ctx: Context, secret: str) -> DashboardSession | None:
    """The live session of this cookie secret, or None; records its use once a minute."""
    now = ctx.now()
    async with ctx.read() as session:  # every page view: never wait for the write lock
        found = await sessions.resume_session(session, secret, now=now)
    if found is not None and found.stale(now):
        # Its own short write: page views are reads.
        async with ctx.transaction() as session:
            await sessions.touch_session(session, found.id, now=now)
    return found


async def sign_out(ctx: Context, secret: str, *, signed_in: DashboardSession | None) -> None:
    """End the session of this cookie secret (whoever held it can no longer use it)."""
    async with ctx.transaction() as session:
        closed = await sessions.close_session(session, secret)
        if closed and signed_in is not None:
            await audit.record(
                session,
                actor=signed_in.token.name,
                action="dashboard.sign_out",
                target_type="token",
                target_id=str(signed_in.token.id),
                detail={"session": signed_in.id},
            )


__all__ = ["SignedIn", "resume", "sign_in", "sign_out"]
