"""TLS: verified by default, extra CAs on request, verification off only when asked."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

import pytest
import trustme
from aiohttp import web

from scanner.core.observation import ProbeError
from scanner.errors import ConfigError
from scanner.prober import ProbeLimits, Prober

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from scanner.core.plan import ProbeRequest

    MakeProbe = Callable[..., ProbeRequest]
    ServeApp = Callable[..., Awaitable[str]]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def https_url(serve_app: ServeApp, ca: trustme.CA) -> str:
    """An HTTPS server on 127.0.0.1 whose certificate only our test CA vouches for."""

    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=200, headers={"Access-Control-Allow-Origin": "*"})

    app = web.Application()
    app.router.add_get("/", handle)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return await serve_app(app, ssl_context=context) + "/"


async def test_unknown_certificate_authority_is_a_tls_error(
    https_url: str, make_probe: MakeProbe
) -> None:
    async with Prober(ProbeLimits(retries=2, backoff=0.01)) as prober:
        observation = await prober.send(make_probe(https_url))

    assert observation.error is ProbeError.TLS
    assert observation.error_detail == (
        "certificate verify failed: unable to get local issuer certificate"
    )
    assert observation.attempts == 1  # a certificate does not fix itself in a second


async def test_ca_bundle_adds_a_trusted_authority(
    https_url: str, make_probe: MakeProbe, ca: trustme.CA, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))

    async with Prober(ProbeLimits(ca_bundle=str(bundle))) as prober:
        observation = await prober.send(make_probe(https_url))

    assert observation.ok, observation.error_detail
    assert observation.headers.combined("access-control-allow-origin") == "*"


async def test_insecure_mode_accepts_any_certificate(https_url: str, make_probe: MakeProbe) -> None:
    async with Prober(ProbeLimits(verify_tls=False)) as prober:
        observation = await prober.send(make_probe(https_url))

    assert observation.ok, observation.error_detail
    assert observation.status == 200


async def test_https_to_a_plain_http_port_is_a_tls_error(
    serve_app: ServeApp, make_probe: MakeProbe
) -> None:
    app = web.Application()
    base = await serve_app(app)

    async with Prober(ProbeLimits(retries=0)) as prober:
        observation = await prober.send(make_probe(base.replace("http://", "https://") + "/"))

    assert observation.error is ProbeError.TLS
    assert observation.error_detail == "TLS handshake failed: wrong version number"


async def test_unreadable_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ca_bundle"):
        async with Prober(ProbeLimits(ca_bundle=str(tmp_path / "missing.pem"))):
            pass


async def test_an_https_target_through_a_connect_proxy_is_read_by_our_head_reader(
    ca: trustme.CA, make_probe: MakeProbe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    # An HTTPS target whose head strict parsers refuse (a space before the colon).
    async def target(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin : https://app.example\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    tls = await asyncio.start_server(target, "127.0.0.1", 0, ssl=context)
    tls_port = tls.sockets[0].getsockname()[1]
    tunnels: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        tunnels.append(head.split(b"\r\n", 1)[0])
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", tls_port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    proxy_server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    proxy_url = f"http://127.0.0.1:{proxy_server.sockets[0].getsockname()[1]}"
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("HTTPS_PROXY", proxy_url)
    try:
        async with Prober(ProbeLimits(ca_bundle=str(bundle), retries=0)) as prober:
            seen = await prober.send(make_probe(f"https://localhost:{tls_port}/"))
    finally:
        proxy_server.close()
        tls.close()
    assert tunnels == [f"CONNECT localhost:{tls_port} HTTP/1.1".encode()]
    assert seen.ok, seen.error_detail
    assert seen.headers.get_all("access-control-allow-origin") == ("https://app.example",)
    assert "Access-Control-Allow-Origin : https://app.example" in seen.raw_lines
