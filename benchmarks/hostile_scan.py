"""A scan that meets dead and hostile hosts: wall time and peak memory of `cors-scanner scan`.

    .venv/bin/python benchmarks/hostile_scan.py [--timeout 5] [--healthy 100] [--repeat 1]

What runs:

- the *targets*, in their own process on 127.0.0.1: eight hostile hosts (one
  port each) that reset every connection, stall forever, trickle one byte a
  second, send a 10 MB header line, send 10 000 header lines, send a NUL byte,
  speak SSH, or send an endless body; and one well-configured aiohttp server
  with ``--healthy`` endpoints (exact allowlist, preflights, Vary);
- the *scan*: ``cors-scanner scan -i FILE --timeout T --format json -o
  /dev/null`` over all of them, as a user runs it, timed from outside, its
  peak RSS from ``wait4``.

Issue 11's goal: with ``--timeout 5``, under 30 s (6x the timeout) and under
150 MB. Before the dead-host rule the same scan took about 196 s: every one of
~75 probes per dead endpoint waited out its own timeout, with retries.
The report says how many probes of each hostile host were sent and how many
were recorded as not sent (``host_unresponsive``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# `--repo DIR` scans with another checkout's scanner (e.g. main before this change).
APP = "https://app.acme.test"

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def resets(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.Event().wait()


async def trickles(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"z" * 1000:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(1.0)


async def huge_header(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nX-Huge: ")
    chunk = b"a" * 65536
    for _ in range(10 * 1024 * 1024 // len(chunk)):
        writer.write(chunk)
        await writer.drain()
    writer.write(b"\r\n\r\n")
    await writer.drain()


async def many_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\n")
    for start in range(0, 10_000, 500):
        writer.write(b"".join(b"X-Line-%d: v\r\n" % i for i in range(start, start + 500)))
        await writer.drain()
    writer.write(b"\r\n")
    await writer.drain()


async def nul_byte(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nX-Nul: a\x00b\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    await asyncio.Event().wait()


async def ssh(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"SSH-2.0-OpenSSH_9.0\r\n")
    await writer.drain()
    await asyncio.Event().wait()


async def endless_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
    chunk = b"x" * 65536
    while True:
        writer.write(chunk)
        await writer.drain()


HOSTILE: dict[str, Behaviour] = {
    "reset": resets,
    "stall": stalls,
    "trickle": trickles,
    "huge-header": huge_header,
    "many-headers": many_headers,
    "nul-byte": nul_byte,
    "ssh": ssh,
    "endless-body": endless_body,
}


async def serve(healthy: int, max_seconds: float) -> None:
    """Start every target, print their URLs as one JSON line, serve until stdin closes."""
    from aiohttp import web

    async def guarded(
        behaviour: Behaviour, r: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> None:
        try:
            await r.readuntil(b"\r\n\r\n")
            await behaviour(r, w)
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            asyncio.CancelledError,
        ):
            pass
        finally:
            w.transport.abort()

    urls: dict[str, str] = {}
    servers = []
    for name, behaviour in HOSTILE.items():
        server = await asyncio.start_server(
            lambda r, w, b=behaviour: guarded(b, r, w), "127.0.0.1", 0
        )
        servers.append(server)
        urls[name] = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/api/{name}"

    async def ok(request: web.Request) -> web.Response:
        headers = {"Vary": "Origin"}
        if request.headers.get("Origin") == APP:
            headers["Access-Control-Allow-Origin"] = APP
            if request.method == "OPTIONS":
                headers["Access-Control-Allow-Methods"] = "GET"
        status = 204 if request.method == "OPTIONS" else 200
        return web.Response(status=status, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/api/{n}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    healthy_urls = [f"{base}/api/{n}" for n in range(healthy)]
    print(json.dumps({"hostile": urls, "healthy": healthy_urls}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), max_seconds)
    except TimeoutError:
        pass
    finally:
        await runner.cleanup()
        for server in servers:
            server.close()


def scan(urls: list[str], timeout: float, max_seconds: float, repo: Path) -> dict[str, object]:
    """`cors-scanner scan` over ``urls``; wall seconds, peak RSS MB and the JSON report."""
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "endpoints.txt"
        listing.write_text("\n".join(urls) + "\n", encoding="utf-8")
        report = Path(tmp) / "report.json"
        command = [
            sys.executable, "-m", "scanner", "scan", "-i", str(listing),
            "--allow-origin", APP, "--timeout", str(timeout),
            "--format", "json", "-o", str(report), "--no-progress", "--fail-on", "critical",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("CORS_SCANNER_")}
        env.update({"NO_PROXY": "*", "no_proxy": "*"})
        started = time.perf_counter()
        env["PYTHONPATH"] = str(repo)
        process = subprocess.Popen(command, cwd=repo, env=env, stderr=subprocess.PIPE)
        deadline = started + max_seconds
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                process.wait()
                raise SystemExit("the scan exceeded its deadline")
            time.sleep(0.02)
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        stderr = process.stderr.read().decode() if process.stderr else ""
        if code not in (0, 1, 3):
            raise SystemExit(f"scan failed ({code}):\n{stderr}")
        doc = json.loads(report.read_text(encoding="utf-8"))
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "doc": doc}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--timeout", type=float, default=5.0, help="scan --timeout (default 5)")
    parser.add_argument("--healthy", type=int, default=100, help="healthy endpoints (default 100)")
    parser.add_argument("--repeat", type=int, default=1, help="scans; the fastest is kept")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument(
        "--repo", type=Path, default=REPO, help="checkout whose scanner runs (default: this one)"
    )
    parser.add_argument("--role", choices=("targets",), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "targets":
        asyncio.run(serve(args.healthy, args.max_seconds * (args.repeat + 1)))
        return 0
    targets = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--role", "targets",
         "--healthy", str(args.healthy), "--max-seconds", str(args.max_seconds),
         "--repeat", str(args.repeat)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert targets.stdout is not None
        found = json.loads(targets.stdout.readline())
        hostile: dict[str, str] = found["hostile"]
        urls = list(found["healthy"])
        for i, url in enumerate(hostile.values()):
            urls.insert(i * 13, url)
        runs = [scan(urls, args.timeout, args.max_seconds, args.repo) for _ in range(args.repeat)]
    finally:
        if targets.stdin is not None:
            targets.stdin.close()
        targets.wait(timeout=30)
    best = min(runs, key=lambda r: float(r["wall_s"]))  # type: ignore[arg-type]
    doc = best["doc"]
    assert isinstance(doc, dict)
    by_url = {e["url"]: e for e in doc["endpoints"]}
    print(
        f"{len(hostile)} hostile hosts + {args.healthy} healthy endpoints, --timeout "
        f"{args.timeout}: wall {best['wall_s']:.1f} s (goal < {6 * args.timeout:.0f} s), "
        f"peak RSS {best['peak_rss_mb']:.0f} MB (goal < 150 MB); best of {args.repeat}"
    )
    print(f"{'host':<14} {'probes':>6} {'sent':>5} {'not sent':>8}  errors")
    for name, url in hostile.items():
        endpoint = by_url[url]
        probes = endpoint["probes"]
        sent = [p for p in probes if p["attempts"]]
        errors = Counter(p["error"] or f"status {p['status']}" for p in probes)
        print(
            f"{name:<14} {len(probes):>6} {len(sent):>5} {len(probes) - len(sent):>8}  "
            + ", ".join(f"{k} x{n}" for k, n in sorted(errors.items()))
        )
    healthy = [by_url[u] for u in found["healthy"]]
    failed = sum(e["probe_errors"] for e in healthy)
    print(
        f"healthy: {sum(1 for e in healthy if e['reachable'])}/{len(healthy)} reachable, "
        f"{sum(e['probe_count'] for e in healthy)} probes, {failed} failed"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
