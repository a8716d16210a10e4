"""A 100 000-row import through the API while a run is in progress: nothing else stops.

Issue 13: one import held SQLite's write lock for a minute, reads got 503
after 15 s, the embedded worker's claim failed with "database is locked" and
the whole process stopped. Now the import commits in chunks, reads and token
checks take no write lock, and the worker rides out a lock it waited too
long for. The p99 read latency is measured side by side with a one-chunk
baseline in ``benchmarks/import_during_run.py``.
"""

from __future__ import annotations

import asyncio
import io
import time

import pytest

from tests.api.client import Api
from tests.api.conftest import ApiFactory
from tests.worker.support import add_endpoints, targets

ROWS = 100_000
READ_LIMIT_S = 5.0  # one read: generous on a shared 2-CPU machine (the p99 is the benchmark's)


def import_csv(rows: int) -> bytes:
    """``rows`` distinct endpoints as an import CSV (about 40 bytes a row)."""
    lines = ["method,url,name,owner,tags"]
    lines += [f"GET,https://api.acme.test/r/{i},r{i},team-{i % 7},bulk" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


async def test_a_100k_row_import_during_a_run_stops_nothing(serve_api: ApiFactory) -> None:
    api: Api = await serve_api(
        max_import_bytes=32 * 1024 * 1024,
        poll_seconds=0.2,
        batch_size=4,
        api_rate_limit_per_minute=0,  # the reads below are many, and not what is limited
    )
    if api.database.dialect != "sqlite":
        pytest.skip("SQLite's single write lock is what a large import contended for")
    body = import_csv(ROWS)
    async with targets(3) as bases:
        await add_endpoints(
            api.database, [f"{base}/api/{i}?delay=0.05" for base in bases for i in range(16)]
        )
        started = await api.post("/api/v1/scans", {})
        assert started.status in (201, 202), started.text
        run_id = started.body["id"]

        reads: list[tuple[str, int, float]] = []
        importing = asyncio.create_task(
            api.call(
                "POST",
                "/api/v1/endpoints/import",
                data=io.BytesIO(body),
                headers={"Content-Type": "text/csv"},
                token="write",
            )
        )
        run_status = "queued"
        run_done_while_importing = False
        began = time.monotonic()
        while not importing.done() or run_status not in ("completed", "failed", "cancelled"):
            for path, token in (
                ("/healthz", None),
                ("/api/v1/endpoints?limit=20", "read"),
                (f"/api/v1/scans/{run_id}", "read"),
            ):
                t0 = time.monotonic()
                reply = await api.get(path, token=token)
                reads.append((path, reply.status, time.monotonic() - t0))
                if path.startswith("/api/v1/scans/") and reply.status == 200:
                    run_status = reply.body["status"]
                    if run_status == "completed" and not importing.done():
                        run_done_while_importing = True
            assert time.monotonic() - began < 300, "the import or the run never finished"
            await asyncio.sleep(0.05)
        imported = await importing

    assert imported.status == 200, imported.text
    assert imported.body["summary"]["created"] == ROWS
    assert run_status == "completed"
    assert run_done_while_importing  # the worker was not starved by the import's chunks
    failed = [(p, s) for p, s, _ in reads if s != 200]
    assert failed == []
    slow = [(p, round(d, 2)) for p, _, d in reads if d > READ_LIMIT_S]
    assert slow == []
    listed = await api.get("/api/v1/endpoints?limit=1&q=api.acme.test/r/99999")
    assert listed.status == 200
