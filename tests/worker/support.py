"""Shared pieces of the worker tests: slow local targets, endpoints, worker processes."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from scanner.db.engine import Database
from scanner.db.inventory import EndpointInput, create_endpoint
from scanner.db.runs import stream_exchanges
from scanner.db.tables import RunEndpointRow, RunRow, WorkItemRow


async def _answer(request: web.Request) -> web.Response:
    delay = float(request.query.get("delay", "0"))
    if delay:
        await asyncio.sleep(delay)
    return web.Response(text="ok", headers={"Access-Control-Allow-Origin": "https://app.example"})


@asynccontextmanager
async def targets(count: int) -> AsyncIterator[list[str]]:
    """``count`` HTTP targets on 127.0.0.1 (distinct ports = distinct hosts for politeness)."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _answer)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    bases: list[str] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            site = web.SockSite(runner, sock)
            await site.start()
            bases.append(f"http://127.0.0.1:{sock.getsockname()[1]}")
        yield bases
    finally:
        await runner.cleanup()


async def add_endpoints(database: Database, urls: list[str], **fields: Any) -> list[int]:
    """Add enabled endpoints; their ids."""
    ids = []
    async with database.session() as session, session.begin():
        for url in urls:
            record = await create_endpoint(session, EndpointInput.validate({"url": url, **fields}))
            ids.append(record.id)
    return ids


def worker_env(database_url: str, **settings: str) -> dict[str, str]:
    """The environment of a `cors-scanner worker` process with short lease settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORS_SCANNER_")}
    env.update(
        {
            "CORS_SCANNER_DATABASE_URL": database_url,
            "CORS_SCANNER_LEASE_SECONDS": "3",
            "CORS_SCANNER_HEARTBEAT_SECONDS": "1",
            "CORS_SCANNER_POLL_SECONDS": "0.3",
            "CORS_SCANNER_TIMEOUT": "10",
            "CORS_SCANNER_RETRIES": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({f"CORS_SCANNER_{k.upper()}": v for k, v in settings.items()})
    return env


async def start_worker(database_url: str, **settings: str) -> asyncio.subprocess.Process:
    """A real `python -m scanner worker` process."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scanner",
        "worker",
        env=worker_env(database_url, **settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def wait_run_final(database: Database, run_id: int, limit_s: float = 30.0) -> RunRow:
    """Poll the run until it is final (and finalised when completed)."""
    async with asyncio.timeout(limit_s):
        while True:
            async with database.session() as session, session.begin():
                run = await session.get(RunRow, run_id, populate_existing=True)
                assert run is not None
                if run.status in ("completed", "failed", "cancelled"):
                    session.expunge(run)
                    return run
            await asyncio.sleep(0.1)


async def probe_key_counts(database: Database, run_id: int) -> list[int]:
    """How many stored exchanges each (endpoint, probe key) of the run has."""
    counts: dict[tuple[int, str], int] = {}
    async with database.session() as session, session.begin():
        async for exchanges in stream_exchanges(session, run_id):
            for p in exchanges:
                counts[(p.endpoint_id, p.probe_key)] = (
                    counts.get((p.endpoint_id, p.probe_key), 0) + 1
                )
    return list(counts.values())


async def stored_probe_totals(database: Database, run_id: int) -> tuple[int, int]:
    """(probe exchanges stored, probes the endpoints' results say they made)."""
    async with database.session() as session, session.begin():
        stored = 0
        async for exchanges in stream_exchanges(session, run_id):
            stored += len(exchanges)
        claimed = (
            await session.execute(
                select(func.coalesce(func.sum(RunEndpointRow.probe_count), 0)).where(
                    RunEndpointRow.scan_id == run_id
                )
            )
        ).scalar_one()
    return int(stored), int(claimed)


async def items(database: Database, run_id: int) -> list[WorkItemRow]:
    """The run's work items, by id."""
    async with database.session() as session, session.begin():
        rows = list(
            (
                await session.execute(
                    select(WorkItemRow).where(WorkItemRow.run_id == run_id).order_by(WorkItemRow.id)
                )
            ).scalars()
        )
        session.expunge_all()
    return rows
