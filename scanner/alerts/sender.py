"""Sending one delivery attempt: ``PreparedRequest`` in, ``AttemptResult`` out, whatever the receiver does.

The channel builders (``webhook``, ``slack``, ``pagerduty``) produce a
:class:`PreparedRequest`; the dispatcher sends it with :func:`deliver` through
a session from :func:`build_hook_session` and records the
:class:`AttemptResult` in the delivery log. A receiver that is slow, huge,
broken or hostile costs at most ``timeout`` seconds and
:data:`MAX_EXCERPT_BYTES` of body; it never raises.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from scanner import PROJECT_URL, __version__
from scanner.alerts.retry import (
    Classification,
    DeliveryError,
    SuccessRule,
    classify_error,
    classify_response,
    parse_retry_after,
)
from scanner.core.hooks import Channel
from scanner.ssrf import BLOCKED_MARKER, AddressPolicy, BlockedAddress, guarded_connector

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_USER_AGENT",
    "MAX_EXCERPT_BYTES",
    "AttemptResult",
    "Channel",
    "PreparedRequest",
    "build_hook_session",
    "deliver",
]

DEFAULT_USER_AGENT = f"cors-scanner-hooks/{__version__} (+{PROJECT_URL})"
DEFAULT_TIMEOUT = 15.0  # seconds; GitHub waits 10 s, Standard Webhooks suggests 15-30 s
MAX_EXCERPT_BYTES = 2048  # of the response body, for the delivery log
# What aiohttp buffers of a body before it stops reading the socket: bounds
# what a 10 MB (or endless) answer costs before we close the connection.
READ_BUFFER_BYTES = 16384
# Shown instead of secrets when request headers go to the delivery log.
REDACTED = "[redacted]"
_SECRET_HEADERS = frozenset({"webhook-signature", "x-hub-signature-256", "authorization"})


_SUCCESS = {
    Channel.WEBHOOK: SuccessRule.ANY_2XX,
    Channel.SLACK: SuccessRule.SLACK_OK,
    Channel.PAGERDUTY: SuccessRule.ACCEPTED_202,
}


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """One HTTP request, ready to send: exactly these headers and body bytes.

    ``body`` is what any signature covers; nothing may re-serialize it.
    ``repr`` shows only the channel, method and host (see ``__repr__``).
    """

    channel: Channel
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = field(repr=False)
    method: str = "POST"

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def __repr__(self) -> str:
        # A Slack webhook URL is itself a credential, and a signature can be
        # replayed for minutes: show where the request goes, nothing more.
        host = urlsplit(self.url).hostname or "?"
        return f"PreparedRequest({self.channel.value} {self.method} {host}, {len(self.body)} bytes)"

    def loggable_headers(self) -> tuple[tuple[str, str], ...]:
        """The headers with signatures and credentials replaced by ``[redacted]``."""
        return tuple(
            (name, REDACTED if name.lower() in _SECRET_HEADERS else value)
            for name, value in self.headers
        )


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one attempt did, for the delivery log and the retry decision.

    ``status`` is None when no response arrived (then ``error`` says why and
    ``error_detail`` how). ``duration_ms`` runs from the start of the attempt
    (name lookup, connect) to the end of the excerpt or the failure.
    ``response_excerpt`` is at most the first :data:`MAX_EXCERPT_BYTES` bytes
    of the body, decoded as UTF-8 with replacement characters. ``retry_after``
    is the receiver's ``Retry-After`` in seconds (capped), if it sent one.
    """

    status: int | None
    duration_ms: float
    classification: Classification
    response_excerpt: str = ""
    error: DeliveryError | None = None
    error_detail: str = ""
    retry_after: float | None = None


def build_hook_session(
    policy: AddressPolicy = AddressPolicy(),  # noqa: B008 - frozen value
    *,
    resolver: AbstractResolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
    user_agent: str = DEFAULT_USER_AGENT,
) -> aiohttp.ClientSession:
    """A ClientSession for receivers, behind the SSRF guard. Call inside a running loop.

    - every connection goes through ``scanner.ssrf.guarded_connector``
      (``resolver`` is its inner resolver; default: the system's);
    - no proxies and no ~/.netrc (``trust_env`` off): see the ssrf module;
    - no cookie jar: one receiver's cookies never ride along to another;
    - no decompression and no Accept-Encoding: a compressed answer cannot
      expand in memory while we read its excerpt;
    - certificates verified (``ssl_context`` to trust a private CA);
    - timeouts come from :func:`deliver`.
    """
    connector = guarded_connector(
        policy, resolver=resolver, ssl=ssl_context if ssl_context is not None else True
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("Accept-Encoding",),
        auto_decompress=False,
        trust_env=False,
        read_bufsize=READ_BUFFER_BYTES,
        headers={"User-Agent": user_agent},
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def deliver(
    session: aiohttp.ClientSession,
    request: PreparedRequest,
    *,
    # A parameter, not the caller's asyncio.timeout: a timeout is a result to
    # classify and log (DeliveryError.TIMEOUT), not an exception to catch.
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109
    clock: Callable[[], datetime] = _utcnow,
) -> AttemptResult:
    """Send one attempt of ``request`` and classify what happened. Never raises for the receiver.

    Send through a session from :func:`build_hook_session`: the SSRF guard
    lives in its connector. Redirects are not followed. At most :data:`MAX_EXCERPT_BYTES` of the body
    are read, then the connection is closed (not drained, not reused).
    ``timeout`` (seconds) bounds everything from connect to the excerpt.
    ``clock`` reads HTTP-date ``Retry-After`` values. Only cancellation
    propagates.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()

    def elapsed_ms() -> float:
        return round((loop.time() - started) * 1000, 3)

    try:
        async with asyncio.timeout(timeout):
            response = await session.request(
                request.method,
                request.url,
                data=request.body,
                headers=list(request.headers),
                allow_redirects=False,
            )
            try:
                excerpt = await _read_excerpt(response.content)
                status = response.status
                retry_after_header = response.headers.get("Retry-After")
            finally:
                # close, not release: the unread rest of a (maybe endless)
                # body is dropped with the connection, never drained.
                response.close()
    except Exception as exc:  # CancelledError is not an Exception: it propagates
        error, detail = _describe(exc, timeout)
        return AttemptResult(
            status=None,
            duration_ms=elapsed_ms(),
            classification=classify_error(error, detail),
            error=error,
            error_detail=detail,
        )
    return AttemptResult(
        status=status,
        duration_ms=elapsed_ms(),
        classification=classify_response(status, excerpt, _SUCCESS[request.channel]),
        response_excerpt=excerpt.decode("utf-8", "replace"),
        retry_after=parse_retry_after(retry_after_header, now=clock()),
    )


async def _read_excerpt(content: aiohttp.StreamReader) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < MAX_EXCERPT_BYTES:
        chunk = await content.read(MAX_EXCERPT_BYTES - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _describe(exc: Exception, timeout: float) -> tuple[DeliveryError, str]:
    """Name a failed attempt; the detail is ours, short, and free of response bytes."""
    blocked = _blocked(exc)
    if blocked is not None:
        return DeliveryError.BLOCKED, blocked.reason
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return DeliveryError.TIMEOUT, f"no complete answer within {timeout:g} s"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return DeliveryError.TLS, f"certificate verify failed: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientConnectorSSLError | ssl.SSLError):
        return DeliveryError.TLS, f"TLS handshake failed: {_os_reason(exc)}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return DeliveryError.DNS, f"cannot resolve {exc.host}: {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return DeliveryError.CONNECT, f"cannot connect: {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return DeliveryError.RESET, "the receiver closed the connection before answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return DeliveryError.RESET, "the connection broke in the middle of the response body"
    if isinstance(exc, aiohttp.ClientResponseError):
        return DeliveryError.PROTOCOL, "the response is not valid HTTP"
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return DeliveryError.INVALID_URL, "the URL cannot be requested"
    if isinstance(exc, aiohttp.ClientOSError | ConnectionError):
        return DeliveryError.RESET, f"connection lost: {_os_reason(exc)}"
    if isinstance(exc, ValueError):  # aiohttp refusing our own request (a CR/LF in a header)
        return DeliveryError.INVALID_URL, f"cannot send the request: {type(exc).__name__}"
    return DeliveryError.OTHER, type(exc).__name__


def _blocked(exc: BaseException) -> BlockedAddress | None:
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BlockedAddress):
            return current
        os_error = getattr(current, "os_error", None)
        if isinstance(os_error, BlockedAddress):
            return os_error
        # aiohappyeyeballs merges the errors of several addresses into one
        # plain OSError that keeps only their messages.
        if isinstance(current, OSError) and BLOCKED_MARKER in str(current):
            return BlockedAddress(str(current).split(BLOCKED_MARKER, 1)[1].lstrip(": "))
        current = current.__cause__ or current.__context__
    return None


def _os_reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
