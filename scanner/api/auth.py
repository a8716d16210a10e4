"""Bearer-token authentication and scope checks.

Each route's :class:`scanner.api.schemas.Operation` names the scope it needs
(``read`` for reads, ``write`` for changes, ``admin`` for tokens and the
audit log; admin includes write, write includes read) or ``None`` for public
routes (health, the OpenAPI document, the docs page). A missing, unknown or
revoked token is 401 with ``WWW-Authenticate: Bearer``; a valid token without
the scope is 403. Unknown and revoked tokens are failures counted per client
address (``scanner.throttle.FailedAuthGuard``): past the address's budget,
429 with ``Retry-After`` before any lookup, and audited, throttled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from scanner.api.problems import Problem
from scanner.api.schemas import operation_of
from scanner.db import audit
from scanner.db.engine import Database
from scanner.db.tokens import TokenRecord, authenticate, hash_secret
from scanner.throttle import (
    FailedAuthGuard,
    Network,
    admission,
    client_address,
    note_failure,
)
from scanner.usecases import Context

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TOKEN_KEY = web.RequestKey("token", TokenRecord)
REALM = 'Bearer realm="cors-scanner"'
MAX_TOKEN_LENGTH = 200  # ours are ~47 characters; longer is not a token of ours


def bearer_secret(header: str | None) -> str | None:
    """The token from ``Authorization: Bearer <token>``, or None when absent or malformed."""
    if not header:
        return None
    scheme, _, secret = header.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret or len(secret) > MAX_TOKEN_LENGTH:
        return None
    if not secret.isascii() or not secret.isprintable() or " " in secret:
        return None
    return secret


def auth_middleware(
    database: Callable[[], Database],
    *,
    guard: FailedAuthGuard | None = None,
    context: Callable[[], Context] | None = None,
    trusted_proxies: Sequence[Network] = (),
) -> Middleware:
    """Authenticate requests to scoped operations; ``database`` returns the app's handle.
    With ``guard``, failures are limited per client address and audited through
    ``context`` (module docstring)."""

    async def failed(address: str, digest: str) -> Problem:
        if guard is not None:
            await note_failure(guard, context() if context else None, address, digest)
        return Problem(
            "unauthorized",
            "the token is unknown or revoked",
            headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
        )

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        op = operation_of(request.match_info.handler)
        if op is None or op.scope is None:
            return await handler(request)
        needed = op.scope
        secret = bearer_secret(request.headers.get("Authorization"))
        if secret is None:
            raise Problem(
                "unauthorized",
                "send Authorization: Bearer <token>",
                headers={"WWW-Authenticate": REALM},
            )
        digest = hash_secret(secret)
        address = client_address(
            request.remote, request.headers.getall("X-Forwarded-For", []), trusted_proxies
        )
        if guard is not None:
            seconds = await admission(guard, database(), address, digest)
            if seconds:
                raise Problem(
                    "rate_limited",
                    f"too many failed authentications from {address}; retry in {seconds} s",
                    headers={"Retry-After": str(seconds)},
                )
            if guard.is_unknown(digest):
                raise await failed(address, digest)
        db = database()
        async with db.session() as session, session.begin():
            token = await authenticate(session, secret)
        if token is None:
            raise await failed(address, digest)
        if guard is not None:
            guard.succeeded(address, digest)
        if not token.allows(needed):
            raise Problem(
                "forbidden",
                f"this operation needs the {needed.value!r} scope; the token has "
                f"{', '.join(sorted(s.value for s in token.scopes)) or 'none'}",
                headers={
                    "WWW-Authenticate": f'{REALM}, error="insufficient_scope", '
                    f'scope="{needed.value}"'
                },
            )
        request[TOKEN_KEY] = token
        with audit.acting_token(token.id):
            return await handler(request)

    return middleware


def current_token(request: web.Request) -> TokenRecord:
    """The authenticated token of a scoped request."""
    return request[TOKEN_KEY]
