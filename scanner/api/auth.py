"""Bearer-token authentication and scope checks.

Each route's :class:`scanner.api.schemas.Operation` names the scope it needs
(``read`` for reads, ``write`` for changes, ``admin`` for tokens and the
audit log; admin includes write, write includes read) or ``None`` for public
routes (health, the OpenAPI document, the docs page). A missing, unknown or
revoked token is 401 with ``WWW-Authenticate: Bearer``; a valid token without
the scope is 403. Unknown and revoked tokens are failures counted per client
address (``scanner.throttle.FailedAuthGuard``): past the address's budget,
429 with ``Retry-After`` before any lookup, and audited, throttled.

The check is a read transaction (``Database.read_session``: on SQLite it
never waits for the write lock), so requests keep being authenticated while
an import or a run holds it. A token's ``last_used_at`` is written at most
once a minute per token, by a background task (:class:`TokenUse`), never by
the request itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from aiohttp import web
from aiohttp.typedefs import Middleware

from scanner.api.problems import Problem
from scanner.api.schemas import operation_of
from scanner.db import audit
from scanner.db.engine import Database
from scanner.db.tables import utc_now
from scanner.db.tokens import (
    LAST_USED_PRECISION,
    TokenRecord,
    authenticate,
    hash_secret,
    record_token_use,
    use_is_stale,
)
from scanner.db.transient import describe
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

log = logging.getLogger("scanner.api")


class TokenUse:
    """Records tokens' ``last_used_at`` off the request path, at most once a minute each."""

    def __init__(self, database: Callable[[], Database]) -> None:
        self._database = database
        self._noted: dict[int, float] = {}  # token id -> monotonic time of the last write
        self._tasks: set[asyncio.Task[None]] = set()

    def used(self, token: TokenRecord) -> None:
        """``token`` authenticated a request: write its use if that is due."""
        now = utc_now()
        if not use_is_stale(token, now):
            return
        clock = time.monotonic()
        if clock - self._noted.get(token.id, -1e9) < LAST_USED_PRECISION.total_seconds():
            return  # written (or being written) by this process within the minute
        self._noted[token.id] = clock
        task = asyncio.create_task(self._write(token.id, now), name=f"token-use-{token.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, token_id: int, now: datetime) -> None:
        try:
            async with self._database().session() as session, session.begin():
                await record_token_use(session, token_id, now=now)
        except Exception as exc:  # bookkeeping: never worth an error, retried next minute
            self._noted.pop(token_id, None)
            log.debug("recording the use of token %s failed: %s", token_id, describe(exc))

    async def drain(self) -> None:
        """Wait for the writes in flight (the app is stopping)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


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


TOKEN_USES = web.AppKey("token_uses", TokenUse)


def auth_middleware(
    database: Callable[[], Database],
    uses: TokenUse | None = None,
    *,
    guard: FailedAuthGuard | None = None,
    context: Callable[[], Context] | None = None,
    trusted_proxies: Sequence[Network] = (),
) -> Middleware:
    """Authenticate requests to scoped operations; ``database`` returns the app's handle,
    ``uses`` records when each token was last used. With ``guard``, failures are limited
    per client address and audited through ``context`` (module docstring)."""
    recorder = uses or TokenUse(database)

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
        async with db.read_session() as session, session.begin():
            token = await authenticate(session, secret, touch=False)
        if token is not None:
            recorder.used(token)
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
