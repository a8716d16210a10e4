"""Storage per endpoint per run: compact exchanges beside main's one-row-per-probe format.

    .venv/bin/python benchmarks/run_storage.py [--endpoints 2000] [--hosts 16]
        [--databases sqlite,postgresql]
        [--postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]

What runs, side by side in one process:

- the *target*: ``benchmarks/scan_throughput.py``'s (reused): an aiohttp
  server in its own process on 127.0.0.1, ``--hosts`` ports, every path
  answering like the demo's ``/good`` path;
- one scan of ``--endpoints`` endpoints with the real engine and the ``/good``
  policy, 25 endpoints at a time (a work item's batch);
- each batch stored, in one transaction per database, twice:
  *compact*: ``scanner.db.runs.save_assessment`` into a database at the head
  revision, then the run finalised (``finalize_run``: totals, diff, events);
  *baseline*: main's format (revision ``0005_dashboard_sessions``: one
  ``scan_probes`` row per exchange, as ``save_assessment`` wrote them before
  ``0006_compact_run_storage``) into a second database.

Bytes: PostgreSQL, the sum of ``pg_total_relation_size`` over every table
before and after; SQLite, the file size after ``wal_checkpoint(TRUNCATE)``.
Divided by the endpoint count.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for path in (str(REPO), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

import scan_throughput  # noqa: E402  (the target, reused)
from run_throughput import Fresh  # noqa: E402  (fresh databases and their sizes)
from sqlalchemy import MetaData, insert  # noqa: E402

from scanner.core.checks import Assessment  # noqa: E402
from scanner.core.plan import Endpoint  # noqa: E402
from scanner.core.policy import Policy  # noqa: E402
from scanner.db import runs  # noqa: E402
from scanner.db.engine import Database  # noqa: E402
from scanner.db.runs import RunSelection, RunTrigger  # noqa: E402
from scanner.engine import Engine, ScanOptions, Target  # noqa: E402
from scanner.hostnames import default_public_suffixes  # noqa: E402
from scanner.reports.json import finding_to_json, policy_to_json, probe_to_json  # noqa: E402
from scanner.worker.finalize import finalize_run  # noqa: E402

BASELINE = "0005_dashboard_sessions"
BATCH = 25


class Baseline(Fresh):
    """A fresh database at main's revision (one row per probe)."""

    async def __aenter__(self) -> Database:
        if self.kind == "postgresql":
            await self._admin(f'CREATE DATABASE "{self._name}"')
        self.db = await Database.connect(self.url)
        await self.db.upgrade(BASELINE)
        return self.db


async def _new_run(db: Database, total: int) -> int:
    async with db.session() as session, session.begin():
        run = await runs.create_run(
            session,
            selection=RunSelection(),
            trigger=RunTrigger.MANUAL,
            requested_by="bench",
            endpoints_total=total,
        )
        assert await runs.mark_running(session, run.id)
    return run.id


async def _baseline_run(db: Database, total: int) -> tuple[int, dict[str, Any]]:
    meta = MetaData()
    async with db.engine.begin() as conn:
        await conn.run_sync(meta.reflect)
        result = await conn.execute(
            insert(meta.tables["scans"])
            .values(
                status="running",
                trigger="manual",
                requested_by="bench",
                selection={},
                endpoints_total=total,
                endpoints_done=0,
                probes_total=0,
                probe_errors=0,
                findings_total=0,
                created_at=scan_throughput_now(),
                items_total=0,
                items_remaining=0,
            )
            .returning(meta.tables["scans"].c.id)
        )
        return int(result.scalar_one()), meta.tables


def scan_throughput_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def _save_baseline(
    db: Database, tables: dict[str, Any], run_id: int, batch: list[tuple[int, Assessment]]
) -> None:
    # What save_assessment wrote before 0006: endpoint row, one row per probe, findings.
    async with db.engine.begin() as conn:
        for endpoint_id, a in batch:
            await conn.execute(
                insert(tables["scan_endpoints"]).values(
                    scan_id=run_id,
                    endpoint_id=endpoint_id,
                    method=a.endpoint.method.upper(),
                    url=a.endpoint.url,
                    reachable=a.reachable,
                    probe_count=a.probe_count,
                    probe_errors=len(a.errors),
                    policy=policy_to_json(a.policy),
                    unchecked=list(a.unchecked),
                )
            )
            docs = [probe_to_json(p) for p in a.probes]
            if docs:
                await conn.execute(
                    insert(tables["scan_probes"]),
                    [
                        {
                            "scan_id": run_id,
                            "endpoint_id": endpoint_id,
                            "probe_key": d["key"],
                            **{
                                k: d[k]
                                for k in (
                                    "kind",
                                    "purpose",
                                    "origin",
                                    "origin_kind",
                                    "method",
                                    "url",
                                    "request_headers",
                                    "status",
                                    "reason",
                                    "response_headers",
                                    "error",
                                    "error_detail",
                                    "elapsed_ms",
                                    "attempts",
                                    "verdict",
                                )
                            },
                        }
                        for d in docs
                    ],
                )
            for f in {f.fingerprint: f for f in a.findings}.values():
                await conn.execute(
                    insert(tables["scan_findings"]).values(
                        scan_id=run_id,
                        endpoint_id=endpoint_id,
                        rule_id=f.rule_id,
                        severity=f.severity.value,
                        category=f.category.value,
                        title=f.title,
                        summary=f.summary,
                        fingerprint=f.fingerprint,
                        origin_class=f.origin_class,
                        credentialed=f.credentialed,
                        evidence=finding_to_json(f)["evidence"],
                        created_at=scan_throughput_now(),
                    )
                )


async def measure(args: argparse.Namespace, ports: list[int], kind: str) -> list[str]:
    policy = Policy.build(**scan_throughput.CASE.policy_kwargs)
    urls = list(scan_throughput.endpoint_urls(ports, args.endpoints))
    with tempfile.TemporaryDirectory() as tmp:
        compact_db = Fresh(kind, args.postgres_url, Path(tmp))
        baseline_db = Baseline(kind, args.postgres_url, Path(tmp))
        async with compact_db as compact, baseline_db as baseline:
            sizes = {"compact": [await compact_db.size()], "baseline": [await baseline_db.size()]}
            compact_run = await _new_run(compact, len(urls))
            baseline_run, tables = await _baseline_run(baseline, len(urls))
            probes = findings = 0
            options = ScanOptions(limits=scan_throughput.probe_limits(args))
            async with Engine(options, default_public_suffixes()) as engine:
                for start in range(0, len(urls), BATCH):
                    chunk = urls[start : start + BATCH]
                    assessed = await asyncio.gather(
                        *(
                            engine.assess(
                                Target(Endpoint(u, method=scan_throughput.CASE.method), policy)
                            )
                            for u in chunk
                        )
                    )
                    batch = list(enumerate(assessed, start=start + 1))
                    probes += sum(a.probe_count for _, a in batch)
                    findings += sum(len(a.findings) for _, a in batch)
                    async with compact.session() as session, session.begin():
                        for endpoint_id, a in batch:
                            await runs.save_assessment(session, compact_run, endpoint_id, a)
                    await _save_baseline(baseline, tables, baseline_run, batch)
            async with compact.session() as session, session.begin():
                assert await finalize_run(session, compact_run)
            sizes["compact"].append(await compact_db.size())
            sizes["baseline"].append(await baseline_db.size())
    n = len(urls)
    rows = []
    for fmt in ("baseline", "compact"):
        added = sizes[fmt][1] - sizes[fmt][0]
        rows.append(
            f"| {kind} | {fmt} | {n} | {probes / n:.0f} | {findings} | {added / 1e6:.2f} "
            f"| {added / n / 1024:.2f} |"
        )
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoints", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--per-host", type=int, default=4)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument(
        "--postgres-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    target, ports = scan_throughput.start_target(args)
    try:
        lines = [
            "| database | format | endpoints | probes per endpoint | findings | DB MB added "
            "| KB per endpoint |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for kind in args.databases.split(","):
            lines += asyncio.run(measure(args, ports, kind))
    finally:
        assert target.stdin is not None
        target.stdin.close()
        target.wait(timeout=30)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
