"""Bearer-token authentication and scope checks.

Each route's :class:`scanner.api.schemas.Operation` names the scope it needs
(``read`` for reads, ``write`` for changes, ``admin`` for tokens and the
audit log; admin includes write, write includes read) or ``None`` for public
routes (health, the OpenAPI document, the docs page). A missing, unknown or
revoked token is 401 with ``WWW-Authenticate: Bearer``; a valid token without
the scope is 403. Unknown and revoked tokens are failures counted per client
address (``scanner.api.ratelimit.FailedAuthGuard``): past the address's budget,
429 with ``Retry-After`` before any lookup, and audited, throttled.

The client address is the connection's peer, unless that peer is one of
``api_trusted_proxies``: then it is the rightmost ``X-Forwarded-For`` entry
that is not a trusted proxy (what the proxy nearest to us saw). IPv6 clients
are counted per /64, the block one host usually holds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware

from scanner.api.problems import Problem
from scanner.api.schemas import operation_of
from scanner.db import audit
from scanner.db.engine import Database
from scanner.db.tokens import TokenRecord, active_token_hashes, authenticate, hash_secret
from scanner.usecases import Context
from scanner.usecases.tokens import record_auth_failures

if TYPE_CHECKING:
    from scanner.api.ratelimit import FailedAuthGuard

log = logging.getLogger("scanner.api.auth")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

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


def trusted_networks(entries: Sequence[str]) -> tuple[Network, ...]:
    """``api_trusted_proxies`` as networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def client_address(request: web.Request, trusted: Sequence[Network] = ()) -> str:
    """The address failed authentications are counted under (module docstring)."""
    peer = request.remote or "unknown"
    chain = [peer]
    if trusted and _within(peer, trusted):
        forwarded = ",".join(request.headers.getall("X-Forwarded-For", []))
        chain = [peer, *reversed([p.strip() for p in forwarded.split(",") if p.strip()])]
    address = chain[0]
    for hop in chain:
        address = hop
        if not _within(hop, trusted):
            break
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


def _within(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


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
            failures = guard.failed(address, digest)
            if failures is not None and context is not None:
                try:
                    await record_auth_failures(context(), address=address, failures=failures)
                except Exception as exc:  # the 401 stands whatever the audit log does
                    log.warning("could not audit failed authentication from %s: %s", address, exc)
        return Problem(
            "unauthorized",
            "the token is unknown or revoked",
            headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
        )

    refreshing = asyncio.Lock()

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
        address = client_address(request, trusted_proxies)
        if guard is not None:
            wait = guard.admit(address, digest)
            if wait > 0 and guard.known_due():
                # Throttled: still let through any token that exists (read once a while).
                async with refreshing:
                    if guard.known_due():
                        db = database()
                        async with db.session() as session, session.begin():
                            guard.known(await active_token_hashes(session))
                wait = guard.admit(address, digest)
            if wait > 0:
                seconds = max(1, math.ceil(wait))
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
