"""Bearer tokens and scopes: 401 without a valid token, 403 without the scope."""

from __future__ import annotations

import asyncio

import pytest

from scanner.db.tokens import Scope, create_token
from tests.api.client import Api

READS = ["/api/v1/endpoints", "/api/v1/policies", "/api/v1/scans"]
ADMIN_READS = ["/api/v1/tokens", "/api/v1/audit"]


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer csk_not-a-real-token",
        "Bearer " + "x" * 5000,
        "Bearer two words",
    ],
    ids=["none", "empty", "no-secret", "blank", "basic", "unknown", "huge", "spaces"],
)
async def test_missing_or_invalid_token_is_401(api: Api, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    for path in [*READS, *ADMIN_READS]:
        reply = await api.get(path, token=None, headers=headers)
        assert reply.status == 401, (path, reply.text)
        assert reply.problem["code"] == "unauthorized"
        assert reply.headers["WWW-Authenticate"].startswith('Bearer realm="cors-scanner"')


async def test_scopes(api: Api) -> None:
    for path in READS:
        for who in ("read", "write", "admin"):
            assert (await api.get(path, token=who)).status == 200, (path, who)
    for path in ADMIN_READS:
        assert (await api.get(path, token="admin")).status == 200
        for who in ("read", "write"):
            reply = await api.get(path, token=who)
            assert reply.status == 403, (path, who)
            assert reply.problem["code"] == "forbidden"
            assert "'admin' scope" in reply.problem["detail"]
            assert 'error="insufficient_scope"' in reply.headers["WWW-Authenticate"]

    create = {"url": "https://api.acme.test/v1/users"}
    denied = await api.post("/api/v1/endpoints", create, token="read")
    assert denied.status == 403
    assert "'write' scope" in denied.problem["detail"]
    assert (await api.post("/api/v1/endpoints", create, token="write")).status == 201
    assert (
        await api.post("/api/v1/tokens", {"name": "x", "scopes": ["read"]}, token="write")
    ).status == 403
    assert (await api.get("/api/v1/endpoints", token="read")).body["items"][0]["url"] == create[
        "url"
    ]


async def test_auth_comes_before_validation(api: Api) -> None:
    # A stranger learns nothing about what a valid body looks like.
    reply = await api.post("/api/v1/endpoints", {"bogus": True}, token=None)
    assert reply.status == 401
    assert "errors" not in reply.problem


async def test_revoked_token_is_refused(api: Api) -> None:
    created = await api.post("/api/v1/tokens", {"name": "temp", "scopes": ["read"]})
    secret = created.body["secret"]
    assert (await api.get("/api/v1/endpoints", token=secret)).status == 200
    revoked = await api.delete(f"/api/v1/tokens/{created.body['token']['id']}")
    assert revoked.status == 200
    assert revoked.body["active"] is False
    reply = await api.get("/api/v1/endpoints", token=secret)
    assert reply.status == 401
    assert 'error="invalid_token"' in reply.headers["WWW-Authenticate"]


async def test_last_used_is_recorded(api: Api) -> None:
    async with api.database.session() as session, session.begin():
        record, secret = await create_token(session, "probe", [Scope.READ], created_by=None)
    assert record.last_used_at is None
    assert (await api.get("/api/v1/scans", token=secret)).status == 200
    # Written by a background task, off the request's path: it lands right after.
    async with asyncio.timeout(5):
        while True:
            tokens = (await api.get("/api/v1/tokens")).body["items"]
            used = next(t for t in tokens if t["name"] == "probe")
            if used["last_used_at"] is not None:
                break
            await asyncio.sleep(0.02)


async def test_public_routes_need_no_token(api: Api) -> None:
    for path in ("/healthz", "/readyz", "/api/v1/openapi.json", "/api/v1/docs"):
        assert (await api.get(path, token=None)).status == 200, path
