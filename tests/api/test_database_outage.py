"""The API while the database is busy or failing: reads keep answering, failures are 503s."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from scanner.api.auth import TOKEN_USES
from scanner.db.engine import Database
from scanner.db.tokens import Scope, create_token
from tests.api.client import Api

ENDPOINTS = "/api/v1/endpoints"


def _asyncpg_dsn(database: Database) -> str:
    url = make_url(database.url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


@asynccontextmanager
async def _writer_holding_the_lock(database: Database) -> AsyncIterator[None]:
    """Another client inside a write transaction that has not committed yet.

    SQLite: a second connection holds the one write lock (BEGIN IMMEDIATE and a
    write). PostgreSQL: a transaction holds the row locks of every token, as an
    admin's revocation or a long import touching them would.
    """
    if database.dialect == "sqlite":
        path = make_url(database.url).database
        assert path is not None
        # The embedded worker writes too (its registration, claims): wait our turn, off
        # the event loop (the worker's transaction needs the loop to finish).
        conn = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
        try:
            await asyncio.to_thread(conn.execute, "BEGIN IMMEDIATE")
            try:
                conn.execute("UPDATE api_tokens SET created_by = created_by")
                yield
            finally:
                conn.execute("ROLLBACK")
        finally:
            conn.close()
        return
    pg = await asyncpg.connect(_asyncpg_dsn(database))
    try:
        tx = pg.transaction()
        await tx.start()
        await pg.execute("SELECT id FROM api_tokens FOR UPDATE")
        try:
            yield
        finally:
            await tx.rollback()
    finally:
        await pg.close()


async def test_reads_and_token_checks_answer_while_a_writer_holds_the_lock(api: Api) -> None:
    # A token never used yet: its first use is due to be recorded.
    async with api.database.session() as session, session.begin():
        _record, fresh = await create_token(session, "fresh", [Scope.READ], created_by=None)

    async with _writer_holding_the_lock(api.database):
        async with asyncio.timeout(3):  # the writer could hold its lock for minutes
            listed = await api.get(ENDPOINTS, token=fresh)
            runs = await api.get("/api/v1/scans", token="read")
            health = await api.get("/healthz", token=None)

    assert listed.status == 200, listed.text
    assert runs.status == 200, runs.text
    assert health.status == 200


async def test_a_database_failure_mid_request_is_503_with_retry_after(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    if api.database.dialect != "postgresql":
        pytest.skip("a server-side statement cancel is PostgreSQL's")
    name = make_url(api.database.url).database
    assert (await api.get(ENDPOINTS, token="read")).status == 200
    await api.app[TOKEN_USES].drain()  # its first use is recorded: nothing in flight
    admin = await asyncpg.connect(_asyncpg_dsn(api.database))
    locker = await asyncpg.connect(_asyncpg_dsn(api.database))
    try:
        # Every statement of the service's connections is cancelled by the server
        # after 300 ms (SQLSTATE 57014, raised by asyncpg, wrapped as DBAPIError).
        await admin.execute(f'ALTER DATABASE "{name}" SET statement_timeout = 300')
        await api.database.engine.dispose()  # new connections take the setting
        tx = locker.transaction()
        await tx.start()
        await locker.execute("SET LOCAL statement_timeout = 0")
        await locker.execute("LOCK TABLE endpoints IN ACCESS EXCLUSIVE MODE")
        with caplog.at_level(logging.WARNING, logger="scanner.api"):
            failed = await api.get(ENDPOINTS, token="read")
        await tx.rollback()
        recovered = await api.get(ENDPOINTS, token="read")
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" RESET statement_timeout')
        await admin.close()
        await locker.close()
        await api.database.engine.dispose()

    assert failed.status == 503, failed.text
    assert failed.problem["code"] == "database_unavailable"
    assert int(failed.headers["Retry-After"]) > 0
    assert "SELECT" not in failed.text
    assert recovered.status == 200
    (line,) = [r.getMessage() for r in caplog.records if "database unavailable" in r.getMessage()]
    assert "QueryCanceled" in line
    assert "SELECT" not in line  # the error, not the statement
    assert "[SQL" not in line
