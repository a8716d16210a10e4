"""What a browser (Chromium) allows: the Fetch standard's CORS check and preflight rules.

Pure functions over values. Input: the request a page would make (origin,
method, headers it set, credentials mode) and the raw response header lines.
Output: verdicts whose negative reasons use the words of Chromium's console.
Reference: ../shared/docs/cors-rules.md; where it and Chromium differ, Chromium wins
and the reason says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scanner.core.headers import Headers


@dataclass(frozen=True, slots=True)
class CorsRequest:
    """A cross-origin request as a page makes it.

    ``origin`` is the exact Origin header value (``null`` for opaque);
    ``headers`` are the headers the page set itself (not Cookie, Origin...);
    ``credentials`` is credentials mode "include" (fetch) / withCredentials (XHR).
    """

    origin: str
    method: str = "GET"
    headers: Headers = field(default_factory=Headers)
    credentials: bool = False


@dataclass(frozen=True, slots=True)
class Response:
    """What came back, as far as the CORS algorithms look: status and header lines."""

    status: int
    headers: Headers = field(default_factory=Headers)


@dataclass(frozen=True, slots=True)
class Check:
    """One algorithm's result. ``reason`` is the console text when ``ok`` is false."""

    ok: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """Could the page read the response? Counting the preflight this request needs.

    ``preflight`` is None when no preflight is needed (or no preflight response
    was given), ``actual`` is None when the actual request was never sent
    because the preflight failed. ``reason`` is the first failure's reason.
    """

    readable: bool
    preflight_needed: bool
    preflight: Check | None
    actual: Check | None
    reason: str | None
    exposed_headers: tuple[str, ...] = ()
