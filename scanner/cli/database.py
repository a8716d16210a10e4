"""`cors-scanner db upgrade|downgrade|current`, and how every command finds and opens the database.

Where the database is, the same for every command and for ``serve``:
``CORS_SCANNER_DATABASE_URL`` when set, else the SQLite file
``cors-scanner.db`` in the data directory (``CORS_SCANNER_DATA_DIR``, by
default ``$XDG_DATA_HOME/cors-scanner``, i.e.
``~/.local/share/cors-scanner``) — resolved once, by ``Settings.from_env``.

``open_database`` is the one way commands get a ``Database`` (and
``run_use_cases`` the one way they get the use cases' context). Only
``serve`` and ``db upgrade`` may create a SQLite file (``create=True``);
every other command that finds none says which path it looked at and how to
create one, instead of making an empty database that knows nothing. The
schema must be current: on SQLite (the embedded default) an old schema is
upgraded on the spot; on PostgreSQL, where several processes share the
database, it is an error that says to run ``cors-scanner db upgrade`` (exit
code 4).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from scanner.cli import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE
from scanner.cli.output import Output, add_format_flag
from scanner.db.engine import Database
from scanner.errors import ConfigError, DatabaseError
from scanner.settings import DATABASE_FILE, Settings, sqlite_url
from scanner.usecases import Context

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DatabaseLocation:
    """The database every command of this process uses, and how to name it to a person."""

    url: str
    sqlite_path: Path | None  # the file, for SQLite; None for PostgreSQL
    default: bool  # found by the default rule (the data directory), not a URL the user set

    def __str__(self) -> str:
        if self.sqlite_path is not None:
            return f"SQLite file {self.sqlite_path}"
        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except ArgumentError:
            return "<unparsable database URL>"


def database_location(settings: Settings) -> DatabaseLocation:
    """Where ``settings`` put the database; ``ConfigError`` when nothing says (no HOME)."""
    url = settings.database_url
    if url is None:
        raise ConfigError(
            "no database location: HOME and XDG_DATA_HOME are unset, so there is no default "
            "data directory; set CORS_SCANNER_DATA_DIR or CORS_SCANNER_DATABASE_URL"
        )
    default = settings.data_dir is not None and url == sqlite_url(
        os.path.join(settings.data_dir, DATABASE_FILE)
    )
    try:
        parsed = make_url(url)
    except ArgumentError:
        return DatabaseLocation(url, None, default)  # Database.connect names the error
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name.startswith("file:"):
        return DatabaseLocation(url, None, default)
    if name == ":memory:":
        return DatabaseLocation(url, None, default)
    return DatabaseLocation(url, Path(os.path.abspath(os.path.expanduser(name))), default)


def missing_database_message(location: DatabaseLocation) -> str:
    """What a command that finds no database says: where it looked, and how to make one."""
    where = (
        "the default location; CORS_SCANNER_DATA_DIR or CORS_SCANNER_DATABASE_URL choose another"
        if location.default
        else "from CORS_SCANNER_DATABASE_URL"
    )
    return (
        f"no database at {location.sqlite_path} ({where}). Create it with "
        "`cors-scanner db upgrade`, or start `cors-scanner serve`, which creates it"
    )


async def connect(settings: Settings, *, create: bool = False) -> Database:
    """Connect to the database of ``settings``. A SQLite file that does not exist is created
    (its folder too, private to the user) only with ``create``; otherwise ``DatabaseError``
    naming the path it looked at."""
    location = database_location(settings)
    path = location.sqlite_path
    if path is not None:
        if create:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        elif not path.exists():
            raise DatabaseError(missing_database_message(location))
    return await Database.connect(location.url)


@asynccontextmanager
async def open_database(
    settings: Settings, *, check_schema: bool = True, create: bool = False
) -> AsyncIterator[Database]:
    """A connected Database whose schema is current (see module docstring); closed on exit."""
    db = await connect(settings, create=create)
    try:
        if check_schema:
            await db.ensure_current(auto_upgrade=db.dialect == "sqlite")
        yield db
    finally:
        await db.close()


def run_with_database(
    settings: Settings,
    work: Callable[[Database], Awaitable[int]],
    *,
    check_schema: bool = True,
    create: bool = False,
) -> int:
    """Run ``work`` with an open database in a fresh event loop; its exit code."""

    async def main() -> int:
        async with open_database(settings, check_schema=check_schema, create=create) as db:
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
            "Manage the schema of the database: CORS_SCANNER_DATABASE_URL, or by default the "
            "SQLite file cors-scanner.db in the data directory (CORS_SCANNER_DATA_DIR, default "
            "~/.local/share/cors-scanner). `db upgrade` creates a missing SQLite file; `db "
            "current` shows which database it is. Exit code 4: database unreachable or missing."
        ),
    )
    sub = p.add_subparsers(dest="db_command", metavar="COMMAND", required=True)

    up = sub.add_parser(
        "upgrade", help="apply migrations (to the newest by default); creates a missing SQLite file"
    )
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
    add_format_flag(cur)
    cur.set_defaults(handler=_current)


def _upgrade(args: argparse.Namespace, settings: Settings) -> int:
    location = database_location(settings)

    async def work(db: Database) -> int:
        before = (await db.schema_status()).current
        await db.upgrade(args.revision)
        after = await db.schema_status()
        if before == after.current:
            print(f"schema already at {after.current} ({location})")
        else:
            print(f"schema upgraded from {before or 'nothing'} to {after.current} ({location})")
        return EXIT_OK

    return run_with_database(settings, work, check_schema=False, create=True)


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
    location = database_location(settings)

    async def work(db: Database) -> int:
        status = await db.schema_status()
        doc = {
            "database": db.dialect,
            "location": str(location),
            "current": status.current,
            "head": status.head,
            "is_current": status.is_current,
        }
        state = "up to date" if status.is_current else "NOT current: run `cors-scanner db upgrade`"
        pairs = [
            ("database", db.dialect),
            ("location", str(location)),
            ("current", status.current or "nothing (empty database)"),
            ("head", status.head),
            ("status", state),
        ]
        Output(settings).show(args.format, doc, pairs)
        return EXIT_UNAVAILABLE if args.check and not status.is_current else EXIT_OK

    return run_with_database(settings, work, check_schema=False)
