"""Fuzz the served API from its own OpenAPI document with schemathesis.

The server runs in a thread with its own event loop (schemathesis sends
requests synchronously), on a fresh SQLite database, with an admin token.
Every operation gets a bounded number of generated requests, valid and
invalid; every response must be a non-5xx that conforms to the document
(status code, content type, headers, body schema), and invalid input must be
refused.

Scans the fuzzer starts probe whatever URLs it invented: the process's proxy
variables point at a closed loopback port for the duration (loopback itself
bypasses it, so the fuzzer reaches the API), so those probes
fail fast on 127.0.0.1 instead of leaving the machine.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from scanner.api import create_app
from scanner.api.app import SETTINGS, make_runner
from scanner.api.openapi import build_document
from scanner.db.engine import Database
from scanner.db.tokens import Scope, create_token
from scanner.settings import Settings

MAX_EXAMPLES = 20  # per operation: ~27 operations stay well under a minute
START_TIMEOUT_S = 30.0


@dataclass
class Served:
    base_url: str
    token: str


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _ServerThread(threading.Thread):
    """The API on 127.0.0.1 in a thread of its own, until ``stop``."""

    def __init__(self, database_path: Path) -> None:
        super().__init__(name="api-under-fuzz", daemon=True)
        self.url = f"sqlite+aiosqlite:///{database_path}"
        self.ready = threading.Event()
        self.served: Served | None = None
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        database = await Database.connect(self.url)
        try:
            await database.upgrade()
            async with database.session() as session, session.begin():
                _, secret = await create_token(session, "fuzzer", [Scope.ADMIN], created_by=None)
            runner = make_runner(create_app(_settings(self.url), database=database))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            self.served = Served(f"http://{host}:{port}", secret)
            self.ready.set()
            await self._stopping.wait()
            await runner.cleanup()
        finally:
            await database.close()

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self.join(timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    closed = f"http://127.0.0.1:{_closed_port()}"
    with pytest.MonkeyPatch.context() as mp:
        for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            mp.setenv(name, closed)
        for name in ("no_proxy", "NO_PROXY"):
            mp.setenv(name, "127.0.0.1,localhost")
        server = _ServerThread(tmp_path_factory.mktemp("fuzz") / "api.db")
        server.start()
        assert server.ready.wait(START_TIMEOUT_S), "the API did not start"
        if server.error is not None:
            raise server.error
        assert server.served is not None
        try:
            yield server.served
        finally:
            server.stop()


def _settings(url: str) -> Settings:
    return Settings(
        database_url=url,
        api_cors_origins=("https://console.acme.test",),
        timeout=2.0,
        retries=0,
        # Schemathesis sends each operation a wrong token, over and over, and expects the
        # 401 of the document; the per-address failure budget (tests/api/test_auth_failures)
        # would answer 429 after 30 of them.
        api_auth_failures_per_minute=0,
    )


def _document() -> dict[str, Any]:
    # The document the server publishes, built the way it builds it: building
    # an app touches no database. (test_system checks the served copy is this.)
    app = create_app(_settings("sqlite+aiosqlite:///unused.db"))
    return build_document(app, app[SETTINGS])


schema = schemathesis.openapi.from_dict(_document())


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_document(case: schemathesis.Case, served: Served) -> None:
    case.call_and_validate(
        base_url=served.base_url,
        headers={"Authorization": f"Bearer {served.token}"},
        # JSON Schema cannot say everything the server checks (a URL that parses, an
        # origin a browser could send, an opaque cursor, rules across fields): those
        # schema-valid requests get a documented 422 naming the field, which this
        # check would count as a failure. Every other check runs.
        excluded_checks=[positive_data_acceptance],
    )
