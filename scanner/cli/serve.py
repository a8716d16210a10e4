"""`cors-scanner serve`: the REST API, the scheduler and a worker, in one process.

Start-up, in order: connect to the database; bring its schema to the code's
(SQLite, the embedded default: migrated automatically; PostgreSQL: refused
with the command to run, since migrating a shared database is an operator's
decision); on an empty token table, create an admin token and print it once; then run
the runtime components (``scanner.runtime``): the API listener, the
scheduler (cron ticks become runs) and a worker (runs' work items get done;
unfinished runs of a previous process resume). Several ``serve``/``worker``
processes may share one PostgreSQL database; on SQLite a second worker
process is refused.

Roles, for deployments that split them: ``--no-worker`` leaves the work to
separate ``cors-scanner worker`` processes (API + scheduler: the usual
``serve`` of a scaled-out installation); ``--no-scheduler`` leaves cron ticks
to another ``serve`` (extra API replicas). Both: the API alone.

SIGINT or SIGTERM stops it gracefully: the listener closes, the worker stops
claiming and releases what it holds back to the queue, the database is
closed, exit code 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import replace
from typing import Any

from aiohttp import web

from scanner.alerts.dispatcher import Dispatcher
from scanner.api.app import create_app, make_runner
from scanner.cli import EXIT_OK
from scanner.db.engine import Database
from scanner.engine import scan_options
from scanner.errors import ConfigError
from scanner.hostnames import default_public_suffixes
from scanner.runtime import Component, run_components
from scanner.scheduler import Scheduler
from scanner.settings import Settings
from scanner.usecases import Context, tokens
from scanner.worker import Worker

log = logging.getLogger("scanner.serve")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the REST API, the scheduler and a worker in one process",
        description=(
            "Serve the REST API on --host/--port (default: CORS_SCANNER_HOST and "
            "CORS_SCANNER_PORT, 127.0.0.1:8080) with the database at "
            "CORS_SCANNER_DATABASE_URL (default: SQLite ./cors-scanner.db). On first start "
            "an admin token is created and printed once. Stop with Ctrl-C or SIGTERM."
        ),
    )
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8080; 0 picks a free one)")
    p.add_argument(
        "--no-worker",
        dest="worker",
        action="store_false",
        help="run no worker here: separate `cors-scanner worker` processes execute the runs",
    )
    p.add_argument(
        "--no-scheduler",
        dest="scheduler",
        action="store_false",
        help="fire no schedules here: another `serve` runs the scheduler (extra API replicas)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The ``serve`` command."""
    if args.port is not None and not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: expected a port number 0-65535")
    settings = replace(
        settings,
        host=args.host if args.host is not None else settings.host,
        port=args.port if args.port is not None else settings.port,
    )
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic announces each of its plugins at INFO on every start: noise to operators.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    return asyncio.run(serve(settings, worker=args.worker, scheduler=args.scheduler))


async def serve(settings: Settings, *, worker: bool = True, scheduler: bool = True) -> int:
    """Run the API (and the scheduler and a worker, unless told not to) until stopped."""
    database = await Database.connect(settings.database_url)
    try:
        await database.ensure_current(auto_upgrade=database.dialect == "sqlite")
        await _first_admin_token(database, settings)
        await _run(settings, database, worker=worker, scheduler=scheduler)
    finally:
        await database.close()
    return EXIT_OK


async def _first_admin_token(database: Database, settings: Settings) -> None:
    made = await tokens.first_admin_token(Context(database, settings), actor="serve")
    if made is None:
        return
    secret = made.secret
    print(
        "No API token existed, so an admin token was created. It is shown only this once: "
        f"store it now.\n\n    {secret}\n\n"
        f"Use it as 'Authorization: Bearer {secret}'; create narrower tokens with "
        "POST /api/v1/tokens or `cors-scanner tokens create`.",
        flush=True,
    )


class ApiServer:
    """The REST API listener as a runtime component."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self._settings = settings
        self._database = database

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until ``stop``; then close the listener."""
        app = create_app(self._settings, database=self._database, embedded_worker=False)
        runner = make_runner(app)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._settings.host, self._settings.port)
            await site.start()
            for host, port in dict.fromkeys((a[0], a[1]) for a in runner.addresses):
                shown = f"[{host}]" if ":" in host else host
                log.info(
                    "cors-scanner API listening on http://%s:%d/ (docs: /api/v1/docs)", shown, port
                )
            await stop.wait()
            log.info("stopping: closing the listener, releasing work in hand")
        finally:
            await runner.cleanup()


async def _run(settings: Settings, database: Database, *, worker: bool, scheduler: bool) -> None:
    components: list[Component] = [ApiServer(settings, database)]
    if scheduler:
        components.append(Scheduler(database, settings))
    if worker:
        in_process = Worker(database, settings, scan_options(settings), default_public_suffixes())
        # The worker registers first: on SQLite a second worker process is refused
        # before anything listens.
        await in_process.register()
        components.append(in_process)
    log.info(
        "roles: API%s%s",
        ", scheduler" if scheduler else "",
        ", worker" if worker else " (no worker here: run `cors-scanner worker`)",
    )
    components.append(Dispatcher.from_settings(database, settings))
    await run_components(components)
    log.info("stopped")
