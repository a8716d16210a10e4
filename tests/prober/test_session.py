"""Proxy routing from the environment, as curl and urllib read it."""

from __future__ import annotations

import pytest

from scanner.prober.session import ProxyRoutes

PROXIES = {"http": "http://proxy:3128", "https": "http://tls-proxy:3128"}


@pytest.mark.parametrize(
    ("no_proxy", "url", "proxy"),
    [
        ("", "http://api.acme.com/", "http://proxy:3128"),
        ("", "https://api.acme.com/", "http://tls-proxy:3128"),
        ("*", "http://api.acme.com/", None),
        ("acme.com", "http://api.acme.com/x", None),
        (".acme.com", "http://acme.com/", None),
        ("acme.com", "http://notacme.com/", "http://proxy:3128"),
        ("localhost, 127.0.0.1", "http://127.0.0.1:8080/", None),
        ("acme.com:8443", "https://acme.com:8443/", None),
        ("acme.com:8443", "https://acme.com/", "http://tls-proxy:3128"),
        ("acme.com:443", "https://acme.com/", None),
        ("::1", "http://[::1]:8080/", None),
    ],
)
def test_no_proxy_matching(no_proxy: str, url: str, proxy: str | None) -> None:
    routes = ProxyRoutes({**PROXIES, "no": no_proxy})
    assert routes.for_url(url) == proxy


def test_only_the_schemes_variable_applies() -> None:
    assert ProxyRoutes({"https": "http://tls-proxy:3128"}).for_url("http://a.example/") is None


def test_environment_lowercase_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://upper:1")
    monkeypatch.setenv("https_proxy", "http://lower:1")
    monkeypatch.setenv("NO_PROXY", "internal.example")

    routes = ProxyRoutes.from_environment()

    assert routes.for_url("https://a.example/") == "http://lower:1"
    assert routes.for_url("https://api.internal.example/") is None
    assert routes.for_url("http://a.example/") is None
