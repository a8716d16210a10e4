"""Peak memory of the process that finalises a run, in the number of endpoints, first and second run.

    .venv/bin/python benchmarks/finalize_memory.py [--endpoints 3000,10000]
        [--databases sqlite] [--postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]

What runs:

- one real assessment of a ``/good`` endpoint (``benchmarks/scan_throughput.py``'s
  target: 77 probes, correct CORS answers, no findings), stored the way
  ``scanner.db.runs.save_assessment`` stores it (the endpoint row, the packed
  exchanges and the diff snapshot), copied under N endpoint ids in bulk, for
  two runs of the same schedule-less scope;
- per run, a fresh process (``--role finalize``) that connects, measures its
  RSS, calls ``scanner.worker.finalize.finalize_run`` in one transaction (as
  the worker does: totals, the diff against the previous run, events, outbox)
  and reports its peak RSS (``ru_maxrss``). The second run diffs against the
  first, so it also loads the previous run's CORS lines;
- *chunked* is the code as it is (``scanner.regressions`` diffs
  ``_DIFF_CHUNK`` = 500 endpoints at a time); *one pass* sets the chunk to
  the whole run, which is how finalisation worked before (every snapshot and
  every previous header set in memory at once), on the same data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for path in (str(REPO), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


async def finalize(url: str, run_id: int, chunk: int) -> dict[str, float]:
    import scanner.regressions
    from scanner.db.engine import Database
    from scanner.worker.finalize import finalize_run

    scanner.regressions._DIFF_CHUNK = chunk
    db = await Database.connect(url)
    try:
        before = _rss_mb()
        started = time.perf_counter()
        async with db.session() as session, session.begin():
            assert await finalize_run(session, run_id)
        seconds = time.perf_counter() - started
    finally:
        await db.close()
    return {
        "seconds": seconds,
        "rss_before_mb": before,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


async def assess_one(ports: list[int]) -> Any:
    import scan_throughput

    from scanner.core.plan import Endpoint
    from scanner.core.policy import Policy
    from scanner.engine import Engine, ScanOptions, Target
    from scanner.hostnames import default_public_suffixes

    policy = Policy.build(**scan_throughput.CASE.policy_kwargs)
    url = next(scan_throughput.endpoint_urls(ports, 1))
    async with Engine(ScanOptions(), default_public_suffixes()) as engine:
        return await engine.assess(
            Target(Endpoint(url, method=scan_throughput.CASE.method), policy)
        )


async def store_run(db: Any, assessment: Any, count: int) -> int:
    from sqlalchemy import insert

    from scanner.core.diff import snapshot_from_assessment
    from scanner.db import runs
    from scanner.db.runs import RunSelection, RunStatus, RunTrigger, pack_exchanges, pack_snapshot
    from scanner.db.tables import RunEndpointRow, RunExchangeRow, RunRow
    from scanner.reports.json import policy_to_json, probe_to_json

    docs = [probe_to_json(p) for p in assessment.probes]
    body = pack_exchanges(docs)
    snapshot = pack_snapshot(snapshot_from_assessment(0, assessment))
    timings: dict[str, list[float]] = {}
    for d in docs:
        timings.setdefault(d["kind"], []).append(d["elapsed_ms"])
    async with db.session() as session, session.begin():
        run = await runs.create_run(
            session,
            selection=RunSelection(),
            trigger=RunTrigger.MANUAL,
            requested_by="bench",
            endpoints_total=count,
        )
        assert await runs.mark_running(session, run.id)
    n = len(docs)
    for start in range(1, count + 1, 1000):
        ids = range(start, min(count, start + 999) + 1)
        async with db.session() as session, session.begin():
            await session.execute(
                insert(RunEndpointRow),
                [
                    {
                        "scan_id": run.id,
                        "endpoint_id": i,
                        "method": assessment.endpoint.method.upper(),
                        "url": f"{assessment.endpoint.url}?copy={i}",
                        "reachable": assessment.reachable,
                        "probe_count": assessment.probe_count,
                        "probe_errors": len(assessment.errors),
                        "policy": policy_to_json(assessment.policy),
                        "unchecked": list(assessment.unchecked),
                    }
                    for i in ids
                ],
            )
            await session.execute(
                insert(RunExchangeRow),
                [
                    {
                        "scan_id": run.id,
                        "endpoint_id": i,
                        "first_probe_id": (i - 1) * n + 1,
                        "last_probe_id": i * n,
                        "probe_count": n,
                        "body": body,
                        "timings": timings,
                        "snapshot": snapshot,
                    }
                    for i in ids
                ],
            )
    async with db.session() as session, session.begin():
        row = await session.get(RunRow, run.id)
        assert row is not None
        row.endpoints_done = count
        row.probe_seq = count * n
        await runs.finish_run(session, run.id, RunStatus.COMPLETED)
    return run.id


def child_finalize(url: str, run_id: int, chunk: int) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--role",
            "finalize",
            "--url",
            url,
            "--run",
            str(run_id),
            "--chunk",
            str(chunk),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


async def measure(args: argparse.Namespace, assessment: Any, kind: str, count: int) -> list[str]:
    from run_throughput import Fresh

    rows = []
    for mode, chunk in (("one pass (before)", 10**9), ("chunked", 500)):
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Fresh(kind, args.postgres_url, Path(tmp))
            async with fresh as db:
                figures = []
                for _ in range(2):
                    run_id = await store_run(db, assessment, count)
                    figures.append(
                        await asyncio.to_thread(child_finalize, fresh.url, run_id, chunk)
                    )
        first, second = figures
        rows.append(
            f"| {kind} | {count} | {mode} | {first['rss_before_mb']:.0f} | {first['peak_rss_mb']:.0f} "
            f"| {second['peak_rss_mb']:.0f} | {first['seconds']:.1f} | {second['seconds']:.1f} |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", default="main", choices=("main", "finalize"))
    parser.add_argument("--url")
    parser.add_argument("--run", type=int)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--endpoints", default="3000,10000")
    parser.add_argument("--databases", default="sqlite")
    parser.add_argument("--hosts", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument(
        "--postgres-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    args = parser.parse_args(argv)
    if args.role == "finalize":
        print(json.dumps(asyncio.run(finalize(args.url, args.run, args.chunk))))
        return 0

    import scan_throughput

    target, ports = scan_throughput.start_target(args)
    try:
        assessment = asyncio.run(assess_one(ports))
    finally:
        assert target.stdin is not None
        target.stdin.close()
        target.wait(timeout=30)
    lines = [
        f"one /good endpoint, {assessment.probe_count} probes, copied N times",
        "",
        "| database | endpoints | finalize | RSS before MB | peak RSS run 1 MB | peak RSS run 2 MB "
        "| run 1 s | run 2 s |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for kind in args.databases.split(","):
        for count in (int(c) for c in args.endpoints.split(",")):
            lines += asyncio.run(measure(args, assessment, kind, count))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
