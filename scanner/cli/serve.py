"""`cors-scanner serve`: the REST API and its in-process scans, in one process.

Start-up, in order: connect to the database; bring its schema to the code's
(SQLite, the embedded default: migrated automatically; PostgreSQL: refused
with the command to run, since migrating a shared database is an operator's
decision); on an empty token table, create an admin token and print it once;
on SQLite, mark scans a previous process left unfinished as failed (one
SQLite file serves one process, so nobody else is running them); then listen
and log the URL.

SIGINT or SIGTERM stops it gracefully: the listener closes, running scans are
cancelled and recorded as cancelled, the database is closed, exit code 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import replace
from typing import Any

from aiohttp import web

from scanner.cli import EXIT_OK
from scanner.db.engine import Database
from scanner.settings import Settings

log = logging.getLogger("scanner.serve")

FIRST_TOKEN_NAME = "admin"  # noqa: S105 - a name, not a secret


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the REST API (scans run inside the server)",
        description=(
            "Serve the REST API on --host/--port (default: CORS_SCANNER_HOST and "
            "CORS_SCANNER_PORT, 127.0.0.1:8080) with the database at "
            "CORS_SCANNER_DATABASE_URL (default: SQLite ./cors-scanner.db). On first start "
            "an admin token is created and printed once. Stop with Ctrl-C or SIGTERM."
        ),
    )
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8080; 0 picks a free one)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The ``serve`` command."""
    if args.port is not None and not 0 <= args.port <= 65535:
        from scanner.errors import ConfigError

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
    return asyncio.run(serve(settings))


async def serve(settings: Settings) -> int:
    """Run the API until SIGINT/SIGTERM; the exit code."""
    database = await Database.connect(settings.database_url)
    try:
        await database.ensure_current(auto_upgrade=database.dialect == "sqlite")
        await _first_admin_token(database)
        if database.dialect == "sqlite":
            await _fail_interrupted_scans(database)
        await _listen(settings, database)
    finally:
        await database.close()
    return EXIT_OK


async def _first_admin_token(database: Database) -> None:
    from scanner.db import audit, tokens

    async with database.session() as session, session.begin():
        if await tokens.count_active_tokens(session) > 0:
            return
        record, secret = await tokens.create_token(
            session, FIRST_TOKEN_NAME, [tokens.Scope.ADMIN], created_by="serve"
        )
        await audit.record(
            session,
            actor="cli",
            action="token.create",
            target_type="token",
            target_id=str(record.id),
            detail={"name": record.name, "scopes": ["admin"], "reason": "first start"},
        )
    print(
        "No API token existed, so an admin token was created. It is shown only this once: "
        f"store it now.\n\n    {secret}\n\n"
        f"Use it as 'Authorization: Bearer {secret}'; create narrower tokens with "
        "POST /api/v1/tokens or `cors-scanner tokens create`.",
        flush=True,
    )


async def _fail_interrupted_scans(database: Database) -> None:
    from scanner.db import scans

    async with database.session() as session, session.begin():
        count = await scans.fail_unfinished_scans(
            session, reason="interrupted: the server stopped before the scan finished"
        )
    if count:
        log.warning("%d scan(s) left unfinished by a previous run were marked failed", count)


async def _listen(settings: Settings, database: Database) -> None:
    from scanner.api.app import create_app, make_runner

    runner = make_runner(create_app(settings, database=database))
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        for host, port in dict.fromkeys((a[0], a[1]) for a in runner.addresses):
            shown = f"[{host}]" if ":" in host else host
            log.info(
                "cors-scanner API listening on http://%s:%d/ (docs: /api/v1/docs)", shown, port
            )
        await stop.wait()
        log.info("stopping: closing the listener and cancelling running scans")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
    log.info("stopped")
