"""What came back from one probe: a response, or a precisely named failure.

A hostile or broken target is data here, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from scanner.core.headers import Headers
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
    BAD_RESPONSE = "bad_response"  # not HTTP: garbage status line, invalid framing
    BLOCKED = "blocked"  # refused by our own rules (e.g. SSRF policy)
    OTHER = "other"  # anything else, with the detail kept


@dataclass(frozen=True, slots=True)
class Observation:
    """One probe's outcome. ``status`` is None exactly when ``error`` is set."""

    request: ProbeRequest
    status: int | None = None
    reason: str | None = None
    headers: Headers = field(default_factory=Headers)
    error: ProbeError | None = None
    error_detail: str | None = None
    elapsed_ms: float = 0.0
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None

    @property
    def redirect_location(self) -> str | None:
        if self.status is not None and 300 <= self.status < 400:
            return self.headers.combined("location")
        return None
