"""List latency of the REST API on a big inventory: p50/p99 per query, SQLite and PostgreSQL.

    .venv/bin/python benchmarks/api_list.py [--endpoints 100000] [--findings 1000000]
        [--backends sqlite,postgresql] [--requests 200] [--max-seconds 1800]

For each backend: a fresh database is migrated and filled with bulk inserts
(``--endpoints`` endpoints, a tenth tagged ``hot``, owners ``team-0..99``;
one completed scan with ``--findings`` findings spread over the endpoints,
severities and ten rule ids), then ANALYZE (SQLite; ``--no-analyze`` skips
it) or VACUUM ANALYZE (PostgreSQL). Then the API (``create_app`` behind the same
runner ``serve`` uses) listens on 127.0.0.1 and a client sends ``--requests``
sequential requests per query, timing each from send to the last body byte;
the table gives p50 and p99 in milliseconds.

The client runs in the same process and on the same event loop as the
server, so each figure includes the client's own work (small next to the
server's, but on a 2-core machine not nothing). Filling takes most of the
time (PostgreSQL uses COPY; SQLite batched executemany). PostgreSQL comes
from ``CORS_SCANNER_BENCH_DATABASE_URL`` (default: the local
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``, where a scratch
database is created and dropped). The whole run stops by itself after
``--max-seconds``.

Measured on the 2-core development machine (200 requests per query, ms):

    query                                sqlite p50   p99   postgresql p50   p99
    endpoints, first page                       5.3   16.2              4.1    5.4
    endpoints, page deep in the list            4.5   38.1              6.7   13.5
    endpoints ?tag=hot                          5.8   12.4              4.3   10.7
    endpoints ?owner=team-42                    4.0    9.2              4.8    6.2
    endpoints ?enabled=false                    3.8    7.7              4.2    7.2
    endpoints ?q=svc-12345 (substring)         47.1   73.3            111.8  137.8
    findings, first page                        4.3    7.6              4.6   12.2
    findings ?severity=critical                 4.3    7.1              3.8    8.4
    findings ?rule_id=rule_3                    4.4    7.4              4.0    6.0
    findings ?endpoint_id=50000                 3.2    3.7              2.7    6.7
    findings, page deep in the list             4.1    7.2              3.6    7.2
    scan with severity counts                  73.4   88.9             60.4   84.4

Keyset pages cost the same at any depth. The substring search scans every
endpoint (a pg_trgm index would serve it on PostgreSQL), and a scan's counts
by severity read all its findings. Without ANALYZE, SQLite walks the
(scan_id, severity) index for an unfiltered findings page and sorts:
~100 ms instead of ~4 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scanner.api.app import create_app, make_runner
from scanner.db.engine import Database
from scanner.db.tables import (
    EndpointRow,
    EndpointTagRow,
    RunFindingRow,
    RunRow,
)
from scanner.db.tokens import Scope, create_token
from scanner.settings import Settings

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
SEVERITIES = ("info", "low", "medium", "high", "critical")
RULES = tuple(f"rule_{i}" for i in range(10))
BATCH = 20_000


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    path: str  # may contain {mid_cursor}


def queries(endpoints: int) -> list[Query]:
    probe = max(1, endpoints // 2)
    return [
        Query("endpoints, first page", "/api/v1/endpoints?limit=50"),
        Query("endpoints, page deep in the list", "/api/v1/endpoints?limit=50&cursor={mid}"),
        Query("endpoints ?tag=hot", "/api/v1/endpoints?tag=hot&limit=50"),
        Query("endpoints ?owner=team-42", "/api/v1/endpoints?owner=team-42&limit=50"),
        Query("endpoints ?enabled=false", "/api/v1/endpoints?enabled=false&limit=50"),
        Query("endpoints ?q=svc-12345 (substring)", "/api/v1/endpoints?q=svc-12345&limit=50"),
        Query("findings, first page", "/api/v1/scans/1/findings?limit=50"),
        Query("findings ?severity=critical", "/api/v1/scans/1/findings?severity=critical&limit=50"),
        Query("findings ?rule_id=rule_3", "/api/v1/scans/1/findings?rule_id=rule_3&limit=50"),
        Query(
            f"findings ?endpoint_id={probe}",
            f"/api/v1/scans/1/findings?endpoint_id={probe}&limit=50",
        ),
        Query(
            "findings, page deep in the list", "/api/v1/scans/1/findings?limit=50&cursor={mid_f}"
        ),
        Query("scan with severity counts", "/api/v1/scans/1"),
    ]


# -- filling -------------------------------------------------------------------


async def fill(database: Database, endpoints: int, findings: int, *, analyze: bool) -> None:
    now = datetime.now(UTC)
    rng = random.Random(7)
    if database.dialect == "postgresql":
        await _fill_postgres(database, endpoints, findings, now, rng)
    else:
        await _fill_sqlite(database, endpoints, findings, now, rng, analyze=analyze)


def _endpoint_rows(endpoints: int, now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "method": "GET",
            "url": f"https://svc-{i}.acme.test/api/v1/items",
            "name": f"svc-{i} items",
            "owner": f"team-{i % 100}",
            "enabled": i % 20 != 0,
            "notes": None,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(1, endpoints + 1)
    ]


def _finding_row(n: int, endpoints: int, now: datetime, rng: random.Random) -> dict[str, Any]:
    return {
        "id": n,
        "scan_id": 1,
        "endpoint_id": rng.randint(1, endpoints),
        "rule_id": RULES[n % len(RULES)],
        "severity": SEVERITIES[rng.randrange(len(SEVERITIES))],
        "category": "exposure",
        "title": "A finding",
        "summary": "An untrusted origin can read the response.",
        "fingerprint": f"fp1:{n:032x}",
        "origin_class": "arbitrary",
        "credentialed": n % 2 == 0,
        "evidence": [],
        "created_at": now,
    }


def _scan_row(endpoints: int, findings: int, now: datetime) -> dict[str, Any]:
    return {
        "id": 1,
        "status": "completed",
        "trigger": "api",
        "requested_by": "bench",
        "selection": {},
        "endpoints_total": endpoints,
        "endpoints_done": endpoints,
        "probes_total": 0,
        "probe_errors": 0,
        "findings_total": findings,
        "created_at": now,
        "started_at": now,
        "finished_at": now,
    }


async def _fill_sqlite(
    database: Database,
    endpoints: int,
    findings: int,
    now: datetime,
    rng: random.Random,
    *,
    analyze: bool,
) -> None:
    rows = _endpoint_rows(endpoints, now)
    for start in range(0, len(rows), BATCH):
        async with database.session() as session, session.begin():
            chunk = rows[start : start + BATCH]
            await session.execute(insert(EndpointRow), chunk)
            tags = [{"endpoint_id": r["id"], "tag": "hot"} for r in chunk if r["id"] % 10 == 0]
            if tags:
                await session.execute(insert(EndpointTagRow), tags)
    async with database.session() as session, session.begin():
        await session.execute(insert(RunRow), [_scan_row(endpoints, findings, now)])
    for start in range(1, findings + 1, BATCH):
        stop = min(findings + 1, start + BATCH)
        async with database.session() as session, session.begin():
            await session.execute(
                insert(RunFindingRow),
                [_finding_row(n, endpoints, now, rng) for n in range(start, stop)],
            )
    if analyze:
        # Planner statistics (what `PRAGMA optimize` gathers over time).
        async with database.session() as session, session.begin():
            await session.execute(text("ANALYZE"))


async def _fill_postgres(
    database: Database, endpoints: int, findings: int, now: datetime, rng: random.Random
) -> None:
    import json

    import asyncpg

    dsn = make_url(database.url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        rows = _endpoint_rows(endpoints, now)
        columns = list(rows[0])
        await conn.copy_records_to_table(
            "endpoints", records=[tuple(r[c] for c in columns) for r in rows], columns=columns
        )
        await conn.copy_records_to_table(
            "endpoint_tags",
            records=[(r["id"], "hot") for r in rows if r["id"] % 10 == 0],
            columns=["endpoint_id", "tag"],
        )
        scan = _scan_row(endpoints, findings, now)
        scan["selection"] = json.dumps(scan["selection"])
        await conn.copy_records_to_table(
            "scans", records=[tuple(scan.values())], columns=list(scan)
        )
        for start in range(1, findings + 1, 100_000):
            stop = min(findings + 1, start + 100_000)
            batch = [_finding_row(n, endpoints, now, rng) for n in range(start, stop)]
            for row in batch:
                row["evidence"] = json.dumps(row["evidence"])
            cols = list(batch[0])
            await conn.copy_records_to_table(
                "scan_findings", records=[tuple(r[c] for c in cols) for r in batch], columns=cols
            )
        for table in ("endpoints", "scans", "scan_findings"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        # What autovacuum would have done by the time anyone lists: statistics for the
        # planner, and a visibility map so counts can use index-only scans.
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


# -- measuring -----------------------------------------------------------------


async def measure(
    database: Database, endpoints: int, findings: int, requests: int
) -> list[tuple[str, float, float]]:
    from scanner.db.pagination import encode_cursor

    async with database.session() as session, session.begin():
        _, secret = await create_token(session, "bench", [Scope.READ], created_by=None)
    settings = Settings(database_url=database.url, max_page_size=500)
    runner = make_runner(create_app(settings, database=database))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    mid = encode_cursor(endpoints // 2)
    mid_f = encode_cursor(findings // 2)
    results: list[tuple[str, float, float]] = []
    try:
        headers = {"Authorization": f"Bearer {secret}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            for q in queries(endpoints):
                url = base + q.path.format(mid=mid, mid_f=mid_f)
                timings = await _time(http, url, requests)
                cuts = statistics.quantiles(timings, n=100, method="inclusive")
                results.append((q.name, statistics.median(timings), cuts[98]))
    finally:
        await runner.cleanup()
    return results


async def _time(http: aiohttp.ClientSession, url: str, requests: int) -> list[float]:
    async def once() -> float:
        started = time.perf_counter()
        async with http.get(url) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"{url}: {response.status} {await response.text()}")
        return (time.perf_counter() - started) * 1000

    for _ in range(min(10, requests)):  # warm-up: connection, caches, first-query planning
        await once()
    return [await once() for _ in range(requests)]


# -- backends ------------------------------------------------------------------


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def run_backend(
    backend: str, args: argparse.Namespace, workdir: Path
) -> list[tuple[str, float, float]]:
    dropped: str | None = None
    admin_url = os.environ.get("CORS_SCANNER_BENCH_DATABASE_URL", DEFAULT_POSTGRES)
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    else:
        dropped = f"cors_bench_{secrets.token_hex(4)}"
        await _admin(admin_url, f'CREATE DATABASE "{dropped}"')
        url = make_url(admin_url).set(database=dropped).render_as_string(hide_password=False)
    database = await Database.connect(url)
    try:
        await database.upgrade()
        started = time.perf_counter()
        await fill(database, args.endpoints, args.findings, analyze=not args.no_analyze)
        print(
            f"{backend}: filled {args.endpoints:,} endpoints and {args.findings:,} findings "
            f"in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        return await measure(database, args.endpoints, args.findings, args.requests)
    finally:
        await database.close()
        if dropped is not None:
            await _admin(admin_url, f'DROP DATABASE IF EXISTS "{dropped}" WITH (FORCE)')


def print_table(results: dict[str, list[tuple[str, float, float]]]) -> None:
    names = [name for name, _, _ in next(iter(results.values()))]
    width = max(len(n) for n in names)
    header = f"{'query':<{width}}" + "".join(
        f"  {b + ' p50':>14}  {b + ' p99':>14}" for b in results
    )
    print(header)
    print("-" * len(header))
    for i, name in enumerate(names):
        cells = "".join(
            f"  {rows[i][1]:>11.2f} ms  {rows[i][2]:>11.2f} ms" for rows in results.values()
        )
        print(f"{name:<{width}}{cells}")


async def main_async(args: argparse.Namespace) -> None:
    results: dict[str, list[tuple[str, float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="cors-bench-") as tmp:
        for backend in args.backends.split(","):
            results[backend] = await run_backend(backend.strip(), args, Path(tmp))
    print(
        f"\n{args.endpoints:,} endpoints, {args.findings:,} findings, "
        f"{args.requests} sequential requests per query (after 10 warm-up):\n"
    )
    print_table(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=100_000)
    parser.add_argument("--findings", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="SQLite: skip ANALYZE after filling (a database nobody ever optimised)",
    )
    args = parser.parse_args()

    async def bounded() -> None:
        await asyncio.wait_for(main_async(args), args.max_seconds)

    asyncio.run(bounded())


if __name__ == "__main__":
    main()
