"""The API under test: a real aiohttp server on 127.0.0.1 over the shared ``database`` fixture.

``serve_api`` starts ``create_app`` (settings overrides as keyword arguments)
with three tokens (admin, write, read); ``api`` is one with the default test
settings. Every response a test reads is real HTTP from the test server;
nothing of aiohttp or the database is mocked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from scanner.api import create_app
from scanner.db.engine import Database
from tests.api.client import Api, api_settings, make_tokens

ApiFactory = Callable[..., Any]


@pytest.fixture
async def serve_api(database: Database) -> AsyncIterator[ApiFactory]:
    """Start the API with settings overrides: ``api = await serve_api(page_size=5)``."""
    stack: list[tuple[TestServer, TestClient[web.Request, web.Application]]] = []
    tokens = await make_tokens(database)

    async def start(
        *, engine_factory: Any = None, embedded_worker: bool = True, **overrides: Any
    ) -> Api:
        extra: dict[str, Any] = {"embedded_worker": embedded_worker}
        if engine_factory is not None:
            extra["engine_factory"] = engine_factory
        app = create_app(api_settings(database, **overrides), database=database, **extra)
        server = TestServer(app, host="127.0.0.1")
        client: TestClient[web.Request, web.Application] = TestClient(server)
        await client.start_server()
        stack.append((server, client))
        return Api(client, tokens, database)

    try:
        yield start
    finally:
        for _server, client in reversed(stack):
            await client.close()


@pytest.fixture
async def api(serve_api: ApiFactory) -> Api:
    """The API with the default test settings."""
    return await serve_api()
