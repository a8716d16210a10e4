"""Our own API's CORS: the policy we tell everyone else to have.

- An allowlist of exact origins (``CORS_SCANNER_API_CORS_ORIGINS``), compared
  with the request's ``Origin`` after serialising both, and echoed back only
  on a match; never ``*``, never a pattern.
- No ``Access-Control-Allow-Credentials``: the API authenticates with a bearer
  token a page puts in ``Authorization`` itself, so cookies are never needed
  and a page can never ride on a user's ambient credentials.
- ``Vary: Origin`` on every response (allowed or not, success or error), so
  no cache serves one origin's answer to another.
- Preflights (``OPTIONS`` with ``Access-Control-Request-Method``) answer 204
  with fixed method and header lists and a 600 s max-age; nothing from the
  request is echoed but an allowed origin.
- The headers are on error responses too: a front end can read our problem
  documents.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware

from scanner.core.origin import Origin
from scanner.errors import ConfigError, InvalidOrigin
from scanner.hostnames import uts46_host_encoder

ALLOW_METHODS = ("GET", "POST", "PATCH", "DELETE")
ALLOW_HEADERS = ("Authorization", "Content-Type")
EXPOSE_HEADERS = ("Location", "WWW-Authenticate", "X-Request-Id", "Retry-After")
MAX_AGE = 600

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CorsAllowlist:
    """The origins allowed to read our API from a browser, by exact serialised origin."""

    __slots__ = ("_origins",)

    def __init__(self, origins: Iterable[str]) -> None:
        allowed: set[str] = set()
        for value in origins:
            if "*" in value:
                raise ConfigError(
                    f"CORS_SCANNER_API_CORS_ORIGINS: {value!r}: list exact origins; "
                    "wildcards and patterns are not accepted for our own API"
                )
            try:
                origin = Origin.parse(value, encode_host=uts46_host_encoder)
            except InvalidOrigin as exc:
                raise ConfigError(f"CORS_SCANNER_API_CORS_ORIGINS: {exc.message}") from None
            if origin.opaque:
                # Sandboxed iframes and file: pages all send "null": allowing it
                # would allow every one of them.
                raise ConfigError("CORS_SCANNER_API_CORS_ORIGINS: 'null' cannot be allowed")
            allowed.add(origin.serialize())
        self._origins = frozenset(allowed)

    @property
    def origins(self) -> frozenset[str]:
        return self._origins

    def allows(self, header: str | None) -> bool:
        """Whether the ``Origin`` header value names an allowed origin, exactly."""
        # The header is compared byte for byte with the serialised allowlist
        # entries: browsers send the serialised form, and anything else
        # (case changes, default ports, trailing junk) is not a browser.
        return header is not None and header in self._origins


def cors_middleware(
    allowlist: CorsAllowlist,
) -> Middleware:
    """A middleware that answers preflights and decorates every response."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        allowed = allowlist.allows(origin)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response: web.StreamResponse = web.Response(status=204)
            if allowed:
                response.headers["Access-Control-Allow-Methods"] = ", ".join(ALLOW_METHODS)
                response.headers["Access-Control-Allow-Headers"] = ", ".join(ALLOW_HEADERS)
                response.headers["Access-Control-Max-Age"] = str(MAX_AGE)
            _vary(
                response,
                "Origin",
                "Access-Control-Request-Method",
                "Access-Control-Request-Headers",
            )
        else:
            response = await handler(request)
            _vary(response, "Origin")
            if allowed:
                response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSE_HEADERS)
        if allowed and origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
        return response

    return middleware


def _vary(response: web.StreamResponse, *names: str) -> None:
    present = [v.strip() for v in response.headers.get("Vary", "").split(",") if v.strip()]
    lowered = {v.lower() for v in present}
    if "*" in lowered:
        return
    present.extend(n for n in names if n.lower() not in lowered)
    response.headers["Vary"] = ", ".join(present)
