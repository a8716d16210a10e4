"""Sending probe requests: ``ProbeRequest`` in, ``Observation`` out, whatever the target does.

Only the status line and the header block are read; the body never is. Every
way a target can fail or misbehave becomes an ``Observation`` with a
``ProbeError`` and a short human detail; nothing a target does raises.
"""

from __future__ import annotations

import asyncio
import errno
import random
import re
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TypeVar

import aiohttp
from aiohttp import http_exceptions
from yarl import URL

from scanner.core.headers import Headers
from scanner.core.observation import Observation, ProbeError
from scanner.core.plan import ProbeRequest
from scanner.prober.guard import blocked_detail
from scanner.prober.limits import ProbeLimits
from scanner.prober.politeness import Politeness, backoff_delay, host_key
from scanner.prober.session import ConnectionLost, ProxyRoutes, build_session

# RFC 9110, 9.2.2. Once such a request may have reached the server, only these
# are sent again: a retried POST could act twice.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# Longest excerpt of target-controlled bytes quoted in an error detail.
MAX_QUOTE = 60
_BYTES_LITERAL = re.compile(r"""b'(?:[^'\\\n]|\\.)*'|b"(?:[^"\\\n]|\\.)*\"""")
_URL_SAFE = re.compile(r"[\x21-\x7e]+")
_E = TypeVar("_E", bound=BaseException)


@dataclass(frozen=True, slots=True)
class _Failure:
    """One attempt's failure, before we know whether it will be retried."""

    error: ProbeError
    detail: str
    transient: bool  # another attempt could succeed (and is safe to make)


class Prober:
    """Async context manager owning one aiohttp ClientSession.

    ``async with Prober(limits) as prober: await prober.send_all(plan)``.
    ``send``/``send_all`` never raise for anything a target does; they raise
    only if used outside the ``async with`` block (RuntimeError) or when
    cancelled. Entering raises ConfigError when ``ca_bundle`` cannot be loaded.
    """

    def __init__(
        self,
        limits: ProbeLimits = ProbeLimits(),  # noqa: B008 - frozen value
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._limits = limits
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._politeness: Politeness | None = None
        self._proxies = ProxyRoutes()

    @property
    def limits(self) -> ProbeLimits:
        """The limits this prober enforces."""
        return self._limits

    async def __aenter__(self) -> Prober:
        if self._session is not None:
            raise RuntimeError("Prober is already open")
        limits = self._limits
        # The environment is read here, once, never at import time.
        self._proxies = ProxyRoutes.from_environment() if limits.trust_env else ProxyRoutes()
        self._politeness = Politeness(
            per_host_concurrency=limits.per_host_concurrency,
            global_concurrency=limits.global_concurrency,
            per_host_rate=limits.per_host_rate,
        )
        self._session = build_session(limits)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        self._politeness = None
        if session is not None:
            await session.close()

    async def send_all(self, requests: Sequence[ProbeRequest]) -> list[Observation]:
        """Send every request, concurrently within the limits; observations in request order."""
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self.send(request)) for request in requests]
        return [task.result() for task in tasks]

    async def send(self, request: ProbeRequest) -> Observation:
        """Send one request, retrying transient failures, and observe the response headers.

        ``elapsed_ms`` is the last attempt's time from its start (name lookup,
        connect, TLS) to the end of the response headers or to the failure,
        excluding politeness waits and backoff; ``attempts`` counts the attempts
        made (0 when the URL could not be sent at all).
        """
        session, politeness = self._open()
        try:
            host = host_key(request.url)
        except ValueError as exc:
            return Observation(
                request,
                error=ProbeError.OTHER,
                error_detail=f"invalid URL: {exc}",
                attempts=0,
            )
        attempt = 0
        while True:
            attempt += 1
            async with politeness.slot(host):
                outcome, elapsed = await self._attempt(session, request)
            elapsed_ms = round(elapsed * 1000, 3)
            if isinstance(outcome, Observation):
                return replace(outcome, elapsed_ms=elapsed_ms, attempts=attempt)
            if not outcome.transient or attempt > self._limits.retries:
                return Observation(
                    request,
                    error=outcome.error,
                    error_detail=outcome.detail,
                    elapsed_ms=elapsed_ms,
                    attempts=attempt,
                )
            # Outside the slot: a backing-off probe holds no connection budget.
            await asyncio.sleep(backoff_delay(attempt, self._limits.backoff, self._rng))

    def _open(self) -> tuple[aiohttp.ClientSession, Politeness]:
        if self._session is None or self._politeness is None:
            raise RuntimeError("Prober is not open: use 'async with Prober(...)'")
        return self._session, self._politeness

    async def _attempt(
        self, session: aiohttp.ClientSession, request: ProbeRequest
    ) -> tuple[Observation | _Failure, float]:
        limits = self._limits
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(limits.total_timeout):
                response = await session.request(
                    request.method,
                    _wire_url(request.url),
                    headers=_wire_headers(request, limits.user_agent),
                    allow_redirects=False,
                    proxy=self._proxies.for_url(request.url),
                )
            try:
                status, reason = response.status, _latin1(response.reason or "")
                lines = tuple(
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in response.raw_headers
                )
            finally:
                # close, not release: release would pool a connection whose body
                # has fully arrived. Every probe gets a fresh connection, like a
                # browser's first visit, and an unread (maybe endless) body is
                # dropped here, not drained.
                response.close()
        except Exception as exc:  # CancelledError is not an Exception: it propagates
            elapsed = loop.time() - started
            return _classify_safely(exc, elapsed, limits, request.method.upper()), elapsed
        elapsed = loop.time() - started
        failure = _over_caps(lines, limits)
        if failure is not None:
            return failure, elapsed
        observation = Observation(request, status=status, reason=reason, headers=Headers(lines))
        return observation, elapsed


def _over_caps(lines: tuple[tuple[str, str], ...], limits: ProbeLimits) -> _Failure | None:
    # The exact caps; the parser enforced them give or take HEADER_*_SLACK.
    if len(lines) > limits.max_headers:
        return _Failure(
            ProbeError.TOO_MANY_HEADERS, f"more than {limits.max_headers} header lines", False
        )
    if any(len(name) + len(value) > limits.max_field_bytes for name, value in lines):
        return _Failure(
            ProbeError.HEADERS_TOO_LARGE,
            f"header line exceeds {limits.max_field_bytes} bytes",
            False,
        )
    return None


def _wire_url(url: str) -> URL | str:
    # A printable-ASCII URL goes out byte for byte (yarl would otherwise
    # re-quote it: a probe of "/a%2fb" must not become "/a/b"). Anything else
    # (an IDN host, a space) needs yarl's encoding to be sendable at all.
    if _URL_SAFE.fullmatch(url):
        return URL(url, encoded=True)
    return url


def _wire_headers(request: ProbeRequest, user_agent: str) -> list[tuple[str, str]]:
    lines = list(request.headers)
    if "user-agent" not in request.headers:
        lines.append(("User-Agent", user_agent))
    return lines


def _latin1(text: str) -> str:
    # aiohttp decodes the reason phrase as UTF-8 with surrogateescape; undo that
    # so it is held like header values: one code point per byte.
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def _classify_safely(exc: Exception, elapsed: float, limits: ProbeLimits, method: str) -> _Failure:
    try:
        return _classify(exc, elapsed, limits, method)
    except Exception as bug:  # our own bug must not become the target's exception
        return _Failure(ProbeError.OTHER, _unexpected(exc) + f" ({_unexpected(bug)})", False)


def _classify(exc: Exception, elapsed: float, limits: ProbeLimits, method: str) -> _Failure:
    """Name the failure precisely, and say whether another attempt is worthwhile."""
    if isinstance(exc, ConnectionLost) and isinstance(exc.__cause__, Exception):
        exc = exc.__cause__
    after = f"after {elapsed:.1f} s"
    # A request that may have reached the server is only retried if idempotent.
    resend_ok = method in IDEMPOTENT_METHODS

    blocked = blocked_detail(exc)
    if blocked is not None:  # our own rule: another attempt would be refused the same way
        return _Failure(ProbeError.BLOCKED, blocked, False)
    certificate = _find(exc, ssl.SSLCertVerificationError)
    if certificate is not None:
        reason = certificate.verify_message or certificate.reason or "unknown reason"
        return _Failure(ProbeError.TLS, f"certificate verify failed: {reason}", False)
    tls = _find(exc, ssl.SSLError)
    if tls is not None:
        return _Failure(ProbeError.TLS, f"TLS handshake failed: {_ssl_reason(tls)}", False)

    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        gai = _find(exc, socket.gaierror)
        why = (gai.strerror if gai is not None else None) or "name does not resolve"
        # EAI_AGAIN is a resolver hiccup; "no such name" will not change in a second.
        again = gai is not None and gai.errno == socket.EAI_AGAIN
        return _Failure(ProbeError.DNS, f"cannot resolve {exc.host}: {why}", again)
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return _Failure(ProbeError.CONNECT, f"cannot connect to proxy: {_os_reason(exc)}", True)
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return _Failure(
            ProbeError.CONNECT, f"proxy refused the tunnel: {exc.status} {exc.message}", False
        )
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return _Failure(
            ProbeError.TIMEOUT, f"timed out after {limits.connect_timeout} s connecting", True
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        # Nothing was sent yet: any method may be tried again.
        os_error = exc.os_error
        if isinstance(os_error, ConnectionRefusedError):
            return _Failure(ProbeError.CONNECT, "connection refused", True)
        if isinstance(os_error, ConnectionResetError):
            return _Failure(
                ProbeError.RESET, f"connection reset by peer while connecting {after}", True
            )
        if isinstance(os_error, TimeoutError):
            return _Failure(
                ProbeError.TIMEOUT, f"timed out after {limits.connect_timeout} s connecting", True
            )
        return _Failure(ProbeError.CONNECT, f"cannot connect: {_os_reason(os_error)}", True)
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return _Failure(
            ProbeError.TIMEOUT,
            f"no data for {limits.read_timeout} s while waiting for response headers",
            resend_ok,
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        partial = not isinstance(exc.message, str)  # the headers parsed so far
        where = "in the middle of the response headers" if partial else "without a response"
        return _Failure(
            ProbeError.RESET, f"server closed the connection {where} {after}", resend_ok
        )
    if isinstance(exc, aiohttp.ClientResponseError):
        return _protocol_failure(exc, limits)
    if isinstance(exc, OSError) and (
        isinstance(exc, ConnectionResetError) or exc.errno in (errno.ECONNRESET, errno.EPIPE)
    ):
        return _Failure(ProbeError.RESET, f"connection reset by peer {after}", resend_ok)
    if isinstance(exc, TimeoutError):  # our asyncio.timeout(total_timeout)
        return _Failure(
            ProbeError.TIMEOUT,
            f"timed out after {limits.total_timeout} s waiting for response headers",
            resend_ok,
        )
    if isinstance(exc, aiohttp.ClientOSError | ConnectionError):
        return _Failure(ProbeError.RESET, f"connection lost {after}: {_os_reason(exc)}", resend_ok)
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return _Failure(ProbeError.OTHER, f"invalid URL: {exc}", False)
    if isinstance(exc, ValueError):  # aiohttp refusing our own request (a CR/LF in a header)
        return _Failure(ProbeError.OTHER, f"cannot send request: {exc}", False)
    return _Failure(ProbeError.OTHER, _unexpected(exc), False)


def _protocol_failure(exc: aiohttp.ClientResponseError, limits: ProbeLimits) -> _Failure:
    """The response did not parse: aiohttp wraps the parser's exception as the cause."""
    if _find(exc, http_exceptions.LineTooLong) is not None:
        return _Failure(
            ProbeError.HEADERS_TOO_LARGE,
            f"header line exceeds {limits.max_field_bytes} bytes",
            False,
        )
    bad_status = _find(exc, http_exceptions.BadStatusLine)
    if bad_status is not None:
        return _Failure(
            ProbeError.BAD_RESPONSE, f"invalid HTTP status line: {_quoted(bad_status)}", False
        )
    invalid_header = _find(exc, http_exceptions.InvalidHeader)
    if invalid_header is not None:
        raw = invalid_header.args[0] if invalid_header.args else invalid_header.hdr
        return _Failure(ProbeError.BAD_RESPONSE, f"invalid header line: {_quote(raw)}", False)
    parser_error = _find(exc, http_exceptions.HttpProcessingError)
    message = str(parser_error.message if parser_error is not None else exc.message)
    if "too many headers" in message.lower():
        return _Failure(
            ProbeError.TOO_MANY_HEADERS, f"more than {limits.max_headers} header lines", False
        )
    first_line = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    return _Failure(
        ProbeError.BAD_RESPONSE, f"invalid HTTP response: {_shorten(first_line)}", False
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _find(exc: BaseException, kind: type[_E]) -> _E | None:
    """The first exception of ``kind`` among ``exc`` and its causes."""
    for link in _chain(exc):
        if isinstance(link, aiohttp.ClientError):
            # aiohttp's wrappers subclass what they wrap (ClientConnectorSSLError
            # is an ssl.SSLError) without its details: look at the wrapped one.
            candidates = (getattr(link, "certificate_error", None), getattr(link, "os_error", None))
        else:
            candidates = (link, None)
        for candidate in candidates:
            if isinstance(candidate, kind):
                return candidate
    return None


def _quoted(bad_status: http_exceptions.BadStatusLine) -> str:
    # llhttp's message embeds the offending line as a bytes literal; the
    # pure-Python parser passes the line itself.
    literal = _BYTES_LITERAL.search(bad_status.message[: 4 * MAX_QUOTE + 200])
    if literal is not None:
        return _shorten(literal.group(0))
    return _quote(bad_status.line)


def _quote(raw: bytes | str) -> str:
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
    if len(data) > MAX_QUOTE:
        return repr(data[:MAX_QUOTE]) + "..."
    return repr(data)


def _shorten(text: str) -> str:
    return text if len(text) <= 2 * MAX_QUOTE else text[: 2 * MAX_QUOTE] + "..."


def _ssl_reason(error: ssl.SSLError) -> str:
    if error.reason:
        return str(error.reason).replace("_", " ").lower()
    return _shorten(str(error)) or type(error).__name__


def _os_reason(error: OSError) -> str:
    return error.strerror or _shorten(str(error)) or type(error).__name__


def _unexpected(exc: BaseException) -> str:
    text = _shorten(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
