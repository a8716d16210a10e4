"""Sending probe requests: ``ProbeRequest`` in, ``Observation`` out, whatever the target does.

Only the status line and the header block are read (by Chromium's rules,
:mod:`scanner.prober.head`); the body never is. Every way a target can fail
or misbehave becomes an ``Observation`` with a ``ProbeError`` and a short
human detail; nothing a target does raises.

A fixed pool of worker tasks (``global_concurrency`` of them) sends every
probe, taking them from per-host queues (:mod:`scanner.prober.politeness`):
no task, semaphore or context manager per probe. Two rules keep a scan fast
whatever the targets do:

- a host whose first probes all time out is unresponsive
  (:mod:`scanner.prober.health`): its remaining probes are recorded as not
  sent, ``ProbeError.HOST_UNRESPONSIVE``, at once;
- each ``send_all`` batch (one endpoint) has a time budget
  (``ProbeLimits.budget``): once its attempts have kept the host busy that
  long, its unsent probes are recorded as ``ProbeError.DEADLINE``.
"""

from __future__ import annotations

import asyncio
import errno
import random
import re
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

import aiohttp
from aiohttp import http_exceptions
from yarl import URL

from scanner.core.headers import bounded_headers, bounded_raw_lines
from scanner.core.observation import Observation, ProbeError
from scanner.core.plan import ProbeRequest
from scanner.core.response_head import HeadRefused, ResponseHead
from scanner.prober.guard import blocked_detail
from scanner.prober.head import CAPTURE, Capture
from scanner.prober.health import HostHealth
from scanner.prober.limits import ProbeLimits
from scanner.prober.politeness import Politeness, backoff_delay, host_key
from scanner.prober.session import ProxyRoutes, build_session

# RFC 9110, 9.2.2. Once such a request may have reached the server, only these
# are sent again: a retried POST could act twice.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# Longest excerpt of target-controlled bytes quoted in an error detail.
MAX_QUOTE = 60
_BYTES_LITERAL = re.compile(r"""b'(?:[^'\\\n]|\\.)*'|b"(?:[^"\\\n]|\\.)*\"""")
_URL_SAFE = re.compile(r"[\x21-\x7e]+")
_E = TypeVar("_E", bound=BaseException)
_NOT_RETRIED_DEAD = "; not retried: the host is unresponsive"
_NOT_RETRIED_BUDGET = "; not retried: the endpoint's time budget is used up"


@dataclass(frozen=True, slots=True)
class _Failure:
    """One attempt's failure, before we know whether it will be retried."""

    error: ProbeError
    detail: str
    transient: bool  # another attempt could succeed (and is safe to make)
    counted: bool = False  # already told to HostHealth (by the deadline watchdog)


class _Batch:
    """One ``send_all`` call: its results, and its share of the host's time."""

    __slots__ = ("expired", "future", "jobs", "remaining", "results", "used")

    def __init__(self, requests: Sequence[ProbeRequest]) -> None:
        self.results: list[Observation | None] = [None] * len(requests)
        self.remaining = len(requests)
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.jobs: list[_Job] = []
        self.used = 0.0  # seconds of the budget spent
        self.expired = False


class _Job:
    __slots__ = (
        "attempts",
        "batch",
        "elapsed_ms",
        "failure",
        "host",
        "index",
        "request",
        "settled",
    )

    def __init__(self, batch: _Batch, index: int, request: ProbeRequest, host: str) -> None:
        self.batch = batch
        self.index = index
        self.request = request
        self.host = host
        self.attempts = 0
        self.settled = False
        self.failure: _Failure | None = None  # the last attempt's, while a retry waits
        self.elapsed_ms = 0.0

    def settle_failure(self, note: str = "") -> None:
        failure = self.failure
        assert failure is not None
        self.settle(
            Observation(
                self.request,
                error=failure.error,
                error_detail=failure.detail + note,
                elapsed_ms=self.elapsed_ms,
                attempts=self.attempts,
            )
        )

    def settle(self, observation: Observation) -> None:
        if self.settled:
            return
        self.settled = True
        batch = self.batch
        batch.results[self.index] = observation
        batch.remaining -= 1
        if not batch.remaining and not batch.future.done():
            batch.future.set_result(None)


class Prober:
    """Async context manager owning one aiohttp ClientSession and the worker pool.

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
        self._politeness: Politeness[_Job] | None = None
        self._health = HostHealth(limits.unresponsive_after)
        self._workers: list[asyncio.Task[None]] = []
        self._captures: list[Capture] = []
        self._proxies = ProxyRoutes()
        self._hosts: dict[str, str] = {}  # URL -> host key, for the URLs of the batches in flight

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
            per_host_rate=limits.per_host_rate,
        )
        self._health = HostHealth(limits.unresponsive_after)
        self._session = build_session(limits, proxied=bool(self._proxies.proxies))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.cancel()
        if workers:
            await asyncio.gather(*workers, return_exceptions=True)
        self._politeness = None
        if session is not None:
            await session.close()

    async def send_all(self, requests: Sequence[ProbeRequest]) -> list[Observation]:
        """Send every request, concurrently within the limits; observations in request order."""
        politeness = self._open()
        if not requests:
            return []
        self._start_workers()
        batch = _Batch(requests)
        health = self._health
        for index, request in enumerate(requests):
            try:
                host = self._host_of(request.url)
            except ValueError as exc:
                _Job(batch, index, request, "").settle(
                    Observation(
                        request,
                        error=ProbeError.OTHER,
                        error_detail=f"invalid URL: {exc}",
                        attempts=0,
                    )
                )
                continue
            job = _Job(batch, index, request, host)
            batch.jobs.append(job)
            if health.dead(host):
                job.settle(_not_sent(request, ProbeError.HOST_UNRESPONSIVE, health.detail(host)))
            else:
                politeness.submit(host, job)
        try:
            if batch.remaining:
                await batch.future
        finally:
            if batch.remaining:  # cancelled: nothing more of this batch is sent
                batch.expired = True
                for job in batch.jobs:
                    job.settled = True
            # Jobs point at their batch: without the list the two form no cycle,
            # and reference counting frees a finished endpoint at once.
            batch.jobs = []
        return batch.results  # type: ignore[return-value] # every slot is filled

    async def send(self, request: ProbeRequest) -> Observation:
        """Send one request, retrying transient failures, and observe the response headers.

        ``elapsed_ms`` is the last attempt's time from its start (name lookup,
        connect, TLS) to the end of the response headers or to the failure,
        excluding politeness waits and backoff; ``attempts`` counts the attempts
        made (0 when the request was not sent at all).
        """
        return (await self.send_all([request]))[0]

    def _open(self) -> Politeness[_Job]:
        if self._session is None or self._politeness is None:
            raise RuntimeError("Prober is not open: use 'async with Prober(...)'")
        return self._politeness

    def _host_of(self, url: str) -> str:
        hosts = self._hosts
        host = hosts.get(url)
        if host is None:
            host = host_key(url)
            if len(hosts) > 4096:
                hosts.clear()
            hosts[url] = host
        return host

    def _start_workers(self) -> None:
        if self._workers:
            return
        self._captures = [Capture() for _ in range(self._limits.global_concurrency)]
        self._workers = [
            asyncio.create_task(self._work(capture), name=f"cors-scanner-prober-{i}")
            for i, capture in enumerate(self._captures)
        ]
        self._workers.append(asyncio.create_task(self._watch(), name="cors-scanner-deadlines"))

    async def _watch(self) -> None:
        """Cancel every attempt past its total timeout.

        One task ticking for all workers instead of a timer per attempt
        (``asyncio.timeout`` costs more than the rest of a probe's scheduling):
        an attempt ends within one tick (at most 50 ms, or a twentieth of the
        timeout) after its deadline.
        """
        loop = asyncio.get_running_loop()
        tick = min(0.05, max(0.005, self._limits.total_timeout / 20))
        captures = self._captures
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            for capture in captures:
                deadline = capture.deadline
                if deadline and now >= deadline and not capture.timed_out:
                    capture.timed_out = True
                    # Counted here, for every attempt due in this tick, before any
                    # worker resumes: a dead host's first timeouts come in together,
                    # and no freed slot may start another probe to it meanwhile.
                    host = capture.host
                    if self._health.timed_out(host, capture.started, now - capture.started):
                        self._give_up_on(host)
                    if capture.task is not None:
                        capture.task.cancel()

    async def _work(self, capture: Capture) -> None:
        """One worker: take the next job that may start, attempt it, repeat."""
        politeness = self._open()
        capture.task = asyncio.current_task()
        CAPTURE.set(capture)  # this task's context only
        while True:
            taken = politeness.take()
            if taken is None:
                await politeness.wait()
                continue
            host, job = taken
            try:
                if job.settled:
                    continue
                await self._run(job, capture)
            except Exception as bug:  # our own bug must not cost a worker, nor lose a probe
                job.settle(
                    Observation(
                        job.request,
                        error=ProbeError.OTHER,
                        error_detail=f"internal error: {_unexpected(bug)}",
                        attempts=job.attempts,
                    )
                )
            finally:
                politeness.done(host)

    async def _run(self, job: _Job, capture: Capture) -> None:
        session = self._session
        if session is None:  # pragma: no cover - closing
            return
        limits = self._limits
        job.attempts += 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcome = await self._attempt(session, job.request, job.host, capture)
        finished = loop.time()
        elapsed = finished - started
        elapsed_ms = round(elapsed * 1000, 3)
        batch = job.batch
        batch.used += elapsed / limits.per_host_concurrency
        host = job.host
        if isinstance(outcome, ResponseHead):
            self._health.answered(host, finished)
            job.settle(
                Observation(
                    job.request,
                    outcome.status,
                    outcome.reason,
                    # Cut here, before the batch holds it: a batch of a hostile
                    # target's 256 KiB heads would otherwise sit in memory until
                    # its commit, and then in the database.
                    bounded_headers(outcome.headers, limits.kept_header_bytes),
                    None,
                    None,
                    elapsed_ms,
                    job.attempts,
                    bounded_raw_lines(outcome.raw_lines, limits.kept_header_bytes),
                )
            )
        else:
            job.failure, job.elapsed_ms = outcome, elapsed_ms
            retry = outcome.transient and job.attempts <= limits.retries
            if outcome.error is not ProbeError.TIMEOUT:
                # Refused, reset, garbage: the host is there, answering badly.
                self._health.answered(host, finished)
            elif not outcome.counted and self._health.timed_out(host, started, elapsed):
                self._give_up_on(host)
            if retry and self._health.dead(host):
                job.settle_failure(_NOT_RETRIED_DEAD)
            elif retry and batch.expired:
                job.settle_failure(_NOT_RETRIED_BUDGET)
            elif retry:
                # Outside the slot: a backing-off probe holds no connection budget.
                delay = backoff_delay(job.attempts, limits.backoff, self._rng)
                loop.call_later(delay, self._resubmit, job)
            else:
                job.settle_failure()
        if not batch.expired and batch.used > limits.budget and batch.remaining:
            self._expire(batch)

    def _resubmit(self, job: _Job) -> None:
        politeness = self._politeness
        if job.settled or politeness is None:
            return
        if self._health.dead(job.host):
            job.settle_failure(_NOT_RETRIED_DEAD)
        elif job.batch.expired:
            job.settle_failure(_NOT_RETRIED_BUDGET)
        else:
            politeness.submit(job.host, job)

    def _give_up_on(self, host: str) -> None:
        """``host`` became unresponsive: its queued probes are recorded, not sent."""
        politeness = self._politeness
        if politeness is None:  # pragma: no cover - closing
            return
        detail = self._health.detail(host)
        for job in politeness.drain(host):
            job.settle(_not_sent(job.request, ProbeError.HOST_UNRESPONSIVE, detail))

    def _expire(self, batch: _Batch) -> None:
        batch.expired = True
        detail = self._budget_detail()
        for job in batch.jobs:
            if not job.settled and not job.attempts:
                job.settle(_not_sent(job.request, ProbeError.DEADLINE, detail))

    def _budget_detail(self) -> str:
        limits = self._limits
        return (
            f"not sent: the endpoint's time budget of {limits.budget:.1f} s was used up "
            f"(its attempts' time, per slot of {limits.per_host_concurrency} per host)"
        )

    async def _attempt(
        self, session: aiohttp.ClientSession, request: ProbeRequest, host: str, capture: Capture
    ) -> ResponseHead | _Failure:
        limits = self._limits
        proxy = self._proxies.for_url(request.url) if self._proxies.proxies else None
        tunnel = proxy is not None and request.url[:6].lower() == "https:"
        loop = asyncio.get_running_loop()
        started = loop.time()
        url = _wire_url(request.url)
        headers = self._wire_headers(request)
        capture.reset(through_tunnel=tunnel)
        # The watchdog (_watch) cancels this task at the deadline; nothing below
        # awaits outside session.request, so a cancel can only land in there.
        capture.host, capture.started = host, started
        capture.deadline = started + limits.total_timeout
        try:
            try:
                response = await session.request(
                    request.method, url, headers=headers, allow_redirects=False, proxy=proxy
                )
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                reader = capture.reader
                if reader is None or not reader.reused or reader.received:
                    raise
                # The server had closed an idle keep-alive connection: like a
                # browser, send once more on a fresh one (not a retry: the
                # request never reached it).
                capture.reset(through_tunnel=tunnel)
                response = await session.request(
                    request.method, url, headers=headers, allow_redirects=False, proxy=proxy
                )
            # Never read the body: a fully framed one has already returned the
            # connection to the pool; anything else closes it here, unread.
            response.close()
        except asyncio.CancelledError:
            if not capture.timed_out:
                raise
            task = asyncio.current_task()
            if task is not None and task.uncancel() > 0:
                raise  # cancelled for another reason too (the prober is closing)
            return self._timed_out(request, loop.time() - started)
        except Exception as exc:  # CancelledError is not an Exception: handled above
            reader = capture.reader
            partial = reader is not None and reader.received > 0
            return _classify_safely(
                exc, loop.time() - started, limits, request.method.upper(), partial
            )
        finally:
            capture.deadline = 0.0
            capture.timed_out = False
        reader = capture.reader
        head = reader.head if reader is not None else None
        if head is None:  # pragma: no cover - aiohttp answered without our reader
            return _Failure(ProbeError.OTHER, "no response head was read", False)
        if isinstance(head, HeadRefused):
            return _Failure(head.error, head.detail, False)
        return head

    def _timed_out(self, request: ProbeRequest, elapsed: float) -> _Failure:
        limits = self._limits
        resend_ok = request.method.upper() in IDEMPOTENT_METHODS
        return _Failure(
            ProbeError.TIMEOUT,
            f"timed out after {limits.total_timeout} s waiting for response headers",
            resend_ok,
            counted=True,
        )

    def _wire_headers(self, request: ProbeRequest) -> Sequence[tuple[str, str]]:
        lines = request.headers.lines
        if "user-agent" in request.headers:
            return lines
        return (*lines, ("User-Agent", self._limits.user_agent))


def _not_sent(request: ProbeRequest, error: ProbeError, detail: str) -> Observation:
    return Observation(request, error=error, error_detail=detail, attempts=0)


def _wire_url(url: str) -> URL | str:
    # A printable-ASCII URL goes out byte for byte (yarl would otherwise
    # re-quote it: a probe of "/a%2fb" must not become "/a/b"). Anything else
    # (an IDN host, a space) needs yarl's encoding to be sendable at all.
    if _URL_SAFE.fullmatch(url):
        return URL(url, encoded=True)
    return url


def _latin1(text: str) -> str:
    # aiohttp decodes the reason phrase as UTF-8 with surrogateescape; undo that
    # so it is held like header values: one code point per byte.
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def _classify_safely(
    exc: Exception, elapsed: float, limits: ProbeLimits, method: str, partial: bool
) -> _Failure:
    try:
        return _classify(exc, elapsed, limits, method, partial)
    except Exception as bug:  # our own bug must not become the target's exception
        return _Failure(ProbeError.OTHER, _unexpected(exc) + f" ({_unexpected(bug)})", False)


def _classify(
    exc: Exception, elapsed: float, limits: ProbeLimits, method: str, partial: bool
) -> _Failure:
    """Name the failure precisely, and say whether another attempt is worthwhile.

    ``partial``: some of the response head had arrived.
    """
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
    if isinstance(exc, TimeoutError):  # an asyncio timeout inside aiohttp
        return _Failure(
            ProbeError.TIMEOUT,
            f"timed out after {limits.total_timeout} s waiting for response headers",
            resend_ok,
            counted=True,
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
