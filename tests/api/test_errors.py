"""Bad input never gets a 500: problem documents with stable codes, every bad field named."""

from __future__ import annotations

import pytest

from tests.api.client import Api

ENDPOINTS = "/api/v1/endpoints"


async def test_validation_lists_every_bad_field(api: Api) -> None:
    reply = await api.post(
        ENDPOINTS,
        {
            "method": "GET POST",
            "name": 12,
            "owner": "a\nb",
            "tags": ["ok", "Not OK!", 3],
            "enabled": "yes",
            "notes": ["x"],
            "colour": "red",
        },
    )
    assert reply.status == 422
    problem = reply.problem
    assert problem["code"] == "validation_failed"
    assert problem["title"]
    assert problem["status"] == 422
    assert sorted(reply.fields()) == sorted(
        ["url", "method", "name", "owner", "tags[1]", "tags[2]", "enabled", "notes", "colour"]
    )
    messages = {e["field"]: e["message"] for e in problem["errors"]}
    assert messages["url"] == "is required"
    assert messages["colour"] == "is not a known field"
    assert "must be a string" in messages["name"]


async def test_semantic_and_structural_errors_are_reported_together(api: Api) -> None:
    reply = await api.post(ENDPOINTS, {"url": "ftp://files.acme.test/", "enabled": 1})
    assert reply.status == 422
    assert sorted(reply.fields()) == ["enabled", "url"]


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        (b'{"url": ', "invalid_json", "line 1"),
        (b'{"url": "https://a.test/", "url": "https://b.test/"}', "invalid_json", "duplicate key"),
        (b'{"url": "https://a.test/", "max": NaN}', "invalid_json", "NaN"),
        (b"[" * 10_000 + b"]" * 10_000, "invalid_json", "nests 10000 levels"),
        (b'{"url": "https://a.test/\xff"}', "invalid_encoding", "not UTF-8"),
        (b"", "invalid_json", "Expecting value"),
        # Python refuses int() past 4300 digits with a ValueError: this was a 500.
        (
            b'{"url": "https://a.test/", "max_age": ' + b"9" * 5000 + b"}",
            "invalid_json",
            "5000-digit integer is out of range",
        ),
        (
            b'{"url": "https://a.test/", "max_age": -' + b"9" * 5000 + b"}",
            "invalid_json",
            "5000-digit",
        ),
        (b'{"url": "https://a.test/", "max_age": 1e999}', "invalid_json", "out of range"),
    ],
    ids=[
        "truncated",
        "duplicate-key",
        "nan",
        "deep",
        "bad-utf8",
        "empty",
        "huge-int",
        "huge-negative-int",
        "infinite-float",
    ],
)
async def test_unreadable_bodies_are_400(api: Api, body: bytes, code: str, detail: str) -> None:
    reply = await api.call(
        "POST", ENDPOINTS, data=body, headers={"Content-Type": "application/json"}
    )
    assert reply.status == 400, reply.text
    assert reply.problem["code"] == code
    assert detail in reply.problem["detail"]


async def test_a_json_body_must_be_an_object(api: Api) -> None:
    reply = await api.post(ENDPOINTS, ["https://a.test/"])
    assert reply.status == 422
    assert reply.fields() == ["body"]


async def test_body_too_large(api: Api) -> None:
    big = {"url": "https://a.test/", "notes": "x" * (70 * 1024)}  # the test limit is 64 KiB
    reply = await api.post(ENDPOINTS, big)
    assert reply.status == 413
    assert reply.problem["code"] == "body_too_large"

    async def chunks():  # no Content-Length: the limit holds while reading
        for _ in range(100):
            yield b" " * 1024

    streamed = await api.call(
        "POST",
        ENDPOINTS,
        data=chunks(),
        headers={"Content-Type": "application/json"},  # type: ignore[arg-type]
    )
    assert streamed.status == 413
    assert (await api.get(ENDPOINTS)).body["items"] == []


async def test_unsupported_media_type(api: Api) -> None:
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        reply = await api.call(
            "POST", ENDPOINTS, data=b'{"url": "https://a.test/"}', headers={"Content-Type": ctype}
        )
        assert reply.status == 415, ctype
        assert reply.problem["code"] == "unsupported_media_type"
    charset = await api.call(
        "POST",
        ENDPOINTS,
        data=b'{"url": "https://a.test/"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert charset.status == 201


async def test_unknown_route_and_wrong_method(api: Api) -> None:
    missing = await api.get("/api/v1/nothing-here")
    assert missing.status == 404
    assert missing.problem["code"] == "not_found"
    wrong = await api.call("PUT", ENDPOINTS)
    assert wrong.status == 405
    assert wrong.problem["code"] == "method_not_allowed"
    assert set(wrong.headers["Allow"].split(", ")) == {"GET", "POST"}


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"limit": "0"}, ["query.limit"]),
        ({"limit": "101"}, ["query.limit"]),
        ({"limit": "ten"}, ["query.limit"]),
        ({"enabled": "maybe"}, ["query.enabled"]),
        ({"cursor": "not-a-cursor"}, ["query.cursor"]),
        ({"sort": "name"}, ["query.sort"]),
        (
            {"limit": "0", "enabled": "x", "colour": "red"},
            ["query.limit", "query.enabled", "query.colour"],
        ),
        ({"q": "a\x00b"}, ["query.q"]),
    ],
)
async def test_bad_query_parameters(api: Api, params: dict[str, str], fields: list[str]) -> None:
    reply = await api.get(ENDPOINTS, params=params)
    assert reply.status == 422, reply.text
    assert sorted(reply.fields()) == sorted(fields)


async def test_hostile_strings_are_refused_not_crashed_on(api: Api) -> None:
    for body in (
        {"url": "https://a.test/", "name": "nul\x00byte"},
        {"url": "https://a.test/", "notes": "\ud800"},
        {"url": "https://a.test/\x00"},
    ):
        reply = await api.post(ENDPOINTS, body)
        assert reply.status == 422, (body, reply.text)
    reply = await api.call(
        "POST",
        ENDPOINTS,
        data=b'{"url": "https://a.test/", "notes": "\\ud800"}',
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 422
    assert reply.fields() == ["notes"]


async def test_ids_out_of_range_are_not_found(api: Api) -> None:
    for path in (
        f"{ENDPOINTS}/0",
        f"{ENDPOINTS}/-1",
        f"{ENDPOINTS}/2147483648",
        f"{ENDPOINTS}/1e3",
    ):
        reply = await api.get(path)
        assert reply.status == 404, path
        assert reply.problem["code"] == "not_found"


async def test_an_unreachable_database_is_503_not_500(unused_tcp_port: int) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from scanner.api import create_app
    from scanner.db.engine import Database, create_engine
    from tests.api.client import api_settings, read

    # PostgreSQL on a loopback port where nothing listens: a database that is down.
    url = f"postgresql+asyncpg://postgres:hunter2@127.0.0.1:{unused_tcp_port}/gone"
    down = Database(create_engine(url), url)
    app = create_app(api_settings(down), database=down)
    try:
        async with (
            TestServer(app, host="127.0.0.1") as server,
            TestClient(server) as client,
            client.get(ENDPOINTS, headers={"Authorization": "Bearer csk_whatever"}) as response,
        ):
            reply = await read(response)
    finally:
        await down.close()
    assert reply.status == 503
    assert reply.problem["code"] == "database_unavailable"
    assert "hunter2" not in reply.text
    assert str(unused_tcp_port) not in reply.text


async def test_unexpected_errors_are_500_problems_without_internals() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from scanner.api.problems import problems_middleware
    from tests.api.client import read

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("password=hunter2 at /srv/app/secret.py line 3")

    app = web.Application(middlewares=[problems_middleware])
    app.router.add_get("/boom", broken)
    async with (
        TestServer(app, host="127.0.0.1") as server,
        TestClient(server) as client,
        client.get("/boom") as response,
    ):
        reply = await read(response)
    assert reply.status == 500
    assert reply.problem["code"] == "internal_error"
    assert "hunter2" not in reply.text
    assert "secret.py" not in reply.text
