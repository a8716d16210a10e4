"""`cors-scanner runs …`, `cors-scanner schedules …` and `cors-scanner worker`.

``runs list|show|start|cancel`` follow runs (scans) and their progress/ETA;
``schedules list|add|show|update|remove`` manage cron schedules; ``worker``
runs only a worker (scale-out: start as many as you like against PostgreSQL).
Output is a table by default, ``--format json`` for machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from scanner.cli import EXIT_OK
from scanner.cli.database import open_database, run_with_database
from scanner.db import audit, runs, schedules, work
from scanner.db.engine import Database
from scanner.db.runs import RunRecord, RunSelection, RunStatus, RunTrigger
from scanner.db.schedules import ScheduleInput, ScheduleRecord
from scanner.errors import InputError
from scanner.settings import Settings

ACTOR = "cli"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    _register_runs(subparsers)
    _register_schedules(subparsers)
    w = subparsers.add_parser(
        "worker",
        help="run a worker only (claims work items of runs; scale out on PostgreSQL)",
        description=(
            "Claim and execute work items of runs until SIGINT/SIGTERM, then release what is "
            "in hand and exit 0. Any number may run against one PostgreSQL database; SQLite "
            "supports one worker process (serve includes one)."
        ),
    )
    w.set_defaults(handler=_worker)


def _fmt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("table", "json"), default="table")


def _register_runs(subparsers: argparse._SubParsersAction[Any]) -> None:
    group = subparsers.add_parser("runs", help="list, show, start and cancel runs (scans)")
    sub = group.add_subparsers(dest="runs_command", metavar="COMMAND", required=True)
    p = sub.add_parser("list", help="runs, newest first")
    p.add_argument("--status", choices=[s.value for s in RunStatus])
    p.add_argument("--limit", type=int, default=20)
    _fmt(p)
    p.set_defaults(handler=_runs_list)
    p = sub.add_parser("show", help="one run with progress and ETA")
    p.add_argument("id", type=int)
    _fmt(p)
    p.set_defaults(handler=_runs_show)
    p = sub.add_parser("start", help="plan a manual run (workers execute it)")
    p.add_argument("--tag")
    p.add_argument("--owner")
    p.add_argument("--endpoint", type=int, action="append", dest="endpoint_ids")
    _fmt(p)
    p.set_defaults(handler=_runs_start)
    p = sub.add_parser("cancel", help="cancel a queued or running run")
    p.add_argument("id", type=int)
    _fmt(p)
    p.set_defaults(handler=_runs_cancel)
    _register_report(sub)


def _register_schedules(subparsers: argparse._SubParsersAction[Any]) -> None:
    sch = subparsers.add_parser("schedules", help="cron schedules of runs")
    sub = sch.add_subparsers(dest="schedules_command", metavar="COMMAND", required=True)
    p = sub.add_parser("list", help="every schedule")
    _fmt(p)
    p.set_defaults(handler=_schedules_list)
    p = sub.add_parser("show", help="one schedule and its next ticks")
    p.add_argument("id", type=int)
    _fmt(p)
    p.set_defaults(handler=_schedules_show)
    for name in ("add", "update"):
        p = sub.add_parser(name, help=f"{name} a schedule")
        if name == "update":
            p.add_argument("id", type=int)
        p.add_argument("--name", required=name == "add")
        p.add_argument(
            "--cron",
            required=name == "add",
            help='five fields as cron(8) reads them, e.g. "0 2 * * 1-5" (0/7 = Sunday), or @daily',
        )
        p.add_argument("--timezone", help="IANA name (default UTC)")
        p.add_argument("--tag")
        p.add_argument("--owner")
        p.add_argument("--all", action="store_true", help="select every enabled endpoint")
        p.add_argument(
            "--jitter",
            type=int,
            metavar="SECONDS",
            help="spread the timer by up to this many seconds (-1: the service default)",
        )
        group = p.add_mutually_exclusive_group()
        group.add_argument("--enable", dest="enabled", action="store_const", const=True)
        group.add_argument("--disable", dest="enabled", action="store_const", const=False)
        _fmt(p)
        p.set_defaults(handler=_schedules_add if name == "add" else _schedules_update)
    p = sub.add_parser("remove", help="delete a schedule (its runs stay)")
    p.add_argument("id", type=int)
    p.set_defaults(handler=_schedules_remove)


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def run_json(run: RunRecord, eta: float | None = None) -> dict[str, Any]:
    """A run for the CLI's JSON output."""
    return {
        "id": run.id,
        "status": run.status.value,
        "trigger": run.trigger.value,
        "schedule_id": run.schedule_id,
        "scheduled_for": _iso(run.scheduled_for),
        "selection": run.selection.to_json(),
        "endpoints_total": run.endpoints_total,
        "endpoints_done": run.endpoints_done,
        "probes": run.probes_total,
        "probe_errors": run.probe_errors,
        "findings": run.findings_total,
        "items_total": run.items_total,
        "items_remaining": run.items_remaining,
        "eta_seconds": eta,
        "error": run.error,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
    }


def schedule_json(s: ScheduleRecord) -> dict[str, Any]:
    """A schedule for the CLI's JSON output."""
    return {
        "id": s.id,
        "name": s.name,
        "cron": s.cron,
        "timezone": s.timezone,
        "selection": s.selection.to_json(),
        "enabled": s.enabled,
        "jitter_seconds": s.jitter_seconds,
        "last_planned_for": _iso(s.last_planned_for),
    }


def _print(docs: list[dict[str, Any]], fmt: str, columns: tuple[str, ...]) -> None:
    if fmt == "json":
        print(json.dumps(docs if len(docs) != 1 or columns == () else docs[0], indent=2))
        return
    rows = [[str(d.get(c) if d.get(c) is not None else "-") for c in columns] for d in docs]
    widths = [
        max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)
    ]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


_RUN_COLUMNS = (
    "id",
    "status",
    "trigger",
    "endpoints_done",
    "endpoints_total",
    "items_remaining",
    "findings",
    "eta_seconds",
    "created_at",
)
_SCHEDULE_COLUMNS = ("id", "name", "cron", "timezone", "enabled", "last_planned_for")


def _stale(settings: Settings) -> float:
    return max(settings.lease_seconds, 3 * settings.heartbeat_seconds)


def _runs_list(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.session() as s, s.begin():
            page = await runs.list_runs(
                s, limit=args.limit, status=None if args.status is None else RunStatus(args.status)
            )
        docs = [run_json(r) for r in page.items]
        if args.format == "json":
            print(json.dumps(docs, indent=2))
        else:
            _print(docs, "table", _RUN_COLUMNS)
        return EXIT_OK

    return run_with_database(settings, run)


def _runs_show(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.session() as s, s.begin():
            record = await runs.get_run(s, args.id)
            progress = await work.run_progress(s, record, stale_after=_stale(settings))
        doc = run_json(record, progress.eta_seconds)
        doc["items_dead"] = progress.items_dead
        doc["live_workers"] = progress.live_workers
        if args.format == "json":
            print(json.dumps(doc, indent=2))
        else:
            width = max(len(k) for k in doc)
            for key, value in doc.items():
                print(f"{key.ljust(width)}  {'-' if value is None else value}")
        return EXIT_OK

    return run_with_database(settings, run)


def _runs_start(args: argparse.Namespace, settings: Settings) -> int:
    if args.endpoint_ids and (args.tag or args.owner):
        raise InputError("give either --endpoint or --tag/--owner, not both")
    selection = RunSelection(
        endpoint_ids=tuple(args.endpoint_ids) if args.endpoint_ids else None,
        tag=args.tag,
        owner=args.owner,
    )

    async def run(db: Database) -> int:
        async with db.session() as s, s.begin():
            record = await work.plan_run(
                s,
                selection=selection,
                trigger=RunTrigger.MANUAL,
                requested_by=ACTOR,
                settings=work.PlanSettings(settings.batch_size, settings.max_attempts),
            )
            assert record is not None
            await audit.record(
                s,
                actor=ACTOR,
                action="scan.create",
                target_type="scan",
                target_id=str(record.id),
                detail={"selection": selection.to_json()},
            )
        if args.format == "json":
            print(json.dumps(run_json(record), indent=2))
        else:
            print(
                f"run {record.id} planned: {record.endpoints_total} endpoint(s) in "
                f"{record.items_total} work item(s); a worker (serve or worker) will run it"
            )
        return EXIT_OK

    return run_with_database(settings, run)


def _runs_cancel(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.session() as s, s.begin():
            record = await work.cancel_run(s, args.id, reason="cancelled from the CLI")
            await audit.record(
                s, actor=ACTOR, action="scan.cancel", target_type="scan", target_id=str(args.id)
            )
        if args.format == "json":
            print(json.dumps(run_json(record), indent=2))
        else:
            print(f"run {record.id} cancelled")
        return EXIT_OK

    return run_with_database(settings, run)


def _selection(args: argparse.Namespace) -> RunSelection | None:
    if args.all:
        return RunSelection()
    if args.tag is None and args.owner is None:
        return None
    return RunSelection(tag=args.tag, owner=args.owner)


def _schedules_list(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.session() as s, s.begin():
            items = await schedules.list_schedules(s)
        docs = [schedule_json(i) for i in items]
        if args.format == "json":
            print(json.dumps(docs, indent=2))
        else:
            _print(docs, "table", _SCHEDULE_COLUMNS)
        return EXIT_OK

    return run_with_database(settings, run)


def _show_schedule(record: ScheduleRecord, fmt: str) -> None:
    from datetime import UTC, datetime

    from scanner.core.cron import upcoming_ticks

    doc = schedule_json(record)
    try:
        ticks = upcoming_ticks(record.cron, record.timezone, datetime.now(UTC), 3)
    except InputError:  # a line stored before cron(8) rules that no longer parses
        ticks = ()
    doc["next_ticks"] = [t.isoformat() for t in ticks]
    if fmt == "json":
        print(json.dumps(doc, indent=2))
        return
    width = max(len(k) for k in doc)
    for key, value in doc.items():
        print(f"{key.ljust(width)}  {value}")


def _schedules_show(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.session() as s, s.begin():
            record = await schedules.get_schedule(s, args.id)
        _show_schedule(record, args.format)
        return EXIT_OK

    return run_with_database(settings, run)


def _schedules_add(args: argparse.Namespace, settings: Settings) -> int:
    data = ScheduleInput(
        name=args.name,
        cron=args.cron,
        timezone=args.timezone,
        selection=_selection(args),
        enabled=args.enabled,
        jitter_seconds=None if args.jitter in (None, -1) else args.jitter,
        reset_jitter=args.jitter == -1,
    )

    async def run(db: Database) -> int:
        async with db.session() as s, s.begin():
            record = await schedules.create_schedule(s, data)
            await audit.record(
                s,
                actor=ACTOR,
                action="schedule.create",
                target_type="schedule",
                target_id=str(record.id),
                detail=schedule_json(record),
            )
        _show_schedule(record, args.format)
        return EXIT_OK

    return run_with_database(settings, run)


def _schedules_update(args: argparse.Namespace, settings: Settings) -> int:
    data = ScheduleInput(
        name=args.name,
        cron=args.cron,
        timezone=args.timezone,
        selection=_selection(args),
        enabled=args.enabled,
        jitter_seconds=None if args.jitter in (None, -1) else args.jitter,
        reset_jitter=args.jitter == -1,
    )

    async def run(db: Database) -> int:
        async with db.session() as s, s.begin():
            record = await schedules.update_schedule(s, args.id, data)
            await audit.record(
                s,
                actor=ACTOR,
                action="schedule.update",
                target_type="schedule",
                target_id=str(record.id),
                detail=schedule_json(record),
            )
        _show_schedule(record, args.format)
        return EXIT_OK

    return run_with_database(settings, run)


def _schedules_remove(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.session() as s, s.begin():
            await schedules.delete_schedule(s, args.id)
            await audit.record(
                s,
                actor=ACTOR,
                action="schedule.delete",
                target_type="schedule",
                target_id=str(args.id),
            )
        print(f"schedule {args.id} removed")
        return EXIT_OK

    return run_with_database(settings, run)


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    return asyncio.run(_run_worker(settings))


async def _run_worker(settings: Settings) -> int:
    from scanner.engine import scan_options
    from scanner.hostnames import default_public_suffixes
    from scanner.runtime import run_components
    from scanner.worker import Worker

    async with open_database(settings) as db:
        worker = Worker(db, settings, scan_options(settings), default_public_suffixes())
        await worker.register()
        from scanner.alerts.dispatcher import Dispatcher  # issue 5: the alert outbox

        await run_components([worker, Dispatcher.from_settings(db, settings)])
    return EXIT_OK


# -- runs report (issue 6) -------------------------------------------------------------


def _register_report(sub: argparse._SubParsersAction[Any]) -> None:
    from scanner.reports.stored import ReportFormat

    p = sub.add_parser(
        "report",
        help="a finished run's report: json, sarif, junit or csv",
        description=(
            "Write the report `cors-scanner scan --format ...` would have written, for a "
            "stored run. Exit codes as for scan: 0 nothing at or above --fail-on, 1 findings "
            "at or above it, 3 the run probed nothing, 2 unknown or unfinished run."
        ),
    )
    p.add_argument("id", type=int, metavar="RUN_ID")
    p.add_argument("--format", choices=[f.value for f in ReportFormat], default="json")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument(
        "--fail-on",
        default="high",
        metavar="SEVERITY",
        help="exit 1 when a finding is at or above this (default high)",
    )
    p.set_defaults(handler=_runs_report)


def _runs_report(args: argparse.Namespace, settings: Settings) -> int:
    from scanner.cli.scan import exit_code
    from scanner.core.severity import Severity
    from scanner.reports.stored import ReportFormat, StoredRun, load_run, render_run

    fmt = ReportFormat(args.format)
    fail_on = Severity.parse(args.fail_on)
    loaded: list[StoredRun] = []

    async def load(db: Database) -> int:
        async with db.session() as s, s.begin():
            loaded.append(await load_run(s, args.id))
        return EXIT_OK

    run_with_database(settings, load)
    text = render_run(loaded[0], fmt, fail_on)
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            # newline="": CSV's CRLF line ends are written as rendered.
            with open(args.output, "w", encoding="utf-8", newline="") as stream:
                stream.write(text)
        except OSError as exc:
            raise InputError(f"{args.output}: cannot write the report ({exc.strerror})") from None
    return exit_code(list(loaded[0].assessments), fail_on, incomplete_fails=False)
