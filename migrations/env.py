"""Alembic environment for cors-scanner (async engines, SQLite batch mode).

Two ways in:
- ``Database.upgrade()`` / ``cors-scanner db ...`` pass an open connection in
  ``config.attributes["connection"]``: we migrate on it.
- ``alembic -c alembic.ini ...`` by hand: we open the database named by
  ``-x url=...`` or ``CORS_SCANNER_DATABASE_URL`` (the same default as the
  service) with the service's own engine settings.
"""

from __future__ import annotations

import asyncio
import logging.config
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from scanner.db.engine import Database
from scanner.db.tables import UTCDateTime, metadata
from scanner.settings import Settings

config = context.config


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    dialect = connection.dialect.name if connection is not None else (url or "").split(":")[0]
    sqlite = dialect.startswith("sqlite")
    context.configure(
        connection=connection,
        url=url,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: rebuild tables by copy ("batch" mode).
        render_as_batch=sqlite,
        # We emit BEGIN ourselves on SQLite (engine.py), so its DDL is transactional
        # and a failed migration leaves the previous schema intact.
        transactional_ddl=True,
        compare_type=True,
        render_item=_render_item,
    )


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render our column types as plain SQLAlchemy ones: a revision must not import app code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


# Any constant: every cors-scanner process migrating one PostgreSQL database takes this lock.
_MIGRATION_LOCK = 0x636F7273  # "cors"


def _migrate(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two `db upgrade`s at once (or two services starting) would both apply the same
            # revision; the lock makes the second wait, then find nothing left to do.
            # SQLite needs none: its transactions are BEGIN IMMEDIATE (scanner/db/engine.py).
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        context.run_migrations()


def _url() -> str:
    return context.get_x_argument(as_dictionary=True).get("url") or Settings.from_env().database_url


async def _run_own_engine(url: str) -> None:
    db = await Database.connect(url)
    try:
        await db.run_migrations(_migrate)
    finally:
        await db.close()


def main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    if config.config_file_name is not None:
        logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)
    url = _url()
    if context.is_offline_mode():
        _configure(url=url)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_own_engine(url))


main()
