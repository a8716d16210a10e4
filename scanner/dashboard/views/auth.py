"""Signing in with an API token, and signing out."""

from __future__ import annotations

from aiohttp import web

from scanner.dashboard import session as cookies
from scanner.dashboard import wiring
from scanner.dashboard.views.context import render, settings, use_cases
from scanner.db.tokens import hash_secret
from scanner.throttle import admission, client_address, note_failure, trusted_networks
from scanner.usecases import sessions

MAX_TOKEN_LENGTH = 256


async def login_form(request: web.Request) -> web.StreamResponse:
    """The sign-in page (signed-in browsers go straight on)."""
    target = cookies.safe_next(request.query.get("next"))
    if cookies.current(request) is not None:
        raise web.HTTPSeeOther(target)
    return await _render(request, target, error=None, status=200)


async def _render(
    request: web.Request, target: str, *, error: str | None, status: int
) -> web.Response:
    value = cookies.login_csrf_value(request)
    response = await render(
        "login.html", request, {"next": target, "error": error, "login_csrf": value}, status=status
    )
    cookies.set_login_cookie(request, response, settings(request), value)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    """Trade a token for a session cookie; the token itself never reaches the browser again."""
    cookies.check_same_origin(request)
    form = await request.post()
    cookies.check_login_csrf(request, form)
    target = cookies.safe_next(_text(form.get("next")))
    secret = _text(form.get("token")).strip()
    if not secret or len(secret) > MAX_TOKEN_LENGTH:
        return await _render(request, target, error="Paste an API token to sign in.", status=400)
    ctx = use_cases(request)
    guard = wiring.auth_guard(request.app)
    # The API's failure budget per client address (scanner.throttle) applies here too.
    address = client_address(
        request.remote,
        request.headers.getall("X-Forwarded-For", []),
        trusted_networks(ctx.settings.api_trusted_proxies),
    )
    digest = hash_secret(secret)
    if guard is not None:
        seconds = await admission(guard, ctx.database, address, digest)
        if seconds:
            response = await _render(
                request,
                target,
                error=f"Too many failed sign-ins from this address. Try again in {seconds} s.",
                status=429,
            )
            response.headers["Retry-After"] = str(seconds)
            return response
    signed = None
    if guard is None or not guard.is_unknown(digest):
        signed = await sessions.sign_in(ctx, secret)
    if signed is None:
        if guard is not None:
            await note_failure(guard, ctx, address, digest)
        return await _render(
            request, target, error="That token is unknown or has been revoked.", status=401
        )
    if guard is not None:
        guard.succeeded(address, digest)
    response = web.HTTPSeeOther(target)
    cookies.set_session_cookie(request, response, settings(request), signed)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    """End this browser's session (CSRF-checked: a link elsewhere cannot sign you out)."""
    cookies.check_same_origin(request)
    found = cookies.current(request)
    if found is not None:
        cookies.check_csrf(request, await request.post(), found)
    response = web.HTTPSeeOther("/login?notice=signed-out")
    await cookies.sign_out(request, response, use_cases(request))
    raise response


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
