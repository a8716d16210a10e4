"""`cors-scanner serve` as a real process: start, first token, health, graceful stop.

Unless a test says otherwise, `serve` runs with ``--token-file`` in the test's
folder (its stderr is a pipe, so that file is where a first admin token goes).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select, update

from scanner.db import runs, schedules
from scanner.db.engine import Database
from scanner.db.schedules import ScheduleInput
from scanner.db.tables import ApiTokenRow, RunRow, ScheduleRow, WorkerRow, WorkItemRow
from tests.api.targets import serve_target
from tests.worker.support import start_worker, wait_run_final

LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)/")
TOKEN = re.compile(r"^\s+(csk_[A-Za-z0-9_-]+)\s*$", re.MULTILINE)
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


@dataclass
class Served:
    process: asyncio.subprocess.Process
    url: str
    stdout: str
    stderr_lines: list[str] = field(default_factory=list)
    token_file: Path | None = None

    @property
    def token(self) -> str | None:
        """The admin token this start wrote to its token file, if it made one."""
        if self.token_file is None or not self.token_file.exists():
            return None
        text = self.token_file.read_text().strip()
        return text or None


def _env(database_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORS_SCANNER_")}
    env["CORS_SCANNER_DATABASE_URL"] = database_url
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


async def _start(
    database_url: str, cwd: Path, *flags: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scanner",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        *flags,
        cwd=cwd,
        env=_env(database_url, env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@asynccontextmanager
async def serve(
    database_url: str,
    cwd: Path,
    *flags: str,
    env: dict[str, str] | None = None,
    token_file: bool = True,
) -> AsyncIterator[Served]:
    """Run `serve` until its listening line; SIGTERM it on exit unless the test did."""
    path = cwd / "admin-token" if token_file else None
    if path is not None:
        path.unlink(missing_ok=True)  # what this start writes, not a previous one's
        flags = (*flags, "--token-file", str(path))
    process = await _start(database_url, cwd, *flags, env=env)
    assert process.stderr is not None
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                raw = await process.stderr.readline()
                assert raw, "serve exited before listening:\n" + "".join(lines)
                lines.append(raw.decode())
                found = LISTENING.search(lines[-1])
                if found:
                    break
        # The token (if any) is printed before the listener starts.
        stdout = b""
        while True:
            try:
                async with asyncio.timeout(0.2):
                    chunk = await process.stdout.read(4096)
            except TimeoutError:
                break
            if not chunk:
                break
            stdout += chunk
        yield Served(process, found.group(1), stdout.decode(), lines, path)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await process.communicate()


async def _stop(served: Served, sig: int = signal.SIGTERM) -> tuple[int, str]:
    served.process.send_signal(sig)
    async with asyncio.timeout(STOP_TIMEOUT_S):
        _, rest = await served.process.communicate()
    return int(served.process.returncode or 0), "".join(served.stderr_lines) + rest.decode()


async def test_serve_first_start_writes_an_admin_token_file_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
    async with serve(url, tmp_path) as served:
        secret = served.token
        assert secret is not None, "".join(served.stderr_lines)
        assert TOKEN.match(f"    {secret}")
        assert served.token_file is not None
        assert served.token_file.stat().st_mode & 0o777 == 0o600
        logged = "".join(served.stderr_lines)
        # The secret is in the file only: never in a log line, nor on stdout.
        assert f"written to {served.token_file} (mode 0600)" in logged
        assert "csk_" not in logged
        assert "csk_" not in served.stdout
        assert f"database: SQLite file {tmp_path / 'serve.db'}" in logged
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{served.url}/healthz") as health:
                assert health.status == 200
                assert (await health.json())["status"] == "ok"
            async with http.get(f"{served.url}/readyz") as ready:
                assert ready.status == 200
            async with http.get(
                f"{served.url}/api/v1/tokens", headers={"Authorization": f"Bearer {secret}"}
            ) as listed:
                assert listed.status == 200
                names = [t["name"] for t in (await listed.json())["items"]]
                assert names == ["admin"]
            async with http.get(f"{served.url}/api/v1/endpoints") as anonymous:
                assert anonymous.status == 401
        code, stderr = await _stop(served)
    assert code == 0, stderr
    assert "stopped" in stderr
    assert "Traceback" not in stderr

    # Second start on the same database: a token exists, none is created or written.
    async with serve(url, tmp_path) as again:
        assert again.token is None
        assert again.token_file is not None
        assert not again.token_file.exists()
        assert "csk_" not in again.stdout
        code, stderr = await _stop(again, signal.SIGINT)
    assert code == 0, stderr
    assert "csk_" not in stderr


async def test_a_restart_with_every_token_revoked_mints_no_new_admin_token(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
    async with serve(url, tmp_path) as served:
        assert served.token is not None
        async with aiohttp.ClientSession() as http:
            auth = {"Authorization": f"Bearer {served.token}"}
            async with http.delete(f"{served.url}/api/v1/tokens/1", headers=auth) as revoked:
                assert revoked.status in (200, 204), await revoked.text()
        code, stderr = await _stop(served)
    assert code == 0, stderr

    async with serve(url, tmp_path) as again:
        assert again.token is None  # no file written: nothing was minted
        code, stderr = await _stop(again)
    assert code == 0, stderr
    assert "every API token is revoked" in stderr
    assert "cors-scanner tokens create NAME --scope admin" in stderr
    assert "csk_" not in stderr + again.stdout
    database = await Database.connect(url)
    try:
        async with database.session() as session, session.begin():
            states = list(await session.scalars(select(ApiTokenRow.revoked_at)))
    finally:
        await database.close()
    assert len(states) == 1
    assert states[0] is not None


async def test_without_a_terminal_or_a_token_file_no_secret_is_minted_into_the_logs(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
    env = {"CORS_SCANNER_LOG_FORMAT": "json"}
    async with serve(url, tmp_path, env=env, token_file=False) as served:
        code, stderr = await _stop(served)
    assert code == 0, stderr
    assert "csk_" not in stderr + served.stdout
    warnings = [json.loads(line) for line in stderr.splitlines() if '"warning"' in line]
    assert any("--token-file FILE" in w["message"] for w in warnings), stderr
    database = await Database.connect(url)
    try:
        async with database.session() as session, session.begin():
            count = await session.scalar(select(func.count()).select_from(ApiTokenRow))
    finally:
        await database.close()
    assert count == 0  # nothing minted that nobody could read


async def test_on_a_terminal_the_first_admin_token_is_printed_there(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
    # stderr is a real terminal (a pseudo-terminal); stdout stays a pipe.
    leader, follower = os.openpty()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scanner",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        cwd=tmp_path,
        env=_env(url),
        stdout=asyncio.subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    seen = b""
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while not LISTENING.search(seen.decode(errors="replace")):
                chunk = await asyncio.to_thread(os.read, leader, 4096)
                assert chunk, seen.decode(errors="replace")
                seen += chunk
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(STOP_TIMEOUT_S):
            stdout, _ = await process.communicate()
        os.close(leader)
    terminal = seen.decode(errors="replace").replace("\r\n", "\n")
    assert "shown only this once" in terminal
    assert TOKEN.search(terminal) is not None
    assert b"csk_" not in stdout
    assert process.returncode == 0


def test_a_token_file_is_never_written_through_a_symbolic_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    link = tmp_path / "admin-token"
    link.symlink_to(target)
    url = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
    env = _env(url)
    code = subprocess.run(
        [sys.executable, "-m", "scanner", "serve", "--port", "0", "--token-file", str(link)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    assert code.returncode == 2, code.stderr
    assert f"--token-file {link}: cannot write the admin token there" in code.stderr
    assert not target.exists()


async def test_sigterm_releases_running_work_for_the_next_start(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
    async with serve_target() as target, serve(url, tmp_path) as served:
        auth = {"Authorization": f"Bearer {served.token}"}
        async with aiohttp.ClientSession(headers=auth) as http:
            async with http.post(
                f"{served.url}/api/v1/endpoints", json={"url": f"{target}/slow"}
            ) as created:
                assert created.status == 201, await created.text()
            async with http.post(f"{served.url}/api/v1/scans", json={}) as started:
                assert started.status == 202
                scan_id = (await started.json())["id"]
            async with asyncio.timeout(20):
                while True:
                    async with http.get(f"{served.url}/api/v1/scans/{scan_id}") as polled:
                        if (await polled.json())["status"] == "running":
                            break
                    await asyncio.sleep(0.05)
        code, stderr = await _stop(served)
    assert code == 0, stderr
    database = await Database.connect(url)
    try:
        async with database.session() as session, session.begin():
            scan = await runs.get_run(session, scan_id)
            item_states = (
                (
                    await session.execute(
                        select(WorkItemRow.status).where(WorkItemRow.run_id == scan_id)
                    )
                )
                .scalars()
                .all()
            )
    finally:
        await database.close()
    # The work in hand went back to the queue: the next start resumes the run.
    assert scan.status is runs.RunStatus.RUNNING
    assert scan.finished_at is None
    assert list(item_states) == ["queued"]


async def test_serve_migrates_sqlite_and_refuses_an_old_postgresql_schema(
    empty_database: Database, tmp_path: Path
) -> None:
    if empty_database.dialect == "sqlite":
        async with serve(empty_database.url, tmp_path) as served:
            assert served.token is not None  # migrated from nothing, then served
            code, stderr = await _stop(served)
        assert code == 0, stderr
        assert (await empty_database.schema_status()).is_current
        return
    process = await _start(empty_database.url, tmp_path)
    async with asyncio.timeout(START_TIMEOUT_S):
        stdout, stderr = await process.communicate()
    assert process.returncode == 4, stderr.decode()
    assert "run `cors-scanner db upgrade`" in stderr.decode()
    assert b"csk_" not in stdout
    assert not (await empty_database.schema_status()).is_current


def test_serve_refuses_a_bad_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from scanner.cli import main

    assert main(["serve", "--port", "70000"]) == 2
    assert "--port 70000" in capsys.readouterr().err


async def test_tokens_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from scanner.cli import main

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CORS_SCANNER_DATABASE_URL", url)
    from scanner.cli import main as cli_main

    assert await asyncio.to_thread(cli_main, ["db", "upgrade"]) == 0

    def run(*argv: str) -> tuple[int, str, str]:
        import contextlib
        import io

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
        return code, out.getvalue(), err.getvalue()

    # main() runs its own event loop: keep it off this test's loop.
    code, out, _ = await asyncio.to_thread(
        run, "tokens", "create", "ci", "--scope", "read", "--quiet"
    )
    assert code == 0
    secret = out.strip()
    assert re.fullmatch(r"csk_[A-Za-z0-9_-]{43}", secret)

    code, out, _ = await asyncio.to_thread(run, "tokens", "list", "--format", "json")
    assert code == 0
    listed = json.loads(out)["items"]
    assert [(t["name"], t["scopes"], t["revoked_at"]) for t in listed] == [("ci", ["read"], None)]
    assert secret not in out
    assert listed[0]["prefix"] == secret[:12]

    code, out, _ = await asyncio.to_thread(run, "tokens", "list")
    assert code == 0
    assert "ci" in out
    assert "active" in out

    code, out, _ = await asyncio.to_thread(run, "tokens", "revoke", str(listed[0]["id"]))
    assert code == 0
    code, out, _ = await asyncio.to_thread(run, "tokens", "list", "--format", "json")
    assert json.loads(out)["items"][0]["revoked_at"] is not None

    code, _, err = await asyncio.to_thread(run, "tokens", "revoke", "99")
    assert code == 2
    assert "token 99 does not exist" in err

    database = await Database.connect(url)
    try:
        from scanner.db.audit import list_audit

        async with database.session() as session, session.begin():
            page = await list_audit(session, limit=10, cursor=None)
    finally:
        await database.close()
    assert [(e.actor, e.action) for e in page.items] == [
        ("cli", "token.revoke"),
        ("cli", "token.create"),
    ]


# -- roles: --no-worker / --no-scheduler -----------------------------------------


async def _workers_and_runs(database: Database) -> tuple[int, list[str]]:
    async with database.session() as session, session.begin():
        workers = (await session.execute(select(func.count()).select_from(WorkerRow))).scalar_one()
        statuses = (await session.execute(select(RunRow.status).order_by(RunRow.id))).scalars()
        return int(workers), list(statuses)


async def test_serve_no_worker_leaves_runs_to_worker_processes(
    database: Database, tmp_path: Path
) -> None:
    async with serve_target() as target, serve(database.url, tmp_path, "--no-worker") as served:
        assert "roles: API, scheduler (no worker here" in "".join(served.stderr_lines)
        auth = {"Authorization": f"Bearer {served.token}"}
        async with aiohttp.ClientSession(headers=auth) as http:
            async with http.post(
                f"{served.url}/api/v1/endpoints", json={"url": f"{target}/api"}
            ) as created:
                assert created.status == 201, await created.text()
            async with http.post(f"{served.url}/api/v1/scans", json={}) as started:
                assert started.status == 202
                scan_id = (await started.json())["id"]
            # Longer than an idle worker's poll: an embedded worker would have started it.
            await asyncio.sleep(3)
            assert await _workers_and_runs(database) == (0, ["queued"])
            async with http.get(f"{served.url}/api/v1/workers") as listed:
                assert (await listed.json())["items"] == []

            worker = await start_worker(database.url)
            try:
                run = await wait_run_final(database, scan_id, limit_s=30)
                async with http.get(f"{served.url}/api/v1/scans/{scan_id}") as shown:
                    body = await shown.json()
            finally:
                worker.send_signal(signal.SIGTERM)
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    _, worker_err = await worker.communicate()
        code, stderr = await _stop(served)
    assert run.status == "completed", run.error
    assert body["status"] == "completed"
    assert body["progress"]["endpoints_done"] == 1
    assert worker.returncode == 0, worker_err.decode()
    assert code == 0, stderr
    assert "Traceback" not in stderr


async def test_serve_no_scheduler_fires_no_schedules(database: Database, tmp_path: Path) -> None:
    if database.dialect != "sqlite":
        pytest.skip("the flag is the same on both databases; one is enough")
    async with database.session() as session, session.begin():
        record = await schedules.create_schedule(
            session, ScheduleInput(name="every-minute", cron="* * * * *")
        )
        # Created an hour ago: start-up catch-up plans its newest missed tick at once.
        await session.execute(
            update(ScheduleRow)
            .where(ScheduleRow.id == record.id)
            .values(created_at=datetime.now(UTC) - timedelta(hours=1))
        )
    env = {"CORS_SCANNER_CATCH_UP_GRACE": "3600"}
    async with serve(database.url, tmp_path, "--no-scheduler", "--no-worker", env=env) as api:
        assert "roles: API (no worker here" in "".join(api.stderr_lines)
        await asyncio.sleep(2)
        code, stderr = await _stop(api)
    assert code == 0, stderr
    assert await _workers_and_runs(database) == (0, [])

    # The same start with the scheduler: the missed tick becomes a run.
    async with serve(database.url, tmp_path, "--no-worker", env=env) as full:
        async with asyncio.timeout(20):
            while not (await _workers_and_runs(database))[1]:  # noqa: ASYNC110 - polling state
                await asyncio.sleep(0.1)
        code, stderr = await _stop(full)
    assert code == 0, stderr
    assert await _workers_and_runs(database) == (0, ["queued"])
