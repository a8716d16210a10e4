"""A target answering with huge headers: what one stored scan adds to RSS and to the database.

    .venv/bin/python benchmarks/hostile_storage.py [--endpoints 25]

What runs:

- the *target*, in this process's child on 127.0.0.1 (raw asyncio): every
  answer reflects the Origin with credentials (a critical finding, so
  evidence is stored), carries a 12 KB ``Access-Control-Allow-Headers`` and
  ``Vary``, and pads the head with ``X-Pad-NNN`` lines of 16 000 bytes: 240 of
  them on ``/huge/*`` (a 3.8 MB head, over the 256 KiB head limit), 14 on
  ``/big/*`` (just under it);
- per variant, a fresh process: ``--endpoints`` endpoints (half ``/big``, half
  ``/huge``), assessed at once like one work item, stored with
  ``save_assessment`` into a fresh SQLite database and finalised. It reports
  its RSS before the scan, its peak RSS (``ru_maxrss``) and the database
  bytes the scan added (file size after ``wal_checkpoint(TRUNCATE)``).
  *capped* is the default ``CORS_SCANNER_PROBE_HEADER_BYTES`` (16 KiB);
  *uncapped* sets it to 4 MiB, which keeps every header whole as before.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PAD = 16_000
ALLOW = ", ".join(f"x-custom-{i:04d}" for i in range(800))


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    match = re.search(rb"\r\norigin: *([^\r]*)", head, re.IGNORECASE)
    origin = match.group(1) if match else b""
    lines = 240 if head.split(b" ", 2)[1].startswith(b"/huge") else 14
    out = [
        b"HTTP/1.1 200 OK",
        b"Content-Length: 0",
        b"Connection: close",
        b"Vary: Origin, Accept-Encoding",
        b"Access-Control-Allow-Headers: " + ALLOW.encode(),
    ]
    if origin:
        out += [
            b"Access-Control-Allow-Origin: " + origin,
            b"Access-Control-Allow-Credentials: true",
        ]
    out += [b"X-Pad-%03d: " % i + b"p" * PAD for i in range(lines)]
    try:
        writer.write(b"\r\n".join(out) + b"\r\n\r\n")
        await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def serve() -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), stop.set)
    await stop.wait()
    server.close()


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _size(file: Path) -> int:
    with sqlite3.connect(file) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return file.stat().st_size


async def scan(port: int, endpoints: int, cap: int) -> dict[str, float]:
    from scanner.core.plan import Endpoint
    from scanner.core.policy import Policy
    from scanner.db import runs
    from scanner.db.engine import Database
    from scanner.db.runs import RunSelection, RunTrigger
    from scanner.engine import Engine, Target, scan_options
    from scanner.hostnames import default_public_suffixes
    from scanner.settings import Settings
    from scanner.worker.finalize import finalize_run

    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "bench.db"
        db = await Database.connect(f"sqlite+aiosqlite:///{file}")
        await db.upgrade()
        suffixes = default_public_suffixes()
        options = scan_options(Settings(probe_header_bytes=cap, retries=0))
        before_bytes = _size(file)
        before_rss = _rss_mb()
        urls = [
            f"http://127.0.0.1:{port}/{'big' if i % 2 == 0 else 'huge'}/{i}"
            for i in range(endpoints)
        ]
        async with Engine(options, suffixes) as engine:
            assessed = await asyncio.gather(
                *(engine.assess(Target(Endpoint(u), Policy())) for u in urls)
            )
        async with db.session() as session, session.begin():
            run = await runs.create_run(
                session,
                selection=RunSelection(),
                trigger=RunTrigger.MANUAL,
                requested_by="bench",
                endpoints_total=len(urls),
            )
            assert await runs.mark_running(session, run.id)
            for endpoint_id, a in enumerate(assessed, start=1):
                await runs.save_assessment(session, run.id, endpoint_id, a)
        async with db.session() as session, session.begin():
            assert await finalize_run(session, run.id)
        probes = sum(a.probe_count for a in assessed)
        findings = sum(len(a.findings) for a in assessed)
        del assessed
        await db.close()
        return {
            "rss_before_mb": before_rss,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "db_added_mb": (_size(file) - before_bytes) / 1e6,
            "probes": probes,
            "findings": findings,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", default="main", choices=("main", "target", "scan"))
    parser.add_argument("--port", type=int)
    parser.add_argument("--cap", type=int, default=16384)
    parser.add_argument("--endpoints", type=int, default=25)
    args = parser.parse_args(argv)
    if args.role == "target":
        asyncio.run(serve())
        return 0
    if args.role == "scan":
        print(json.dumps(asyncio.run(scan(args.port, args.endpoints, args.cap))))
        return 0
    target = subprocess.Popen(
        [sys.executable, __file__, "--role", "target"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert target.stdout is not None
    port = json.loads(target.stdout.readline())["port"]
    rows = [
        "| variant | endpoints | probes | findings | RSS before MB | peak RSS MB | RSS added MB "
        "| DB MB added |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    try:
        for name, cap in (("uncapped (as before)", 4 * 2**20), ("capped, 16 KiB", 16384)):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--role",
                    "scan",
                    "--port",
                    str(port),
                    "--endpoints",
                    str(args.endpoints),
                    "--cap",
                    str(cap),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(
                f"| {name} | {args.endpoints} | {r['probes']:.0f} | {r['findings']:.0f} "
                f"| {r['rss_before_mb']:.0f} | {r['peak_rss_mb']:.0f} "
                f"| {r['peak_rss_mb'] - r['rss_before_mb']:.0f} | {r['db_added_mb']:.2f} |"
            )
    finally:
        assert target.stdin is not None
        target.stdin.close()
        target.wait(timeout=10)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
