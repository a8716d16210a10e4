"""`cors-scanner schedules …` and `cors-scanner runs …` in-process, workers as real processes."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import date
from typing import Any

import pytest

from scanner.cli import EXIT_OK, EXIT_USAGE, main
from scanner.db.engine import Database
from tests.worker.support import add_endpoints, start_worker, targets, wait_run_final


class CLI:
    """Runs `cors-scanner` (in a thread: it has its own event loop); (code, stdout, stderr)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    async def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()

        def run() -> int:
            try:
                return main(list(argv))
            except SystemExit as exc:  # argparse usage errors
                return int(exc.code or 0)

        code = await asyncio.to_thread(run)
        out, err = self.capsys.readouterr()
        return code, out, err

    async def json(self, *argv: str) -> Any:
        code, out, err = await self(*argv, "--format", "json")
        assert code == EXIT_OK, err
        return json.loads(out)


@pytest.fixture
def cli(
    database: Database, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> CLI:
    monkeypatch.setenv("CORS_SCANNER_DATABASE_URL", database.url)
    return CLI(capsys)


async def test_schedules_add_list_show_update_remove(cli: CLI) -> None:
    added = await cli.json(
        "schedules",
        "add",
        "--name",
        "spa-weekly",
        "--cron",
        "30 3 * * 1",
        "--timezone",
        "Europe/Paris",
        "--tag",
        "spa",
        "--jitter",
        "90",
    )
    assert added["name"] == "spa-weekly"
    assert added["selection"] == {"tag": "spa"}
    assert added["enabled"] is True
    assert added["jitter_seconds"] == 90
    assert len(added["next_ticks"]) == 3
    sid = str(added["id"])

    code, out, _ = await cli("schedules", "list")
    assert code == EXIT_OK
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "CRON", "TIMEZONE"]
    assert [r.split()[1] for r in rows] == ["nightly", "spa-weekly"]
    listed = (await cli.json("schedules", "list"))["items"]
    assert [s["name"] for s in listed] == ["nightly", "spa-weekly"]

    code, out, _ = await cli("schedules", "show", sid)
    assert code == EXIT_OK
    assert "Europe/Paris" in out
    assert "next ticks" in out

    updated = await cli.json(
        "schedules", "update", sid, "--disable", "--all", "--timezone", "UTC", "--jitter", "-1"
    )
    assert updated["enabled"] is False
    assert updated["selection"] == {}
    assert updated["timezone"] == "UTC"
    assert updated["jitter_seconds"] is None
    assert updated["cron"] == "30 3 * * 1"
    assert all(t.endswith("03:30:00Z") for t in updated["next_ticks"])

    code, out, _ = await cli("schedules", "remove", sid)
    assert (code, out.strip()) == (EXIT_OK, f"schedule {sid} removed")
    code, _, err = await cli("schedules", "show", sid)
    assert code == EXIT_USAGE
    assert f"schedule {sid} does not exist" in err
    code, _, err = await cli("schedules", "remove", sid)
    assert code == EXIT_USAGE


async def test_schedule_validation_errors_and_exit_codes(cli: CLI) -> None:
    code, _, err = await cli("schedules", "add", "--name", "x", "--cron", "61 * * * *")
    assert code == EXIT_USAGE
    assert "cron '61 * * * *'" in err
    code, _, err = await cli("schedules", "add", "--name", "x", "--cron", "0 2 * *")
    assert code == EXIT_USAGE
    assert "expected 5 fields" in err
    code, _, err = await cli(
        "schedules", "add", "--name", "x", "--cron", "0 2 * * *", "--timezone", "Mars/Olympus"
    )
    assert code == EXIT_USAGE
    assert "unknown time zone 'Mars/Olympus'" in err
    code, _, err = await cli(
        "schedules", "add", "--name", "x", "--cron", "0 2 * * *", "--jitter", "-5"
    )
    assert code == EXIT_USAGE
    assert "jitter_seconds" in err
    code, _, err = await cli("schedules", "add", "--name", "nightly", "--cron", "0 3 * * *")
    assert code == EXIT_USAGE
    assert "already exists" in err
    code, _, err = await cli("schedules", "add", "--cron", "0 3 * * *")  # argparse: no --name
    assert code == EXIT_USAGE
    assert "--name" in err
    code, _, err = await cli("schedules", "update", "1", "--enable", "--disable")
    assert code == EXIT_USAGE
    # A line that never fires (no 31st in those months) is refused, naming the field.
    code, _, err = await cli("schedules", "add", "--name", "x", "--cron", "0 0 31 4,6,9,11 *")
    assert code == EXIT_USAGE
    assert "cron: cron '0 0 31 4,6,9,11 *': never fires: no day 31 exists in April" in err
    code, _, err = await cli("schedules", "update", "1", "--cron", "0 0 30 feb *")
    assert code == EXIT_USAGE
    assert "never fires" in err
    # Weekdays as cron(8) counts them: the next three ticks of a Sunday line are Sundays.
    shown = await cli.json("schedules", "add", "--name", "sundays", "--cron", "0 2 * * 7")
    assert [date.fromisoformat(t[:10]).weekday() for t in shown["next_ticks"]] == [6, 6, 6]
    assert (await cli("schedules", "remove", str(shown["id"])))[0] == 0
    # Nothing invalid was stored.
    assert [s["name"] for s in (await cli.json("schedules", "list"))["items"]] == ["nightly"]


async def test_runs_start_show_progress_complete_and_cancel(
    cli: CLI, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORS_SCANNER_BATCH_SIZE", "1")  # `runs start` plans one endpoint per item
    async with targets(1) as [base]:
        # One host, one endpoint per item, one item at a time: items finish one
        # by one, and the slow one keeps the run half-done while we look.
        await add_endpoints(database, [f"{base}/a", f"{base}/b?delay=0.3", f"{base}/c"], tags=["t"])
        started = await cli.json("runs", "start", "--tag", "t")
        run_id = str(started["id"])
        assert started["status"] == "queued"
        assert started["endpoints_total"] == 3

        shown = await cli.json("runs", "show", run_id)
        assert shown["status"] == "queued"
        assert shown["endpoints_done"] == 0
        assert shown["eta_seconds"] is None  # nothing done yet: no basis for an estimate
        code, out, _ = await cli("runs", "show", run_id)
        assert code == EXIT_OK
        assert any(line.split() == ["endpoints", "done", "0"] for line in out.splitlines())

        worker = await start_worker(database.url, worker_concurrency="1")
        try:
            async with asyncio.timeout(30):
                while True:
                    shown = await cli.json("runs", "show", run_id)
                    if shown["endpoints_done"] >= 1 and shown["status"] == "running":
                        break
                    await asyncio.sleep(0.1)
            assert shown["items_remaining"] >= 1
            assert shown["eta_seconds"] is not None
            assert shown["eta_seconds"] > 0
            assert shown["live_workers"] == 1
            final = await wait_run_final(database, int(run_id), limit_s=30)
        finally:
            worker.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                _, worker_err = await worker.communicate()
        assert worker.returncode == 0, worker_err.decode()

    assert final.status == "completed", final.error
    done = await cli.json("runs", "show", run_id)
    assert done["status"] == "completed"
    assert done["endpoints_done"] == 3
    assert done["items_remaining"] == 0
    assert done["eta_seconds"] is None
    assert done["probes"] > 0
    assert done["finished_at"] is not None

    # No worker runs now: a new run stays queued, and is cancelled.
    second = await cli.json("runs", "start", "--endpoint", "1")
    code, out, _ = await cli("runs", "list")
    assert code == EXIT_OK
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [
        [str(second["id"]), "queued"],
        [run_id, "completed"],
    ]
    cancelled = await cli.json("runs", "cancel", str(second["id"]))
    assert cancelled["status"] == "cancelled"
    code, _, err = await cli("runs", "cancel", str(second["id"]))
    assert code == EXIT_USAGE
    assert "already cancelled" in err
    listed = (await cli.json("runs", "list", "--status", "cancelled"))["items"]
    assert [r["id"] for r in listed] == [second["id"]]
    code, _, err = await cli("runs", "cancel", "999999")
    assert code == EXIT_USAGE
    assert "does not exist" in err
    code, _, err = await cli("runs", "start", "--endpoint", "1", "--tag", "t")
    assert code == EXIT_USAGE
    # As over the API: a selection that matches nothing is refused, not planned.
    code, _, err = await cli("runs", "start", "--tag", "no-such-tag")
    assert code == EXIT_USAGE
    assert "no enabled endpoint matches this selection" in err
    code, _, err = await cli("runs", "start", "--endpoint", "424242")
    assert code == EXIT_USAGE
    assert "endpoint 424242 does not exist" in err
    assert [r["id"] for r in (await cli.json("runs", "list"))["items"]] == [
        second["id"],
        int(run_id),
    ]
