"""`cors-scanner runs …`, `cors-scanner schedules …` and `cors-scanner worker`.

``runs list|show|start|cancel`` follow runs (scans) and their progress/ETA;
``schedules list|add|show|update|remove`` manage cron schedules; ``worker``
runs only a worker (scale-out: start as many as you like against PostgreSQL)
and ``workers`` lists the registered ones. Output is a table by default,
``--format json`` for machines (``scanner.cli.output``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from scanner import eventloop, shapes
from scanner.alerts.dispatcher import Dispatcher
from scanner.cli import EXIT_OK
from scanner.cli.database import database_location, open_database, run_use_cases
from scanner.cli.output import Column, Output, add_format_flag, human_duration, record_pairs
from scanner.cli.paging import add_paging_flags, collect
from scanner.cli.scan import exit_code
from scanner.core.severity import Severity
from scanner.db.runs import RunRecord, RunSelection, RunStatus, RunTrigger
from scanner.db.schedules import ScheduleInput
from scanner.engine import scan_options
from scanner.errors import InputError
from scanner.hostnames import default_public_suffixes
from scanner.reports.stored import ReportFormat, render_run
from scanner.runtime import run_components
from scanner.settings import Settings
from scanner.usecases import Context, runs, schedules
from scanner.usecases.schedules import ScheduleView
from scanner.worker import Worker

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
    ws = subparsers.add_parser(
        "workers",
        help="list the registered worker processes (live or not) and the work they hold",
    )
    add_format_flag(ws)
    ws.set_defaults(handler=_workers_list)


def _run_id(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", type=int, metavar="RUN_ID", help="the run's id (see `runs list`)")


def _schedule_id(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "id", type=int, metavar="SCHEDULE_ID", help="the schedule's id (see `schedules list`)"
    )


def _register_runs(subparsers: argparse._SubParsersAction[Any]) -> None:
    group = subparsers.add_parser("runs", help="list, show, start and cancel runs (scans)")
    sub = group.add_subparsers(dest="runs_command", metavar="COMMAND", required=True)
    p = sub.add_parser("list", help="runs, newest first")
    p.add_argument("--status", choices=[s.value for s in RunStatus], help="only runs in this state")
    add_paging_flags(p, "runs")
    add_format_flag(p)
    p.set_defaults(handler=_runs_list)
    p = sub.add_parser("show", help="one run with progress and ETA")
    _run_id(p)
    add_format_flag(p)
    p.set_defaults(handler=_runs_show)
    p = sub.add_parser("start", help="plan a manual run (workers execute it)")
    p.add_argument("--tag", help="scan the enabled endpoints with this tag")
    p.add_argument("--owner", help="scan the enabled endpoints with this owner")
    p.add_argument(
        "--endpoint",
        type=int,
        action="append",
        dest="endpoint_ids",
        metavar="ID",
        help="scan this endpoint (repeat; default: every enabled endpoint)",
    )
    add_format_flag(p)
    p.set_defaults(handler=_runs_start)
    p = sub.add_parser("cancel", help="cancel a queued or running run")
    _run_id(p)
    add_format_flag(p)
    p.set_defaults(handler=_runs_cancel)
    _register_report(sub)


def _register_schedules(subparsers: argparse._SubParsersAction[Any]) -> None:
    sch = subparsers.add_parser("schedules", help="cron schedules of runs")
    sub = sch.add_subparsers(dest="schedules_command", metavar="COMMAND", required=True)
    p = sub.add_parser("list", help="every schedule")
    add_format_flag(p)
    p.set_defaults(handler=_schedules_list)
    p = sub.add_parser("show", help="one schedule and its next ticks")
    _schedule_id(p)
    add_format_flag(p)
    p.set_defaults(handler=_schedules_show)
    for name in ("add", "update"):
        p = sub.add_parser(name, help=f"{name} a schedule")
        if name == "update":
            _schedule_id(p)
        p.add_argument(
            "--name", required=name == "add", help="what the schedule is called (unique)"
        )
        p.add_argument(
            "--cron",
            required=name == "add",
            help='five fields as cron(8) reads them, e.g. "0 2 * * 1-5" (0/7 = Sunday), or @daily',
        )
        p.add_argument("--timezone", help="IANA name (default UTC)")
        p.add_argument("--tag", help="scan the enabled endpoints with this tag")
        p.add_argument("--owner", help="scan the enabled endpoints with this owner")
        p.add_argument("--all", action="store_true", help="select every enabled endpoint")
        p.add_argument(
            "--jitter",
            type=int,
            metavar="SECONDS",
            help="spread the timer by up to this many seconds (-1: the service default)",
        )
        group = p.add_mutually_exclusive_group()
        group.add_argument(
            "--enable",
            dest="enabled",
            action="store_const",
            const=True,
            help="the schedule fires (the default for a new one)",
        )
        group.add_argument(
            "--disable",
            dest="enabled",
            action="store_const",
            const=False,
            help="the schedule is kept but does not fire",
        )
        add_format_flag(p)
        p.set_defaults(handler=_schedules_add if name == "add" else _schedules_update)
    p = sub.add_parser("remove", help="delete a schedule (its runs stay)")
    _schedule_id(p)
    p.set_defaults(handler=_schedules_remove)


def _schedule_json(view: ScheduleView) -> dict[str, Any]:
    return shapes.schedule_json(view.schedule, view.next_ticks)


_RUN_COLUMNS = (
    Column("ID", "id", align="right"),
    Column("STATUS", "status"),
    Column("TRIGGER", "trigger"),
    Column("SELECTION", lambda d: d["selection"] or "all"),
    Column("ENDPOINTS", lambda d: f"{d['endpoints_done']}/{d['endpoints_total']}", align="right"),
    Column("FINDINGS", "findings", align="right"),
    Column("PROBES", "probes", align="right"),
    Column("ERRORS", "probe_errors", align="right"),
    Column("UNREACHABLE", "unreachable", align="right"),
    Column("ETA", lambda d: human_duration(d["eta_seconds"])),
    Column("CREATED", "created_at"),
    Column("FINISHED", "finished_at"),
)
_SCHEDULE_COLUMNS = (
    Column("ID", "id", align="right"),
    Column("NAME", "name"),
    Column("CRON", "cron"),
    Column("TIMEZONE", "timezone"),
    Column("SELECTION", lambda d: d["selection"] or "all"),
    Column("ENABLED", "enabled"),
    Column("NEXT TICK", lambda d: d["next_ticks"][0] if d["next_ticks"] else None),
    Column("LAST PLANNED", "last_planned_for"),
)
_WORKER_COLUMNS = (
    Column("ID", "id", align="right"),
    Column("HOSTNAME", "hostname"),
    Column("PID", "pid", align="right"),
    Column("LIVE", "live"),
    Column("ITEMS LEASED", "items_leased", align="right"),
    Column("STARTED", "started_at"),
    Column("LAST HEARTBEAT", "last_heartbeat"),
)


def _run_pairs(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    pairs = record_pairs(doc)
    return [
        (k, human_duration(v) if k == "eta seconds" else (v or "all") if k == "selection" else v)
        for k, v in pairs
    ]


def _runs_list(args: argparse.Namespace, settings: Settings) -> int:
    status = None if args.status is None else RunStatus(args.status)

    async def work(ctx: Context) -> tuple[list[RunRecord], str | None]:
        return await collect(
            args,
            settings,
            lambda limit, cursor: runs.list_runs(ctx, status=status, limit=limit, cursor=cursor),
        )

    items, cursor = run_use_cases(settings, work)
    docs = [shapes.run_summary_json(r) for r in items]
    Output(settings).listing(args.format, docs, _RUN_COLUMNS, empty="no runs", next_cursor=cursor)
    return EXIT_OK


def _runs_show(args: argparse.Namespace, settings: Settings) -> int:
    view = run_use_cases(settings, lambda ctx: runs.show_run(ctx, args.id))
    doc = shapes.run_summary_json(view.run, view.progress.eta_seconds)
    doc["items_dead"] = view.progress.items_dead
    doc["live_workers"] = view.progress.live_workers
    Output(settings).show(args.format, doc, _run_pairs(doc))
    return EXIT_OK


def _runs_start(args: argparse.Namespace, settings: Settings) -> int:
    if args.endpoint_ids and (args.tag or args.owner):
        raise InputError("give either --endpoint or --tag/--owner, not both")
    selection = RunSelection(
        endpoint_ids=tuple(args.endpoint_ids) if args.endpoint_ids else None,
        tag=args.tag,
        owner=args.owner,
    )
    record = run_use_cases(
        settings,
        lambda ctx: runs.start_run(
            ctx, actor=ACTOR, selection=selection, trigger=RunTrigger.MANUAL
        ),
    )
    out = Output(settings)
    if args.format == "json":
        out.json(shapes.run_summary_json(record))
    else:
        out.line(
            f"run {record.id} planned: {record.endpoints_total} endpoint(s) in "
            f"{record.items_total} work item(s); a worker (serve or worker) will run it"
        )
    return EXIT_OK


def _runs_cancel(args: argparse.Namespace, settings: Settings) -> int:
    record = run_use_cases(settings, lambda ctx: runs.cancel_run(ctx, args.id, actor=ACTOR))
    out = Output(settings)
    if args.format == "json":
        out.json(shapes.run_summary_json(record))
    else:
        out.line(f"run {record.id} cancelled")
    return EXIT_OK


def _workers_list(args: argparse.Namespace, settings: Settings) -> int:
    docs = [shapes.worker_json(w) for w in run_use_cases(settings, runs.list_workers)]
    Output(settings).listing(
        args.format, docs, _WORKER_COLUMNS, empty="no worker has registered yet"
    )
    return EXIT_OK


def _selection(args: argparse.Namespace) -> RunSelection | None:
    if args.all:
        return RunSelection()
    if args.tag is None and args.owner is None:
        return None
    return RunSelection(tag=args.tag, owner=args.owner)


def _schedules_list(args: argparse.Namespace, settings: Settings) -> int:
    page = run_use_cases(settings, lambda ctx: schedules.list_schedules(ctx))
    docs = [_schedule_json(v) for v in page.items]
    Output(settings).listing(args.format, docs, _SCHEDULE_COLUMNS, empty="no schedules")
    return EXIT_OK


def _show_schedule(settings: Settings, view: ScheduleView, fmt: str) -> None:
    doc = _schedule_json(view)
    pairs = [(k, (v or "all") if k == "selection" else v) for k, v in record_pairs(doc)]
    Output(settings).show(fmt, doc, pairs)


def _schedules_show(args: argparse.Namespace, settings: Settings) -> int:
    view = run_use_cases(settings, lambda ctx: schedules.get_schedule(ctx, args.id))
    _show_schedule(settings, view, args.format)
    return EXIT_OK


def _schedule_input(args: argparse.Namespace) -> ScheduleInput:
    return ScheduleInput(
        name=args.name,
        cron=args.cron,
        timezone=args.timezone,
        selection=_selection(args),
        enabled=args.enabled,
        jitter_seconds=None if args.jitter in (None, -1) else args.jitter,
        reset_jitter=args.jitter == -1,
    )


def _schedules_add(args: argparse.Namespace, settings: Settings) -> int:
    data = _schedule_input(args)
    view = run_use_cases(settings, lambda ctx: schedules.create_schedule(ctx, data, actor=ACTOR))
    _show_schedule(settings, view, args.format)
    return EXIT_OK


def _schedules_update(args: argparse.Namespace, settings: Settings) -> int:
    data = _schedule_input(args)
    view = run_use_cases(
        settings, lambda ctx: schedules.update_schedule(ctx, args.id, data, actor=ACTOR)
    )
    _show_schedule(settings, view, args.format)
    return EXIT_OK


def _schedules_remove(args: argparse.Namespace, settings: Settings) -> int:
    run_use_cases(settings, lambda ctx: schedules.delete_schedule(ctx, args.id, actor=ACTOR))
    Output(settings).line(f"schedule {args.id} removed")
    return EXIT_OK


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # The loop `scan` runs on (uvloop, a quieter collector): a worker probes as a scan does.
    return eventloop.run(_run_worker(settings))


async def _run_worker(settings: Settings) -> int:
    logging.getLogger("scanner.worker").info("database: %s", database_location(settings))
    async with open_database(settings) as db:
        worker = Worker(db, settings, scan_options(settings), default_public_suffixes())
        await worker.register()
        await run_components([worker, Dispatcher.from_settings(db, settings)])
    return EXIT_OK


# -- runs report (issue 6) -------------------------------------------------------------


def _register_report(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "report",
        help="a finished run's report: json, sarif, junit or csv",
        description=(
            "Write the report `cors-scanner scan --format ...` would have written, for a "
            "stored run. Exit codes as for scan: 0 nothing at or above --fail-on, 1 findings "
            "at or above it, 3 the run probed nothing, 2 unknown or unfinished run."
        ),
    )
    p.add_argument("id", type=int, metavar="RUN_ID", help="the run's id (see `runs list`)")
    p.add_argument(
        "--format",
        choices=[f.value for f in ReportFormat],
        default="json",
        help="json (docs/scan-json.md, the default), sarif, junit or csv",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument(
        "--fail-on",
        default="high",
        metavar="SEVERITY",
        help="exit 1 when a finding is at or above this (default high)",
    )
    p.set_defaults(handler=_runs_report)


def _runs_report(args: argparse.Namespace, settings: Settings) -> int:
    fmt = ReportFormat(args.format)
    fail_on = Severity.parse(args.fail_on)
    stored = run_use_cases(settings, lambda ctx: runs.load_report(ctx, args.id))
    text = render_run(stored, fmt, fail_on)
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            # newline="": CSV's CRLF line ends are written as rendered.
            with open(args.output, "w", encoding="utf-8", newline="") as stream:
                stream.write(text)
        except OSError as exc:
            raise InputError(f"{args.output}: cannot write the report ({exc.strerror})") from None
    return exit_code(list(stored.assessments), fail_on, incomplete_fails=False)
