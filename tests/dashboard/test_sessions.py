"""Sign-in, the session cookie, CSRF and the security headers, over real HTTP (no browser).

The browser tests show what a person sees; these pin the exact contract:
cookie attributes, which requests are refused and why, that a revoked
token or a sign-out ends a session on the server, that sessions expire, and
that mounting the dashboard changed nothing under the API's paths.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie

import aiohttp

from scanner.api import create_app
from scanner.dashboard.security import CONTENT_SECURITY_POLICY
from scanner.dashboard.session import COOKIE, SECURE_COOKIE, SECURE_LOGIN_COOKIE
from scanner.db.engine import Database
from scanner.db.sessions import open_session, resume_session
from scanner.db.tokens import authenticate, create_token, revoke_token
from tests.dashboard.harness import Dashboard, _serve, dashboard_settings

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def sign_in(
    http: aiohttp.ClientSession, token: str, *, next_path: str = "/"
) -> aiohttp.ClientResponse:
    async with http.get("/login") as page:
        login_csrf = csrf_of(await page.text())
    async with http.post(
        "/login",
        data={"token": token, "csrf": login_csrf, "next": next_path},
        allow_redirects=False,
    ) as response:
        await response.read()
        return response


async def test_signing_in_sets_a_strict_http_only_session_cookie(
    dash: Dashboard, http: aiohttp.ClientSession
) -> None:
    response = await sign_in(http, dash.tokens["read"], next_path="/findings?severity=high")
    assert response.status == 303
    assert response.headers["Location"] == "/findings?severity=high"
    cookies = SimpleCookie()
    for header in response.headers.getall("Set-Cookie"):
        cookies.load(header)
    session = cookies[COOKIE]
    assert len(session.value) >= 43
    assert session["httponly"] is True
    assert session["samesite"] == "Strict"
    assert session["path"] == "/"
    assert session["max-age"] == str(12 * 3600)
    assert not session["secure"], "plain http on loopback: a Secure cookie would never come back"
    assert dash.tokens["read"] not in str(response.headers), "the token itself must not be echoed"
    async with http.get("/", allow_redirects=False) as page:
        assert page.status == 200
        assert "read-bot" in await page.text()


async def test_behind_https_the_cookie_is_secure_and_host_prefixed(database: Database) -> None:
    settings = dashboard_settings(database, public_url="https://cors.example.org")
    runner, url = await _serve(create_app(settings, database=database, embedded_worker=False))
    async with database.session() as session, session.begin():
        _, secret = await create_token(session, "alice", ["read"], created_by="test")
    try:
        # The proxy in front speaks https to the browser; we see http, so carry cookies by hand.
        async with aiohttp.ClientSession(base_url=url) as http:
            async with http.get("/login") as page:
                login_csrf = csrf_of(await page.text())
                login_cookies = SimpleCookie()
                for header in page.headers.getall("Set-Cookie"):
                    login_cookies.load(header)
            assert login_cookies[SECURE_LOGIN_COOKIE]["secure"] is True
            async with http.post(
                "/login",
                data={"token": secret, "csrf": login_csrf, "next": "/"},
                headers={
                    "Cookie": f"{SECURE_LOGIN_COOKIE}={login_cookies[SECURE_LOGIN_COOKIE].value}"
                },
                allow_redirects=False,
            ) as response:
                assert response.status == 303
                cookies = SimpleCookie()
                for header in response.headers.getall("Set-Cookie"):
                    cookies.load(header)
    finally:
        await runner.cleanup()
    assert SECURE_COOKIE in cookies, list(cookies)
    assert cookies[SECURE_COOKIE]["secure"] is True
    assert cookies[SECURE_COOKIE]["path"] == "/"
    assert not cookies[SECURE_COOKIE]["domain"]


async def test_a_wrong_token_is_refused_and_makes_no_session(
    dash: Dashboard, http: aiohttp.ClientSession
) -> None:
    response = await sign_in(http, "csk_" + "x" * 43)
    assert response.status == 401
    assert COOKIE not in {c.key for c in http.cookie_jar}
    async with http.get("/", allow_redirects=False) as page:
        assert page.status == 303
        assert page.headers["Location"] == "/login?next=/"


async def test_wrong_tokens_at_sign_in_share_the_api_failure_budget_of_their_address(
    dash: Dashboard, http: aiohttp.ClientSession
) -> None:
    # The API's default budget: 30 failures per address, then 429 before any lookup.
    statuses = [(await sign_in(http, f"csk_{n:043d}")).status for n in range(31)]
    assert statuses == [401] * 30 + [429]
    refused = await sign_in(http, "csk_" + "y" * 43)
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) >= 1
    # The API answers that address the same way now, without a lookup...
    async with http.get(
        "/api/v1/endpoints", headers={"Authorization": "Bearer csk_" + "z" * 43}
    ) as api:
        assert api.status == 429
    # ...and a token that exists still signs in from it.
    signed = await sign_in(http, dash.tokens["read"])
    assert signed.status == 303
    assert COOKIE in {c.key for c in http.cookie_jar}


async def test_sign_in_needs_its_form_csrf_value(
    dash: Dashboard, http: aiohttp.ClientSession
) -> None:
    async with http.get("/login") as page:
        await page.read()
    for data in ({"token": dash.tokens["read"]}, {"token": dash.tokens["read"], "csrf": "guess"}):
        async with http.post("/login", data=data, allow_redirects=False) as response:
            assert response.status == 403
            assert "sign-in form expired" in await response.text()


async def test_after_sign_in_next_is_never_another_site(
    dash: Dashboard, http: aiohttp.ClientSession
) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "findings"):
        http.cookie_jar.clear()
        response = await sign_in(http, dash.tokens["read"], next_path=target)
        assert response.headers["Location"] == "/", target


async def test_revoking_the_token_ends_its_sessions_at_the_next_click(
    dash: Dashboard, http: aiohttp.ClientSession
) -> None:
    await sign_in(http, dash.tokens["write"])
    async with http.get("/runs", allow_redirects=False) as page:
        assert page.status == 200
    async with dash.database.session() as session, session.begin():
        token = await authenticate(session, dash.tokens["write"])
        assert token is not None
        await revoke_token(session, token.id)
    async with http.get("/runs", allow_redirects=False) as page:
        assert page.status == 303
        assert page.headers["Location"] == "/login?next=/runs"
    async with http.get("/runs/1/progress", allow_redirects=False) as poll:
        assert poll.status == 303  # the live poller is signed out too


async def test_signing_out_ends_the_session_on_the_server(
    dash: Dashboard, http: aiohttp.ClientSession
) -> None:
    await sign_in(http, dash.tokens["read"])
    stolen = {c.key: c.value for c in http.cookie_jar}[COOKIE]
    async with http.get("/") as page:
        token = csrf_of(await page.text())
    async with http.post("/logout", data={"csrf": token}, allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/login?notice=signed-out"
    # A copy of the cookie taken before signing out is worth nothing now.
    async with (
        aiohttp.ClientSession(base_url=dash.url) as other,
        other.get("/", headers={"Cookie": f"{COOKIE}={stolen}"}, allow_redirects=False) as page,
    ):
        assert page.status == 303


async def test_a_read_token_sees_everything_but_cannot_change_anything(
    dash: Dashboard, http: aiohttp.ClientSession
) -> None:
    await sign_in(http, dash.tokens["read"])
    for path in ("/", "/findings", "/endpoints", "/runs", "/regressions", f"/hooks/{dash.hook_id}"):
        async with http.get(path, allow_redirects=False) as page:
            assert page.status == 200, path
    async with http.get("/runs") as page:
        html = await page.text()
    assert "Start a run" not in html
    token = csrf_of(html)
    async with http.post("/runs", data={"csrf": token}, allow_redirects=False) as response:
        assert response.status == 403
        assert "needs a token with the &#39;write&#39; scope" in await response.text()


async def test_a_post_from_another_site_is_refused_before_its_form_is_read(
    dash: Dashboard, http: aiohttp.ClientSession
) -> None:
    await sign_in(http, dash.tokens["write"])
    async with http.get("/runs") as page:
        token = csrf_of(await page.text())
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        async with http.post(
            "/runs", data={"csrf": token}, headers=headers, allow_redirects=False
        ) as response:
            assert response.status == 403, headers
            assert "from another site" in await response.text()
    # The same form from our own origin, with the token, does start a run.
    async with http.post(
        "/runs", data={"csrf": token}, headers={"Origin": dash.url}, allow_redirects=False
    ) as response:
        assert response.status == 303
        assert re.fullmatch(r"/runs/\d+\?notice=started", response.headers["Location"])


async def test_pages_carry_the_security_headers(
    dash: Dashboard, http: aiohttp.ClientSession
) -> None:
    async with http.get("/login") as page:
        assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["Cache-Control"] == "no-store"
        html = await page.text()
    assert "<script>" not in html
    assert " style=" not in html
    assert "onclick" not in html
    for policy in ("default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"):
        assert policy in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    async with http.get("/static/dashboard.css") as css:
        assert css.status == 200
        assert css.headers["Cache-Control"].startswith("public")
    await sign_in(http, dash.tokens["read"])
    async with http.get("/findings") as page:
        assert page.headers["Cache-Control"] == "no-store"
    async with http.get("/no-such-page") as missing:
        assert missing.status == 404
        assert missing.content_type == "text/html"
        assert "There is no page here" in await missing.text()


async def test_the_api_and_its_probes_are_unchanged(
    dash: Dashboard, http: aiohttp.ClientSession
) -> None:
    async with http.get("/healthz") as health:
        assert health.status == 200
        assert health.content_type == "application/json"
        assert "Content-Security-Policy" not in health.headers
    for path in ("/api/v1/findings", "/metrics"):
        async with http.get(path) as reply:
            assert reply.status == 401
            assert reply.content_type == "application/problem+json"
    async with http.get("/api/v1/nothing-here") as missing:
        assert missing.status == 404
        assert missing.content_type == "application/problem+json"
    # A dashboard session is not an API credential: the API still wants its bearer token.
    await sign_in(http, dash.tokens["admin"])
    async with http.get("/api/v1/findings") as reply:
        assert reply.status == 401


async def test_sessions_expire_at_their_absolute_end(database: Database) -> None:
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    async with database.session() as session, session.begin():
        record, _ = await create_token(session, "alice", ["read"], created_by="test")
        opened, secret = await open_session(session, record, lifetime=timedelta(hours=1), now=t0)
    assert opened.expires_at == t0 + timedelta(hours=1)
    async with database.session() as session, session.begin():
        assert await resume_session(session, secret, now=t0 + timedelta(minutes=59)) is not None
        assert await resume_session(session, secret, now=t0 + timedelta(hours=1)) is None
        assert await resume_session(session, secret + "x", now=t0) is None


async def test_unknown_cookies_are_no_session(database: Database) -> None:
    async with database.session() as session, session.begin():
        for value in ("", "x" * 500, "not-a-session"):
            assert await resume_session(session, value, now=datetime.now(UTC)) is None


BAD_ADDRESSES = (
    ("/findings?severity=urgent", 400, "is not a severity"),
    ("/findings?status=open,gone", 400, "is not a status"),
    ("/findings?rule=no_such_rule", 400, "is not a rule id"),
    ("/findings?endpoint=abc", 400, "must be an id"),
    ("/findings?cursor=not-a-cursor", 400, ""),
    ("/runs?status=sleeping", 400, "is not a run status"),
    ("/findings/9999999999", 404, "There is no page here"),
    ("/findings/123456", 404, "finding 123456 does not exist"),
    ("/runs/424242", 404, "does not exist"),
    ("/endpoints/424242", 404, "endpoint 424242 does not exist"),
    (f"/hooks/{2**31 - 1}", 404, "does not exist"),
)


async def test_bad_addresses_get_a_clear_page_not_a_crash(
    dash: Dashboard, http: aiohttp.ClientSession
) -> None:
    await sign_in(http, dash.tokens["read"])
    for path, status, says in BAD_ADDRESSES:
        async with http.get(path, allow_redirects=False) as page:
            assert page.status == status, (path, await page.text())
            assert page.content_type == "text/html", path
            assert says in await page.text(), path
