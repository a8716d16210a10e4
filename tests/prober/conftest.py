"""Loopback servers for the prober: aiohttp apps that behave, raw sockets that do not.

Everything is a fixture, so test modules import nothing from here:
``serve_app(app)`` and ``serve_raw(handler)`` start servers and return their base
URL, ``make_probe(url, ...)`` builds a ``ProbeRequest``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from scanner.core.browser import CorsRequest
from scanner.core.headers import Headers
from scanner.core.plan import ProbeKind, ProbeRequest
from scanner.core.variants import ProbeOrigin, VariantKind


@pytest.fixture
def make_probe() -> Callable[..., ProbeRequest]:
    """``make_probe(url, method="GET", headers=(), kind=SIMPLE)``."""
    return _probe


def _probe(
    url: str,
    method: str = "GET",
    headers: Iterable[tuple[str, str]] = (),
    kind: ProbeKind = ProbeKind.SIMPLE,
) -> ProbeRequest:
    """A probe request as the planner would build it, with the given wire headers."""
    origin = ProbeOrigin("https://app.example", VariantKind.ALLOWED, trusted=True)
    return ProbeRequest(
        key=f"{method} {url}",
        kind=kind,
        method=method,
        url=url,
        origin=origin,
        headers=Headers.of(list(headers)),
        cors_request=CorsRequest(origin.value, method),
    )
