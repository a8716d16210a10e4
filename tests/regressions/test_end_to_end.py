"""End to end: two scheduled runs, the target changes its CORS in between, the webhook hears it.

Real pieces throughout: the schedule's ticks are planned by the scheduler's
planner, the worker scans the aiohttp target on 127.0.0.1 and finalises each
run (which runs the diff and writes the outbox), the dispatcher delivers to
a receiver on 127.0.0.1 that verifies the Standard Webhooks signature.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from scanner.alerts.dispatcher import Dispatcher
from scanner.alerts.signing import WebhookSecret, verify_standard
from scanner.db import hooks
from scanner.db.engine import Database
from scanner.db.runs import RunSelection
from scanner.db.schedules import ScheduleInput, create_schedule
from scanner.db.work import RunBatching
from scanner.engine import scan_options
from scanner.hostnames import default_public_suffixes
from scanner.runtime import run_components
from scanner.scheduler.planner import plan_tick
from scanner.settings import Settings
from scanner.worker import Worker
from tests.regressions.harness import Runs, SwitchableTarget
from tests.worker.support import wait_run_final

RULE = "reflect_any_origin_credentials"
NIGHT = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


class Receiver:
    def __init__(self) -> None:
        self.secret: WebhookSecret | None = None
        self.events: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.got = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        msg_id = request.headers["webhook-id"]
        assert self.secret is not None
        if not verify_standard(
            request.headers["webhook-signature"],
            [self.secret],
            msg_id,
            request.headers["webhook-timestamp"],
            body,
            now=int(time.time()),
        ):
            return web.Response(status=401)
        if msg_id not in self.ids:
            self.ids.append(msg_id)
            self.events.append(json.loads(body))
            self.got.set()
        return web.Response(status=204)


async def test_a_cors_change_between_scheduled_runs_reaches_the_webhook(
    database: Database, target: SwitchableTarget, runs: Runs
) -> None:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        await _scenario(database, target, runs, receiver, server)
    finally:
        await server.close()


async def _scenario(
    database: Database,
    target: SwitchableTarget,
    runs: Runs,
    receiver: Receiver,
    server: TestServer,
) -> None:
    settings = Settings(
        database_url=database.url,
        timeout=5.0,
        retries=0,
        poll_seconds=0.05,
        heartbeat_seconds=1.0,
        hook_allow_loopback=True,
        hook_poll_seconds=0.05,
        hook_retry_base_seconds=0.05,
        hook_timeout=5.0,
    )
    async with database.session() as session, session.begin():
        schedule = await create_schedule(
            session,
            ScheduleInput(
                name="nightly-payments",
                cron="0 2 * * *",
                selection=RunSelection(tag="pci"),
            ),
        )
        _, secret = await hooks.create_hook(
            session,
            hooks.HookInput(
                name="soc", kind=hooks.HookKind.WEBHOOK, url=str(server.make_url("/hook"))
            ),
            by="test",
            now=datetime.now(UTC),
        )
    assert secret is not None
    receiver.secret = WebhookSecret.parse(secret)

    worker = Worker(database, settings, scan_options(settings), default_public_suffixes())
    stop = asyncio.Event()
    components = asyncio.create_task(
        run_components([worker, Dispatcher.from_settings(database, settings)], stop, signals=False)
    )
    try:
        target.mode = "allowlist"
        first = await plan_tick(database, schedule.id, NIGHT, RunBatching.from_settings(settings))
        assert first is not None
        worker.wake()
        assert (await wait_run_final(database, first.id)).status == "completed"

        target.mode = "reflect"  # someone shipped cors({origin: true, credentials: true})
        second = await plan_tick(
            database, schedule.id, NIGHT + timedelta(days=1), RunBatching.from_settings(settings)
        )
        assert second is not None
        worker.wake()
        assert (await wait_run_final(database, second.id)).status == "completed"

        async with asyncio.timeout(20):
            while not any(e["data"]["rule_id"] == RULE for e in receiver.events):
                receiver.got.clear()
                await receiver.got.wait()
    finally:
        stop.set()
        await components

    alert = next(e for e in receiver.events if e["data"]["rule_id"] == RULE)
    assert alert["type"] == "finding.new"
    data = alert["data"]
    assert data["scan_id"] == second.id
    assert data["severity"] == "critical"
    assert data["is_regression"] is True
    assert data["endpoint"]["url"] == target.url
    assert data["endpoint"]["tags"] == ["pci", "public-api"]
    # after: the exchange that proves it, the attacker origin reflected with credentials
    evidence = data["after"]["evidence"]
    lines = {(n.lower(), v) for e in evidence for n, v in e["response_headers"]}
    assert ("access-control-allow-credentials", "true") in lines
    reflected = [e for e in evidence if ("access-control-allow-origin", e["origin"]) in lines]
    assert reflected, evidence
    # before: how the same probes were answered by the previous night's run (no ACAO)
    before = data["before"]["probes"]
    assert before
    for probe_lines in before.values():
        assert all(name != "access-control-allow-origin" for name, _ in probe_lines)
    # nothing was alerted for the baseline night, and the finding was alerted once
    assert all(e["data"]["scan_id"] == second.id for e in receiver.events)
    assert sum(1 for e in receiver.events if e["data"]["rule_id"] == RULE) == 1
