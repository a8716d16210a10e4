"""The demo target as users meet it: the index page and the `cors-scanner demo` command."""

from __future__ import annotations

import asyncio
import html
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

import scanner
from scanner.cli import EXIT_OK, EXIT_USAGE, main
from scanner.demo import APP_ORIGIN, DEMO_CASES

REPO = Path(scanner.__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 15.0


async def test_index_lists_every_path_its_bug_and_its_scan_command(demo_base: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(demo_base + "/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        page = html.unescape(await response.text())
    for case in DEMO_CASES:
        assert f"href='{case.path}'" in page
        assert case.title in page
        command = " ".join(["cors-scanner", "scan", demo_base + case.path, *case.scan_flags()])
        assert command in page
        for rule_id in case.rule_ids:
            assert rule_id in page


async def test_paths_outside_the_demo_are_plain_404s(demo_base: str) -> None:
    headers = {"Origin": "https://evil.attacker.example"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(demo_base + "/nothing-here", headers=headers) as response,
    ):
        assert response.status == 404
        assert "Access-Control-Allow-Origin" not in response.headers


async def test_a_demo_path_answers_like_its_imitation(demo_base: str) -> None:
    # Spot check of the raw exchange, the thing a user would curl.
    headers = {"Origin": "https://evil.attacker.example", "Cookie": "session=1"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(demo_base + "/reflect-credentials", headers=headers) as response,
    ):
        assert response.status == 200
        assert response.headers.getall("Access-Control-Allow-Origin") == [headers["Origin"]]
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert response.headers["Vary"] == "Origin"


async def test_demo_command_serves_until_interrupted(closed_port: int) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scanner",
        "demo",
        "--port",
        str(closed_port),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        status = await _wait_until_serving(f"http://127.0.0.1:{closed_port}/good", APP_ORIGIN)
        assert status == 200
        process.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(process.communicate(), STARTUP_TIMEOUT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == EXIT_OK, stderr.decode()
    assert f"http://127.0.0.1:{closed_port}/" in stdout.decode()


async def _wait_until_serving(url: str, origin: str) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT_S
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url, headers={"Origin": origin}) as response:
                    assert response.headers["Access-Control-Allow-Origin"] == origin
                    return response.status
            except aiohttp.ClientConnectionError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.1)


@pytest.mark.parametrize("port", ["0", "70000", "http"])
def test_demo_command_refuses_a_bad_port(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main(["demo", "--port", port]))
    assert exited.value.code == EXIT_USAGE
    assert "port" in capsys.readouterr().err
