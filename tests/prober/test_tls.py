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
