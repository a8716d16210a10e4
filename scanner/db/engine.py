"""The database handle: engine, sessions, schema status and migrations.

Two backends, one code path: SQLite through aiosqlite (the embedded default)
and PostgreSQL through asyncpg. On SQLite we check the library version
(``RETURNING`` needs 3.35), switch on WAL, foreign keys and a busy timeout on
every connection, and take over ``BEGIN`` so every transaction of
:meth:`Database.session` is ``BEGIN IMMEDIATE``: SQLite serializes writers,
and a transaction that reads then writes must hold the write lock from the
start or it can fail with "database is locked" however long the busy timeout
is. :meth:`Database.read_session` transactions begin DEFERRED instead: with
WAL they read a snapshot and never wait for (or block) the writer, so token
checks and GETs keep answering while an import or a run commits.

Both engines are created with ``hide_parameters=True``: an error's text (and
so every log line and traceback that shows it) names the statement but never
its parameters, which can be a thousand rows of target headers.

Migrations are Alembic revisions under ``migrations/`` at the repository
root, installed as the ``scanner.migrations`` package; ``Database.upgrade()`` runs them programmatically on this handle's own
engine, so no ``alembic.ini`` or working directory is involved.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from scanner.errors import DatabaseError

MIN_SQLITE_VERSION = (3, 35, 0)  # UPDATE/INSERT ... RETURNING
SQLITE_BUSY_TIMEOUT_MS = 15_000  # how long a writer waits for SQLite's one write lock
CONNECT_TIMEOUT_S = 10.0  # PostgreSQL: fail fast with a clear message instead of hanging

# Execution option marking the read-only session kind (see Database.read_session).
READ_ONLY_OPTION = "scanner_read_only"

_MIGRATION_LOCK = threading.Lock()


# ``migrations/`` at the repository's top ships as the ``scanner.migrations``
# package (pyproject.toml maps it), so a wheel install and an editable
# checkout find the same revisions, whatever the working directory.
def _migrations_dir() -> Path:
    spec = importlib.util.find_spec("scanner.migrations")
    if spec is None or spec.origin is None:  # a broken install: alembic_config() says so
        return Path(__file__).resolve().parent.parent / "migrations"
    return Path(spec.origin).parent


MIGRATIONS_DIR = _migrations_dir()


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """The schema revision of the database (``current``, None if never migrated) and the code."""

    current: str | None
    head: str
    is_current: bool


def alembic_config(url: str | None = None) -> Any:
    """An Alembic ``Config`` pointing at our migrations, independent of the working directory."""
    from alembic.config import Config

    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise DatabaseError(
            f"the migrations directory {MIGRATIONS_DIR} is missing: reinstall cors-scanner"
        )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser treats '%' as interpolation: escape it (URL-encoded passwords).
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@functools.cache
def head_revision() -> str:
    """The newest migration this code ships (read once: readiness checks call this often)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the first revision always exists
        raise DatabaseError("no migrations found")
    return head


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable database URL>"


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the driver (see module docstring and _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            # WAL + NORMAL is durable across application crashes, and a power loss
            # can only lose the last transactions, never corrupt the file.
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN")  # DEFERRED: a reader takes no write lock
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str) -> AsyncEngine:
    """An AsyncEngine for ``url`` with our per-backend settings (no connection is made)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"invalid database URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
            raise DatabaseError(
                f"SQLite {sqlite3.sqlite_version} is too old: cors-scanner needs "
                f"{'.'.join(map(str, MIN_SQLITE_VERSION))} or later (for RETURNING); "
                "upgrade SQLite or use PostgreSQL"
            )
        if parsed.get_driver_name() != "aiosqlite":
            raise DatabaseError(f"use sqlite+aiosqlite:// URLs, not {parsed.drivername}://")
        if parsed.database in (None, "", ":memory:"):
            raise DatabaseError(
                "an in-memory SQLite database is not supported: every connection would see "
                "a different empty database; give a file path"
            )
        folder = Path(parsed.database).expanduser().parent
        if not parsed.database.startswith("file:") and not folder.is_dir():
            raise DatabaseError(
                f"cannot reach the database at {_safe_url(url)}: the folder {folder} does not "
                "exist (create it, or point CORS_SCANNER_DATABASE_URL elsewhere)"
            )
        engine = create_async_engine(parsed, hide_parameters=True)
        _install_sqlite_hooks(engine)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "asyncpg":
            raise DatabaseError(
                f"use postgresql+asyncpg:// URLs, not {parsed.drivername}:// "
                "(cors-scanner is asynchronous)"
            )
        return create_async_engine(
            parsed,
            pool_pre_ping=True,
            hide_parameters=True,
            connect_args={"timeout": CONNECT_TIMEOUT_S},
        )
    raise DatabaseError(
        f"unsupported database {backend!r}: use sqlite+aiosqlite:///path or "
        "postgresql+asyncpg://user@host/db"
    )


class Database:
    """One database: an engine, a session factory, and the schema's migrations.

    Use ``async with db.session() as s, s.begin(): ...`` for a transaction
    (it may write), ``db.read_session()`` the same way for one that only reads.
    Close with ``await db.close()``.
    """

    url: str
    dialect: str

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.dialect = engine.dialect.name
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # The same pool; only how a transaction begins differs (SQLite: DEFERRED).
        self._read_sessions = async_sessionmaker(
            engine.execution_options(**{READ_ONLY_OPTION: True}), expire_on_commit=False
        )

    @classmethod
    async def connect(cls, url: str) -> Database:
        """Open ``url`` and check it answers; ``DatabaseError`` with a clear message otherwise."""
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            await engine.dispose()
            reason = getattr(exc, "orig", None) or exc
            raise DatabaseError(
                f"cannot reach the database at {_safe_url(url)}: {reason}"
            ) from None
        return cls(engine, url)

    def session(self) -> AsyncSession:
        """A new session; it does not touch the database until used."""
        return self._sessions()

    def read_session(self) -> AsyncSession:
        """A new session for transactions that only read (never write in one).

        On SQLite its transactions begin DEFERRED: they read a WAL snapshot
        without waiting for the write lock, however long a writer holds it. A
        write inside one could fail with "database is locked" at once.
        """
        return self._read_sessions()

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    # -- schema -------------------------------------------------------------

    async def schema_status(self) -> SchemaStatus:
        """The revision the database is at and whether it is the code's head."""
        from alembic.runtime.migration import MigrationContext

        def current(conn: Connection) -> str | None:
            return MigrationContext.configure(conn).get_current_revision()

        head = head_revision()
        try:
            async with self.engine.connect() as conn:
                rev = await conn.run_sync(current)
        except (SQLAlchemyError, OSError) as exc:
            raise DatabaseError(f"cannot read the schema version: {exc}") from exc
        return SchemaStatus(current=rev, head=head, is_current=rev == head)

    async def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to ``revision`` (default: the newest)."""
        from alembic import command

        await self._alembic(lambda cfg: command.upgrade(cfg, revision))

    async def downgrade(self, revision: str) -> None:
        """Revert migrations down to ``revision`` (``base`` drops every table)."""
        from alembic import command

        await self._alembic(lambda cfg: command.downgrade(cfg, revision))

    async def ensure_current(self, *, auto_upgrade: bool) -> None:
        """Make sure the schema is the code's head: upgrade it, or say which command to run.

        A database newer than the code is always refused: an older cors-scanner
        would write rows the newer schema does not expect.
        """
        status = await self.schema_status()
        if status.is_current:
            return
        if status.current is not None and not _is_known_revision(status.current):
            raise DatabaseError(
                f"the database schema is at {status.current}, which this cors-scanner does not "
                f"know (its newest is {status.head}): upgrade cors-scanner"
            )
        if auto_upgrade:
            await self.upgrade()
            return
        raise DatabaseError(
            f"schema at {status.current or 'nothing (empty database)'}, code needs "
            f"{status.head}: run `cors-scanner db upgrade`"
        )

    async def run_migrations(self, fn: Callable[[Connection], None]) -> None:
        """Run ``fn`` (Alembic's migration step) on one connection of this engine.

        On SQLite, foreign keys are switched off around the migration: batch
        migrations rebuild a table by copy-and-drop, and dropping a parent
        table with foreign keys on would cascade-delete its children. A
        ``foreign_key_check`` afterwards refuses to finish on a broken schema.
        """
        try:
            async with self.engine.connect() as conn:
                await conn.run_sync(self._migrate_sync, fn)
        except DatabaseError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise DatabaseError(f"migration failed: {getattr(exc, 'orig', None) or exc}") from exc

    def _migrate_sync(self, conn: Connection, fn: Callable[[Connection], None]) -> None:
        if self.dialect != "sqlite":
            fn(conn)
            return
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=OFF")
            fn(conn)
            if conn.in_transaction():
                conn.commit()
            problems = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            conn.rollback()
            if problems:
                raise DatabaseError(f"migration left rows with broken foreign keys: {problems[:5]}")
        finally:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    async def _alembic(self, step: Callable[[Any], None]) -> None:
        config = alembic_config()

        def run(conn: Connection) -> None:
            config.attributes["connection"] = conn
            step(config)

        # Alembic keeps the running migration in module globals (alembic.context), so two
        # migrations in one process must not interleave. Other processes are kept out by
        # the database itself (migrations/env.py).
        await asyncio.to_thread(_MIGRATION_LOCK.acquire)
        try:
            await self.run_migrations(run)
        finally:
            _MIGRATION_LOCK.release()


def _is_known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False
