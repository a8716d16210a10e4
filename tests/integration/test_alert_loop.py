"""Issue 12's "done when": alerts a security team can trust, through a real `serve`.

A real ``cors-scanner serve`` process (SQLite, and PostgreSQL when
``CORS_SCANNER_TEST_DATABASE_URL`` is set) scans one inventory endpoint on a
loopback target whose CORS behaviour the test switches between runs:
strict -> any origin reflected with credentials -> strict -> down (nothing
listens: connection refused) -> up. Runs are started through the REST API
(``POST /api/v1/scans``). Two hooks at ``min_severity: high`` deliver to one
loopback receiver: a Standard Webhooks one (every signature verified; a bad
one fails the test) and a PagerDuty-format one.

Each phase asserts what on-call would see: nothing for the clean baseline,
exactly one delivery for the regression, a resolution and no regression for
the fix, an unreachable event (and a failed run) for the outage and its
resolution on recovery; every PagerDuty trigger is later resolved with the
same ``dedup_key``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

import scanner
from scanner.alerts.signing import WebhookSecret, verify_standard

REPO = Path(scanner.__file__).resolve().parents[1]
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)/")
APP = "https://app.acme.test"
ROUTING_KEY = "a" * 32
START_TIMEOUT_S = 60.0
PHASE_TIMEOUT_S = 60.0


# -- the target ------------------------------------------------------------------------


@dataclass
class Target:
    """``/api/accounts`` on a fixed loopback port; ``mode`` is strict or reflect."""

    port: int
    mode: str = "strict"
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/accounts"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        headers = {"Vary": "Origin"}
        allowed = self.mode == "reflect" or origin == APP
        if origin and allowed:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
        if request.method == "OPTIONS":
            if allowed:
                headers["Access-Control-Allow-Methods"] = "GET, POST"
                headers["Access-Control-Allow-Headers"] = "Content-Type"
            return web.Response(status=204, headers=headers)
        return web.json_response({"accounts": []}, headers=headers)

    async def up(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def down(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- the receiver ----------------------------------------------------------------------


@dataclass
class Receiver:
    """Standard Webhooks at /hook (signatures verified), PagerDuty's Events API at /pd."""

    secret: WebhookSecret | None = None
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    pagerduty: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    seen_ids: set[str] = field(default_factory=set)

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        msg_id = request.headers.get("webhook-id", "")
        assert self.secret is not None
        if not verify_standard(
            request.headers.get("webhook-signature", ""),
            [self.secret],
            msg_id,
            request.headers.get("webhook-timestamp", ""),
            body,
            now=int(time.time()),
        ):
            self.bad_signatures += 1
            return web.Response(status=401)
        if msg_id not in self.seen_ids:  # at least once: dedup on webhook-id
            self.seen_ids.add(msg_id)
            self.webhooks.append(json.loads(body))
        return web.Response(status=204)

    async def pd(self, request: web.Request) -> web.Response:
        message = json.loads(await request.read())
        assert message["routing_key"] == ROUTING_KEY
        self.pagerduty.append(message)
        return web.json_response({"status": "success", "message": "Event processed"}, status=202)


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", receiver.hook)
    app.router.add_post("/pd", receiver.pd)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# -- serve -----------------------------------------------------------------------------


@dataclass
class Service:
    url: str
    token: str
    http: aiohttp.ClientSession
    env: dict[str, str]

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.http.request(
            method, f"{self.url}/api/v1{path}", json=body, headers=headers
        ) as reply:
            text = await reply.text()
            assert reply.status < 300, f"{method} {path}: {reply.status} {text}"
            return json.loads(text) if text else None


@asynccontextmanager
async def serving(database_url: str, cwd: Path) -> AsyncIterator[Service]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORS_SCANNER_")}
    env.update(
        {
            "CORS_SCANNER_DATABASE_URL": database_url,
            "CORS_SCANNER_HOOK_ALLOW_LOOPBACK": "true",
            "CORS_SCANNER_POLL_SECONDS": "0.2",
            "CORS_SCANNER_HOOK_POLL_SECONDS": "0.2",
            "CORS_SCANNER_TIMEOUT": "5",
            "CORS_SCANNER_RETRIES": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    token_file = cwd / "admin-token"
    upgrade = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scanner", "db", "upgrade", cwd=REPO, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, problem = await upgrade.communicate()
    assert upgrade.returncode == 0, problem.decode()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scanner",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--token-file",
        str(token_file),
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    logged: list[str] = []
    drain: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                raw = await process.stderr.readline()
                assert raw, "serve exited before listening:\n" + "".join(logged)
                logged.append(raw.decode())
                found = LISTENING.search(logged[-1])
                if found:
                    break

        async def keep_draining() -> None:
            # A full stderr pipe would block the service's logging.
            assert process.stderr is not None
            while line := await process.stderr.readline():
                logged.append(line.decode())

        drain = asyncio.create_task(keep_draining())
        async with aiohttp.ClientSession() as http:
            yield Service(found.group(1), token_file.read_text().strip(), http, env)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                await process.wait()
        if drain is not None:
            await drain


async def _cli(service: Service, *argv: str) -> tuple[int, str]:
    """The command line on the service's database, as an operator would run it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scanner", *argv, cwd=REPO, env=service.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return int(process.returncode or 0), out.decode()


# -- the story -------------------------------------------------------------------------


async def _scan(service: Service, hooks: list[int]) -> dict[str, Any]:
    """Start a run through the API, wait until it is final and its deliveries all sent."""
    started = await service.call("POST", "/scans", {})
    run_id = started["id"]
    async with asyncio.timeout(PHASE_TIMEOUT_S):
        while True:
            run = await service.call("GET", f"/scans/{run_id}")
            if run["status"] not in ("queued", "running"):
                break
            await asyncio.sleep(0.1)
        # Finalisation wrote the outbox with the final status: wait until it is empty.
        while True:
            pending = [
                d
                for hook in hooks
                for d in (await service.call("GET", f"/hooks/{hook}/deliveries"))["items"]
                if d["run_id"] == run_id and d["status"] in ("queued", "leased")
            ]
            if not pending:
                break
            await asyncio.sleep(0.1)
    assert isinstance(run, dict)
    return run


def _new(items: list[dict[str, Any]], before: int) -> list[dict[str, Any]]:
    return items[before:]


async def test_alerts_through_a_real_serve(database_url: str, tmp_path: Path) -> None:
    receiver = Receiver()
    target = Target(_free_port())
    await target.up()
    try:
        async with receiving(receiver) as base, serving(database_url, tmp_path) as service:
            await _story(service, receiver, target, base)
    finally:
        await target.down()


async def _story(service: Service, receiver: Receiver, target: Target, base: str) -> None:
    await service.call(
        "POST",
        "/policies",
        {"scope": "default", "allowed_origins": [APP], "allow_credentials": True},
    )
    await service.call(
        "POST", "/endpoints", {"url": target.url, "owner": "payments-team", "tags": ["pci"]}
    )
    webhook = await service.call(
        "POST",
        "/hooks",
        {"name": "soc", "kind": "webhook", "url": f"{base}/hook", "min_severity": "high"},
    )
    receiver.secret = WebhookSecret.parse(webhook["secret"])
    pagerduty = await service.call(
        "POST",
        "/hooks",
        {
            "name": "oncall",
            "kind": "pagerduty",
            "url": f"{base}/pd",
            "routing_key": ROUTING_KEY,
            "min_severity": "high",
        },
    )
    hooks = [webhook["id"], pagerduty["id"]]

    # 1. A clean baseline: nothing at all.
    baseline = await _scan(service, hooks)
    assert (baseline["status"], baseline["coverage"]) == ("completed", "complete")
    assert receiver.webhooks == []
    assert receiver.pagerduty == []

    # 2. Someone ships cors({origin: true, credentials: true}): exactly one delivery each.
    target.mode = "reflect"
    regression = await _scan(service, hooks)
    assert regression["status"] == "completed"
    [alert] = receiver.webhooks
    assert alert["type"] == "finding.new"
    data = alert["data"]
    assert (data["rule_id"], data["severity"], data["is_regression"]) == (
        "reflect_any_origin_credentials",
        "critical",
        True,
    )
    assert data["scan_id"] == regression["id"]
    # the header drift it caused rides inside, with the evidence
    assert data["after"]["changed_total"] >= 1
    assert data["after"]["probes"]
    assert data["after"]["evidence"]
    [trigger] = receiver.pagerduty
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == data["fingerprint"]
    assert trigger["payload"]["severity"] == "critical"

    # 3. The fix: a resolution, nothing marked as a regression, nobody paged.
    target.mode = "strict"
    seen_webhooks, seen_pd = len(receiver.webhooks), len(receiver.pagerduty)
    fix = await _scan(service, hooks)
    fixed = _new(receiver.webhooks, seen_webhooks)
    assert [e["type"] for e in fixed] == ["finding.resolved"]
    assert all(e["data"]["is_regression"] is False for e in fixed)
    assert fixed[0]["data"]["after"]["changed_total"] >= 1  # the drift of the fix, inside
    assert [m["event_action"] for m in _new(receiver.pagerduty, seen_pd)] == ["resolve"]
    assert receiver.pagerduty[-1]["dedup_key"] == trigger["dedup_key"]
    regressions = await service.call("GET", f"/scans/{fix['id']}/regressions")
    assert regressions["items"] == []

    # 4. The target goes away: the run says so, and so do the hooks.
    await target.down()
    seen_webhooks, seen_pd = len(receiver.webhooks), len(receiver.pagerduty)
    outage = await _scan(service, hooks)
    assert outage["status"] == "failed"
    assert outage["coverage"] == "none"
    assert outage["progress"]["endpoints_unreachable"] == 1
    assert "no endpoint answered" in outage["error"]
    silent = _new(receiver.webhooks, seen_webhooks)
    assert sorted(e["type"] for e in silent) == ["endpoint.unreachable", "scan.failed"]
    down = next(e for e in silent if e["type"] == "endpoint.unreachable")
    assert down["data"]["endpoint"]["url"] == target.url
    assert down["data"]["after"]["failed_total"] >= 1
    paged = _new(receiver.pagerduty, seen_pd)
    assert [m["event_action"] for m in paged] == ["trigger"]
    code, out = await _cli(service, "runs", "show", str(outage["id"]), "--format", "json")
    assert code == 0, out
    shown = json.loads(out)
    assert (shown["status"], shown["unreachable"], shown["coverage"]) == ("failed", 1, "none")

    # 5. It answers again: the outage is resolved.
    await target.up()
    seen_webhooks, seen_pd = len(receiver.webhooks), len(receiver.pagerduty)
    recovered = await _scan(service, hooks)
    assert (recovered["status"], recovered["coverage"]) == ("completed", "complete")
    assert recovered["progress"]["endpoints_unreachable"] == 0
    assert [e["type"] for e in _new(receiver.webhooks, seen_webhooks)] == ["endpoint.reachable"]
    resolved = _new(receiver.pagerduty, seen_pd)
    assert [m["event_action"] for m in resolved] == ["resolve"]
    assert resolved[0]["dedup_key"] == paged[0]["dedup_key"]

    # Every signature verified; every PagerDuty trigger was later resolved.
    assert receiver.bad_signatures == 0
    for i, message in enumerate(receiver.pagerduty):
        if message["event_action"] == "trigger":
            assert any(
                later["event_action"] == "resolve" and later["dedup_key"] == message["dedup_key"]
                for later in receiver.pagerduty[i + 1 :]
            ), message
    # Nothing the whole story produced is listed as a regression but the reflection.
    listed = await service.call("GET", "/regressions")
    assert [(e["kind"], e["rule_id"]) for e in listed["items"]] == [
        ("finding.new", "reflect_any_origin_credentials")
    ]

    # Feedback: `hooks test` waits for the attempt and says how it went.
    code, out = await _cli(service, "hooks", "test", str(webhook["id"]), "--timeout", "20")
    assert code == 0, out
    assert f"to hook {webhook['id']}: delivered (HTTP 204" in out
    assert receiver.webhooks[-1]["type"] == "hook.test"
    code, out = await _cli(service, "hooks", "test", str(pagerduty["id"]), "--timeout", "20")
    assert code == 0, out
    assert receiver.pagerduty[-1]["event_action"] == "resolve"  # a test pages nobody
    broken = await service.call(
        "POST", "/hooks", {"name": "broken", "kind": "webhook", "url": f"{base}/nothing-here"}
    )
    code, out = await _cli(service, "hooks", "test", str(broken["id"]), "--timeout", "20")
    assert code == 1, out
    assert f"to hook {broken['id']}: FAILED (HTTP 404" in out
