"""Harness: a target whose CORS behaviour a test switches between runs, and stored runs of it.

``target`` is a real aiohttp server on 127.0.0.1 with one endpoint,
``/api/accounts``, answering per ``target.mode``:

- ``allowlist``: the exact allowlist ``APP`` with credentials (clean);
- ``reflect``: any Origin echoed with credentials (critical finding);
- ``blocked``: no CORS headers at all (the org's own front end is blocked);
- ``down``: every connection is cut before an answer (the endpoint errors).

``runs`` scans it with the real engine and stores each run the way the
service does (scan rows, then finalisation: final status + ``apply_run_diff``
in one transaction).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from scanner.alerts.envelope import webhook_payload
from scanner.alerts.outbox import read_message
from scanner.core.plan import Endpoint
from scanner.core.policy import Policy
from scanner.db import runs
from scanner.db.engine import Database
from scanner.db.inventory import EndpointInput, create_endpoint
from scanner.db.runs import RunSelection, RunStatus, RunTrigger
from scanner.engine import Engine, ScanOptions, Target
from scanner.hostnames import default_public_suffixes
from scanner.prober.limits import ProbeLimits
from scanner.regressions import DiffOutcome, apply_run_diff

APP = "https://app.acme.test"
POLICY = Policy.build(allowed_origins=[APP], allow_credentials=True)
T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


@dataclass
class SwitchableTarget:
    """The running target: set ``mode`` between runs."""

    base: str = ""
    mode: str = "allowlist"

    @property
    def url(self) -> str:
        return f"{self.base}/api/accounts"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if self.mode == "down":
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        headers = {"Vary": "Origin"}
        allowed = self.mode == "reflect" or (self.mode == "allowlist" and origin == APP)
        if origin and allowed:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
        if request.method == "OPTIONS":
            if allowed:
                headers["Access-Control-Allow-Methods"] = "GET, POST"
                headers["Access-Control-Allow-Headers"] = "Content-Type"
            return web.Response(status=204, headers=headers)
        return web.json_response({"accounts": []}, headers=headers)


@asynccontextmanager
async def serve_target() -> AsyncIterator[SwitchableTarget]:
    """Start the switchable target on 127.0.0.1."""
    state = SwitchableTarget()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.base = str(server.make_url("")).rstrip("/")
    try:
        yield state
    finally:
        await server.close()


def scan_options() -> ScanOptions:
    # Loopback answers at once; a cut connection must not be retried for long.
    return ScanOptions(limits=ProbeLimits(retries=0, total_timeout=5.0, trust_env=False))


@dataclass
class Runs:
    """Scan the target and store runs; ``now`` advances a day per run."""

    database: Database
    target: SwitchableTarget
    engine: Engine
    endpoint_id: int = 0
    now: datetime = T0
    outcomes: list[DiffOutcome] = field(default_factory=list)

    async def run(self, mode: str | None = None, *, fail_after_diff: bool = False) -> DiffOutcome:
        if mode is not None:
            self.target.mode = mode
        self.now += timedelta(days=1)
        assessment = await self.engine.assess(Target(Endpoint(self.target.url), POLICY))
        async with self.database.session() as session, session.begin():
            scan = await runs.create_run(
                session,
                selection=RunSelection(endpoint_ids=(self.endpoint_id,)),
                trigger=RunTrigger.SCHEDULE,
                requested_by=None,
                endpoints_total=1,
                now=self.now,
            )
            await runs.mark_running(session, scan.id, now=self.now)
            await runs.save_assessment(session, scan.id, self.endpoint_id, assessment)
        async with self.database.session() as session, session.begin():
            await runs.finish_run(session, scan.id, RunStatus.COMPLETED, now=self.now)
            outcome = await apply_run_diff(session, scan.id, now=self.now)
            if fail_after_diff:
                raise RuntimeError("finalisation failed after the diff")
        self.outcomes.append(outcome)
        return outcome


@asynccontextmanager
async def stored_runs(database: Database, target: SwitchableTarget) -> AsyncIterator[Runs]:
    """An inventory endpoint for the target, and a ``Runs`` to scan it."""
    async with database.session() as session, session.begin():
        endpoint = await create_endpoint(
            session,
            EndpointInput(
                method="GET", url=target.url, owner="payments-team", tags=("pci", "public-api")
            ),
        )
    async with Engine(scan_options(), default_public_suffixes()) as engine:
        yield Runs(database, target, engine, endpoint_id=endpoint.id)


def webhook_body(events: str | None) -> dict[str, Any]:
    """The webhook payload a receiver gets for an outbox row's stored events."""
    assert events is not None
    _, [event] = read_message(events)
    return dict(json.loads(webhook_payload(event)))
