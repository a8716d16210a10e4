"""Shared fixtures: a hermetic environment and real databases.

``database`` yields a migrated ``scanner.db.Database``, once per backend:

- ``sqlite``: a fresh file under the test's tmp_path, always. The schema is
  migrated once per session into a template file that each test copies.
- ``postgresql``: only when ``CORS_SCANNER_TEST_DATABASE_URL`` is set (e.g.
  ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``); otherwise skipped
  with the reason "CORS_SCANNER_TEST_DATABASE_URL is not set". A template
  database is migrated once per session (per xdist worker), and every test
  gets ``CREATE DATABASE ... TEMPLATE`` of it, dropped afterwards. Names
  carry the worker id and a random suffix, so parallel runs never collide.
  The URL's own database (``test``) is only used for CREATE/DROP DATABASE.

After each test the fixture asserts that no connection is still checked out
of the pool: a session left open is a leak the test should have caught.

``empty_database`` is the same without migrations (schema checks, readyz);
``database_url`` is just a URL (for the CLI and server processes).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy.engine import make_url

from scanner.db.engine import Database
from tests.loopback import (  # noqa: F401 - fixtures shared by every test directory
    _no_proxy_environment,
    serve_app,
    serve_raw,
    unused_port,
)

TEST_DATABASE_ENV = "CORS_SCANNER_TEST_DATABASE_URL"
# Read at import, before the autouse fixture below strips CORS_SCANNER_* from each test.
POSTGRES_URL = os.environ.get(TEST_DATABASE_ENV) or None
NO_POSTGRES = f"{TEST_DATABASE_ENV} is not set"
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]

T = TypeVar("T")


@pytest.fixture(scope="session")
def _data_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("xdg-data-home")


@pytest.fixture(autouse=True)
def _hermetic_environment(monkeypatch: pytest.MonkeyPatch, _data_home: Path) -> None:
    """No CORS_SCANNER_* variable from the developer's shell leaks into a test, and the
    default data directory (``$XDG_DATA_HOME/cors-scanner``) is a scratch folder, never the
    developer's own database."""
    for name in list(os.environ):
        if name.startswith("CORS_SCANNER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(_data_home))


def _run_in_thread(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even when a loop is running here."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(_await(make)))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="db-fixture")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


async def _await(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def _unique(prefix: str) -> str:
    # PostgreSQL names are at most 63 bytes and folded to lower case unless quoted.
    return f"{prefix}_{WORKER}_{os.getpid()}_{secrets.token_hex(4)}".lower()


def postgres_url(database: str) -> str:
    """The test server's URL with another database name."""
    assert POSTGRES_URL is not None
    return make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)


async def _postgres_admin(sql: str) -> None:
    import asyncpg

    assert POSTGRES_URL is not None
    dsn = make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    db = await Database.connect(url)
    try:
        await db.upgrade()
    finally:
        await db.close()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    _run_in_thread(lambda: _migrate(f"sqlite+aiosqlite:///{path}"))
    # Closing the last connection checkpoints the WAL: the main file is complete.
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture(scope="session")
def _postgres_template() -> Iterator[str]:
    if POSTGRES_URL is None:
        pytest.skip(NO_POSTGRES)
    name = _unique("cors_tmpl")
    _run_in_thread(lambda: _postgres_admin(f'CREATE DATABASE "{name}"'))
    try:
        _run_in_thread(lambda: _migrate(postgres_url(name)))
        yield name
    finally:
        _run_in_thread(lambda: _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _open(
    request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool
) -> AsyncIterator[Database]:
    backend = request.param
    dropped: str | None = None
    if backend == "sqlite":
        path = tmp_path / "cors-scanner.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        if POSTGRES_URL is None:
            pytest.skip(NO_POSTGRES)
        dropped = _unique("cors_test")
        if migrated:
            template = request.getfixturevalue("_postgres_template")
            await _postgres_admin(f'CREATE DATABASE "{dropped}" TEMPLATE "{template}"')
        else:
            await _postgres_admin(f'CREATE DATABASE "{dropped}"')
        url = postgres_url(dropped)
    db = await Database.connect(url)
    try:
        yield db
        leaked = db.engine.pool.checkedout()  # type: ignore[attr-defined]
        assert leaked == 0, f"{leaked} database connection(s) still checked out after the test"
    finally:
        await db.close()
        if dropped is not None:
            await _postgres_admin(f'DROP DATABASE IF EXISTS "{dropped}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database of each backend (see the module docstring)."""
    async for db in _open(request, tmp_path, migrated=True):
        yield db


@pytest.fixture(params=BACKENDS)
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A database of each backend with no schema at all (never migrated)."""
    async for db in _open(request, tmp_path, migrated=False):
        yield db


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database that does not exist yet (SQLite) or is empty (PostgreSQL).

    For tests that run the CLI or a server process, which open the database
    themselves. Nothing is migrated; the PostgreSQL database is dropped after.
    """
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'cors-scanner.db'}"
        return
    if POSTGRES_URL is None:
        pytest.skip(NO_POSTGRES)
    name = _unique("cors_url")
    _run_in_thread(lambda: _postgres_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_url(name)
    finally:
        _run_in_thread(lambda: _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
