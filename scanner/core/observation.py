"""What came back from one probe: a response, or a precisely named failure.

A hostile or broken target is data here, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from scanner.core.headers import REDACTED, Headers
from scanner.core.plan import ProbeRequest


class ProbeError(StrEnum):
    """Why a probe produced no usable response."""

    DNS = "dns"  # the name did not resolve
    CONNECT = "connect"  # refused or unreachable
    TLS = "tls"  # handshake or certificate failure
    TIMEOUT = "timeout"  # connect, read or total timeout
    RESET = "reset"  # the peer closed or reset the connection mid-exchange
    HEADERS_TOO_LARGE = "headers_too_large"  # a header line or the header block over our cap
    TOO_MANY_HEADERS = "too_many_headers"  # more header lines than our cap
    BAD_RESPONSE = "bad_response"  # not HTTP, or a head browsers refuse (a NUL byte...)
    BLOCKED = "blocked"  # refused by our own rules (e.g. SSRF policy)
    # Not sent at all (attempts == 0): the host's first probes timed out and
    # none got an answer, so its remaining probes were recorded, not sent.
    HOST_UNRESPONSIVE = "host_unresponsive"
    # Not sent: the endpoint had used up its time budget (ProbeLimits.endpoint_budget).
    DEADLINE = "deadline"
    OTHER = "other"  # anything else, with the detail kept


# Errors that mean "this probe was never sent": no request reached the target.
NOT_SENT_ERRORS = frozenset({ProbeError.HOST_UNRESPONSIVE, ProbeError.DEADLINE})


@dataclass(frozen=True, slots=True)
class Observation:
    """One probe's outcome. ``status`` is None exactly when ``error`` is set.

    ``headers`` are the response's header lines as the browser read them
    (:mod:`scanner.core.response_head`); ``raw_lines`` every line of the head
    as received, status line first, when that reading was lenient (a line
    skipped, a name trimmed, a continuation joined), empty otherwise.
    """

    request: ProbeRequest
    status: int | None = None
    reason: str | None = None
    headers: Headers = field(default_factory=Headers)
    error: ProbeError | None = None
    error_detail: str | None = None
    elapsed_ms: float = 0.0
    attempts: int = 1
    raw_lines: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None

    @property
    def sent(self) -> bool:
        """At least one attempt of this probe reached the network."""
        return self.error not in NOT_SENT_ERRORS

    @property
    def redirect_location(self) -> str | None:
        if self.status is not None and 300 <= self.status < 400:
            return self.headers.combined("location")
        return None

    @property
    def public_headers(self) -> Headers:
        """``headers`` with any echoed secret of the request redacted: for reports and storage."""
        secrets = self.request.secret_values
        return self.headers.redacted(frozenset(), secrets) if secrets else self.headers

    @property
    def public_raw_lines(self) -> tuple[str, ...]:
        """``raw_lines`` with any echoed secret of the request redacted."""
        secrets = [s for s in self.request.secret_values if len(s) >= 4]
        if not secrets or not self.raw_lines:
            return self.raw_lines
        out = []
        for line in self.raw_lines:
            for secret in secrets:
                line = line.replace(secret, REDACTED)
            out.append(line)
        return tuple(out)
