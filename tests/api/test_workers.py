"""GET /api/v1/workers: who works on runs, live or stale, and what each holds."""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import UTC, datetime, timedelta

from scanner.api.app import WORKER
from scanner.db.tables import WorkerRow
from tests.api.client import Api
from tests.worker.support import add_endpoints, targets

WORKERS = "/api/v1/workers"


async def test_workers_list_live_and_stale_with_their_leases(api: Api) -> None:
    # The API process under test embeds one worker, as `serve` does.
    embedded = api.app[WORKER]
    first = await api.get(WORKERS, token="read")
    assert first.status == 200
    assert [w["id"] for w in first.body["items"]] == [embedded.id]
    assert first.body["items"][0]["items_leased"] == 0
    assert (await api.get(WORKERS, token=None)).status == 401

    # A worker that crashed an hour ago: registered, silent since.
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    async with api.database.session() as session, session.begin():
        session.add(
            WorkerRow(
                id="dead-worker",
                hostname="gone.example",
                pid=1,
                started_at=long_ago,
                last_heartbeat=long_ago,
            )
        )

    async with targets(2) as bases:
        # Slow answers keep both hosts' items leased while we look.
        await add_endpoints(api.database, [f"{b}/slow?delay=1.5" for b in bases])
        created = await api.post("/api/v1/scans", {}, token="write")
        assert created.status in (201, 202), created.text
        async with asyncio.timeout(10):
            while True:
                items = (await api.get(WORKERS, token="read")).body["items"]
                mine = [w for w in items if w["id"] == embedded.id]
                if mine and mine[0]["items_leased"] == 2:
                    break
                await asyncio.sleep(0.05)

    by_id = {w["id"]: w for w in items}
    assert set(by_id) == {"dead-worker", embedded.id}
    assert by_id[embedded.id]["live"] is True
    assert by_id[embedded.id]["hostname"] == socket.gethostname()
    assert by_id[embedded.id]["pid"] == os.getpid()
    assert by_id[embedded.id]["last_heartbeat"].endswith("Z")
    assert by_id["dead-worker"]["live"] is False
    assert by_id["dead-worker"]["hostname"] == "gone.example"
    assert by_id["dead-worker"]["items_leased"] == 0
