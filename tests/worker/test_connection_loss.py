"""A real `cors-scanner serve` whose PostgreSQL connections are killed every 0.2 s.

Issue 13: with ``pg_terminate_backend`` every 0.2 s during a run, every worker
exited (the claim's exception reached ``run_components``), the run stayed
``running`` until someone restarted them, every item ended on its last
attempt, the API answered 500, and each failure logged a 17 KB statement.
Now the service rides it out: the run completes with no manual step.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import pytest
from sqlalchemy.engine import make_url

from scanner.db.engine import Database
from scanner.db.tokens import Scope, create_token
from tests.worker.support import add_endpoints, items, targets

pytestmark = pytest.mark.postgres

HOSTS = 20
PER_HOST = 12  # 240 endpoints, 60 work items of 4
KILL_EVERY_S = 0.2
# As in the trial (0.2 s for 130 s): kill for a while, then let the database be.
# A transaction longer than 0.2 s (finalizing 240 endpoints) never survives the killer,
# so what is checked is that everything resumes by itself once the kills stop.
KILL_FOR_S = 20.0
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)/")


@dataclass
class Killer:
    """Terminates every backend of one database but its own, every ``KILL_EVERY_S``."""

    dsn: str
    name: str
    killed: int = 0
    rounds: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while not self.stop.is_set():
            try:
                conn = await asyncpg.connect(self.dsn)
                try:
                    while not self.stop.is_set():
                        self.killed += await conn.fetchval(
                            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                            "FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                            self.name,
                        )
                        self.rounds += 1
                        await asyncio.sleep(KILL_EVERY_S)
                        if self.rounds * KILL_EVERY_S >= KILL_FOR_S:
                            self.stop.set()
                finally:
                    await conn.close()
            except (OSError, asyncpg.PostgresError):
                await asyncio.sleep(KILL_EVERY_S)


async def _collect(stream: asyncio.StreamReader, lines: list[str]) -> None:
    while raw := await stream.readline():
        lines.append(raw.decode(errors="replace"))


async def test_a_run_completes_while_every_connection_is_killed_every_0_2_s(
    database: Database, unused_port: int
) -> None:
    if database.dialect != "postgresql":
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    async with database.session() as session, session.begin():
        _record, secret = await create_token(session, "kill-test", [Scope.WRITE], created_by=None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORS_SCANNER_")}
    env.update(
        {
            "CORS_SCANNER_DATABASE_URL": database.url,
            "CORS_SCANNER_LEASE_SECONDS": "6",
            "CORS_SCANNER_HEARTBEAT_SECONDS": "1",
            "CORS_SCANNER_POLL_SECONDS": "0.3",
            "CORS_SCANNER_BATCH_SIZE": "4",
            "CORS_SCANNER_WORKER_CONCURRENCY": "8",
            "CORS_SCANNER_TIMEOUT": "5",
            "CORS_SCANNER_RETRIES": "0",
            "CORS_SCANNER_LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
    )
    url = make_url(database.url)
    killer = Killer(
        url.set(drivername="postgresql").render_as_string(hide_password=False),
        str(url.database),
    )
    statuses: list[int] = []
    stderr: list[str] = []
    async with targets(HOSTS) as bases:
        await add_endpoints(database, [f"{b}/api/{i}" for b in bases for i in range(PER_HOST)])
        port = unused_port
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "scanner",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        reader = asyncio.create_task(_collect(process.stderr, stderr))
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {secret}"}
        killing: asyncio.Task[None] | None = None
        began = time.monotonic()
        run: dict[str, Any] = {}
        done_under_kills: int | None = None  # items finished while the killer was at work
        try:
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(base, headers=headers, timeout=timeout) as http:
                run_id: int | None = None
                async with asyncio.timeout(120):
                    while True:
                        try:
                            if killing is None:
                                async with http.get("/healthz") as reply:
                                    if reply.status == 200:  # listening: from now on, kill
                                        killing = asyncio.create_task(killer.run())
                            elif run_id is None:
                                async with http.post("/api/v1/scans", json={}) as reply:
                                    statuses.append(reply.status)
                                    if reply.status in (201, 202):
                                        run_id = (await reply.json())["id"]
                            else:
                                async with http.get(f"/api/v1/scans/{run_id}") as reply:
                                    statuses.append(reply.status)
                                    if reply.status == 200:
                                        run = await reply.json()
                                        if done_under_kills is None and killer.stop.is_set():
                                            p = run["progress"]
                                            done_under_kills = (
                                                p["items_total"] - p["items_remaining"]
                                            )
                                        if run["status"] in ("completed", "failed", "cancelled"):
                                            if done_under_kills is None:
                                                # Finished while the killer was still at work.
                                                p = run["progress"]
                                                done_under_kills = (
                                                    p["items_total"] - p["items_remaining"]
                                                )
                                            break
                        except aiohttp.ClientConnectionError:
                            pass  # not listening yet
                        except TimeoutError:
                            statuses.append(0)  # no answer in 10 s
                        assert process.returncode is None, "".join(stderr[-30:])
                        await asyncio.sleep(0.2)
            duration = time.monotonic() - began
        finally:
            killer.stop.set()
            if killing is not None:
                await killing
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 30)
            await reader

    print(
        f"\nconnection kills: {killer.killed} backends over {killer.rounds} rounds; "
        f"run of {HOSTS * PER_HOST} endpoints completed in {duration:.1f} s "
        f"({done_under_kills} of its items done under the kills); "
        f"API answers {sorted(set(statuses))}; {len(stderr)} log lines, "
        f"longest {max(map(len, stderr), default=0)} characters"
    )
    assert killer.killed >= 20  # the service really lost its connections, many times
    assert done_under_kills is not None
    assert done_under_kills > 0  # and worked on through them
    assert run["status"] == "completed", run
    assert code == 0, "".join(stderr[-30:])
    assert 500 not in statuses
    assert set(statuses) <= {200, 201, 202, 503}
    work = await items(database, int(run["id"]))
    assert {i.status for i in work} == {"done"}
    # Database errors cost no attempts: no item came near its last one.
    assert max(i.attempts for i in work) < 3, [(i.id, i.attempts, i.last_error) for i in work]
    assert max(map(len, stderr)) < 4000  # the error, never a statement with its parameters
