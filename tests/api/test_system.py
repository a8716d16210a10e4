"""Health, readiness, the OpenAPI document and the docs page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from scanner.api import create_app
from scanner.api.problems import CODES
from scanner.api.routes import ROUTES
from scanner.db.engine import Database
from tests.api.client import Api, api_settings, read


async def test_healthz_needs_no_token_and_no_database(api: Api) -> None:
    reply = await api.get("/healthz", token=None)
    assert reply.status == 200
    assert reply.body["status"] == "ok"
    assert reply.body["version"]


async def test_readyz_when_ready(api: Api) -> None:
    reply = await api.get("/readyz", token=None)
    assert reply.status == 200
    assert reply.body["status"] == "ready"
    assert reply.body["database"]["dialect"] == api.database.dialect


@pytest.fixture
async def unmigrated(empty_database: Database) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    app = create_app(api_settings(empty_database), database=empty_database)
    async with TestServer(app, host="127.0.0.1") as server, TestClient(server) as client:
        yield client


async def test_readyz_fails_on_an_unmigrated_database(unmigrated: TestClient) -> None:  # type: ignore[type-arg]
    async with unmigrated.get("/readyz") as response:
        reply = await read(response)
    assert reply.status == 503
    problem = reply.problem
    assert problem["code"] == "not_ready"
    assert "cors-scanner db upgrade" in problem["detail"]
    assert problem["checks"]["database"] == "reachable"
    assert problem["checks"]["schema"]["current"] is None
    async with unmigrated.get("/healthz") as response:
        assert response.status == 200  # alive, just not ready


async def test_openapi_document_is_valid_and_covers_every_route(api: Api) -> None:
    reply = await api.get("/api/v1/openapi.json", token=None)
    assert reply.status == 200
    document = reply.body
    assert document["openapi"].startswith("3.1")
    validate(document)  # the official OpenAPI 3.1 schema, via openapi-spec-validator
    for method, path, _handler in ROUTES:
        assert path in document["paths"], path
        assert method.lower() in document["paths"][path], f"{method} {path}"
    listed = {(m.upper(), p) for p, ms in document["paths"].items() for m in ms}
    assert listed == {(m, p) for m, p, _ in ROUTES}
    ids = [op["operationId"] for ms in document["paths"].values() for op in ms.values()]
    assert len(ids) == len(set(ids))


async def test_openapi_describes_what_the_server_enforces(api: Api) -> None:
    document = (await api.get("/api/v1/openapi.json", token=None)).body
    create = document["paths"]["/api/v1/endpoints"]["post"]
    assert create["x-required-scope"] == "write"
    assert create["security"] == [{"bearerToken": []}]
    assert {"201", "401", "403", "409", "413", "415", "422"} <= set(create["responses"])
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body["additionalProperties"] is False
    assert body["required"] == ["url"]
    listing = document["paths"]["/api/v1/endpoints"]["get"]
    limit = next(p for p in listing["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 100  # this server's max_page_size
    assert limit["schema"]["default"] == 20
    health = document["paths"]["/healthz"]["get"]
    assert health["security"] == []
    assert "401" not in health["responses"]
    importing = document["paths"]["/api/v1/endpoints/import"]["post"]
    assert set(importing["requestBody"]["content"]) >= {
        "text/csv",
        "application/json",
        "application/yaml",
    }
    # The document and the server agree: the schema the document shows refuses
    # an unknown field, and so does the server.
    reply = await api.post("/api/v1/endpoints", {"url": "https://a.test/", "colour": "red"})
    assert reply.status == 422
    assert reply.fields() == ["colour"]


async def test_docs_page_is_self_contained_and_lists_every_route(api: Api) -> None:
    reply = await api.get("/api/v1/docs", token=None)
    assert reply.status == 200
    assert reply.content_type == "text/html"
    page = reply.text
    for method, path, _ in ROUTES:
        assert f">{method}</span> {path}<" in page or f"<code>{path}</code>" in page, path
    for code in CODES:
        assert f"id='problem-{code}'" in page
    # No external assets: nothing loaded from another host.
    assert not re.search(r"""(src|href)=['"]https?://""", page)
    assert "<script" not in page


async def test_problem_types_point_into_the_docs(api: Api) -> None:
    reply = await api.get("/api/v1/endpoints", token=None)
    kind = reply.problem["type"]
    path, _, anchor = kind.partition("#")
    page = (await api.get(path, token=None)).text
    assert f"id='{anchor}'" in page


async def test_readyz_fails_when_the_database_is_unreachable(unused_tcp_port: int) -> None:
    from scanner.db.engine import create_engine

    # A PostgreSQL URL on a loopback port where nothing listens: a database that is down.
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{unused_tcp_port}/gone"
    down = Database(create_engine(url), url)
    app = create_app(api_settings(down), database=down)
    try:
        async with TestServer(app, host="127.0.0.1") as server, TestClient(server) as client:
            async with client.get("/readyz") as response:
                reply = await read(response)
            async with client.get("/healthz") as response:
                assert response.status == 200
    finally:
        await down.close()
    assert reply.status == 503
    assert reply.problem["code"] == "not_ready"
    assert reply.problem["checks"] == {"database": "unreachable"}


async def test_readyz_shows_anyone_generic_text_and_logs_the_cause(
    tmp_path: Path, unused_tcp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    from scanner.db.engine import create_engine

    # A database that is down, and a "database" file that is not one (its error has SQL).
    garbage = tmp_path / "not-a-database.db"
    garbage.write_bytes(b"this is not SQLite" * 1000)
    urls = [
        f"postgresql+asyncpg://postgres@127.0.0.1:{unused_tcp_port}/gone",
        f"sqlite+aiosqlite:///{garbage}",
    ]
    for url in urls:
        broken = Database(create_engine(url), url)
        app = create_app(api_settings(broken), database=broken, embedded_worker=False)
        caplog.clear()
        try:
            async with (
                TestServer(app, host="127.0.0.1") as server,
                TestClient(server) as client,
                client.get("/readyz") as response,
            ):
                reply = await read(response)
        finally:
            await broken.close()
        assert reply.status == 503
        detail = reply.problem["detail"]
        assert detail == "the database is unreachable; the service's log says why"
        for leak in ("SQL", "SELECT", "alembic", str(unused_tcp_port), "Errno", "file is not"):
            assert leak not in reply.text, (url, leak)
        logged = [r.getMessage() for r in caplog.records if r.name == "scanner.api.system"]
        assert len(logged) == 1
        assert logged[0].startswith("not ready: cannot read the schema version")
