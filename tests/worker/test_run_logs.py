"""Every log line of a scan names its run: the worker binds the run id per work item."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from scanner.db import work
from scanner.db.engine import Database
from scanner.db.runs import RunSelection, RunTrigger
from scanner.engine import scan_options
from scanner.hostnames import default_public_suffixes
from scanner.logs import configure_logging
from scanner.runtime import run_components
from scanner.settings import Settings
from scanner.worker import Worker
from tests.worker.support import add_endpoints, targets, wait_run_final


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The process's log as JSON lines, at debug level; our handler removed afterwards."""
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging(Settings(log_format="json", log_level="debug"), stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


async def _plan(database: Database, tag: str) -> int:
    async with database.session() as session, session.begin():
        run = await work.plan_run(
            session,
            selection=RunSelection(tag=tag),
            trigger=RunTrigger.MANUAL,
            requested_by="test",
            batching=work.RunBatching(batch_size=2, max_attempts=3),
        )
    assert run is not None
    return run.id


async def test_log_lines_of_a_work_item_carry_its_run_id(
    database: Database, json_log: io.StringIO
) -> None:
    settings = Settings(
        database_url=database.url,
        lease_seconds=5.0,
        heartbeat_seconds=0.3,
        poll_seconds=0.1,
        retries=0,
        timeout=5.0,
    )
    async with targets(1) as [base]:
        await add_endpoints(database, [f"{base}/fast/{i}" for i in range(3)], tags=["fast"])
        await add_endpoints(database, [f"{base}/slow?delay=5"], tags=["slow"])
        done_run = await _plan(database, "fast")
        worker = Worker(database, settings, scan_options(settings), default_public_suffixes())
        await worker.register()
        stop = asyncio.Event()
        service = asyncio.create_task(run_components([worker], stop, signals=False))
        try:
            assert (await wait_run_final(database, done_run)).status == "completed"
            # A second run, cancelled while its only item is being probed: the
            # heartbeat stops that item, and says so under the run's id.
            cancelled_run = await _plan(database, "slow")
            async with asyncio.timeout(10):
                while not any(  # noqa: ASYNC110 - polling the log
                    line.get("run_id") == str(cancelled_run) for line in _lines(json_log)
                ):
                    await asyncio.sleep(0.05)
            async with database.session() as session, session.begin():
                await work.cancel_run(session, cancelled_run, reason="test")
            async with asyncio.timeout(10):
                while "stopping it" not in json_log.getvalue():  # noqa: ASYNC110 - polling the log
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await service

    lines = _lines(json_log)
    started = [
        line
        for line in lines
        if line["message"].endswith("started") and "work item" in line["message"]
    ]
    # Three endpoints in batches of two, plus the finalize step, then the slow one.
    assert [line["run_id"] for line in started] == [str(done_run)] * 3 + [str(cancelled_run)]
    stopping = [line for line in lines if "stopping it" in line["message"]]
    assert stopping
    assert stopping[0]["run_id"] == str(cancelled_run)
    assert stopping[0]["level"] == "warning"
    # Lines outside any item (the worker's start and stop) name no run.
    lifecycle = [line for line in lines if line["message"].startswith("worker ")]
    assert lifecycle
    assert all("run_id" not in line for line in lifecycle)
