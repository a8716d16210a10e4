"""Run throughput: a scheduled run end to end (tick → stored findings) beside the one-shot scan.

    .venv/bin/python benchmarks/run_throughput.py [--endpoints 2000] [--hosts 16]
        [--variants sqlite-1,postgresql-1,postgresql-2,scan] [--max-seconds 900]
        [--postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]

What runs, each part in its own process:

- the *target*: ``benchmarks/scan_throughput.py``'s (reused, not copied): an
  aiohttp server on 127.0.0.1 listening on ``--hosts`` ports, serving
  ``--endpoints`` paths that all answer like the demo's ``/good`` path;
- per *variant* ``<database>-<workers>``: a fresh database (SQLite: a new
  file; PostgreSQL: ``CREATE DATABASE`` of a new name next to the URL's, dropped
  afterwards), migrated, with the endpoints, the ``/good`` policy as the
  default layer and a schedule. ``<workers>`` real ``python -m scanner worker``
  processes are started and left idle; then the clock starts, the planner
  ticks the schedule at a nominal time (the run and its work items in one
  transaction), and the clock stops when the run is finalised (findings
  stored). The workers are then stopped with SIGTERM and their peak RSS read
  from ``wait4``. SQLite supports one worker process, so there is no
  ``sqlite-2``;
- ``scan``: ``cors-scanner scan`` over the same endpoints with the same
  policy and caps, timed from outside (``scan_throughput.run_cli``).

Database bytes: PostgreSQL, the sum of ``pg_total_relation_size`` over every
table before the tick and after finalisation; SQLite, the file size after a
``wal_checkpoint(TRUNCATE)`` before and after. Divided by the endpoint count:
bytes a run costs per endpoint (before retention prunes its probe details).

Each variant has a deadline (``--max-seconds``): workers are killed and the
benchmark fails if a run is not finalised by then, so it always ends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for path in (str(REPO), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

import scan_throughput  # noqa: E402  (the target and the one-shot scan run, reused)
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from scanner.db.engine import Database  # noqa: E402

VARIANTS = ("sqlite-1", "postgresql-1", "postgresql-2", "scan")
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
YEARLY = "0 0 1 1 *"  # never fires during a benchmark: the tick is called directly
NOMINAL = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Measured:
    """One variant's figures."""

    name: str
    wall_s: float
    plan_s: float | None
    probes: int
    findings: int
    endpoints_done: int
    rss_mb: tuple[float, ...]  # peak RSS of each measured process
    db_bytes: int | None
    # --api-latency: p50/p99 ms of the API's list requests while the run was in progress.
    api_ms: tuple[float, float, int, int] | None = None  # p50, p99, requests, non-200

    @property
    def rate(self) -> float:
        return self.probes / self.wall_s if self.wall_s else 0.0


# -- databases --------------------------------------------------------------------------


class Fresh:
    """A fresh, migrated database for one variant; removed on exit."""

    def __init__(self, kind: str, postgres_url: str, workdir: Path) -> None:
        self.kind = kind
        self._admin_url = postgres_url
        self._name = f"cors_bench_{uuid.uuid4().hex[:10]}"
        self.file = workdir / f"{self._name}.db"
        if kind == "sqlite":
            self.url = f"sqlite+aiosqlite:///{self.file}"
        else:
            self.url = make_url(postgres_url).set(database=self._name).render_as_string(False)

    async def _admin(self, sql: str) -> None:
        admin = await Database.connect(self._admin_url)
        try:
            # CREATE/DROP DATABASE cannot run inside a transaction block.
            async with admin.engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(sql))
        finally:
            await admin.close()

    async def __aenter__(self) -> Database:
        if self.kind == "postgresql":
            await self._admin(f'CREATE DATABASE "{self._name}"')
        self.db = await Database.connect(self.url)
        await self.db.upgrade()
        return self.db

    async def __aexit__(self, *exc: object) -> None:
        await self.db.close()
        if self.kind == "postgresql":
            await self._admin(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)')
        else:
            _remove_sqlite_files(self.file)

    async def size(self) -> int:
        """Bytes the data takes now (see the module docstring)."""
        if self.kind == "postgresql":
            async with self.db.session() as session, session.begin():
                total = await session.scalar(
                    text("SELECT sum(pg_total_relation_size(relid)) FROM pg_stat_user_tables")
                )
            return int(total or 0)
        return _sqlite_size(self.file)


def _sqlite_size(file: Path) -> int:
    # Checkpointed, the main file holds every committed page: its size is the data's.
    with sqlite3.connect(file) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return file.stat().st_size


def _remove_sqlite_files(file: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{file}{suffix}").unlink(missing_ok=True)


async def populate(db: Database, urls: list[str]) -> int:
    """The endpoints, the /good policy as the default layer, and a schedule; its id."""
    from scanner.core.policy_layers import PolicyFields
    from scanner.db import schedules
    from scanner.db.inventory import EndpointInput, create_endpoint
    from scanner.db.policies import put_policy
    from scanner.db.schedules import ScheduleInput

    kwargs = scan_throughput.CASE.policy_kwargs
    async with db.session() as session, session.begin():
        await put_policy(
            session,
            "default",
            fields=PolicyFields.validate(
                {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
            ),
        )
        for url in urls:
            await create_endpoint(
                session,
                EndpointInput.validate({"url": url, "method": scan_throughput.CASE.method}),
            )
        record = await schedules.create_schedule(session, ScheduleInput(name="bench", cron=YEARLY))
    return record.id


# -- worker processes -------------------------------------------------------------------


def worker_env(args: argparse.Namespace, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORS_SCANNER_")}
    env.update(
        {
            "CORS_SCANNER_DATABASE_URL": url,
            "CORS_SCANNER_CONCURRENCY": str(args.concurrency),
            "CORS_SCANNER_PER_HOST": str(args.per_host),
            "CORS_SCANNER_WORKER_CONCURRENCY": str(args.worker_concurrency),
            "CORS_SCANNER_BATCH_SIZE": str(args.batch_size),
            "CORS_SCANNER_POLL_SECONDS": "0.5",
            "CORS_SCANNER_LOG_LEVEL": "warning",
            "CORS_SCANNER_LOG_FORMAT": "text",
            "NO_PROXY": "*",
            "no_proxy": "*",
        }
    )
    return env


def start_workers(args: argparse.Namespace, url: str, count: int) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [sys.executable, "-m", "scanner", "worker"],
            cwd=REPO,
            env=worker_env(args, url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(count)
    ]


def stop_workers(workers: list[subprocess.Popen[bytes]], *, kill: bool = False) -> list[float]:
    """Stop them (SIGTERM: release and exit; SIGKILL after 30 s); each one's peak RSS in MB."""
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    peaks = []
    for w in workers:
        deadline = time.monotonic() + 30
        while True:
            pid, status, usage = os.wait4(w.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                w.kill()
            time.sleep(0.05)
        w.returncode = os.waitstatus_to_exitcode(status)
        err = w.stderr.read().decode() if w.stderr else ""
        if w.stderr:
            w.stderr.close()
        if w.returncode != 0 and not kill:
            raise SystemExit(f"a worker exited with {w.returncode}:\n{err}")
        peaks.append(usage.ru_maxrss / 1024)
    return peaks


async def wait_registered(db: Database, count: int, deadline: float) -> None:
    from sqlalchemy import func, select

    from scanner.db.tables import WorkerRow

    while True:
        async with db.session() as session, session.begin():
            n = await session.scalar(select(func.count()).select_from(WorkerRow))
        if n == count:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"only {n} of {count} workers registered in time")
        await asyncio.sleep(0.1)


async def wait_finalised(db: Database, run_id: int, deadline: float) -> Any:
    from scanner.db.tables import RunRow

    while True:
        async with db.session() as session, session.begin():
            run = await session.get(RunRow, run_id, populate_existing=True)
            assert run is not None
            if run.finalized_at is not None:
                session.expunge(run)
                return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} not finalised within the deadline")
        await asyncio.sleep(0.2)


# -- the API while a run is in progress ---------------------------------------------------

API_LISTS = ("/api/v1/scans?limit=50", "/api/v1/endpoints?limit=50", "/api/v1/findings?limit=50")


class ApiProbe:
    """The REST API in this process (``create_app``, as ``serve`` runs it) and a client
    sending its list requests back to back, 20 ms apart, while the run is in progress."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.timings: list[float] = []
        self.failures = 0
        self._stop = asyncio.Event()

    async def __aenter__(self) -> ApiProbe:
        from aiohttp import web

        from scanner.api.app import create_app, make_runner
        from scanner.db.tokens import Scope, create_token
        from scanner.settings import Settings

        async with self.db.session() as session, session.begin():
            _, self._secret = await create_token(session, "bench", [Scope.READ], created_by=None)
        # The poller asks 50 times a second, past a token's default budget of 600 a minute:
        # the rate limiter's 429s are not what is measured here.
        settings = Settings(database_url=self.db.url, api_rate_limit_per_minute=0)
        self._runner = make_runner(create_app(settings, database=self.db, embedded_worker=False))
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._base = f"http://{host}:{port}"
        return self

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        import aiohttp

        headers = {"Authorization": f"Bearer {self._secret}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            i = 0
            while not self._stop.is_set():
                url = self._base + API_LISTS[i % len(API_LISTS)]
                i += 1
                started = time.perf_counter()
                async with http.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        self.failures += 1  # 503 database unavailable: timed all the same
                self.timings.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.02)

    async def stop(self) -> tuple[float, float, int, int]:
        import statistics

        self._stop.set()
        await self._task
        cuts = statistics.quantiles(self.timings, n=100, method="inclusive")
        return statistics.median(self.timings), cuts[98], len(self.timings), self.failures

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()


# -- variants ---------------------------------------------------------------------------


async def run_variant(
    args: argparse.Namespace, name: str, urls: list[str], workdir: Path
) -> Measured:
    from scanner.db.work import RunBatching
    from scanner.scheduler.planner import plan_tick

    kind, count = name.split("-")
    fresh = Fresh(kind, args.postgres_url, workdir)
    async with fresh as db:
        schedule_id = await populate(db, urls)
        before = await fresh.size()
        workers = start_workers(args, fresh.url, int(count))
        api_ms = None
        try:
            await wait_registered(db, int(count), time.monotonic() + 60)
            async with AsyncExitStack() as stack:
                probe = await stack.enter_async_context(ApiProbe(db)) if args.api_latency else None
                started = time.perf_counter()
                run = await plan_tick(
                    db, schedule_id, NOMINAL, RunBatching(args.batch_size, max_attempts=3)
                )
                planned = time.perf_counter()
                assert run is not None
                if probe is not None:
                    probe.start()
                final = await wait_finalised(db, run.id, time.monotonic() + args.max_seconds)
                wall = time.perf_counter() - started
                if probe is not None:
                    api_ms = await probe.stop()
        except BaseException:
            stop_workers(workers, kill=True)
            raise
        peaks = stop_workers(workers)
        after = await fresh.size()
    if final.status != "completed" or final.endpoints_done != len(urls):
        raise SystemExit(f"{name}: run ended {final.status} ({final.error})")
    return Measured(
        f"run: {kind}, {count} worker{'s' if count != '1' else ''}",
        wall,
        planned - started,
        final.probes_total,
        final.findings_total,
        final.endpoints_done,
        tuple(peaks),
        after - before,
        api_ms,
    )


def run_scan(args: argparse.Namespace, ports: list[int]) -> Measured:
    scan_args = argparse.Namespace(
        endpoints=args.endpoints,
        concurrency=args.concurrency,
        per_host=args.per_host,
        cli_format="json",
        max_seconds=args.max_seconds,
    )
    probes = scan_throughput.planned_probe_count(scan_args, ports)
    result = scan_throughput.run_cli(scan_args, ports, probes)
    return Measured(
        "one-shot: scan --format json",
        result.wall_s,
        None,
        result.probes,
        0,
        args.endpoints,
        (result.peak_rss_mb,),
        None,
    )


def report(args: argparse.Namespace, results: list[Measured]) -> str:
    lines = [
        f"{args.endpoints} endpoints on {args.hosts} hosts; caps {args.concurrency} in flight, "
        f"{args.per_host} per host; {args.batch_size} endpoints per work item, "
        f"{args.worker_concurrency} items per worker at once",
        f"{'variant':<30} {'wall s':>7} {'plan s':>7} {'probes':>8} {'probes/s':>9} "
        f"{'findings':>8} {'peak RSS MB (each)':>20} {'DB MB/run':>10} {'DB KB/endpoint':>15}",
    ]
    for r in results:
        rss = " + ".join(f"{m:.0f}" for m in r.rss_mb)
        plan = "-" if r.plan_s is None else f"{r.plan_s:.2f}"
        findings = "-" if r.name.startswith("one-shot") else str(r.findings)
        db_mb = "-" if r.db_bytes is None else f"{r.db_bytes / 1e6:.1f}"
        per = "-" if r.db_bytes is None else f"{r.db_bytes / args.endpoints / 1e3:.1f}"
        api = (
            ""
            if r.api_ms is None
            else f"  API lists p50 {r.api_ms[0]:.1f} ms p99 {r.api_ms[1]:.1f} ms (n={r.api_ms[2]}, non-200: {r.api_ms[3]})"
        )
        lines.append(
            f"{r.name:<30} {r.wall_s:>7.1f} {plan:>7} {r.probes:>8} {r.rate:>9.0f} "
            f"{findings:>8} {rss:>20} {db_mb:>10} {per:>15}{api}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--endpoints", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=64, help="probes in flight")
    parser.add_argument("--per-host", type=int, default=4, help="probes in flight per host")
    parser.add_argument("--batch-size", type=int, default=25, help="endpoints per work item")
    parser.add_argument(
        "--worker-concurrency",
        type=int,
        default=16,
        help="work items per worker at once (default 16 = one per host: the scan's caps)",
    )
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="the target waits this long before answering"
    )
    parser.add_argument(
        "--api-latency",
        action="store_true",
        help="also time the API's list requests (in this process) while each run is in progress",
    )
    parser.add_argument("--postgres-url", default=DEFAULT_PG)
    parser.add_argument(
        "--max-seconds", type=float, default=900, help="deadline of each variant (default 900)"
    )
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown or not args.variants:
        parser.error(f"--variants: unknown {unknown}; choose among {', '.join(VARIANTS)}")
    if min(args.endpoints, args.hosts, args.concurrency, args.per_host, args.batch_size) < 1:
        parser.error("counts must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    target_args = argparse.Namespace(
        hosts=args.hosts, max_seconds=args.max_seconds * 4 + 120, latency_ms=args.latency_ms
    )
    target, ports = scan_throughput.start_target(target_args)
    urls = list(scan_throughput.endpoint_urls(ports, args.endpoints))
    results: list[Measured] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.variants:
                print(f"running {name} ...", file=sys.stderr, flush=True)
                if name == "scan":
                    results.append(run_scan(args, ports))
                else:
                    results.append(asyncio.run(run_variant(args, name, urls, Path(tmp))))
                print(report(args, results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    finally:
        if target.stdin:
            target.stdin.close()  # the target stops when its stdin closes
        try:
            target.wait(timeout=30)
        except subprocess.TimeoutExpired:
            target.kill()
            target.wait()
    print(report(args, results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
