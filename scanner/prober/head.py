"""Reading each response head the way Chromium does, on aiohttp's own connections.

aiohttp owns the connection: name resolution through the target guard, TLS,
proxies, writing the request, connect and read timeouts. Its response parser
is strict, though (llhttp refuses ``Access-Control-Allow-Origin : x``, a line
without a colon, a bare CR), and a browser is not: the verdict must be about
the header block the browser saw. So the connection's protocol is
:class:`HeadReader`, a subclass of aiohttp's ``ResponseHandler`` that keeps
the response's bytes to itself until the head is complete, reads them with
:func:`scanner.core.response_head.parse_head` (Chromium's rules), and then
hands aiohttp a stand-in head that carries only the real response's framing
(its ``Content-Length`` or chunked coding, or ``Connection: close``). aiohttp's
request then returns normally whatever the target sent; the prober takes the
real status and lines from the reader. The body is never read by the
prober: aiohttp frames it so a well-framed keep-alive connection is reused
for the host's next probe, as a browser reuses it; anything it cannot frame
(no length, a refused head, HTTP/1.0) closes the connection, and its bytes
(maybe an endless body) are dropped unread.

While the head is incomplete the reader enforces the caps (one line, the line
count, the whole head) and refuses a response that is not HTTP or carries a
NUL as soon as it sees it, instead of waiting for a blank line that may never
come. Each data chunk restarts aiohttp's read timeout, as its own parser
would, so ``read_timeout`` keeps meaning "the longest silence".

This couples to aiohttp internals: ``ResponseHandler``, its
``set_response_params`` (called once per request, before it is sent: the
reader starts a new head there) and the connector's protocol factory
(``TCPConnector._factory``); ``tests/prober`` fails loudly if any changes.
The reader of the current attempt is found through a context variable set
by the prober's worker (``capture``): aiohttp prepares each request inside
the task that sends it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler

from scanner.core.observation import ProbeError
from scanner.core.response_head import (
    LINE_SLACK,
    MAX_QUOTE,
    HeadRefused,
    ResponseHead,
    head_end,
    informational,
    parse_head,
    quote_bytes,
    status_line_start,
)

# What aiohttp is told when the connection cannot be reused: nothing to read.
CLOSING_HEAD = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
# Statuses whose response has no body whatever its headers say (RFC 9112 6.3).
_BODILESS = frozenset({204, 304})
# Interim (1xx) heads skipped before the final one; more is an attack.
MAX_INTERIM_HEADS = 8


@dataclass(frozen=True, slots=True)
class HeadCaps:
    """What a target may send before the head ends (bytes, lines)."""

    max_line_bytes: int
    max_lines: int
    max_head_bytes: int


class Capture:
    """One worker's slot for the reader of its current attempt."""

    __slots__ = ("deadline", "host", "passthrough_first", "reader", "started", "task", "timed_out")

    def __init__(self) -> None:
        self.reader: HeadReader | None = None
        self.task: asyncio.Task[None] | None = None  # the worker that owns this slot
        self.deadline = 0.0  # loop time the current attempt must end by (0: none)
        self.timed_out = False  # the watchdog cancelled the attempt at its deadline
        self.host = ""  # the current attempt's host key, and its start (loop time)
        self.started = 0.0
        # A CONNECT tunnel's first connection talks to the proxy: aiohttp reads
        # that answer itself; the target's head arrives on the TLS connection.
        self.passthrough_first = False

    def claim(self, reader: HeadReader) -> None:
        """``reader`` is about to read the current attempt's response."""
        self.reader = reader

    def reset(self, *, through_tunnel: bool) -> None:
        self.reader = None
        self.passthrough_first = through_tunnel


CAPTURE: contextvars.ContextVar[Capture | None] = contextvars.ContextVar(
    "cors_scanner_head_capture", default=None
)


class HeadReader(ResponseHandler):
    """aiohttp's connection protocol, with the response head read by Chromium's rules."""

    def __init__(self, loop: asyncio.AbstractEventLoop, caps: HeadCaps) -> None:
        super().__init__(loop=loop)
        self._caps = caps
        self._buf = bytearray()
        self._scan_from = 0
        self._interim = 0
        self._forward = False  # the head has settled: aiohttp frames the body
        self._drop = False  # ...or nothing more is read at all
        self.passthrough = False
        self.head: ResponseHead | HeadRefused | None = None
        self.received = 0  # bytes of the response seen before the head settled
        self.requests = 0  # requests sent on this connection (> 1: it was reused)

    def set_response_params(self, **params: Any) -> None:
        # aiohttp calls this once per request, before sending it: a new head.
        super().set_response_params(**params)
        if self.passthrough:
            return
        self.requests += 1
        self.head = None
        self.received = 0
        self._buf = bytearray()
        self._scan_from = 0
        self._interim = 0
        self._forward = self._drop = False
        capture = CAPTURE.get()
        if capture is not None:
            capture.claim(self)

    @property
    def reused(self) -> bool:
        """This connection carried an earlier request (a browser reuses them too)."""
        return self.requests > 1

    def data_received(self, data: bytes) -> None:
        if self.passthrough or self._forward:
            super().data_received(data)
            return
        if self._drop or self.head is not None or not data:
            return  # a body we do not frame: never read
        self.received += len(data)
        self._buf += data
        if b"\0" in data:
            self._settle(self._parse(len(self._buf)))
            return
        self._advance(eof=False)
        if self.head is None:
            # Progress: what aiohttp's parser would do with these bytes.
            self._reschedule_timeout()

    def eof_received(self) -> None:
        self._finish_at_eof()
        super().eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        if exc is None:
            self._finish_at_eof()
        super().connection_lost(exc)

    def _finish_at_eof(self) -> None:
        # Chromium reads a head the server cut short with a clean close.
        if not self.passthrough and self.head is None and self._buf:
            self._advance(eof=True)

    def _advance(self, *, eof: bool) -> None:
        caps = self._caps
        while self.head is None:
            buf = self._buf
            start = 0 if buf[:5] == b"HTTP/" else status_line_start(buf)
            if start is None and not eof:
                return
            if start is None or start < 0:
                line_end = buf.find(b"\n")
                if line_end < 0 and len(buf) < MAX_QUOTE and not eof:
                    return  # wait for the whole first line, to quote it
                first = bytes(buf[: line_end if line_end >= 0 else MAX_QUOTE + 1]).rstrip(b"\r")
                self._settle(
                    HeadRefused(
                        ProbeError.BAD_RESPONSE, f"invalid HTTP status line: {quote_bytes(first)}"
                    )
                )
                return
            end = head_end(buf, self._scan_from)
            truncated = end < 0
            if truncated:
                if eof:
                    end = len(buf)
                else:
                    self._scan_from = max(0, len(buf) - 2)
                    refused = self._over_caps(buf, caps)
                    if refused is not None:
                        self._settle(refused)
                    return
            head = self._parse(end)
            rest = bytes(buf[end:])
            if isinstance(head, ResponseHead) and informational(head.status):
                self._interim += 1
                if truncated:
                    head = HeadRefused(
                        ProbeError.RESET,
                        f"server closed the connection after an informational {head.status} "
                        "response, before the final one",
                    )
                elif self._interim > MAX_INTERIM_HEADS:
                    head = HeadRefused(
                        ProbeError.BAD_RESPONSE,
                        f"more than {MAX_INTERIM_HEADS} informational (1xx) responses",
                    )
                else:
                    del buf[:end]
                    self._scan_from = 0
                    if not buf and not eof:
                        return
                    continue
            self._settle(head, rest, eof=eof)

    def _parse(self, end: int) -> ResponseHead | HeadRefused:
        caps = self._caps
        return parse_head(
            bytes(self._buf[:end]), max_line_bytes=caps.max_line_bytes, max_lines=caps.max_lines
        )

    @staticmethod
    def _over_caps(buf: bytearray, caps: HeadCaps) -> HeadRefused | None:
        if len(buf) > caps.max_head_bytes:
            return HeadRefused(
                ProbeError.HEADERS_TOO_LARGE, f"header block exceeds {caps.max_head_bytes} bytes"
            )
        line_start = max(buf.rfind(b"\n"), buf.rfind(b"\r")) + 1
        if len(buf) - line_start > caps.max_line_bytes + LINE_SLACK:
            return HeadRefused(
                ProbeError.HEADERS_TOO_LARGE, f"header line exceeds {caps.max_line_bytes} bytes"
            )
        # The status line and the blank line are lines too.
        if buf.count(b"\n") > caps.max_lines + 2:
            return HeadRefused(
                ProbeError.TOO_MANY_HEADERS, f"more than {caps.max_lines} header lines"
            )
        return None

    def _settle(
        self, head: ResponseHead | HeadRefused, rest: bytes = b"", *, eof: bool = True
    ) -> None:
        self.head = head
        status_line = bytes(self._buf[: self._buf.find(b"\n")]) if self._buf else b""
        self._buf = bytearray()
        stand_in = _stand_in(head, status_line) if not eof else None
        if stand_in is None:
            self._drop = True
            super().data_received(CLOSING_HEAD)
            return
        self._forward = True
        super().data_received(stand_in + rest)


def _stand_in(head: ResponseHead | HeadRefused, status_line: bytes) -> bytes | None:
    """The head aiohttp is given to frame the body and keep the connection, or None to close.

    Only a plain HTTP/1.1 keep-alive response with unambiguous framing keeps
    its connection; aiohttp never sees the real header lines.
    """
    if isinstance(head, HeadRefused) or not status_line.startswith(b"HTTP/1.1 "):
        return None
    headers = head.headers
    connection = (headers.combined("connection") or "").lower()
    if "close" in connection or not 200 <= head.status <= 599:
        return None
    if head.status in _BODILESS:
        return b"HTTP/1.1 %d Stand-in\r\n\r\n" % head.status
    coding = headers.combined("transfer-encoding")
    lengths = set(headers.get_all("content-length"))
    if coding is not None:
        if coding.lower() != "chunked" or lengths:
            return None
        return b"HTTP/1.1 200 Stand-in\r\nTransfer-Encoding: chunked\r\n\r\n"
    if len(lengths) != 1:
        return None
    length = next(iter(lengths)).strip()
    if not length.isascii() or not length.isdigit() or len(length) > 15:
        return None
    return b"HTTP/1.1 200 Stand-in\r\nContent-Length: %s\r\n\r\n" % length.encode()


def install(connector: aiohttp.TCPConnector, caps: HeadCaps) -> None:
    """Make ``connector`` open every connection with a :class:`HeadReader`."""
    loop = asyncio.get_running_loop()
    if not hasattr(connector, "_factory"):  # pragma: no cover - an aiohttp we do not know
        raise RuntimeError("this aiohttp's TCPConnector has no protocol factory to replace")
    connector._factory = _factory(loop, caps)


def _factory(loop: asyncio.AbstractEventLoop, caps: HeadCaps) -> Callable[[], ResponseHandler]:
    def create() -> ResponseHandler:
        reader = HeadReader(loop, caps)
        capture = CAPTURE.get()
        if capture is None:
            # Outside a probe (never in the prober): behave as aiohttp would.
            reader.passthrough = True
        elif capture.passthrough_first:
            capture.passthrough_first = False
            reader.passthrough = True
        return reader

    return create
