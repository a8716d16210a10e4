"""Migrations: up, down and up again on every backend, and no drift from tables.py."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from asyncio.subprocess import PIPE
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from scanner.db.engine import Database, head_revision
from scanner.db.tables import metadata
from scanner.errors import DatabaseError

REPO_ROOT = Path(__file__).resolve().parents[2]
TABLES = {
    "endpoints",
    "endpoint_tags",
    "policies",
    "api_tokens",
    "audit_log",
    "scans",
    "scan_endpoints",
    "scan_exchanges",
    "scan_findings",
    "schedules",
    "work_items",
    "workers",
    # issue 5: findings, regressions and alert hooks
    "tracked_findings",
    "finding_events",
    "hooks",
    "hook_deliveries",
    "delivery_attempts",
    # issue 14: dashboard sessions
    "dashboard_sessions",
    # issue 10 item 8: counters that outlive the rows they count
    "metric_counters",
}


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names()) - {"alembic_version"}


def _drift(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_upgrade_downgrade_upgrade(empty_database: Database) -> None:
    db = empty_database
    status = await db.schema_status()
    assert status.current is None
    assert not status.is_current

    await db.upgrade()
    async with db.engine.connect() as conn:
        assert await conn.run_sync(_tables) == TABLES
    assert (await db.schema_status()).is_current

    await db.downgrade("base")
    async with db.engine.connect() as conn:
        assert await conn.run_sync(_tables) == set()
    assert (await db.schema_status()).current is None

    await db.upgrade("head")
    async with db.engine.connect() as conn:
        assert await conn.run_sync(_tables) == TABLES
    assert (await db.schema_status()).current == head_revision()


async def test_concurrent_upgrades_apply_each_revision_once(empty_database: Database) -> None:
    # Two services starting at once against one database: both succeed, nothing applied twice.
    env = {**os.environ, "CORS_SCANNER_DATABASE_URL": empty_database.url}
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "scanner",
            "db",
            "upgrade",
            cwd=REPO_ROOT,
            env=env,
            stdout=PIPE,
            stderr=PIPE,
        )
        for _ in range(2)
    ]
    results = [await p.communicate() for p in processes]
    assert [p.returncode for p in processes] == [0, 0], results
    status = await empty_database.schema_status()
    assert status.is_current
    async with empty_database.engine.connect() as conn:
        versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    assert versions == [(status.head,)]


async def test_migrations_in_one_process_do_not_interleave(empty_database: Database) -> None:
    other = await Database.connect(empty_database.url)
    try:
        await asyncio.gather(empty_database.upgrade(), other.upgrade())
    finally:
        await other.close()
    assert (await empty_database.schema_status()).is_current


async def test_migrated_schema_matches_tables_py(database: Database) -> None:
    async with database.engine.connect() as conn:
        diff = await conn.run_sync(_drift)
    assert diff == []


async def test_drift_test_notices_a_missing_column(database: Database) -> None:
    # The drift comparison must be able to fail: remove a column the code declares.
    async with database.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE audit_log DROP COLUMN target_id"))
    async with database.engine.connect() as conn:
        diff = await conn.run_sync(_drift)
    assert any("target_id" in repr(d) for d in diff)


async def test_ensure_current_on_an_empty_database(empty_database: Database) -> None:
    with pytest.raises(DatabaseError, match=r"run `cors-scanner db upgrade`") as exc:
        await empty_database.ensure_current(auto_upgrade=False)
    assert head_revision() in exc.value.message
    await empty_database.ensure_current(auto_upgrade=True)
    assert (await empty_database.schema_status()).is_current
    # Current: nothing to do, no error.
    await empty_database.ensure_current(auto_upgrade=False)


async def test_a_schema_newer_than_the_code_is_refused(database: Database) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'ffff_future'"))
    with pytest.raises(DatabaseError, match="upgrade cors-scanner"):
        await database.ensure_current(auto_upgrade=True)


async def test_foreign_keys_survive_migrations(database: Database) -> None:
    # Migrations switch SQLite foreign keys off; every connection must get them back.
    async with database.engine.connect() as conn:
        if database.dialect == "sqlite":
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"


async def test_unreachable_postgres_is_a_clear_database_error() -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused.
    with pytest.raises(DatabaseError, match="cannot reach the database at postgresql"):
        await Database.connect("postgresql+asyncpg://u:secret@127.0.0.1:9/x")


async def test_password_is_not_in_the_error() -> None:
    with pytest.raises(DatabaseError) as exc:
        await Database.connect("postgresql+asyncpg://u:hunter2@127.0.0.1:9/x")
    assert "hunter2" not in exc.value.message


async def test_missing_sqlite_directory_is_a_database_error(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/db.sqlite"
    with pytest.raises(DatabaseError, match=r"cannot reach the database.*does not exist"):
        await Database.connect(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql+aiomysql://x@127.0.0.1/db", "unsupported database 'mysql'"),
        ("sqlite:///x.db", "use sqlite\\+aiosqlite://"),
        ("postgresql://x@127.0.0.1/db", "use postgresql\\+asyncpg://"),
        ("sqlite+aiosqlite:///:memory:", "in-memory SQLite"),
        ("not a url", "invalid database URL"),
    ],
)
async def test_unsupported_urls(url: str, message: str) -> None:
    with pytest.raises(DatabaseError, match=message):
        await Database.connect(url)


async def test_old_sqlite_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    with pytest.raises(DatabaseError, match=r"SQLite 3\.31\.1 is too old.*3\.35\.0"):
        await Database.connect(f"sqlite+aiosqlite:///{tmp_path}/x.db")
