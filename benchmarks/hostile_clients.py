"""Hostile clients against `serve`, guarded and unguarded side by side (issue 13, points 3, 5).

    .venv/bin/python benchmarks/hostile_clients.py                  # both parts
    .venv/bin/python benchmarks/hostile_clients.py --part slowloris --connections 1100

**slowloris**: two `cors-scanner serve --no-worker --no-scheduler` processes,
each with an open-file limit of 1024 (the usual distribution default, set in
the child before it starts), one after the other:

- *guarded*: the product defaults (head deadline 10 s, keep-alive 75 s, budget
  = open files − 256);
- *baseline*: the same application under aiohttp's own ``web.AppRunner``, as
  `serve` ran it before issue 13 (no head deadline, keep-alive 3630 s, no
  connection budget, asyncio's own accept-error logging), in a child process
  with the same limit.

Each gets ``--connections`` half-open connections (a request head never
finished), held; then 20 ``GET /healthz`` on fresh connections, one after the
other, each given 5 s. Reported: connections held, health checks answered,
their median and worst latency, and how many bytes the server wrote to stderr.

**yaml-bomb**: the 518-byte merge-key bomb of tests/importers/test_documents.py
read by our import loader (refused while composing) and by PyYAML's own
``yaml.safe_load`` (the baseline), each in a fresh process with a 2 GiB
address-space cap: wall time, peak RSS, outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.cli.test_serve_connections import (  # noqa: E402
    LISTENING,
    Served,
    _close_all,
    _half_open,
    _open_files,
    serve,
)
from tests.importers.test_documents import _merge_bomb  # noqa: E402

_BASELINE_CHILD = textwrap.dedent(
    """
    import asyncio, logging, sys
    from aiohttp import web
    from scanner.api.app import MAX_REQUEST_LINE_BYTES, SHUTDOWN_TIMEOUT_S, create_app
    from scanner.db.engine import Database
    from scanner.settings import Settings

    async def main():
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        url = "sqlite+aiosqlite:///" + sys.argv[1]
        database = await Database.connect(url)
        await database.upgrade()
        app = create_app(Settings(database_url=url), database=database, embedded_worker=False)
        # What serve's ApiServer did before issue 13: aiohttp's runner, its defaults.
        runner = web.AppRunner(
            app, shutdown_timeout=SHUTDOWN_TIMEOUT_S, max_line_size=MAX_REQUEST_LINE_BYTES
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        print(f"cors-scanner API listening on http://127.0.0.1:{port}/", file=sys.stderr, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


@asynccontextmanager
async def baseline_serve(folder: Path) -> AsyncIterator[Served]:
    """The baseline server (module docstring), like ``serve`` of the tests."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _BASELINE_CHILD,
        str(folder / "baseline.db"),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_open_files(1024),
    )
    assert process.stderr is not None
    stderr = process.stderr
    served = Served(process, 0)
    listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def read() -> None:
        while raw := await stderr.readline():
            served.lines.append(raw.decode(errors="replace"))
            found = LISTENING.search(served.lines[-1])
            if found and not listening.done():
                listening.set_result(int(found.group(1)))

    reader = asyncio.create_task(read())
    try:
        async with asyncio.timeout(60):
            served.port = await listening
        yield served
    finally:
        process.kill()
        await process.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def _healthz_once(port: int) -> float | None:
    started = time.monotonic()
    try:
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            writer.close()
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return None
    return time.monotonic() - started if head.startswith(b"HTTP/1.1 200") else None


async def slowloris(name: str, connections: int) -> str:
    with tempfile.TemporaryDirectory() as folder:
        server = serve(Path(folder), open_files=1024) if name == "guarded" else None
        async with server or baseline_serve(Path(folder)) as served:
            held = await asyncio.gather(*(_half_open(served.port) for _ in range(connections)))
            latencies = [await _healthz_once(served.port) for _ in range(20)]
            _close_all(held)
            stderr_bytes = len(served.log().encode())
    answered = [t for t in latencies if t is not None]
    figures = (
        f"median {statistics.median(answered) * 1000:.1f} ms, worst {max(answered) * 1000:.1f} ms"
        if answered
        else "none answered"
    )
    return (
        f"{name:<10} {sum(h is not None for h in held):>5}/{connections} connections held; "
        f"/healthz {len(answered)}/20 answered within 5 s ({figures}); "
        f"stderr {stderr_bytes:,} bytes"
    )


_BOMB_CHILD = textwrap.dedent(
    """
    import resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    import yaml
    from scanner.importers.documents import load_yaml
    text = sys.stdin.read()
    load = load_yaml if sys.argv[1] == "ours" else yaml.safe_load
    started = time.perf_counter()
    try:
        load(text)
        outcome = "accepted"
    except MemoryError:
        outcome = "MemoryError at the 2 GiB cap"
    except Exception as exc:
        outcome = "refused: " + str(exc)[:70]
    elapsed = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"{elapsed:.4f} s, peak RSS {rss} MB (interpreter included), {outcome}")
    """
)


def yaml_bomb() -> list[str]:
    import yaml

    bomb = _merge_bomb()
    lines = [f"PyYAML {yaml.__version__}, bomb of {len(bomb.encode())} bytes"]
    for loader in ("ours", "safe_load"):
        done = subprocess.run(
            [sys.executable, "-c", _BOMB_CHILD, loader],
            input=bomb,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=600,
            check=False,
        )
        lines.append(f"{loader:<10} {(done.stdout or done.stderr).strip()}")
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "slowloris", "yaml-bomb"), default="all")
    parser.add_argument("--connections", type=int, default=1100)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.connections + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.connections + 1000), hard))
    if args.part in ("all", "slowloris"):
        print(await slowloris("guarded", args.connections))
        print(await slowloris("baseline", args.connections))
    if args.part in ("all", "yaml-bomb"):
        for line in yaml_bomb():
            print(line)


if __name__ == "__main__":
    asyncio.run(main())
