"""Signing in: an API token becomes a session cookie; CSRF tokens guard every form.

The cookie (``cors_scanner_session``; ``__Host-cors_scanner_session`` over
https) carries a random 256-bit secret whose hash ``scanner.db.sessions``
stores. It is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no
other site's page or link sends it), ``Path=/``, ``Max-Age`` = the session's
lifetime, and ``Secure`` whenever the dashboard is reached over https
(directly, or ``CORS_SCANNER_PUBLIC_URL`` says https).

CSRF, for every state-changing form (synchronizer tokens, OWASP's first
choice): each session has a random CSRF token, rendered into its forms as a
hidden ``csrf`` field and compared in constant time on every POST. The
sign-in form, which has no session yet, uses a double-submit cookie
(``cors_scanner_login``) instead. On top of both, a POST whose ``Origin`` (or
``Sec-Fetch-Site``) says it came from another site is refused before any
form is read.

The session is resolved on every request (``resume_session`` re-reads the
token), so a revoked token signs its browsers out at their next click.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from functools import wraps
from urllib.parse import quote

from aiohttp import web

from scanner.db import audit
from scanner.db.sessions import DashboardSession
from scanner.db.tokens import Scope
from scanner.settings import Settings
from scanner.usecases import Context, sessions
from scanner.usecases.sessions import SignedIn

COOKIE = "cors_scanner_session"
SECURE_COOKIE = "__Host-" + COOKIE  # the __Host- prefix: Secure, Path=/, no Domain, enforced
LOGIN_COOKIE = "cors_scanner_login"
SECURE_LOGIN_COOKIE = "__Host-" + LOGIN_COOKIE
CSRF_FIELD = "csrf"
LOGIN_COOKIE_SECONDS = 3600

SESSION_KEY = web.RequestKey("dashboard_session", DashboardSession)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Forbidden(web.HTTPForbidden):
    """A refused request, with the sentence its error page shows."""

    def __init__(self, message: str) -> None:
        super().__init__(text=message)
        self.message = message


def is_secure(request: web.Request, settings: Settings) -> bool:
    """Whether the browser reaches us over https (so cookies must be Secure)."""
    return request.secure or (settings.public_url or "").lower().startswith("https://")


def _cookie_name(request: web.Request, settings: Settings, plain: str, secure: str) -> str:
    return secure if is_secure(request, settings) else plain


def _cookie_value(request: web.Request, plain: str, secure: str) -> str | None:
    return request.cookies.get(secure) or request.cookies.get(plain)


def session_secret(request: web.Request) -> str | None:
    """The session cookie's value, if the browser sent one."""
    return _cookie_value(request, COOKIE, SECURE_COOKIE)


async def load_session(request: web.Request, ctx: Context) -> DashboardSession | None:
    """The live session of this request (and remember it on the request), or None."""
    secret = session_secret(request)
    if secret is None:
        return None
    found = await sessions.resume(ctx, secret)
    if found is not None:
        request[SESSION_KEY] = found
    return found


def current(request: web.Request) -> DashboardSession | None:
    """The request's session, when signed in."""
    return request.get(SESSION_KEY)


def set_session_cookie(
    request: web.Request, response: web.StreamResponse, settings: Settings, signed: SignedIn
) -> None:
    """Send the new session's cookie (and drop the sign-in form's)."""
    lifetime = signed.session.expires_at - signed.session.created_at
    response.set_cookie(
        _cookie_name(request, settings, COOKIE, SECURE_COOKIE),
        signed.secret,
        max_age=int(lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=is_secure(request, settings),
    )
    response.del_cookie(
        _cookie_name(request, settings, LOGIN_COOKIE, SECURE_LOGIN_COOKIE), path="/"
    )


async def sign_out(request: web.Request, response: web.StreamResponse, ctx: Context) -> None:
    """End this browser's session on the server and clear its cookie."""
    secret = session_secret(request)
    if secret is not None:
        await sessions.sign_out(ctx, secret, signed_in=current(request))
    response.del_cookie(
        _cookie_name(request, ctx.settings, COOKIE, SECURE_COOKIE),
        path="/",
        secure=is_secure(request, ctx.settings),
        httponly=True,
        samesite="Strict",
    )


# -- CSRF ------------------------------------------------------------------------


def check_same_origin(request: web.Request) -> None:
    """Refuse a state-changing request another site's page sent (before reading its form)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden("This form was sent from another site. Reload the page and try again.")
    origin = request.headers.get("Origin")
    if origin is not None and origin != "null":
        own = f"{request.scheme}://{request.host}"
        if origin != own and not _forwarded_https_match(request, origin):
            raise Forbidden("This form was sent from another site. Reload the page and try again.")
    elif origin == "null":
        raise Forbidden("This form was sent from an opaque origin. Reload the page and try again.")


def _forwarded_https_match(request: web.Request, origin: str) -> bool:
    # Behind a TLS-terminating proxy we see http while the browser says https.
    return origin == f"https://{request.host}"


def check_csrf(request: web.Request, form: object, dashboard_session: DashboardSession) -> None:
    """Refuse a form whose CSRF token is missing or not this session's."""
    sent = _field(form)
    if not sent or not hmac.compare_digest(sent, dashboard_session.csrf_token):
        raise Forbidden(
            "This form's security token is missing or out of date. Reload the page and try again."
        )


def _field(form: object) -> str:
    getter = getattr(form, "get", None)
    value = getter(CSRF_FIELD) if getter is not None else None
    return value if isinstance(value, str) else ""


def login_csrf_value(request: web.Request) -> str:
    """The sign-in form's CSRF value: the browser's login cookie, or a new random one."""
    value = _cookie_value(request, LOGIN_COOKIE, SECURE_LOGIN_COOKIE)
    if not value or len(value) > 100:
        value = secrets.token_urlsafe(32)
    return value


def set_login_cookie(
    request: web.Request, response: web.StreamResponse, settings: Settings, value: str
) -> None:
    """Send the login cookie that the sign-in form's hidden field must match."""
    response.set_cookie(
        _cookie_name(request, settings, LOGIN_COOKIE, SECURE_LOGIN_COOKIE),
        value,
        max_age=LOGIN_COOKIE_SECONDS,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=is_secure(request, settings),
    )


def check_login_csrf(request: web.Request, form: object) -> None:
    """Refuse a sign-in whose form field does not match the login cookie (double submit)."""
    cookie = _cookie_value(request, LOGIN_COOKIE, SECURE_LOGIN_COOKIE) or ""
    sent = _field(form)
    if not cookie or not sent or not hmac.compare_digest(sent, cookie):
        raise Forbidden("The sign-in form expired. Reload the page and sign in again.")


# -- page guards -------------------------------------------------------------------


def login_url(request: web.Request) -> str:
    """Where to send a browser that is not signed in, coming back here after."""
    return "/login?next=" + quote(request.path_qs, safe="/")


def requires(scope: Scope) -> Callable[[Handler], Handler]:
    """A page that needs a session whose token has ``scope`` (read pages, write forms).

    Without a session: a GET goes to the sign-in page (and comes back); a POST
    is refused. With a token lacking the scope: 403, saying which scope.
    """

    def wrap(handler: Handler) -> Handler:
        @wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            found = current(request)
            if found is None:
                if request.method == "GET":
                    raise web.HTTPSeeOther(login_url(request))
                raise Forbidden("You are signed out. Sign in again, then repeat the change.")
            if not found.token.allows(scope):
                raise Forbidden(
                    f"This needs a token with the {scope.value!r} scope; you signed in with "
                    f"{found.token.name!r} ({', '.join(sorted(s.value for s in found.token.scopes))})."
                )
            if request.method == "POST":
                check_same_origin(request)
                check_csrf(request, await request.post(), found)
            with audit.acting_token(found.token.id):
                return await handler(request)

        return guarded

    return wrap


def safe_next(value: str | None) -> str:
    """A local path to return to after signing in ("/" for anything else: no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 0x20 for c in value):
        return "/"
    return value
