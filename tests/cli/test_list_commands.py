"""Every list and show command, on a database a real run of the demo target filled.

The inventory, the policy, a hook, a token and a run go in through the
command line; a real worker process scans the demo target (scanner.demo on
127.0.0.1). Then every list command is read as a person reads it (a header
row, aligned columns, no Python reprs, one time style) and as a script reads
it (``--format json``: the stable shapes of ``scanner.shapes``, the API's).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
from typing import Any

import pytest

from scanner import shapes
from scanner.cli import EXIT_OK, main
from scanner.db.engine import Database
from scanner.db.findings import FindingQuery
from scanner.demo import demo_app
from scanner.settings import Settings
from scanner.usecases import Context, triage
from tests.loopback import ServeApp
from tests.worker.support import start_worker, wait_run_final

REPR = re.compile(r"\b(True|False|None)\b|\{'|\['|\(\)|datetime\.")
ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
HUMAN_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC")


class CLI:
    """`cors-scanner` in-process (in a thread: it has its own event loop)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    async def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = await asyncio.to_thread(main, list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err

    async def table(self, *argv: str) -> list[str]:
        code, out, err = await self(*argv)
        assert code == EXIT_OK, err
        return out.splitlines()

    async def json(self, *argv: str) -> Any:
        code, out, err = await self(*argv, "--format", "json")
        assert code == EXIT_OK, err
        return json.loads(out)


def columns(header: str) -> list[tuple[str, int, int]]:
    """(name, start, end) of each header cell: cells are apart by two spaces or more."""
    return [(m.group(0), m.start(), m.end()) for m in re.finditer(r"\S+(?: \S+)*", header)]


def assert_aligned_table(lines: list[str], expected_headers: list[str]) -> None:
    """A header row of the expected names, then rows whose every cell lines up with its
    header: left-aligned cells start where the header starts, right-aligned ones end where
    it ends."""
    assert lines, "no output"
    header, *rows = lines
    cells = columns(header)
    assert [name for name, _, _ in cells] == expected_headers
    assert rows, "a header and no row"
    for name, start, end in cells:
        left = all(
            len(r) > start and r[start] != " " and (start == 0 or r[start - 1] == " ") for r in rows
        )
        right = all(
            len(r) >= end and r[end - 1] != " " and (len(r) == end or r[end] == " ") for r in rows
        )
        assert left or right, f"column {name} is not aligned:\n" + "\n".join(lines)
    for line in lines:
        assert line == line.rstrip()
        assert not REPR.search(line), line
        assert not ISO.search(line), f"a machine timestamp in a table: {line}"


@pytest.fixture
def cli(
    database: Database, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> CLI:
    monkeypatch.setenv("CORS_SCANNER_DATABASE_URL", database.url)
    monkeypatch.setenv("CORS_SCANNER_HOOK_ALLOW_LOOPBACK", "true")
    return CLI(capsys)


async def test_every_list_command_is_a_table_and_json(
    cli: CLI, database: Database, serve_app: ServeApp
) -> None:
    base = await serve_app(demo_app())
    assert (await cli("endpoints", "add", f"{base}/reflect-credentials", "--name", "profile API",
                      "--owner", "team-id", "--tag", "api", "--tag", "pay"))[0] == EXIT_OK  # fmt: skip
    assert (await cli("endpoints", "add", f"{base}/good", "--tag", "api"))[0] == EXIT_OK
    code, _, err = await cli(
        "policies", "set", "--tag", "api", "--allowed-origin", "https://app.acme.test",
        "--allow-credentials",
    )  # fmt: skip
    assert code == EXIT_OK, err
    hook = await cli.json("hooks", "add", "ops", "--url", "http://127.0.0.1:9/hook", "--tag", "api")
    assert hook["secret"].startswith("whsec_")
    # No dispatcher runs yet: queue the test event without waiting for its attempt.
    assert (await cli("hooks", "test", str(hook["id"]), "--timeout", "0"))[0] == EXIT_OK
    assert (await cli("tokens", "create", "ci", "--scope", "read", "--quiet"))[0] == EXIT_OK

    run = await cli.json("runs", "start")
    worker = await start_worker(database.url)
    try:
        final = await wait_run_final(database, run["id"], limit_s=60)
        # While it runs, the worker is registered (a clean stop deregisters it).
        workers = await cli.table("workers")
        assert_aligned_table(
            workers,
            ["ID", "HOSTNAME", "PID", "LIVE", "ITEMS LEASED", "STARTED", "LAST HEARTBEAT"],
        )
        assert workers[1].split()[3] == "yes"
        assert (await cli.json("workers"))["items"][0]["pid"] == worker.pid
    finally:
        worker.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            _, worker_err = await worker.communicate()
    assert worker.returncode == 0, worker_err.decode()
    assert final.status == "completed", final.error

    # -- tables ------------------------------------------------------------------------
    findings = await cli.table("findings", "list")
    assert_aligned_table(
        findings,
        ["ID", "SEVERITY", "STATUS", "RULE", "ENDPOINT", "FIRST SEEN", "LAST SEEN", "VERIFIED"],
    )
    assert any("reflect_any_origin_credentials" in line for line in findings)
    assert HUMAN_TIME.search(findings[1])
    assert findings[1].split()[-1] in ("yes", "no")

    assert_aligned_table(
        await cli.table("regressions", "list"),
        ["ID", "AT", "KIND", "SEVERITY", "RULE", "ENDPOINT", "RUN", "FINDING"],
    )
    runs = await cli.table("runs", "list")
    assert_aligned_table(
        runs,
        ["ID", "STATUS", "TRIGGER", "SELECTION", "ENDPOINTS", "FINDINGS", "PROBES", "ERRORS",
         "UNREACHABLE",
         "ETA", "CREATED", "FINISHED"],
    )  # fmt: skip
    assert runs[1].split()[:5] == [str(run["id"]), "completed", "manual", "all", "2/2"]
    endpoints = await cli.table("endpoints", "list")
    assert_aligned_table(endpoints, ["ID", "METHOD", "URL", "NAME", "OWNER", "TAGS", "ENABLED"])
    assert "api,pay" in endpoints[1]
    assert endpoints[2].split()[-4:] == ["—", "—", "api", "yes"]  # no name, no owner
    assert_aligned_table(
        await cli.table("policies", "list"), ["ID", "SCOPE", "ALLOWED ORIGINS", "SETS"]
    )
    hooks_table = await cli.table("hooks", "list")
    assert_aligned_table(
        hooks_table,
        ["ID", "NAME", "KIND", "URL", "EVENTS", "MIN SEVERITY", "FILTERS", "STATE"],
    )
    assert "tag=api" in hooks_table[1]
    assert_aligned_table(
        await cli.table("hooks", "deliveries", str(hook["id"])),
        ["ID", "EVENT", "STATUS", "ATTEMPTS", "LAST HTTP", "CREATED", "NEXT ATTEMPT",
         "DELIVERED", "LAST ERROR"],
    )  # fmt: skip
    assert_aligned_table(
        await cli.table("schedules", "list"),
        ["ID", "NAME", "CRON", "TIMEZONE", "SELECTION", "ENABLED", "NEXT TICK", "LAST PLANNED"],
    )
    tokens_table = await cli.table("tokens", "list")
    assert_aligned_table(
        tokens_table,
        ["ID", "NAME", "PREFIX", "SCOPES", "CREATED", "CREATED BY", "LAST USED", "STATE"],
    )
    assert tokens_table[1].split()[-2:] == ["never", "active"]
    audit = await cli.table("audit")
    assert_aligned_table(audit, ["ID", "AT", "ACTOR", "ACTION", "TARGET", "DETAIL"])
    assert any("endpoint.create" in line and "method=GET" in line for line in audit)
    # -- show commands: records of human values ---------------------------------------------
    for argv in (
        ("findings", "show", "1"),
        ("runs", "show", str(run["id"])),
        ("endpoints", "show", "1"),
        ("hooks", "show", str(hook["id"])),
        ("schedules", "show", "1"),
        ("policies", "show", "1"),
        ("db", "current"),
    ):
        lines = await cli.table(*argv)
        assert lines, argv
        for line in lines:
            assert not REPR.search(line), (argv, line)
            assert not ISO.search(line), (argv, line)

    # -- JSON: the shapes of scanner.shapes, lists in one envelope ---------------------------
    listed = await cli.json("findings", "list")
    assert set(listed) == {"items", "next_cursor"}
    ctx = Context(database, Settings(database_url=database.url))
    page = await triage.list_findings(ctx, FindingQuery(), limit=500)
    assert listed["items"] == [shapes.finding_json(f) for f in page.items]
    assert listed["next_cursor"] is None
    for argv in (
        ("regressions", "list"),
        ("runs", "list"),
        ("endpoints", "list"),
        ("policies", "list"),
        ("hooks", "list"),
        ("hooks", "deliveries", str(hook["id"])),
        ("schedules", "list"),
        ("tokens", "list"),
        ("audit",),
    ):
        doc = await cli.json(*argv)
        assert set(doc) == {"items", "next_cursor"}, argv
        assert doc["items"], argv
    shown = await cli.json("findings", "show", "1")
    assert shown == listed["items"][0]
    assert (await cli.json("hooks", "show", str(hook["id"])))["secret_set"] is True
    assert "secret" not in await cli.json("hooks", "show", str(hook["id"]))

    # -- paging: one page, then the cursor it printed ------------------------------------------
    code, out, err = await cli("audit", "--limit", "2")
    assert code == EXIT_OK
    assert len(out.splitlines()) == 3  # the header and two entries
    cursor = re.search(r"more: --cursor (\S+)", err)
    assert cursor is not None, err
    rest = await cli.json("audit", "--cursor", cursor.group(1), "--all")
    first = await cli.json("audit", "--limit", "2")
    every = await cli.json("audit", "--all")
    assert [e["id"] for e in first["items"] + rest["items"]] == [e["id"] for e in every["items"]]


async def test_empty_lists_say_so_in_a_sentence(cli: CLI) -> None:
    for argv, sentence in (
        (("findings", "list"), "no findings match"),
        (("regressions", "list"), "no regressions"),
        (("runs", "list"), "no runs"),
        (("hooks", "list"), "no hooks"),
        (("tokens", "list"), "no tokens"),
        (("workers",), "no worker has registered yet"),
    ):
        code, out, _ = await cli(*argv)
        assert (code, out.strip()) == (EXIT_OK, sentence)
        assert await cli.json(*argv) == {"items": [], "next_cursor": None}
