"""The API's HTTP connections: a request-head deadline, keep-alive, a connection budget and
accept errors that are logged once per episode instead of flooding stderr.

aiohttp on its own gives a connection that never finishes its request head as
long as its keep-alive timeout (3630 s by default) to do so, and nothing bounds
how many such connections are open. 1100 half-open connections then use every
file descriptor of a process with the common limit of 1024: ``/healthz`` stops
answering, and asyncio logs ``socket.accept() out of system resource`` (in a
tight loop of its own: hundreds of lines a second) until they go away.

Here, for every runner of the API (:func:`make_runner`):

- **Head deadline.** From its connection, and from the first byte of each
  later request, a client has ``http_header_timeout`` seconds to send a whole
  request head; then the connection is closed. Trickling one header line at a
  time gains nothing: the deadline is not renewed by data.
- **Keep-alive.** An idle connection between requests is closed after
  ``http_keepalive_timeout`` seconds (75 s: longer than the idle timeouts of
  the usual load balancers, 60 s, so they close first and never send a request
  on a connection we are closing).
- **Budget.** At most ``http_max_connections`` connections are open (default:
  the open-file limit less a reserve for the database, probes and hooks). One
  more is made room for by closing the least recently active connection that
  is not handling a request (a half-open or idle one), so a fresh ``/healthz``
  gets through however many slow clients hold connections; only when every
  open connection is busy is the new one closed instead.
- **Accept errors.** When accepting fails for want of descriptors anyway (the
  limit was set above what the process may open), one warning says so, one
  line says when accepting works again, and an idle connection is closed to
  free a descriptor.

:func:`raise_open_file_limit` (``serve`` calls it at start) lifts the soft
open-file limit to the hard one, as servers usually do; the systemd unit sets
the hard limit (``LimitNOFILE``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader

from scanner.settings import Settings

try:
    import resource
except ImportError:  # pragma: no cover - Windows has no open-file limit to read
    resource = None  # type: ignore[assignment]

log = logging.getLogger("scanner.api.connections")

# Descriptors a `serve` process keeps for other things than API connections: the
# database pool, the worker's probes (64 in flight by default), hook deliveries,
# log files, the event loop's own.
FD_RESERVE = 256
# Without an open-file limit to read (or an unlimited one): the budget.
DEFAULT_MAX_CONNECTIONS = 4096
ACCEPT_ERROR_MESSAGE = "socket.accept() out of system resource"
# An episode of failed accepts ends with the first accept this long after its last failure:
# while descriptors run short, accepts and failures alternate, and that is one episode.
ACCEPT_QUIET_S = 5.0


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one API listener allows its clients (module docstring)."""

    header_timeout: float
    keepalive_timeout: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        """The settings' limits; a budget of 0 is derived from the open-file limit now."""
        budget = settings.http_max_connections or connection_budget(open_file_limit())
        return cls(settings.http_header_timeout, settings.http_keepalive_timeout, budget)


def open_file_limit() -> int | None:
    """The process's soft open-file limit (None: unlimited, or no such limit here)."""
    if resource is None:  # pragma: no cover
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def connection_budget(limit: int | None) -> int:
    """API connections a process with ``limit`` open files may hold: the limit less
    :data:`FD_RESERVE`, or half of a limit too small for that reserve."""
    if limit is None:
        return DEFAULT_MAX_CONNECTIONS
    if limit >= 2 * FD_RESERVE:
        return limit - FD_RESERVE
    return max(1, limit // 2)


def raise_open_file_limit() -> int | None:
    """Lift the soft open-file limit to the hard one (the operator's ceiling: LimitNOFILE,
    ``ulimit -Hn``); returns the soft limit in force afterwards."""
    if resource is None:  # pragma: no cover
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # e.g. macOS refuses an unlimited soft limit
            log.debug("open-file limit left at %s: %s", soft, exc)
    return None if soft == resource.RLIM_INFINITY else int(soft)


class ConnectionGuard:
    """The open connections of one listener, in order of last activity, and its accept
    errors. Lives on the event loop: no locking."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        # Insertion order is activity order: a connection moves to the end when it
        # opens and when it finishes a request. The first idle one is shed first.
        self._open: dict[_Handler, None] = {}
        self.shed = 0
        self.head_timeouts = 0
        self._accept_failures = 0
        self._failing_since: float | None = None
        self._last_failure = 0.0

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def opened(self, handler: _Handler) -> None:
        if (
            self._failing_since is not None
            and time.monotonic() - self._last_failure >= ACCEPT_QUIET_S
        ):
            log.warning(
                "the API accepts connections again, after %d failed accepts in %.1f s",
                self._accept_failures,
                self._last_failure - self._failing_since,
            )
            self._failing_since = None
            self._accept_failures = 0
        self._open[handler] = None
        if len(self._open) > self.limits.max_connections and not self._shed_one(handler):
            # Every other connection is busy with a request: the newcomer waits its turn.
            self.shed += 1
            handler.force_close()

    def active(self, handler: _Handler) -> None:
        if handler in self._open:
            del self._open[handler]
            self._open[handler] = None

    def closed(self, handler: _Handler) -> None:
        self._open.pop(handler, None)

    def _shed_one(self, spare: _Handler | None) -> bool:
        for candidate in self._open:
            if candidate is not spare and not candidate.busy:
                self.shed += 1
                candidate.force_close()
                self._open.pop(candidate, None)
                return True
        return False

    def accept_failed(self, exc: BaseException | None) -> None:
        """asyncio could not accept a connection (no descriptor left)."""
        self._accept_failures += 1
        self._last_failure = time.monotonic()
        self._shed_one(None)
        if self._failing_since is not None:
            return
        self._failing_since = self._last_failure
        log.warning(
            "the API cannot accept connections: %s (%d open, budget %d, open-file limit %s); "
            "idle connections are closed to make room. Logged once until accepting works "
            "again; raise LimitNOFILE (ulimit -n) or lower CORS_SCANNER_HTTP_MAX_CONNECTIONS",
            getattr(exc, "strerror", None) or exc,
            len(self._open),
            self.limits.max_connections,
            open_file_limit() or "unlimited",
        )


class _Handler(web.RequestHandler):
    """aiohttp's connection protocol, with the head deadline and the guard's bookkeeping."""

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager.guard
        self._head_deadline: asyncio.TimerHandle | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start_head_deadline()
        self._guard.opened(self)

    def data_received(self, data: bytes) -> None:
        if data and not self.busy and self._head_deadline is None:
            self._start_head_deadline()  # the first byte of a next request on this connection
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head_deadline()
        self._guard.closed(self)
        super().connection_lost(exc)

    def head_received(self) -> None:
        self._cancel_head_deadline()
        self.busy = True

    def request_done(self) -> None:
        self.busy = False
        self._guard.active(self)

    def _start_head_deadline(self) -> None:
        self._cancel_head_deadline()
        loop = asyncio.get_running_loop()
        self._head_deadline = loop.call_later(self._guard.limits.header_timeout, self._too_slow)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _too_slow(self) -> None:
        self._head_deadline = None
        if not self.busy:
            self._guard.head_timeouts += 1
            self.force_close()


_Factory = Callable[
    [
        RawRequestMessage,
        StreamReader,
        web.RequestHandler,
        AbstractStreamWriter,
        "asyncio.Task[None]",
    ],
    web.BaseRequest,
]


class GuardedServer(web.Server):
    """aiohttp's low-level server, making :class:`_Handler` connections under one guard."""

    def __init__(self, plain: web.Server, guard: ConnectionGuard) -> None:
        # The application's own server, as AppRunner built it, is the template: same
        # request handler and factory and the same handler arguments (limits, loggers).
        super().__init__(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **plain._kwargs,
        )
        self.guard = guard
        inner_factory: _Factory = self.request_factory
        inner_handler = self.request_handler

        def make_request(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: web.RequestHandler,
            writer: AbstractStreamWriter,
            task: asyncio.Task[None],
        ) -> web.BaseRequest:
            # aiohttp makes the request object once the whole head is parsed.
            if isinstance(protocol, _Handler):
                protocol.head_received()
            return inner_factory(message, payload, protocol, writer, task)

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            try:
                return await inner_handler(request)
            finally:
                protocol = request.protocol
                if isinstance(protocol, _Handler):
                    protocol.request_done()

        self.request_factory = make_request
        self.request_handler = handle

    def __call__(self) -> web.RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """An AppRunner whose connections are guarded, and whose loop logs accept errors once
    per episode while it runs."""

    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=limits.keepalive_timeout, **kwargs)
        self.guard = ConnectionGuard(limits)
        self._previous_handler: Callable[..., Any] | None = None
        self._installed: Callable[..., Any] | None = None

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        loop = asyncio.get_running_loop()
        previous = loop.get_exception_handler()
        guard = self.guard

        def exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            if context.get("message") == ACCEPT_ERROR_MESSAGE:
                guard.accept_failed(context.get("exception"))
            elif previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(exception_handler)
        self._previous_handler, self._installed = previous, exception_handler
        return GuardedServer(plain, guard)

    async def _cleanup_server(self) -> None:
        loop = asyncio.get_running_loop()
        if self._installed is not None and loop.get_exception_handler() is self._installed:
            loop.set_exception_handler(self._previous_handler)
        self._installed = None
        await super()._cleanup_server()


def make_guarded_runner(app: web.Application, settings: Settings, **kwargs: Any) -> GuardedRunner:
    """A runner of ``app`` under the connection limits of ``settings``."""
    return GuardedRunner(app, ConnectionLimits.from_settings(settings), **kwargs)


__all__ = [
    "ConnectionGuard",
    "ConnectionLimits",
    "GuardedRunner",
    "connection_budget",
    "make_guarded_runner",
    "open_file_limit",
    "raise_open_file_limit",
]
