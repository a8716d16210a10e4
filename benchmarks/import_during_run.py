"""A 100 000-row CSV import through the API during a run, on SQLite: read latency side by side.

    .venv/bin/python benchmarks/import_during_run.py [--rows 100000] [--endpoints 48]

Two passes in one process, each on a fresh SQLite file: ``baseline`` writes
the whole import in ONE transaction (``IMPORT_CHUNK_ROWS`` set above the row
count: how imports worked before issue 13, with the bulk insert path of
today, so only the chunking differs), ``chunked`` as shipped (1000 rows a
transaction). In each, the API with its embedded worker listens on
127.0.0.1, a run of ``--endpoints`` endpoints on three loopback targets
(50 ms answers) is started, the import is posted, and a client reads
``/healthz``, ``GET /api/v1/endpoints?limit=20`` and ``GET
/api/v1/scans/{id}`` in turn (sequentially, 20 ms apart) until both the import
and the run are done. Reported: the import's duration, the run's, and per
read path the count, failures, p50, p99 and max in milliseconds.

The client shares the server's process and event loop, so each figure
includes some client work; on a 2-core machine shared with other suites the
absolute numbers move from run to run, the ratio between passes much less.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scanner.api import create_app
from scanner.db.engine import Database
from scanner.usecases import inventory
from tests.api.client import api_settings, make_tokens, read
from tests.hardening.test_import_during_run import import_csv
from tests.worker.support import add_endpoints, targets

PATHS = ("/healthz", "/api/v1/endpoints?limit=20", "scan")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_pass(chunk_rows: int, rows: int, endpoints: int) -> dict[str, object]:
    inventory.IMPORT_CHUNK_ROWS = chunk_rows
    folder = tempfile.mkdtemp(prefix="cors-import-bench-")
    url = f"sqlite+aiosqlite:///{folder}/bench.db"
    database = await Database.connect(url)
    await database.upgrade()
    tokens = await make_tokens(database)
    settings = api_settings(
        database,
        max_import_bytes=64 * 1024 * 1024,
        poll_seconds=0.2,
        batch_size=4,
        api_rate_limit_per_minute=0,
    )
    app = create_app(settings, database=database)
    client: TestClient = TestClient(TestServer(app, host="127.0.0.1"))  # type: ignore[type-arg]
    await client.start_server()
    reads: dict[str, list[float]] = {p: [] for p in PATHS}
    failures: dict[str, list[int]] = {p: [] for p in PATHS}
    body = import_csv(rows)
    try:
        async with targets(3) as bases:
            per = max(1, endpoints // 3)
            await add_endpoints(
                database, [f"{b}/api/{i}?delay=0.05" for b in bases for i in range(per)]
            )
            auth = {"Authorization": f"Bearer {tokens['admin']}"}
            async with client.post("/api/v1/scans", json={}, headers=auth) as r:
                run_id = (await read(r)).body["id"]
            began = time.monotonic()

            async def post_import() -> float:
                async with client.post(
                    "/api/v1/endpoints/import",
                    data=io.BytesIO(body),
                    headers={**auth, "Content-Type": "text/csv"},
                ) as r:
                    reply = await read(r)
                assert reply.status == 200, reply.text
                return time.monotonic() - began

            importing = asyncio.create_task(post_import())
            run_done: float | None = None
            while not importing.done() or run_done is None:
                for path in PATHS:
                    target = f"/api/v1/scans/{run_id}" if path == "scan" else path
                    t0 = time.monotonic()
                    async with client.get(target, headers=auth) as r:
                        reply = await read(r)
                    reads[path].append((time.monotonic() - t0) * 1000)
                    if reply.status != 200:
                        failures[path].append(reply.status)
                    elif path == "scan" and reply.body["status"] in ("completed", "failed"):
                        run_done = run_done or time.monotonic() - began
                await asyncio.sleep(0.02)
            import_s = await importing
    finally:
        await client.close()
        await database.close()
    return {"import_s": import_s, "run_s": run_done, "reads": reads, "failures": failures}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--endpoints", type=int, default=48)
    args = parser.parse_args()
    results = {}
    for name, chunk in (
        ("baseline (one transaction)", args.rows + 1),
        ("chunked (1000 rows)", 1000),
    ):
        results[name] = await one_pass(chunk, args.rows, args.endpoints)
    print(
        f"\n{args.rows} rows imported through the API during a run of {args.endpoints} endpoints\n"
    )
    print("| pass | import s | run s | read | n | failed | p50 ms | p99 ms | max ms |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        for path in PATHS:
            values = r["reads"][path]  # type: ignore[index]
            print(
                f"| {name} | {r['import_s']:.1f} | {r['run_s']:.1f} | {path} | {len(values)} | "
                f"{len(r['failures'][path])} {sorted(set(r['failures'][path]))} | "  # type: ignore[index]
                f"{statistics.median(values):.1f} | "
                f"{_pct(values, 0.99):.1f} | {max(values):.1f} |"
            )


if __name__ == "__main__":
    asyncio.run(main())
