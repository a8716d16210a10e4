"""The aiohttp ClientSession the prober sends through: TLS, caps, timeouts, proxies.

Every choice here serves one rule: the target receives exactly the request we
planned, and nothing it sends back can make us wait, allocate or trust more
than ``ProbeLimits`` allows.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from aiohttp.client_middlewares import ClientHandlerType

from scanner.errors import ConfigError
from scanner.prober.guard import proxied_refusal
from scanner.prober.head import HeadCaps, install
from scanner.prober.limits import ProbeLimits
from scanner.prober.politeness import DEFAULT_PORTS
from scanner.ssrf import BlockedAddress, guarded_connector

# What aiohttp buffers of a body before it stops reading the socket. We never
# read bodies; this bounds what a large one costs before the response closes.
READ_BUFFER_BYTES = 16384
# Idle keep-alive connections are dropped after this, before the common server
# timeouts (Apache's and Node.js's 5 s) can close them under us.
KEEPALIVE_SECONDS = 4.0
# Headers aiohttp would add on its own. A browser's preflight carries no Accept-
# Encoding and a bodiless POST no Content-Type; some servers vary their CORS
# answer on them, so we send only what the plan says. Host stays (HTTP/1.1
# requires it) and User-Agent is ours.
SKIPPED_AUTO_HEADERS = ("Accept", "Accept-Encoding", "Content-Type")


def ssl_setting(limits: ProbeLimits) -> ssl.SSLContext | bool:
    """The ``ssl`` argument for aiohttp: a verifying context, or False for ``--insecure``.

    ``ca_bundle`` is trusted *in addition to* the system store (unlike
    ``ssl.create_default_context(cafile=...)``, which would replace it).
    Raises ConfigError when the bundle cannot be loaded.
    """
    if not limits.verify_tls:
        return False
    context = ssl.create_default_context()
    if limits.ca_bundle is not None:
        try:
            context.load_verify_locations(cafile=limits.ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"ca_bundle: cannot load {limits.ca_bundle!r}: {exc}") from exc
    return context


def client_timeout(limits: ProbeLimits) -> aiohttp.ClientTimeout:
    """Connect and read timeouts for aiohttp.

    The total timeout is not aiohttp's: the prober wraps each attempt in
    a deadline of its own (``execute.Prober._watch``), which stops at the configured
    second (aiohttp rounds long timeouts up to whole seconds) and tells a
    total timeout apart from a connect or read timeout. A read timeout no
    shorter than the total one could never fire first: it is left off (two
    timer operations per request saved).
    """
    read = limits.read_timeout if limits.read_timeout < limits.total_timeout else None
    return aiohttp.ClientTimeout(
        total=None,
        connect=None,
        sock_connect=limits.connect_timeout,
        sock_read=read,
    )


def _guard_proxied(limits: ProbeLimits) -> aiohttp.ClientMiddlewareType:
    # Through a proxy the connector only ever sees the proxy's address; judge
    # what can be judged of the target itself before the proxy is asked.
    policy = limits.target_policy

    async def middleware(
        request: aiohttp.ClientRequest, handler: ClientHandlerType
    ) -> aiohttp.ClientResponse:
        if request.proxy is not None:
            why = proxied_refusal(request.url, policy)
            if why is not None:
                raise BlockedAddress(why)
        return await handler(request)

    return middleware


def head_caps(limits: ProbeLimits) -> HeadCaps:
    return HeadCaps(
        max_line_bytes=limits.max_field_bytes,
        max_lines=limits.max_headers,
        max_head_bytes=limits.max_head_bytes,
    )


def build_session(limits: ProbeLimits, *, proxied: bool = False) -> aiohttp.ClientSession:
    """A ClientSession configured for probing. Call it inside a running event loop.

    - every connection is read by a :class:`scanner.prober.head.HeadReader`
      (Chromium's reading of the head, our caps); a keep-alive connection
      whose response was fully framed is reused for the host's next probe, as
      a browser reuses it, and one that failed while idle in the pool is
      replaced once, transparently (``execute``);
    - no connector limits: ``Politeness`` owns concurrency, and a second,
      differently keyed queue inside the timed region would turn waiting into
      timeouts;
    - no cookie jar: a Set-Cookie from one probe must not ride along on the next;
    - ``trust_env`` off: it would also read ~/.netrc and send its credentials
      as Authorization to targets; proxies come from ``ProxyRoutes`` instead
      (``proxied``: some probes may go through one, so the target guard's
      middleware is installed);
    - no decompression (bodies are never read);
    - no silent resend: aiohttp sends an idempotent request a second time when
      its connection breaks, with no public switch (aio-libs/aiohttp#10790); a
      reset would cost the target two connections per attempt and
      ``attempts`` would lie, so the session's ``_retry_connection`` is off
      and the prober alone decides what is retried;
    - every connection checked against ``limits.target_policy`` after name
      resolution (``scanner.prober.guard``).
    """
    connector = guarded_connector(
        limits.target_policy,
        ssl=ssl_setting(limits),
        limit=0,
        limit_per_host=0,
        keepalive_timeout=KEEPALIVE_SECONDS,
    )
    install(connector, head_caps(limits))
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=client_timeout(limits),
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=SKIPPED_AUTO_HEADERS,
        auto_decompress=False,
        trust_env=False,
        read_bufsize=READ_BUFFER_BYTES,
        middlewares=(_guard_proxied(limits),) if proxied else (),
    )
    if not hasattr(session, "_retry_connection"):  # pragma: no cover - an aiohttp we do not know
        raise RuntimeError("this aiohttp's ClientSession cannot be told not to resend requests")
    session._retry_connection = False
    return session


@dataclass(frozen=True, slots=True)
class ProxyRoutes:
    """Which proxy, if any, a URL goes through: HTTP_PROXY / HTTPS_PROXY / NO_PROXY.

    Read once from the environment (upper or lower case, lower wins, as curl
    and urllib do); ``for_url`` is then a pure lookup.
    """

    proxies: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(cls) -> ProxyRoutes:
        """The proxy variables of this process's environment."""
        found = urllib.request.getproxies_environment()
        keep = {k: v for k, v in found.items() if k in ("http", "https", "no") and v}
        return cls(keep)

    def for_url(self, url: str) -> str | None:
        """The proxy URL for ``url``, or None to connect directly."""
        parts = urlsplit(url)
        proxy = self.proxies.get(parts.scheme.lower())
        host = parts.hostname
        if not proxy or not host:
            return None
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
        if _bypassed(host, port, self.proxies.get("no", "")):
            return None
        return proxy


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    # NO_PROXY as curl and urllib read it: "*", or comma-separated names, each
    # matching itself and its subdomains, optionally limited to one port.
    for entry in no_proxy.split(","):
        name = entry.strip().lower()
        if name == "*":
            return True
        if not name:
            continue
        name_port: int | None = None
        head, sep, tail = name.rpartition(":")
        if sep and tail.isdigit() and not head.endswith(":"):
            name, name_port = head, int(tail)
        name = name.strip("[]").lstrip(".")
        if name_port is not None and name_port != port:
            continue
        if host == name or host.endswith("." + name):
            return True
    return False
