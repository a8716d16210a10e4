"""`cors-scanner serve`: the REST API, the scheduler and a worker, in one process.

Start-up, in order: connect to the database, saying which one (a SQLite file
is created when missing: ``scanner.cli.database``); bring its schema to the
code's (SQLite, the embedded default: migrated automatically; PostgreSQL:
refused with the command to run, since migrating a shared database is an
operator's decision); on an empty token table, create an admin token and hand
it over once (below); then run
the runtime components (``scanner.runtime``): the API listener, the
scheduler (cron ticks become runs) and a worker (runs' work items get done;
unfinished runs of a previous process resume). Several ``serve``/``worker``
processes may share one PostgreSQL database; on SQLite a second worker
process is refused.

Roles, for deployments that split them: ``--no-worker`` leaves the work to
separate ``cors-scanner worker`` processes (API + scheduler: the usual
``serve`` of a scaled-out installation); ``--no-scheduler`` leaves cron ticks
to another ``serve`` (extra API replicas). Both: the API alone.

The first admin token is a secret, so it never goes into a log line: it is
written to ``--token-file`` (``CORS_SCANNER_TOKEN_FILE``, mode 0600) when one is
given, else printed on standard error when that is a terminal. With neither
(a container, a unit whose stderr is the journal) no token is minted, and a
warning says how to get one. A token table whose every token was revoked is
left as it is on a restart (no new admin secret appears because one was
revoked); the warning names ``cors-scanner tokens create NAME --scope admin``.

SIGINT or SIGTERM stops it gracefully: the listener closes, the worker stops
claiming and releases what it holds back to the queue, the database is
closed, exit code 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from dataclasses import replace
from typing import Any

from aiohttp import web

from scanner import eventloop
from scanner.alerts.dispatcher import Dispatcher
from scanner.api.app import create_app, make_runner
from scanner.api.connections import open_file_limit, raise_open_file_limit
from scanner.cli import EXIT_OK
from scanner.cli.database import connect, database_location
from scanner.db.engine import Database
from scanner.db.transient import Outage, retry
from scanner.engine import scan_options
from scanner.errors import ConfigError
from scanner.hostnames import default_public_suffixes
from scanner.runtime import Component, run_components
from scanner.scheduler import Scheduler
from scanner.settings import Settings
from scanner.usecases import Context, tokens
from scanner.usecases.tokens import TokenTable
from scanner.worker import Worker

log = logging.getLogger("scanner.serve")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the REST API, the scheduler and a worker in one process",
        description=(
            "Serve the REST API on --host/--port (default: CORS_SCANNER_HOST and "
            "CORS_SCANNER_PORT, 127.0.0.1:8080) with the database at "
            "CORS_SCANNER_DATABASE_URL (default: the SQLite file cors-scanner.db in the data "
            "directory, CORS_SCANNER_DATA_DIR or ~/.local/share/cors-scanner; created when "
            "missing). The database used is logged at start. On a first start (no token at "
            "all) an admin token is created and shown once: on the terminal, or written to "
            "--token-file. Stop with Ctrl-C or SIGTERM."
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
    p.add_argument(
        "--token-file",
        metavar="FILE",
        help="on a first start, write the admin token here (mode 0600) instead of the "
        "terminal (default: CORS_SCANNER_TOKEN_FILE)",
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
        token_file=(
            os.path.abspath(os.path.expanduser(args.token_file))
            if args.token_file is not None
            else settings.token_file
        ),
    )
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic announces each of its plugins at INFO on every start: noise to operators.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # The quieter collector `scan` and `worker` run with, on asyncio's own loop: the
    # accept-exhaustion guard (scanner.api.connections) is built on how that loop
    # reports EMFILE, which uvloop does not.
    return eventloop.run(
        serve(settings, worker=args.worker, scheduler=args.scheduler), use_uvloop=False
    )


async def serve(settings: Settings, *, worker: bool = True, scheduler: bool = True) -> int:
    """Run the API (and the scheduler and a worker, unless told not to) until stopped."""
    log.info("database: %s", database_location(settings))
    # Each API connection is a descriptor: take the whole allowance the operator gave
    # (LimitNOFILE / ulimit -Hn) before the connection budget is derived from it.
    raise_open_file_limit()
    database = await connect(settings, create=True)
    try:
        # The database answered once: a connection lost now (a restart, a failover)
        # is waited out for a while rather than ending the start.
        startup = Outage("serve start-up", log)
        await retry(
            lambda: database.ensure_current(auto_upgrade=database.dialect == "sqlite"),
            startup,
            give_up_after=STARTUP_PATIENCE_S,
        )
        await retry(
            lambda: _first_admin_token(database, settings),
            startup,
            give_up_after=STARTUP_PATIENCE_S,
        )
        await _run(settings, database, worker=worker, scheduler=scheduler)
    finally:
        await database.close()
    return EXIT_OK


STARTUP_PATIENCE_S = 60.0  # seconds of transient database errors a start waits out
_MINT_BY_HAND = "cors-scanner tokens create NAME --scope admin"


async def _first_admin_token(database: Database, settings: Settings) -> None:
    """Mint and hand over an admin token on an empty token table (module docstring)."""
    ctx = Context(database, settings)
    terminal = _is_terminal(sys.stderr)
    start = await tokens.first_admin_token(ctx, actor="serve", mint=False)
    if start.table is TokenTable.ALL_REVOKED:
        log.warning(
            "every API token is revoked, so the API accepts none; a restart does not mint a "
            "new admin token. Mint one by hand: %s",
            _MINT_BY_HAND,
        )
        return
    if start.table is not TokenTable.EMPTY:
        return
    if settings.token_file is None and not terminal:
        log.warning(
            "no API token exists, and none was created: standard error is not a terminal, and "
            "a secret does not belong in a log. Start serve with --token-file FILE "
            "(CORS_SCANNER_TOKEN_FILE) to have one written there (mode 0600), or mint one: %s",
            _MINT_BY_HAND,
        )
        return
    # Open the file before minting: a token whose secret cannot be handed over is useless.
    fd = _open_token_file(settings.token_file) if settings.token_file is not None else None
    try:
        made = (await tokens.first_admin_token(ctx, actor="serve")).token
        if made is None:  # another process minted one in between
            return
        if fd is not None:
            os.write(fd, f"{made.secret}\n".encode())
            log.info(
                "no API token existed: an admin token (id %d) was written to %s (mode 0600); "
                "create narrower ones with `cors-scanner tokens create`",
                made.token.id,
                settings.token_file,
            )
            return
        print(
            "No API token existed, so an admin token was created. It is shown only this once: "
            f"store it now.\n\n    {made.secret}\n\n"
            f"Use it as 'Authorization: Bearer {made.secret}'; create narrower tokens with "
            "POST /api/v1/tokens or `cors-scanner tokens create`.",
            file=sys.stderr,
            flush=True,
        )
    finally:
        if fd is not None:
            os.close(fd)


def _open_token_file(path: str) -> int:
    """``path`` opened for writing, owner-only (0600) whatever it was before; never through a
    symbolic link. ``ConfigError`` naming the path when it cannot be written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        os.fchmod(fd, 0o600)
    except OSError as exc:
        raise ConfigError(
            f"--token-file {path}: cannot write the admin token there ({exc.strerror})"
        ) from None
    return fd


def _is_terminal(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False


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
        limits = runner.guard.limits
        log.info(
            "API connections: at most %d open, %g s to send a request head, %g s idle "
            "keep-alive (open-file limit %s)",
            limits.max_connections,
            limits.header_timeout,
            limits.keepalive_timeout,
            open_file_limit() or "unlimited",
        )
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
