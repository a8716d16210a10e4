"""`cors-scanner db upgrade|downgrade|current`, and how every command opens the database.

``open_database`` is the one way commands get a ``Database`` (and
``run_use_cases`` the one way they get the use cases' context): it connects to
``settings.database_url`` and makes sure the schema is current. On SQLite
(the embedded default) an old schema is upgraded on the spot; on PostgreSQL,
where several processes share the database, it is an error that says to run
``cors-scanner db upgrade`` (exit code 4).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from scanner.cli import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE
from scanner.db.engine import Database
from scanner.settings import Settings
from scanner.usecases import Context

T = TypeVar("T")


@asynccontextmanager
async def open_database(
    settings: Settings, *, check_schema: bool = True
) -> AsyncIterator[Database]:
    """A connected Database whose schema is current (see module docstring); closed on exit."""
    db = await Database.connect(settings.database_url)
    try:
        if check_schema:
            await db.ensure_current(auto_upgrade=db.dialect == "sqlite")
        yield db
    finally:
        await db.close()


def run_with_database(
    settings: Settings, work: Callable[[Database], Awaitable[int]], *, check_schema: bool = True
) -> int:
    """Run ``work`` with an open database in a fresh event loop; its exit code."""

    async def main() -> int:
        async with open_database(settings, check_schema=check_schema) as db:
            return await work(db)

    return asyncio.run(main())


def run_use_cases(settings: Settings, work: Callable[[Context], Awaitable[T]]) -> T:
    """Run ``work`` against the use cases' context (an open, current database) in a fresh
    event loop; what it returns."""

    async def main() -> T:
        async with open_database(settings) as db:
            return await work(Context(db, settings))

    return asyncio.run(main())


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "db",
        help="migrate the database schema (upgrade, downgrade, current)",
        description=(
            "Manage the schema of the database named by CORS_SCANNER_DATABASE_URL "
            "(default: SQLite file ./cors-scanner.db). Exit code 4: database unreachable."
        ),
    )
    sub = p.add_subparsers(dest="db_command", metavar="COMMAND", required=True)

    up = sub.add_parser("upgrade", help="apply migrations (to the newest by default)")
    up.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    up.set_defaults(handler=_upgrade)

    down = sub.add_parser(
        "downgrade",
        help="revert migrations (may drop tables and their data)",
        description="Revert migrations down to REVISION; 'base' removes every table.",
    )
    down.add_argument("revision", help="target revision, e.g. base or 0001")
    down.add_argument("--yes", action="store_true", help="confirm: a downgrade can destroy data")
    down.set_defaults(handler=_downgrade)

    cur = sub.add_parser("current", help="show the schema revision and whether it is current")
    cur.add_argument(
        "--check", action="store_true", help="exit with code 4 when the schema is not current"
    )
    cur.add_argument("--format", choices=("table", "json"), default="table")
    cur.set_defaults(handler=_current)


def _upgrade(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> int:
        before = (await db.schema_status()).current
        await db.upgrade(args.revision)
        after = await db.schema_status()
        if before == after.current:
            print(f"schema already at {after.current}")
        else:
            print(f"schema upgraded from {before or 'nothing'} to {after.current}")
        return EXIT_OK

    return run_with_database(settings, work, check_schema=False)


def _downgrade(args: argparse.Namespace, settings: Settings) -> int:
    if not args.yes:
        print(
            "cors-scanner: a downgrade can drop tables and the data in them; "
            "pass --yes to go ahead",
            file=sys.stderr,
        )
        return EXIT_USAGE

    async def work(db: Database) -> int:
        before = (await db.schema_status()).current
        await db.downgrade(args.revision)
        after = await db.schema_status()
        print(f"schema downgraded from {before or 'nothing'} to {after.current or 'nothing'}")
        return EXIT_OK

    return run_with_database(settings, work, check_schema=False)


def _current(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> int:
        status = await db.schema_status()
        if args.format == "json":
            doc = {
                "database": db.dialect,
                "current": status.current,
                "head": status.head,
                "is_current": status.is_current,
            }
            print(json.dumps(doc))
        else:
            state = (
                "up to date" if status.is_current else "NOT current: run `cors-scanner db upgrade`"
            )
            print(f"database: {db.dialect}")
            print(f"current:  {status.current or 'nothing (empty database)'}")
            print(f"head:     {status.head}")
            print(f"status:   {state}")
        return EXIT_UNAVAILABLE if args.check and not status.is_current else EXIT_OK

    return run_with_database(settings, work, check_schema=False)
