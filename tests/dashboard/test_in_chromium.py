"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright.

One journey as a security engineer makes it (sign in, start a run of the
demo target and watch it, read the findings and one finding's evidence,
suppress it, see it leave the live list and enter its history, sign out),
then the two protections a browser enforces for us: the Content-Security-
Policy (an injected inline script does not run, and the violation is
reported) and CSRF (a POST without this session's token, or from another
site, changes nothing). The journey takes the screenshots of
docs/dashboard.md when CORS_SCANNER_SCREENSHOTS=1 (SQLite run only).
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from scanner.dashboard.security import CONTENT_SECURITY_POLICY, CSP_REPORTS
from scanner.db import audit, runs
from scanner.demo import DEMO_CASES
from tests.dashboard.harness import Browser, Dashboard, _serve, screenshot

pytestmark = pytest.mark.chromium

RUN_WAIT_MS = 60_000


def _shots(dash: Dashboard) -> bool:
    # One set of screenshots: the SQLite run's (the pages are the same on PostgreSQL).
    return dash.database.url.startswith("sqlite")


def nav(page: Any, section: str) -> Any:
    """A link of the top navigation."""
    return page.get_by_role("navigation", name="Sections").get_by_role(
        "link", name=section, exact=True
    )


async def sign_in(page: Any, token: str, *, go_to: str = "/") -> None:
    from playwright.async_api import expect

    await page.goto(go_to)
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()


async def test_a_security_engineer_finds_triages_and_signs_out(
    dash: Dashboard, browser: Browser
) -> None:
    from playwright.async_api import expect

    page = await browser.page(dash.url)
    progress_polls: list[dict[str, Any]] = []
    polled: list[str] = []
    shots = _shots(dash)

    async def login_page() -> None:
        await page.goto("/")
        await expect(page).to_have_url(re.compile(r"/login\?next=/$"))
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        if shots:
            await screenshot(page, "login")
        await page.get_by_label("API token").fill("csk_not-a-token")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_have_text(
            "That token is unknown or has been revoked."
        )
        await page.get_by_label("API token").fill(dash.tokens["write"])
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        await expect(page.locator("#live-total")).to_have_text("0")
        await expect(page.get_by_text("No run yet.")).to_be_visible()

    await browser.run(login_page())

    async def start_run() -> str:
        async def record(response: Any) -> None:
            if response.url.endswith("/progress") and response.ok:
                polled.append(response.url)
                with contextlib.suppress(Exception):  # the last poll's body goes with the reload
                    progress_polls.append(await response.json())

        page.on("response", record)
        await nav(page, "Runs").click()
        await page.get_by_role("button", name="Start a run").click()
        await expect(page.get_by_role("heading", name=re.compile(r"^Run #\d+$"))).to_be_visible()
        await expect(page.locator("#run-status")).to_have_text("queued")
        await expect(page.get_by_role("status")).to_contain_text("Run queued")
        return str(page.url)

    run_url = await browser.run(start_run())
    run_id = int(run_url.rsplit("/", 1)[1].split("?")[0])

    # Nothing ran yet: the page polls a queued run. Now a worker picks it up.
    dash.run_worker()

    async def watch() -> None:
        # The poller sees the run progress and finish, then reloads with its findings.
        await expect(page.locator("#run-status")).to_have_text("completed", timeout=RUN_WAIT_MS)
        await expect(page.locator("#endpoints-done")).to_have_text(str(len(dash.endpoint_ids)))
        await expect(page.get_by_role("heading", name="Findings of this run")).to_be_visible()
        if shots:
            await screenshot(page, "run", full_page=False)

    await browser.run(watch())
    assert polled, "the run page never polled its progress"
    assert set(polled) == {f"{dash.url}/runs/{run_id}/progress"}
    # The bodies of the polls before the last (the page reloads on that one).
    assert {p["id"] for p in progress_polls} <= {run_id}
    # Each poll is the API's Scan document; progress only moves forward.
    assert {p["status"] for p in progress_polls} <= {"queued", "running", "completed"}
    done = [p["progress"]["endpoints_done"] for p in progress_polls]
    assert done == sorted(done)
    assert all(p["progress"]["endpoints_total"] == len(dash.endpoint_ids) for p in progress_polls)

    expected_rules = {r for case in DEMO_CASES for r in case.rule_ids}

    async def findings() -> tuple[int, str]:
        await nav(page, "Findings").click()
        await expect(page.get_by_role("heading", name="Findings", exact=True)).to_be_visible()
        table = page.get_by_role("table", name="Findings")
        await expect(table).to_be_visible()
        text = await table.inner_text()
        rows = await table.locator("tbody tr").count()
        if shots:
            await screenshot(page, "findings", full_page=False)
        return rows, text

    rows, listing = await browser.run(findings())
    assert rows >= len([c for c in DEMO_CASES if c.expected])
    for rule_id in expected_rules:
        assert rule_id in listing, f"{rule_id} missing from the findings list"

    # The shareable filter: critical only, by URL.
    async def filtered() -> int:
        await page.get_by_label("Severity").select_option("critical")
        await page.get_by_role("button", name="Apply").click()
        await expect(page).to_have_url(re.compile(r"severity=critical"))
        return await page.get_by_role("table", name="Findings").locator("tbody tr").count()

    critical = await browser.run(filtered())
    assert 0 < critical < rows

    reflect_url = dash.demo_url + "/reflect-credentials"

    async def open_finding() -> str:
        await page.goto("/findings?rule=reflect_any_origin_credentials")
        await page.locator("a.finding-link").first.click()
        await expect(page.get_by_role("heading", name="Evidence")).to_be_visible()
        request = page.get_by_label("Request").first
        response = page.get_by_label("Response").first
        await expect(request).to_contain_text(f"GET {reflect_url}")
        await expect(request).to_contain_text("Origin:")
        await expect(response).to_contain_text("HTTP 200")
        await expect(response).to_contain_text("Access-Control-Allow-Credentials: true")
        for server in ("Express", "nginx", "Apache", "Any server"):
            await expect(page.get_by_role("heading", name=server, exact=True)).to_be_visible()
        if shots:
            await screenshot(page, "finding")
        return str(page.url)

    finding_url = await browser.run(open_finding())

    async def blocked_in_console_words() -> None:
        # A legitimate origin the server breaks: the verdict is Chromium's console line.
        await page.goto("/findings?rule=legit_origin_blocked")
        await page.locator("a.finding-link").first.click()
        console = page.get_by_label("Chromium console").first
        await expect(console).to_contain_text("Access to fetch at '")
        await expect(console).to_contain_text(
            "from origin 'https://app.acme.test' has been blocked by CORS policy: "
        )

    await browser.run(blocked_in_console_words())
    finding_id = int(finding_url.rsplit("/", 1)[1])

    async def suppress() -> None:
        await page.goto(finding_url)
        await page.get_by_label("Reason").fill("Demo target: accepted by the API owner")
        await page.get_by_role("button", name="Suppress").click()
        await expect(page.get_by_role("status")).to_contain_text("Finding suppressed")
        await expect(page.locator(".badges .status")).to_have_text("Suppressed")
        history = page.get_by_role("heading", name="History").locator("xpath=..")
        await expect(history).to_contain_text("Suppressed")
        await expect(history).to_contain_text("Demo target: accepted by the API owner")
        await expect(page.get_by_role("button", name="Unsuppress")).to_be_visible()

    await browser.run(suppress())

    async def live_list() -> list[str]:
        await page.goto("/findings")
        links = page.locator("a.finding-link")
        return [await links.nth(i).get_attribute("href") or "" for i in range(await links.count())]

    live = await browser.run(live_list())
    assert f"/findings/{finding_id}" not in live
    assert len(live) == rows - 1

    async with dash.database.session() as session, session.begin():
        entries = (await audit.list_audit(session, limit=50, cursor=None)).items
    assert any(
        e.action == "finding.suppressed"
        and e.target_id == str(finding_id)
        and e.actor == "write-bot"
        for e in entries
    )

    # A first run is every endpoint's baseline (nothing alerts): the admin tests the hook
    # through the REST API instead, and a real dispatcher delivers to the loopback receiver.
    async with (
        aiohttp.ClientSession() as client,
        client.post(
            f"{dash.url}/api/v1/hooks/{dash.hook_id}/test",
            headers={"Authorization": f"Bearer {dash.tokens['admin']}"},
        ) as reply,
    ):
        assert reply.status == 202, await reply.text()
    await dash.deliver_alerts()
    assert dash.received, "no alert reached the receiver"

    async def other_pages() -> None:
        await page.goto("/")
        await expect(page.locator("#live-total")).to_have_text(str(rows - 1))
        await expect(page.get_by_role("heading", name="Coverage, last 24 hours")).to_be_visible()
        await expect(page.locator("#unverified-count")).to_have_text(
            "1"
        )  # the port nobody listens on
        await expect(page.get_by_role("heading", name="Worst owners")).to_be_visible()
        if shots:
            await screenshot(page, "overview")
        await page.get_by_role("link", name="90 days").click()
        await expect(page).to_have_url(re.compile(r"/\?days=90$"))
        chart = page.get_by_role("img", name="Live findings per day over the last 90 days")
        await expect(chart).to_be_visible()
        assert await chart.locator("circle.hit").count() == 90
        await nav(page, "Endpoints").click()
        await expect(page.get_by_role("table", name="Endpoints")).to_contain_text(reflect_url)
        if shots:
            await screenshot(page, "endpoints", full_page=False)
        await page.locator(f'a.endpoint-link[href="/endpoints/{dash.endpoint_ids[1]}"]').click()
        policy = page.get_by_role("heading", name="Effective policy").locator("xpath=..")
        await expect(policy).to_contain_text("https://app.acme.test")
        await expect(
            policy.get_by_role("row", name=re.compile("^Allowed origins"))
        ).to_contain_text("endpoint")
        await expect(
            policy.get_by_role("row", name=re.compile("^Preflight max-age"))
        ).to_contain_text("builtin")
        await expect(page.get_by_role("heading", name="Last result")).to_be_visible()
        if shots:
            await screenshot(page, "endpoint")
        await nav(page, "Regressions & alerts").click()
        await expect(page.get_by_role("heading", name="Regression feed")).to_be_visible()
        if shots:
            await screenshot(page, "regressions", full_page=False)
        await page.get_by_role("link", name="security-oncall").click()
        deliveries = page.locator("article.delivery")
        await expect(deliveries.first).to_be_visible()
        await expect(deliveries.first.locator(".delivery-status")).to_have_text("delivered")
        await expect(deliveries.first).to_contain_text("hook.test")
        await expect(deliveries.first.get_by_role("table")).to_contain_text("204")
        if shots:
            await screenshot(page, "hook")

    await browser.run(other_pages())

    async def sign_out() -> None:
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("status")).to_have_text("You are signed out.")
        await page.goto(f"/findings/{finding_id}")
        await expect(page).to_have_url(re.compile(r"/login\?next=/findings/"))

    await browser.run(sign_out())
    await browser.close_page(page)


async def test_the_csp_blocks_injected_inline_script_and_reports_it(
    dash: Dashboard, browser: Browser
) -> None:
    from playwright.async_api import expect

    page = await browser.page(dash.url)

    async def inject() -> dict[str, Any]:
        await sign_in(page, dash.tokens["read"])
        response = await page.goto("/endpoints")
        assert response is not None
        headers = await response.all_headers()
        await page.evaluate(
            """() => {
                window.__violations = [];
                document.addEventListener('securitypolicyviolation',
                    (e) => window.__violations.push(e.violatedDirective));
                const script = document.createElement('script');
                script.textContent = 'window.__injected = true;';
                document.body.appendChild(script);
                const box = document.createElement('div');
                box.innerHTML = '<p id="styled" style="color: rgb(255, 0, 0)">x</p>'
                    + '<img id="handler" src="/static/logo.svg" onload="window.__handler = true">';
                document.body.appendChild(box);
            }"""
        )
        await expect(page.locator("#styled")).to_be_attached()
        await page.wait_for_function("window.__violations.length >= 3")
        return {
            "headers": headers,
            "injected": await page.evaluate("window.__injected === true"),
            "handler": await page.evaluate("window.__handler === true"),
            "color": await page.evaluate(
                "getComputedStyle(document.getElementById('styled')).color"
            ),
            "violations": await page.evaluate("window.__violations"),
        }

    seen = await browser.run(inject())
    assert seen["headers"]["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert seen["headers"]["cache-control"] == "no-store"
    assert seen["injected"] is False, "an inline script ran despite the CSP"
    assert seen["handler"] is False, "an inline event handler ran despite the CSP"
    assert seen["color"] != "rgb(255, 0, 0)", "an inline style applied despite the CSP"
    assert {"script-src-elem", "style-src-attr", "script-src-attr"} <= set(seen["violations"])

    # Chromium reports the violations to /csp-report: bounded wait for its POSTs.
    async def reported() -> None:
        await page.wait_for_timeout(50)

    for _ in range(100):
        if len(dash.app[CSP_REPORTS]) >= 1:
            break
        await browser.run(reported())
    directives = {str(r.get("violated-directive")) for r in dash.app[CSP_REPORTS]}
    assert directives & {"script-src-elem", "script-src"}, directives
    await browser.close_page(page)


async def test_csrf_a_forged_or_cross_site_post_changes_nothing(
    dash: Dashboard, browser: Browser
) -> None:
    from playwright.async_api import expect

    page = await browser.page(dash.url)

    # Another site's page with a form that posts to the dashboard (what an attacker hosts).
    async def evil(request: web.Request) -> web.Response:
        return web.Response(
            content_type="text/html",
            text=(
                f"<form method=post action='{dash.url}/runs'>"
                "<input name=tag value=''><button>Win a prize</button></form>"
            ),
        )

    attacker = web.Application()
    attacker.router.add_get("/", evil)
    runner, attacker_url = await _serve(attacker)

    async def attempts() -> list[tuple[int, str]]:
        await sign_in(page, dash.tokens["write"], go_to="/runs")
        replies = []
        # The session cookie is sent, but no CSRF token / a wrong one.
        for form in ({"tag": ""}, {"tag": "", "csrf": "forged"}):
            response = await page.request.post(dash.url + "/runs", form=form, max_redirects=0)
            replies.append((response.status, await response.text()))
        # A real browser on another site: SameSite=Strict keeps the cookie home.
        other = await page.context.new_page()
        await other.goto(attacker_url)
        await other.get_by_role("button", name="Win a prize").click()
        await expect(other.get_by_role("heading", name="Not allowed")).to_be_visible()
        replies.append((403, await other.locator("main").inner_text()))
        return replies

    try:
        replies = await browser.run(attempts())
    finally:
        await runner.cleanup()
    assert [status for status, _ in replies] == [403, 403, 403]
    assert "security token is missing or out of date" in replies[0][1]
    assert "security token is missing or out of date" in replies[1][1]
    assert "signed out" in replies[2][1] or "another site" in replies[2][1]
    async with dash.database.session() as session, session.begin():
        page_of_runs = await runs.list_runs(session, limit=5, cursor=None)
    assert page_of_runs.items == (), "a forged POST started a run"
    await browser.close_page(page)


UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button')]
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
        && !(el.tagName === 'BUTTON' && el.textContent.trim()))
    .map((el) => el.outerHTML)"""


async def test_keyboard_only_sign_in_and_every_control_labelled(
    dash: Dashboard, browser: Browser
) -> None:
    from playwright.async_api import expect

    page = await browser.page(dash.url)

    async def keyboard() -> dict[str, list[str]]:
        await page.goto("/runs")
        # The token field has the focus: type, Enter, and we are in.
        await page.keyboard.type(dash.tokens["write"])
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
        await page.keyboard.press("Tab")
        focused = await page.evaluate("document.activeElement.textContent")
        assert focused == "Skip to content"
        await page.keyboard.press("Enter")
        assert await page.evaluate("document.activeElement.id") == "main"
        unlabelled: dict[str, list[str]] = {}
        for path in ("/login?next=/", "/", "/findings", "/endpoints", "/runs", "/regressions"):
            await page.goto(path)
            unlabelled[path] = await page.evaluate(UNLABELLED)
        return unlabelled

    unlabelled = await browser.run(keyboard())
    assert unlabelled == {path: [] for path in unlabelled}
    await browser.close_page(page)
