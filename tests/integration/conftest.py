"""The demo target on a real loopback socket, and a hermetic environment for the CLI.

``demo_base`` starts :func:`scanner.demo.demo_app` on 127.0.0.1 with a port
the kernel picks, for one test, and stops it afterwards; its value is the
base URL (``http://127.0.0.1:PORT``) that demo paths append to. ``closed_port`` is a
port on 127.0.0.1 nobody listens on (the kernel gave it to us and we released
it), for "every URL unreachable" cases.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from scanner.demo import demo_app

# Proxy variables would route 127.0.0.1 through a proxy (the prober honours them).
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def hermetic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CORS_SCANNER_* setting or proxy from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("CORS_SCANNER_") or name.lower() in _PROXY_VARIABLES:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def demo_base() -> AsyncIterator[str]:
    runner = web.AppRunner(demo_app(), handle_signals=False)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    site = web.SockSite(runner, sock)
    try:
        await site.start()
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        sock.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port with no listener: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
