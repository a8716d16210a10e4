"""A small client of the API under test, and the settings and tokens the fixtures use."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from scanner.db.engine import Database
from scanner.db.tokens import Scope, create_token
from scanner.settings import Settings

CONSOLE = "https://console.acme.test"


@dataclass
class Reply:
    """A response, read: status, headers and the decoded body."""

    status: int
    headers: Any
    body: Any
    text: str
    content_type: str

    @property
    def problem(self) -> dict[str, Any]:
        assert self.content_type == "application/problem+json", (self.status, self.text)
        assert isinstance(self.body, dict)
        return self.body

    def fields(self) -> list[str]:
        """The fields a validation problem names."""
        return [e["field"] for e in self.problem.get("errors", [])]


class Api:
    """A client of the served API that authenticates as one of the fixture's tokens."""

    def __init__(
        self, client: TestClient[web.Request, web.Application], tokens: dict[str, str], db: Database
    ) -> None:
        self.client = client
        self.tokens = tokens
        self.database = db

    @property
    def app(self) -> web.Application:
        return self.client.app  # type: ignore[return-value]

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = "admin",
        json_body: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {self.tokens.get(token, token)}"
        body: bytes | str | None = data
        if json_body is not None:
            body = json.dumps(json_body)
            sent.setdefault("Content-Type", "application/json")
        async with self.client.request(
            method, path, data=body, headers=sent, params=params
        ) as response:
            return await read(response)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("POST", path, json_body=body, **kw)

    async def patch(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("PATCH", path, json_body=body, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.call("DELETE", path, **kw)

    async def walk(self, path: str, **kw: Any) -> list[dict[str, Any]]:
        """Every item of a list, following ``next`` links."""
        items: list[dict[str, Any]] = []
        url: str | None = path
        while url is not None:
            reply = await self.get(url, **kw)
            assert reply.status == 200, reply.text
            items.extend(reply.body["items"])
            url = reply.body["next"]
            kw.pop("params", None)  # the next link carries them
        return items


async def read(response: ClientResponse) -> Reply:
    text = await response.text()
    ctype = response.content_type
    body: Any = None
    if ctype in ("application/json", "application/problem+json") and text:
        body = json.loads(text)
    return Reply(response.status, response.headers, body, text, ctype)


def api_settings(database: Database, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "database_url": database.url,
        "api_cors_origins": (CONSOLE,),
        "page_size": 20,
        "max_page_size": 100,
        "max_body_bytes": 64 * 1024,
        "max_import_bytes": 4 * 1024 * 1024,
        # Loopback targets answer at once; keep a dead one from stalling a test.
        "timeout": 5.0,
        "retries": 0,
    }
    base.update(overrides)
    return Settings(**base)


async def make_tokens(database: Database) -> dict[str, str]:
    secrets: dict[str, str] = {}
    async with database.session() as session, session.begin():
        for name, scopes in (
            ("admin", [Scope.ADMIN]),
            ("write", [Scope.WRITE]),
            ("read", [Scope.READ]),
        ):
            _, secrets[name] = await create_token(session, f"{name}-bot", scopes, created_by="test")
    return secrets
