"""Misbehaving CORS targets on 127.0.0.1 for scans started through the API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.test_utils import TestServer


async def _reflect_with_credentials(request: web.Request) -> web.Response:
    # cors({origin: true, credentials: true}): any Origin echoed, cookies allowed.
    headers = {"Vary": "Origin"}
    origin = request.headers.get("Origin")
    if origin:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Credentials"] = "true"
    if request.method == "OPTIONS":
        headers["Access-Control-Allow-Methods"] = "GET, POST"
        return web.Response(status=204, headers=headers)
    return web.json_response({"secret": "account data"}, headers=headers)


async def _closed(request: web.Request) -> web.Response:
    # No CORS at all: the browser default, safe.
    return web.json_response({"ok": True})


async def _slow(request: web.Request) -> web.Response:
    # Answers late: a scan of it stays running long enough to be cancelled.
    await asyncio.sleep(30)
    return web.json_response({})


def target_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/reflect-credentials", _reflect_with_credentials)
    app.router.add_route("*", "/reflect-credentials/{tail:.*}", _reflect_with_credentials)
    app.router.add_route("*", "/closed", _closed)
    app.router.add_route("*", "/slow", _slow)
    app.router.add_route("*", "/slow/{tail:.*}", _slow)
    return app


@asynccontextmanager
async def serve_target() -> AsyncIterator[str]:
    """Serve the targets; yields the base URL (``http://127.0.0.1:PORT``)."""
    server = TestServer(target_app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
