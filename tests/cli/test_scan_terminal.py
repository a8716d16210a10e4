"""`cors-scanner scan` on a real terminal: the progress bar never garbles the report.

The scan runs as a real process whose standard input, output and error are
one pseudo-terminal (``os.openpty``), exactly as in a shell, against the demo
target on 127.0.0.1. Everything the process wrote to the terminal is then
replayed through a small terminal model (carriage return, erase to end of
line, cursor up, colours ignored): the screen that results must hold every
report block whole — no ``scanning: 40%|███`` left on a line, no block
starting after the bar. The bar must have been drawn, and it leaves nothing
behind. A pipe gets no bar and no colour; ``NO_COLOR`` and ``TERM=dumb`` get
no colour on the terminal either.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import struct
import sys
import termios

import pytest

from scanner.demo import DEMO_CASES, demo_app
from tests.loopback import ServeApp

PATHS = [c.path for c in DEMO_CASES][:10]
SGR = re.compile(r"\x1b\[[0-9;]*m")
CONTROL = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")
BAR = re.compile(r"scanning:|endpoints, \d+ finding|\d+/\d+ endpoints|[█▏▎▍▌▋▊▉#]{3}")


def screen(raw: str) -> list[str]:
    """The lines a terminal shows after ``raw`` (output-processed: ``\\n`` is CR LF)."""
    lines: list[list[str]] = [[]]
    row = col = 0
    i = 0
    while i < len(raw):
        char = raw[i]
        if char == "\x1b":
            match = CONTROL.match(raw, i)
            assert match is not None, f"unknown escape at {raw[i : i + 12]!r}"
            params, command = match.groups()
            count = int(params) if params.isdigit() else 1
            if command == "K":  # erase from the cursor to the end of the line
                del lines[row][col:]
            elif command == "A":
                row = max(0, row - count)
            elif command == "B":
                row += count
            elif command != "m":
                raise AssertionError(f"unexpected control sequence {match.group(0)!r}")
            i = match.end()
            continue
        if char == "\r":
            col = 0
        elif char == "\n":
            row += 1
            col = 0
        elif char == "\b":
            col = max(0, col - 1)
        else:
            while len(lines) <= row:
                lines.append([])
            line = lines[row]
            while len(line) < col:
                line.append(" ")
            if col < len(line):
                line[col] = char
            else:
                line.append(char)
            col += 1
        while len(lines) <= row:
            lines.append([])
        i += 1
    return ["".join(line).rstrip() for line in lines]


async def run_on_terminal(
    argv: list[str], env: dict[str, str], *, columns: int = 100
) -> tuple[int, str]:
    """Run ``cors-scanner argv`` with stdin/stdout/stderr on one pseudo-terminal; (exit code,
    everything it wrote there)."""
    leader, follower = os.openpty()
    if columns:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scanner",
        *argv,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    received = bytearray()

    def read_all() -> None:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the last writer closed its end
                return
            if not chunk:
                return
            received.extend(chunk)

    try:
        async with asyncio.timeout(120):
            await asyncio.to_thread(read_all)
            code = await process.wait()
    finally:
        os.close(leader)
    return code, received.decode("utf-8", errors="replace")


def environment(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CORS_SCANNER_") and k not in ("NO_COLOR", "TERM")
    }
    env.update({"TERM": "xterm-256color", "PYTHONUNBUFFERED": "1", **extra})
    return env


async def scan_args(serve_app: ServeApp) -> tuple[list[str], list[str]]:
    base = await serve_app(demo_app())
    urls = [base + path for path in PATHS]
    argv = ["scan", *urls, "--allow-origin", "https://app.acme.test", "--allow-credentials"]
    return argv, urls


def assert_report_whole(lines: list[str], urls: list[str]) -> None:
    """Every line of the screen is a line of the report: a block header ``GET <url>``, an
    indented line of a block, a blank line, or the summary."""
    text = "\n".join(lines).strip()
    blocks = [line for line in lines if line.startswith("GET ")]
    assert sorted(blocks) == sorted(f"GET {url}" for url in urls), "\n" + text
    for line in lines:
        assert not BAR.search(line), f"progress bar left on the screen: {line!r}\n{text}"
        assert (
            line == ""
            or line.startswith(("GET ", "  "))
            or re.match(r"\d+ endpoints \(\d+ unreachable\), \d+ probes in", line)
            or line.startswith(("FAIL:", "PASS:", "INCOMPLETE:"))
        ), f"a garbled line: {line!r}\n{text}"
    assert lines[-1].startswith(("FAIL:", "PASS:")) or lines[-2].startswith(("FAIL:", "PASS:"))


@pytest.mark.parametrize("columns", [100, 0], ids=["100-columns", "no-size-reported"])
async def test_the_progress_bar_never_garbles_the_table_on_a_terminal(
    serve_app: ServeApp, columns: int
) -> None:
    argv, urls = await scan_args(serve_app)
    code, raw = await run_on_terminal(argv, environment(), columns=columns)
    assert code == 1, raw  # the demo's broken paths fail at high
    plain = SGR.sub("", raw)
    assert_report_whole(screen(plain), urls)
    # The bar was there: drawn before the first block and redrawn after each one.
    assert plain.count("scanning:") >= len(urls)
    assert re.search(r"\d+/10 endpoints, \d+ findings?", plain)
    # Severity is coloured on a terminal.
    assert "\x1b[1;31mCRITICAL\x1b[0m" in raw


@pytest.mark.parametrize(
    "extra", [{"NO_COLOR": "1"}, {"TERM": "dumb"}], ids=["NO_COLOR", "TERM=dumb"]
)
async def test_no_colour_on_a_terminal_with_no_color_or_a_dumb_term(
    serve_app: ServeApp, extra: dict[str, str]
) -> None:
    argv, urls = await scan_args(serve_app)
    code, raw = await run_on_terminal(argv, environment(**extra))
    assert code == 1
    assert not SGR.search(raw), "colour despite " + repr(extra)
    assert_report_whole(screen(raw), urls)
    assert "CRITICAL" in raw


async def test_a_pipe_gets_the_report_without_bar_or_colour(serve_app: ServeApp) -> None:
    argv, urls = await scan_args(serve_app)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scanner",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment(),
    )
    async with asyncio.timeout(120):
        out, err = await process.communicate()
    assert process.returncode == 1, err.decode()
    assert b"\x1b[" not in out
    assert b"\r" not in out
    assert b"scanning:" not in err
    assert_report_whole(out.decode().splitlines(), urls)


async def test_no_progress_keeps_the_terminal_free_of_the_bar(serve_app: ServeApp) -> None:
    argv, urls = await scan_args(serve_app)
    code, raw = await run_on_terminal([*argv, "--no-progress"], environment())
    assert code == 1
    assert "scanning:" not in raw
    assert_report_whole(screen(SGR.sub("", raw)), urls)


def test_the_terminal_model_shows_what_the_old_bar_did_to_the_table() -> None:
    # What `scan` printed before: a block right after "\r[###…] 1/2 endpoints" on the bar's line.
    raw = (
        "\r[###############...............] 1/2 endpoints, 1 findings"
        + "GET http://x/a\r\n  ok\r\n"
    )
    lines = screen(raw)
    assert lines[0] != "GET http://x/a"
    with pytest.raises(AssertionError):
        assert_report_whole(lines, ["http://x/a"])
