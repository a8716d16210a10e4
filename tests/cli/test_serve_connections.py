"""`serve` under hostile clients: half-open connections, slow heads, idle keep-alive,
and a process that runs out of file descriptors (issue 13, point 3).

Each test runs the real `serve` process with an open-file limit of its own (set
in the child before it starts), because the failure this guards against is a
process at its descriptor limit: 1100 half-open connections against the
common limit of 1024.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/")
START_TIMEOUT_S = 60.0
SLOW_CLIENTS = 1100
# A request head that is never finished: no blank line.
HALF_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@dataclass
class Served:
    process: asyncio.subprocess.Process
    port: int
    lines: list[str] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def log(self) -> str:
        return "".join(self.lines)

    async def logged(self, text: str) -> None:
        """Return once a log line contains ``text``."""
        async with self.changed:
            await self.changed.wait_for(lambda: any(text in line for line in self.lines))


def _open_files(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


@asynccontextmanager
async def serve(tmp_path: Path, open_files: int, **settings: str) -> AsyncIterator[Served]:
    """`serve` (API only) on a free port, with this open-file limit and these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORS_SCANNER_")}
    env["CORS_SCANNER_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
    env["CORS_SCANNER_LOG_FORMAT"] = "text"
    env["PYTHONUNBUFFERED"] = "1"
    env.update({f"CORS_SCANNER_{k.upper()}": v for k, v in settings.items()})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scanner",
        "serve",
        "--port",
        "0",
        "--no-worker",
        "--no-scheduler",
        "--token-file",
        str(tmp_path / "admin-token"),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_open_files(open_files),
    )
    assert process.stderr is not None
    stderr = process.stderr
    served = Served(process, 0)
    listening = asyncio.get_running_loop().create_future()

    async def read_stderr() -> None:
        # Read all the time: a process whose stderr pipe is full stops.
        while raw := await stderr.readline():
            line = raw.decode(errors="replace")
            async with served.changed:
                served.lines.append(line)
                served.changed.notify_all()
            found = LISTENING.search(line)
            if found and not listening.done():
                listening.set_result(int(found.group(1)))
        if not listening.done():
            listening.set_exception(AssertionError("serve exited:\n" + served.log()))

    reader = asyncio.create_task(read_stderr())
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            served.port = await listening
        yield served
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def _half_open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HALF_HEAD)
            await writer.drain()
    except (OSError, TimeoutError):
        return None
    return reader, writer


async def _healthz(port: int, limit_s: float) -> tuple[int, float]:
    started = time.monotonic()
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=limit_s)) as http,
        http.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        await response.read()
        return response.status, time.monotonic() - started


def _close_all(connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]) -> None:
    for pair in connections:
        if pair is not None:
            pair[1].close()


async def test_healthz_answers_within_a_second_while_1100_half_open_connections_are_held(
    tmp_path: Path,
) -> None:
    # The common default open-file limit, which 1100 connections exceed.
    async with serve(tmp_path, open_files=1024) as served:
        connections = await asyncio.gather(*(_half_open(served.port) for _ in range(SLOW_CLIENTS)))
        try:
            opened = sum(pair is not None for pair in connections)
            assert opened == SLOW_CLIENTS
            for _ in range(3):
                status, elapsed = await _healthz(served.port, limit_s=1.0)
                assert status == 200
                assert elapsed < 1.0
        finally:
            _close_all(connections)
        log = served.log()
    assert "at most 768 open" in log  # 1024 less the reserve
    assert "out of system resource" not in log
    assert "Traceback" not in log


async def test_a_request_head_sent_a_line_at_a_time_is_cut_off_at_the_head_deadline(
    tmp_path: Path,
) -> None:
    async with serve(tmp_path, open_files=1024, http_header_timeout="0.5") as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        started = time.monotonic()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed_after: float | None = None
        # Trickle a header line every 0.1 s: data must not renew the deadline.
        for n in range(50):
            try:
                writer.write(f"X-Line-{n}: x\r\n".encode())
                await writer.drain()
                async with asyncio.timeout(0.1):
                    if await reader.read(1) == b"":
                        closed_after = time.monotonic() - started
                        break
            except TimeoutError:
                continue
            except ConnectionError:
                closed_after = time.monotonic() - started
                break
        writer.close()
        assert closed_after is not None, "the server kept a 5-second request head open"
        assert closed_after < 2.0
        # A client that sends its head at once is served as always.
        status, _ = await _healthz(served.port, limit_s=5.0)
        assert status == 200


async def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(
    tmp_path: Path,
) -> None:
    async with serve(tmp_path, open_files=1024, http_keepalive_timeout="0.5") as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int(re.search(rb"Content-Length: (\d+)", head, re.IGNORECASE).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
        # Idle now: the server closes its side (EOF) well before aiohttp's 3630 s.
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()


async def test_running_out_of_descriptors_is_logged_once_and_healthz_recovers(
    tmp_path: Path,
) -> None:
    # A budget above what the process may open: accepting fails with EMFILE.
    async with serve(tmp_path, open_files=200, http_max_connections="5000") as served:
        connections = list(await asyncio.gather(*(_half_open(served.port) for _ in range(400))))
        try:
            async with asyncio.timeout(20):
                await served.logged("cannot accept connections")
            # More clients while accepting fails (asyncio retries each second, and without
            # the guard logged each failure many times)...
            more = await asyncio.gather(*(_half_open(served.port) for _ in range(100)))
            connections.extend(more)
            # ...and /healthz is served again: idle connections were closed to make room.
            status, _ = await _healthz(served.port, limit_s=10.0)
            assert status == 200
        finally:
            _close_all(connections)
        log = served.log()
    assert log.count("cannot accept connections") == 1, log[-3000:]
    assert "out of system resource" not in log
    assert len(log) < 100_000
