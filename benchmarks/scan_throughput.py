"""Scan throughput: probes per second, wall time and peak memory of a scan, against a floor.

    .venv/bin/python benchmarks/scan_throughput.py [--endpoints 2000] [--hosts 16] [--cli]
        [--runs engine,floor,keepalive,cli] [--repeat N] [--concurrency 64] [--per-host 4]
        [--loop uvloop|asyncio]

Issue 11's figures (one loopback host, 100 in flight, engine vs floor side by side):

    .venv/bin/python benchmarks/scan_throughput.py --hosts 1 --per-host 100 \
        --concurrency 100 --endpoints 2000 --runs engine,floor --repeat 3

and memory flat in the number of endpoints (peak RSS of the engine run):

    .venv/bin/python benchmarks/scan_throughput.py --hosts 1 --per-host 100 \
        --concurrency 100 --runs engine --endpoints 2000   (then --endpoints 20000)

What runs, each in its own fresh process (so every figure is that process's own):

- the *target*: an aiohttp server on 127.0.0.1, listening on ``--hosts`` ports
  (a host is scheme + host + port, so the per-host cap applies per port),
  serving ``--endpoints`` paths that all answer like the demo's ``/good`` path
  (exact allowlist, credentials, Vary, preflights, CORS on errors). It is a
  separate process so its CPU time is not counted in the scanner's; on a
  2-core machine it still competes with the scanner for the cores;
- the *engine* run: ``Engine.scan`` over every endpoint with the ``/good``
  policy (plan, send through the prober, judge), assessments discarded as they
  arrive, as a streaming consumer would;
- the *floor*: one bare ``aiohttp.ClientSession`` sending the very same
  requests (method, URL, header lines; planned before the clock starts) under
  the same caps (a global semaphore, ``--per-host`` workers per host), judging
  nothing. Two floors: ``floor`` calls ``close()`` on every response after its
  headers, as the prober does (like for like: a small body that arrived with
  the headers has already returned the connection to the pool, so both reuse
  keep-alive connections); ``keepalive`` reads the body first. The floor
  holds every planned request in memory, so its peak RSS is not comparable;
- ``cli`` (``--cli``): ``cors-scanner scan -i FILE --format json -o /dev/null``
  as a user runs it; its peak RSS includes the report it builds.

A single host is ``--hosts 1``. Every process runs on the same event loop,
``--loop`` (default: uvloop when installed, as ``cors-scanner scan`` does).

``--runs`` picks the runs (default ``engine,floor,keepalive``); ``--repeat N``
runs each N times and keeps the fastest, which filters out noise from other
work on the machine. The last lines give engine / floor for wall and CPU time.

Wall time is measured inside each process around the scan itself (imports,
interpreter start and the floor's planning excluded), and so is CPU time
(``time.process_time``); the CLI's are measured from outside, start to exit
(``os.wait4``). Peak RSS is ``ru_maxrss`` of the process. Every process has a
deadline (``--max-seconds``), so a run always ends by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    # Run from a checkout without installing: `python benchmarks/scan_throughput.py`.
    sys.path.insert(0, str(REPO))

from aiohttp import web  # noqa: E402
from multidict import CIMultiDict  # noqa: E402

from scanner.demo import case_for  # noqa: E402

CASE = case_for("/good")  # what every benchmark endpoint serves, and the policy it is scanned with
ENDPOINT_PATH = re.compile(r"/e/[0-9]+\Z")
FLOOR_TOKEN = "cs00000000"
RUNS = ("engine", "floor", "keepalive", "cli")
DEFAULT_RUNS = (
    "engine",
    "floor",
    "keepalive",
)  # same length as the engine's random token: same bytes on the wire


# -- target -----------------------------------------------------------------------------


async def serve_target(hosts: int, max_seconds: float, latency_ms: float = 0.0) -> None:
    """Serve until stdin closes, SIGTERM, or the deadline; print the ports as one JSON line.

    ``latency_ms``: every answer waits this long first (a latency-bound target).
    """

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        if request.method == "OPTIONS":
            status, lines = CASE.behaviour.preflight(request)
            return web.Response(status=status, headers=CIMultiDict(lines))
        status = 200 if ENDPOINT_PATH.match(request.path) else 404
        lines = CASE.behaviour.actual_headers(request.headers.get("Origin"), status)
        return web.Response(
            status=status,
            body=b'{"ok": true}',
            content_type="application/json",
            headers=CIMultiDict(lines),
        )

    server = web.Server(handle)
    runner = web.ServerRunner(server, handle_signals=False)
    await runner.setup()
    sockets = []
    for _ in range(hosts):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
        await web.SockSite(runner, sock, backlog=1024).start()
    print(json.dumps({"ports": [s.getsockname()[1] for s in sockets]}), flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # The parent closes our stdin when it is done (or dies): stop then.
    loop.add_reader(sys.stdin.fileno(), stop.set)
    try:
        await asyncio.wait_for(stop.wait(), max_seconds)
    except TimeoutError:
        print("target: deadline reached, stopping", file=sys.stderr)
    finally:
        await runner.cleanup()
        for sock in sockets:
            sock.close()


# -- what to scan ---------------------------------------------------------------------


def endpoint_urls(ports: list[int], count: int) -> Iterator[str]:
    """``count`` endpoint URLs spread round-robin over the target's ports."""
    for i in range(count):
        yield f"http://127.0.0.1:{ports[i % len(ports)]}/e/{i}"


def probe_limits(args: argparse.Namespace) -> Any:
    """The limits `cors-scanner scan` uses (its default settings), with the benchmark's caps."""
    from dataclasses import replace

    from scanner.engine import scan_options
    from scanner.settings import Settings

    limits = scan_options(Settings()).limits
    return replace(
        limits,
        global_concurrency=args.concurrency,
        per_host_concurrency=args.per_host,
        trust_env=False,
    )


def own_usage(cpu_started: float) -> dict[str, float]:
    """Peak RSS of this process so far, and CPU seconds since ``cpu_started`` (process_time)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
        "cpu_s": time.process_time() - cpu_started,
    }


# -- engine run -------------------------------------------------------------------------


async def run_engine(args: argparse.Namespace, ports: list[int]) -> dict[str, Any]:
    from scanner.core.plan import Endpoint
    from scanner.engine import Engine, ScanOptions, Target
    from scanner.hostnames import default_public_suffixes

    policy = CASE.policy()
    suffixes = default_public_suffixes()  # parsed before the clock starts, as a server would
    targets = (
        Target(Endpoint(url, CASE.method), policy) for url in endpoint_urls(ports, args.endpoints)
    )
    options = ScanOptions(limits=probe_limits(args))
    probes = errors = findings = endpoints = 0
    cpu_started = time.process_time()
    started = time.perf_counter()
    async with asyncio.timeout(args.max_seconds), Engine(options, suffixes) as engine:
        async for assessment in engine.scan(targets):
            endpoints += 1
            probes += len(assessment.probes)
            errors += len(assessment.errors)
            findings += len(assessment.findings)
    wall = time.perf_counter() - started
    return {
        "run": "engine: Engine.scan",
        "wall_s": wall,
        "endpoints": endpoints,
        "probes": probes,
        "errors": errors,
        "findings": findings,
        **own_usage(cpu_started),
    }


# -- floor ------------------------------------------------------------------------------

Wire = tuple[str, str, list[tuple[str, str]]]


def plan_wire_requests(args: argparse.Namespace, ports: list[int]) -> dict[str, deque[Wire]]:
    """Every request the engine sends, per host, as (method, URL, header lines)."""
    from urllib.parse import urlsplit

    from scanner.core.plan import Endpoint, plan_probes
    from scanner.core.variants import probe_origins
    from scanner.hostnames import default_public_suffixes
    from scanner.prober.limits import DEFAULT_USER_AGENT

    policy = CASE.policy()
    suffixes = default_public_suffixes()
    per_host: dict[str, deque[Wire]] = {}
    for url in endpoint_urls(ports, args.endpoints):
        origins = probe_origins(url, policy, suffixes=suffixes, token=FLOOR_TOKEN)
        plan = plan_probes(Endpoint(url, CASE.method), policy, origins, token=FLOOR_TOKEN)
        queue = per_host.setdefault(urlsplit(url).netloc, deque())
        for probe in plan:
            queue.append(
                (probe.method, probe.url, [*probe.headers, ("User-Agent", DEFAULT_USER_AGENT)])
            )
    return per_host


async def run_floor(args: argparse.Namespace, ports: list[int], keep_alive: bool) -> dict[str, Any]:
    import aiohttp
    from yarl import URL

    from scanner.prober.session import SKIPPED_AUTO_HEADERS

    per_host = plan_wire_requests(args, ports)
    total = sum(len(q) for q in per_host.values())
    errors = 0
    cpu_started = time.process_time()
    started = time.perf_counter()
    global_slots = asyncio.Semaphore(args.concurrency)

    async def worker(session: aiohttp.ClientSession, queue: deque[Wire]) -> None:
        # per_host workers per host = the per-host cap; the semaphore is the global one.
        nonlocal errors
        while queue:
            method, url, headers = queue.popleft()
            async with global_slots:
                try:
                    response = await session.request(
                        method, URL(url, encoded=True), headers=headers, allow_redirects=False
                    )
                except aiohttp.ClientError:
                    errors += 1
                    continue
                if keep_alive:
                    await response.read()
                    response.release()
                else:
                    response.close()

    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with (
        asyncio.timeout(args.max_seconds),
        aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=SKIPPED_AUTO_HEADERS,
            auto_decompress=False,
        ) as session,
        asyncio.TaskGroup() as group,
    ):
        for queue in per_host.values():
            for _ in range(args.per_host):
                group.create_task(worker(session, queue))
    wall = time.perf_counter() - started
    return {
        "run": "floor, keep-alive" if keep_alive else "floor, close per request (as prober)",
        "wall_s": wall,
        "endpoints": args.endpoints,
        "probes": total,
        "errors": errors,
        "findings": None,
        **own_usage(cpu_started),
    }


# -- parent -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    run: str
    wall_s: float
    probes: int
    errors: int
    findings: int | None
    peak_rss_mb: float
    cpu_s: float

    @classmethod
    def of(cls, data: dict[str, Any]) -> Result:
        return cls(
            data["run"],
            data["wall_s"],
            data["probes"],
            data["errors"],
            data["findings"],
            data["peak_rss_mb"],
            data["cpu_s"],
        )

    @property
    def rate(self) -> float:
        return self.probes / self.wall_s if self.wall_s else 0.0


def child(role: str, args: argparse.Namespace, ports: list[int], *extra: str) -> Result:
    """Run one measured role in a fresh interpreter; it prints its result as JSON."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--role",
        role,
        "--ports",
        ",".join(map(str, ports)),
        *common_flags(args),
        *extra,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=args.max_seconds + 60, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{role} run failed ({done.returncode}):\n{done.stderr}")
    return Result.of(json.loads(done.stdout.strip().splitlines()[-1]))


def common_flags(args: argparse.Namespace) -> list[str]:
    return [
        "--endpoints",
        str(args.endpoints),
        "--concurrency",
        str(args.concurrency),
        "--per-host",
        str(args.per_host),
        "--max-seconds",
        str(args.max_seconds),
        "--loop",
        args.loop,
    ]


def run_cli(args: argparse.Namespace, ports: list[int], probes: int) -> Result:
    """`cors-scanner scan` over the endpoint list, timed from outside; RSS from wait4."""
    flags = list(CASE.scan_flags())
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "endpoints.txt"
        listing.write_text("\n".join(endpoint_urls(ports, args.endpoints)) + "\n", encoding="utf-8")
        command = [
            sys.executable,
            "-m",
            "scanner",
            "scan",
            "-i",
            str(listing),
            *flags,
            "--concurrency",
            str(args.concurrency),
            "--per-host",
            str(args.per_host),
            "--format",
            args.cli_format,
            "-o",
            os.devnull,
            "--no-progress",
            "--fail-on",
            "critical",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CORS_SCANNER_")}
        env.update({"NO_PROXY": "*", "no_proxy": "*"})
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = started + args.max_seconds + 60
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                process.wait()
                raise SystemExit("cli run exceeded its deadline")
            time.sleep(0.05)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr = process.stderr.read().decode() if process.stderr else ""
        if process.stderr:
            process.stderr.close()
    if process.returncode not in (0, 1):
        raise SystemExit(f"cli run failed ({process.returncode}):\n{stderr}")
    return Result(
        f"cli: scan --format {args.cli_format} (whole process)",
        wall,
        probes,
        0,
        None,
        usage.ru_maxrss / 1024,
        usage.ru_utime + usage.ru_stime,
    )


def measure(run: str, args: argparse.Namespace, ports: list[int]) -> Result:
    """One run of ``run`` (a name from RUNS), in its own process."""
    if run == "cli":
        return run_cli(args, ports, planned_probe_count(args, ports))
    return child({"keepalive": "floor-keep-alive"}.get(run, run), args, ports)


def planned_probe_count(args: argparse.Namespace, ports: list[int]) -> int:
    """How many probes a scan sends: every endpoint has the same policy and shape."""
    from scanner.core.plan import Endpoint, plan_probes
    from scanner.core.variants import probe_origins
    from scanner.hostnames import default_public_suffixes

    url = next(endpoint_urls(ports, 1))
    policy = CASE.policy()
    origins = probe_origins(url, policy, suffixes=default_public_suffixes(), token=FLOOR_TOKEN)
    plan = plan_probes(Endpoint(url, CASE.method), policy, origins, token=FLOOR_TOKEN)
    count: int = args.endpoints
    return len(plan) * count


def start_target(args: argparse.Namespace) -> tuple[subprocess.Popen[str], list[int]]:
    target = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--role",
            "target",
            "--hosts",
            str(args.hosts),
            "--latency-ms",
            str(getattr(args, "latency_ms", 0.0)),
            "--max-seconds",
            str(args.max_seconds * 4 + 120),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert target.stdout is not None
    line = target.stdout.readline()
    if not line:
        target.kill()
        raise SystemExit("the target did not start")
    return target, json.loads(line)["ports"]


def report(args: argparse.Namespace, results: list[Result]) -> str:
    probes = results[0].probes
    lines = [
        f"{args.endpoints} endpoints on {args.hosts} hosts (127.0.0.1 ports), {probes} probes "
        f"per run ({probes / args.endpoints:.0f} per endpoint); caps: {args.concurrency} "
        f"requests in flight, {args.per_host} per host; loop {args.loop}; best of {args.repeat}",
        f"{'run':<40} {'wall s':>7} {'probes/s':>9} {'cpu s':>7} {'cpu us/probe':>12} "
        f"{'peak RSS MB':>11} {'errors':>6} {'findings':>8}",
    ]
    for r in results:
        findings = "-" if r.findings is None else str(r.findings)
        per_probe = r.cpu_s / r.probes * 1e6 if r.probes else 0.0
        lines.append(
            f"{r.run:<40} {r.wall_s:>7.2f} {r.rate:>9.0f} {r.cpu_s:>7.2f} {per_probe:>12.0f} "
            f"{r.peak_rss_mb:>11.1f} {r.errors:>6} {findings:>8}"
        )
    engine = next((r for r in results if r.run.startswith("engine")), None)
    for floor in (r for r in results if r.run.startswith("floor")):
        if engine is not None:
            lines.append(
                f"engine / {floor.run}: rate {engine.rate / floor.rate:.2f} of the floor's, "
                f"wall {engine.wall_s / floor.wall_s:.2f}x, cpu {engine.cpu_s / floor.cpu_s:.2f}x, "
                f"cpu us/probe {engine.cpu_s / engine.probes * 1e6:.0f} vs "
                f"{floor.cpu_s / floor.probes * 1e6:.0f}"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--endpoints", type=int, default=2000, help="endpoints to scan (default 2000)"
    )
    parser.add_argument("--hosts", type=int, default=16, help="target ports = hosts (default 16)")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="the target waits this long before each answer",
    )
    parser.add_argument(
        "--concurrency", type=int, default=64, help="requests in flight (default 64)"
    )
    parser.add_argument(
        "--per-host", type=int, default=4, help="requests in flight per host (default 4)"
    )
    parser.add_argument(
        "--runs",
        default=",".join(DEFAULT_RUNS),
        help=f"comma-separated runs among {', '.join(RUNS)} (default {','.join(DEFAULT_RUNS)})",
    )
    parser.add_argument("--cli", action="store_true", help="add the cli run")
    parser.add_argument("--cli-format", choices=("json", "table"), default="json")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each kind; the fastest is kept (default 1)"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=600, help="deadline of each run (default 600)"
    )
    parser.add_argument(
        "--role", choices=("target", "engine", "floor", "floor-keep-alive"), help=argparse.SUPPRESS
    )
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default=default_loop(),
        help="event loop of every process (default: uvloop when installed)",
    )
    args = parser.parse_args(argv)
    args.runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    if args.cli and "cli" not in args.runs:
        args.runs.append("cli")
    unknown = sorted(set(args.runs) - set(RUNS))
    if unknown or not args.runs:
        parser.error(f"--runs: unknown run(s) {unknown}; choose among {', '.join(RUNS)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.endpoints < 1 or args.hosts < 1 or args.concurrency < 1 or args.per_host < 1:
        parser.error("--endpoints, --hosts, --concurrency and --per-host must be at least 1")
    return args


def default_loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run_on_loop(args: argparse.Namespace, main: Any) -> Any:
    # The runner `cors-scanner scan` uses (loop, collector settings), for every
    # measured process alike: the engine and the floors differ only in their code.
    from scanner import eventloop

    return eventloop.run(main, use_uvloop=args.loop == "uvloop")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "target":
        run_on_loop(args, serve_target(args.hosts, args.max_seconds, args.latency_ms))
        return 0
    if args.role is not None:
        ports = [int(p) for p in args.ports.split(",")]
        if args.role == "engine":
            result = run_on_loop(args, run_engine(args, ports))
        else:
            result = run_on_loop(
                args, run_floor(args, ports, keep_alive=args.role == "floor-keep-alive")
            )
        print(json.dumps(result))
        return 0

    target, ports = start_target(args)
    results = []
    try:
        # Interleaved (engine, floor, engine, floor...): a shared machine's load
        # drifts, and each kind keeps its fastest round.
        rounds = [[measure(run, args, ports) for run in args.runs] for _ in range(args.repeat)]
        for i, _run in enumerate(args.runs):
            results.append(min((r[i] for r in rounds), key=lambda r: r.wall_s))
    finally:
        assert target.stdin is not None
        target.stdin.close()
        try:
            target.wait(timeout=10)
        except subprocess.TimeoutExpired:
            target.kill()
            target.wait()
    print(report(args, results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
