"""Differential suite: Chromium's verdict for each scripted exchange equals ``evaluate()``'s.

All cases run in one headless Chromium launch (see ``conftest.py``): a page on
one loopback port ``fetch()``es an API on another port, which answers each
case's preflight and actual request with the scripted header lines. For every
case we compare, with what ``scanner.core.browser`` computes from the same
exchange:

- readable or blocked (``evaluate``);
- whether a preflight was sent, and its ACRM/ACRH (``needs_preflight``,
  ``preflight_request_headers``);
- the console line (``console_message`` with the verdict's reason);
- which response headers script could read (``Verdict.exposed_headers``).

Where Chromium departs from cors-rules.md the case says so; ``evaluate``
follows Chromium (see the module docstring of ``scanner.core.browser``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from scanner.core.browser import (
    HEADER_NOT_ALLOWED,
    CorsRequest,
    Response,
    Verdict,
    console_message,
    evaluate,
    needs_preflight,
    preflight_request_headers,
    unsafe_request_header_names,
)
from scanner.core.headers import Headers
from scanner.core.plan import Endpoint, PreflightPurpose, plan_probes
from scanner.core.policy import Policy
from scanner.core.response_head import (
    HeadRefused,
    ResponseHead,
    head_end,
    informational,
    parse_head,
)
from scanner.core.variants import ProbeOrigin, VariantKind

pytestmark = [
    pytest.mark.chromium,
    pytest.mark.skipif(
        not Path("/usr/bin/chromium").exists(),
        reason="/usr/bin/chromium is not installed (apt-get install chromium)",
    ),
]

HeaderLines = tuple[tuple[str, str], ...]

# "$ORIGIN" is replaced by the Origin the browser sent ("null" from the sandbox).
ALLOW = ("Access-Control-Allow-Origin", "$ORIGIN")
CRED = ("Access-Control-Allow-Credentials", "true")


def acao(value: str) -> tuple[str, str]:
    return ("Access-Control-Allow-Origin", value)


def acam(value: str) -> tuple[str, str]:
    return ("Access-Control-Allow-Methods", value)


def acah(value: str) -> tuple[str, str]:
    return ("Access-Control-Allow-Headers", value)


def aceh(value: str) -> tuple[str, str]:
    return ("Access-Control-Expose-Headers", value)


@dataclass(frozen=True, slots=True)
class Scripted:
    status: int
    lines: HeaderLines = ()


def pre(status: int, *lines: tuple[str, str]) -> Scripted:
    """A scripted preflight response."""
    return Scripted(status, lines)


def answer(status: int, *lines: tuple[str, str]) -> Scripted:
    """A scripted actual response."""
    return Scripted(status, lines)


PASSING_PREFLIGHT = pre(204, ALLOW)


@dataclass(frozen=True, slots=True)
class Case:
    """One page fetch and the API's scripted answers."""

    name: str
    method: str = "GET"
    request_headers: HeaderLines = ()
    credentials: bool = False
    opaque: bool = False  # from a sandboxed iframe: Origin: null
    read_headers: tuple[str, ...] = ()  # response.headers.get() these when readable
    preflight_response: Scripted | None = None
    actual_response: Scripted = Scripted(200, (ALLOW,))
    raw_actual: bytes | None = None  # answered byte for byte by the raw server
    raw_preflight: bytes | None = None
    same_origin: bool = False  # fetched from the page's own origin


def h(*pairs: tuple[str, str]) -> HeaderLines:
    return pairs


def unsafe(name: str, value: str, *, method: str = "GET") -> Case:
    """A request whose one header must be preflighted; the preflight does not allow it."""
    return Case(
        f"unsafe-{name}",
        method=method,
        request_headers=h((name.split("#")[0], value)),
        preflight_response=PASSING_PREFLIGHT,
    )


def safe(name: str, value: str, *, method: str = "GET") -> Case:
    """A request whose one header is safelisted: no preflight (none is scripted)."""
    return Case(f"safe-{name}", method=method, request_headers=h((name.split("#")[0], value)))


CLIENT_HINT_HEADERS = h(
    ("Accept", "a" * 128),
    ("Accept-Language", "a" * 128),
    ("Content-Language", "a" * 128),
    ("DPR", "1" * 128),
    ("Width", "1" * 128),
    ("Viewport-Width", "1" * 128),
    ("Device-Memory", "1" * 128),
    ("RTT", "1" * 128),
)

CASES: tuple[Case, ...] = (
    # -- the CORS check of the actual response (§2) -------------------------------
    Case("acao-exact"),
    Case("acao-missing", actual_response=answer(200)),
    Case("acao-star", actual_response=answer(200, acao("*"))),
    Case("acao-star-credentialed", credentials=True, actual_response=answer(200, acao("*"), CRED)),
    Case("acao-duplicate-identical-lines", actual_response=answer(200, ALLOW, ALLOW)),
    Case("acao-surrounding-spaces", actual_response=answer(200, acao("  $ORIGIN  "))),
    Case("acao-surrounding-tabs", actual_response=answer(200, acao("\t$ORIGIN\t"))),
    Case("acao-star-spaced", actual_response=answer(200, acao(" * "))),
    Case("acao-trailing-slash", actual_response=answer(200, acao("$ORIGIN/"))),
    Case("acao-uppercase", actual_response=answer(200, acao("$UPPER_ORIGIN"))),
    Case("acao-list-comma", actual_response=answer(200, acao("$ORIGIN, http://b.example"))),
    Case("acao-list-space", actual_response=answer(200, acao("$ORIGIN http://b.example"))),
    Case("acao-trailing-comma", actual_response=answer(200, acao("$ORIGIN,"))),
    Case("acao-empty", actual_response=answer(200, acao(""))),
    Case("acao-not-a-url", actual_response=answer(200, acao("foo"))),
    Case("acao-host-pattern", actual_response=answer(200, acao("*.example.com"))),
    Case("acao-url-pattern", actual_response=answer(200, acao("https://*.example.com"))),
    Case("acao-port-out-of-range", actual_response=answer(200, acao("http://a.example:99999"))),
    Case("acao-bad-ipv4", actual_response=answer(200, acao("http://999.1.1.1"))),
    Case("acao-default-port", actual_response=answer(200, acao("https://a.example:443"))),
    Case("acao-javascript-url", actual_response=answer(200, acao("javascript:x"))),
    Case("acao-null-for-tuple-origin", actual_response=answer(200, acao("null"))),
    Case("acac-true", credentials=True, actual_response=answer(200, ALLOW, CRED)),
    Case("acac-missing", credentials=True),
    Case(
        "acac-capitalised",
        credentials=True,
        actual_response=answer(200, ALLOW, ("Access-Control-Allow-Credentials", "True")),
    ),
    Case("acac-two-lines", credentials=True, actual_response=answer(200, ALLOW, CRED, CRED)),
    Case(
        "acac-padded",
        credentials=True,
        actual_response=answer(200, ALLOW, ("Access-Control-Allow-Credentials", "  true ")),
    ),
    Case("status-500-with-acao", actual_response=answer(500, ALLOW)),
    Case("status-500-without-acao", actual_response=answer(500)),
    Case("status-404-with-acao", actual_response=answer(404, ALLOW)),
    # -- opaque origin: a sandboxed iframe sends Origin: null ----------------------
    Case("null-acao-null", opaque=True, actual_response=answer(200, acao("null"))),
    Case("null-acao-missing", opaque=True, actual_response=answer(200)),
    Case("null-acao-star", opaque=True, actual_response=answer(200, acao("*"))),
    Case(
        "null-credentialed",
        opaque=True,
        credentials=True,
        actual_response=answer(200, acao("null"), CRED),
    ),
    Case(
        "null-credentialed-no-acac",
        opaque=True,
        credentials=True,
        actual_response=answer(200, acao("null")),
    ),
    Case("null-acao-uppercase", opaque=True, actual_response=answer(200, acao("NULL"))),
    Case(
        "null-put-preflighted",
        opaque=True,
        method="PUT",
        preflight_response=pre(204, acao("null"), acam("PUT")),
        actual_response=answer(200, acao("null")),
    ),
    # -- safelisted request headers (§3) -------------------------------------------
    safe("Content-Type#plain", "text/plain", method="POST"),
    safe("Content-Type#charset", "text/plain;charset=utf-8", method="POST"),
    safe("Content-Type#uppercase", "TEXT/PLAIN", method="POST"),
    safe("Content-Type#multipart", "multipart/form-data; boundary=x", method="POST"),
    safe("Content-Type#form", "application/x-www-form-urlencoded", method="POST"),
    safe("Content-Type#space-before-semicolon", "text/plain ; a=b", method="POST"),
    safe("Content-Type#comma-in-parameter", "text/plain; charset=utf-8, x", method="POST"),
    safe("Content-Type#128-bytes", "text/plain;a=" + "b" * 115, method="POST"),
    unsafe("Content-Type#129-bytes", "text/plain;a=" + "b" * 116, method="POST"),
    unsafe("Content-Type#json", "application/json", method="POST"),
    unsafe("Content-Type#quoted-parameter", 'text/plain; charset="utf-8"', method="POST"),
    unsafe("Content-Type#list", "text/plain, text/html", method="POST"),
    unsafe("Content-Type#space-in-essence", "text /plain", method="POST"),
    unsafe("Content-Type#empty", "", method="POST"),
    safe("Accept#128-bytes", "a" * 128),
    unsafe("Accept#129-bytes", "a" * 129),
    safe("Accept#tab-and-latin1", "a\tcaf\u00e9"),
    unsafe("Accept#quote", 'a"b'),
    safe("Accept-Language#en-US", "en-US"),
    safe("Accept-Language#empty", ""),
    unsafe("Accept-Language#parentheses", "en(US)"),
    unsafe("Accept-Language#tab", "en\tUS"),
    unsafe("Accept-Language#latin1", "caf\u00e9"),
    safe("Content-Language#list", "*;q=0.5, de"),
    unsafe("Content-Language#slash", "de/DE"),
    safe("Range#closed", "bytes=0-10"),
    safe("Range#open", "bytes=10-"),
    safe("Range#leading-zeros", "bytes=007-010"),
    unsafe("Range#suffix", "bytes=-10"),
    unsafe("Range#two-ranges", "bytes=0-1,3-4"),
    unsafe("Range#reversed", "bytes=5-1"),
    unsafe("Range#uppercase-unit", "BYTES=0-1"),  # Chromium: the unit is case-sensitive
    unsafe("Range#int64-max", "bytes=0-9223372036854775807"),
    safe("Range#int64-max-minus-one", "bytes=0-9223372036854775806"),
    # Chromium safelists these client hints (Fetch does not).
    Case(
        "safe-client-hints",
        request_headers=h(("DPR", "2.5"), ("ECT", "4g"), ("Save-Data", "on"), ("Width", "100")),
    ),
    Case("safe-intervention", request_headers=h(("Intervention", "<https://x/>"))),
    unsafe("DPR#trailing-dot", "2."),
    unsafe("ECT#uppercase", "4G"),
    Case(
        "accept-appended-twice",  # combined "a…a, b…b" is 202 bytes
        request_headers=h(("Accept", "a" * 100), ("Accept", "b" * 100)),
        preflight_response=PASSING_PREFLIGHT,
    ),
    Case("safelisted-total-1024-bytes", request_headers=CLIENT_HINT_HEADERS),
    Case(
        "safelisted-total-1026-bytes",  # all nine become unsafe; ACAH lacks save-data
        request_headers=(*CLIENT_HINT_HEADERS, ("Save-Data", "on")),
        preflight_response=pre(
            204,
            ALLOW,
            acah(
                "accept,accept-language,content-language,dpr,width,viewport-width,device-memory,rtt"
            ),
        ),
    ),
    Case(
        "forbidden-headers-ignored",
        request_headers=h(
            ("Cookie", "a=b"),
            ("Host", "evil.example"),
            ("Origin", "http://evil.example"),
            ("Referer", "http://evil.example/"),
            ("Connection", "close"),
            ("Content-Length", "1"),
            ("User-Agent", "x"),
            ("Sec-Foo", "1"),
            ("Proxy-Foo", "1"),
            ("Set-Cookie", "a=b"),
            ("DNT", "1"),
            ("X-HTTP-Method-Override", "TRACE"),
        ),
    ),
    unsafe("X-HTTP-Method-Override#put", "PUT", method="POST"),
    unsafe("Access-Control-Request-Private-Network#page-set", "true"),
    # -- methods --------------------------------------------------------------------
    Case("head-no-preflight", method="HEAD"),
    Case("post-no-headers", method="POST"),
    Case("put-allowed", method="PUT", preflight_response=pre(204, ALLOW, acam("PUT"))),
    Case("put-not-listed", method="PUT", preflight_response=pre(200, ALLOW, acam("GET, POST"))),
    Case("put-lowercase-normalized", method="put", preflight_response=pre(204, ALLOW, acam("PUT"))),
    Case("delete-lowercase-normalized", method="delete", preflight_response=PASSING_PREFLIGHT),
    Case(
        "patch-lowercase-vs-uppercase",
        method="patch",
        preflight_response=pre(204, ALLOW, acam("PATCH")),
    ),
    Case(
        "patch-uppercase-vs-lowercase",
        method="PATCH",
        preflight_response=pre(204, ALLOW, acam("patch")),
    ),
    Case(
        "patch-uppercase-allowed", method="PATCH", preflight_response=pre(204, ALLOW, acam("PATCH"))
    ),
    Case("put-acam-lowercase", method="PUT", preflight_response=pre(204, ALLOW, acam("put"))),
    Case("acam-star", method="PUT", preflight_response=pre(200, ALLOW, acam("*"))),
    Case(
        "acam-star-credentialed",
        method="PUT",
        credentials=True,
        preflight_response=pre(200, ALLOW, CRED, acam("*")),
        actual_response=answer(200, ALLOW, CRED),
    ),
    Case(
        "acam-star-and-put-credentialed",
        method="PUT",
        credentials=True,
        preflight_response=pre(200, ALLOW, CRED, acam("*, PUT")),
        actual_response=answer(200, ALLOW, CRED),
    ),
    Case("acam-stray-commas", method="PUT", preflight_response=pre(204, ALLOW, acam(",, PUT ,,"))),
    Case("acam-tabs", method="PUT", preflight_response=pre(204, ALLOW, acam("\tPUT\t,\tGET"))),
    Case(
        "acam-invalid-token",
        method="PUT",
        preflight_response=pre(204, ALLOW, acam("PUT, GET POST")),
    ),
    Case("acam-semicolon", method="PUT", preflight_response=pre(204, ALLOW, acam("PUT;"))),
    Case("acam-quoted", method="PUT", preflight_response=pre(204, ALLOW, acam('PUT, "a,b"'))),
    Case(
        "acam-two-lines",
        method="PUT",
        preflight_response=pre(204, ALLOW, acam("GET"), acam("PUT")),
    ),
    Case("acam-empty", method="PUT", preflight_response=pre(204, ALLOW, acam(""))),
    Case(
        "fetch-with-options-method",
        method="OPTIONS",
        preflight_response=pre(204, ALLOW, acam("OPTIONS")),
    ),
    # -- preflight status and redirects (§4) ------------------------------------------
    Case(
        "preflight-200-bad-max-age",
        method="PUT",
        preflight_response=pre(200, ALLOW, acam("PUT"), ("Access-Control-Max-Age", "soon")),
    ),
    Case("preflight-299", method="PUT", preflight_response=pre(299, ALLOW, acam("PUT"))),
    Case(
        "preflight-302-location",
        method="PUT",
        preflight_response=pre(302, ALLOW, acam("PUT"), ("Location", "/c/acao-exact")),
    ),
    Case(
        "preflight-307-location",
        method="PUT",
        preflight_response=pre(307, ALLOW, acam("PUT"), ("Location", "/c/acao-exact")),
    ),
    Case(
        "preflight-301-location-no-acao",
        method="PUT",
        preflight_response=pre(301, ("Location", "/c/acao-exact")),
    ),
    Case(
        "preflight-302-without-location",
        method="PUT",
        preflight_response=pre(302, ALLOW, acam("PUT")),
    ),
    Case(
        "preflight-300-location",
        method="PUT",
        preflight_response=pre(300, ALLOW, acam("PUT"), ("Location", "/c/acao-exact")),
    ),
    Case("preflight-304", method="PUT", preflight_response=pre(304, ALLOW, acam("PUT"))),
    Case("preflight-404", method="DELETE", preflight_response=pre(404, ALLOW, acam("DELETE"))),
    Case("preflight-404-no-acao", method="DELETE", preflight_response=pre(404, acam("DELETE"))),
    Case("preflight-500", method="PUT", preflight_response=pre(500, ALLOW, acam("PUT"))),
    # -- the preflight's CORS check ----------------------------------------------------
    Case(
        "preflight-acao-trailing-slash",
        method="PUT",
        preflight_response=pre(204, acao("$ORIGIN/"), acam("PUT")),
    ),
    Case(
        "preflight-acao-two-lines",
        method="PUT",
        preflight_response=pre(204, ALLOW, ALLOW, acam("PUT")),
    ),
    Case(
        "preflight-acao-invalid",
        method="PUT",
        preflight_response=pre(204, acao("foo"), acam("PUT")),
    ),
    Case(
        "preflight-acao-star",
        method="PUT",
        preflight_response=pre(204, acao("*"), acam("PUT")),
        actual_response=answer(200, acao("*")),
    ),
    Case(
        "preflight-acao-star-credentialed",
        method="PUT",
        credentials=True,
        preflight_response=pre(204, acao("*"), CRED, acam("PUT")),
        actual_response=answer(200, ALLOW, CRED),
    ),
    Case(
        "preflight-without-acac-credentialed",  # §8 #27: the actual request's mode counts
        method="PUT",
        credentials=True,
        preflight_response=pre(204, ALLOW, acam("PUT")),
        actual_response=answer(200, ALLOW, CRED),
    ),
    Case(
        "preflight-passes-actual-fails",  # §8 #26
        method="PUT",
        preflight_response=pre(204, ALLOW, acam("PUT")),
        actual_response=answer(200),
    ),
    # -- Access-Control-Allow-Headers ---------------------------------------------------
    Case(
        "acah-case-insensitive",
        request_headers=h(("X-Custom", "1")),
        preflight_response=pre(204, ALLOW, acah("X-CUSTOM")),
    ),
    Case(
        "acah-missing", request_headers=h(("X-Custom", "1")), preflight_response=PASSING_PREFLIGHT
    ),
    Case(
        "acah-star",
        request_headers=h(("X-Custom", "1")),
        preflight_response=pre(204, ALLOW, acah("*")),
    ),
    Case(
        "acah-star-credentialed",
        credentials=True,
        request_headers=h(("X-Custom", "1")),
        preflight_response=pre(204, ALLOW, CRED, acah("*")),
        actual_response=answer(200, ALLOW, CRED),
    ),
    # Chromium 156: `*` covers Authorization (the standard says it never does).
    Case(
        "authorization-acah-star",
        request_headers=h(("Authorization", "Bearer x")),
        preflight_response=pre(204, ALLOW, acah("*")),
    ),
    Case(
        "authorization-acah-star-credentialed",
        credentials=True,
        request_headers=h(("Authorization", "Bearer x")),
        preflight_response=pre(204, ALLOW, CRED, acah("*")),
        actual_response=answer(200, ALLOW, CRED),
    ),
    Case(
        "authorization-listed-credentialed",
        credentials=True,
        request_headers=h(("Authorization", "Bearer x")),
        preflight_response=pre(204, ALLOW, CRED, acah("*, AUTHORIZATION")),
        actual_response=answer(200, ALLOW, CRED),
    ),
    Case(
        "acah-stray-commas",
        request_headers=h(("X-Custom", "1")),
        preflight_response=pre(204, ALLOW, acah(" , x-custom,")),
    ),
    Case(
        "acah-invalid-token",
        request_headers=h(("X-Custom", "1")),
        preflight_response=pre(204, ALLOW, acah("x-custom, x y")),
    ),
    Case(
        "acah-quoted",
        request_headers=h(("X-Custom", "1")),
        preflight_response=pre(204, ALLOW, acah('"x-custom"')),
    ),
    Case(
        "acrh-sorted-and-unique",
        request_headers=h(("X-B", "1"), ("X-A", "1"), ("x-b", "2"), ("Accept", "x")),
        preflight_response=pre(204, ALLOW, acah("X-A, X-B")),
    ),
    Case(
        "preflight-method-and-header",
        method="PUT",
        request_headers=h(("X-Custom", "1")),
        preflight_response=pre(204, ALLOW, acam("PUT"), acah("x-custom")),
    ),
    # -- exposed response headers (§5) ----------------------------------------------------
    Case(
        "expose-safelisted-only",
        read_headers=(
            "Cache-Control",
            "Content-Language",
            "Content-Length",
            "Content-Type",
            "Expires",
            "Last-Modified",
            "Pragma",
            "Date",
            "Server",
            "X-Foo",
        ),
        actual_response=answer(
            200,
            ALLOW,
            ("Cache-Control", "no-store"),
            ("Content-Language", "en"),
            ("Expires", "0"),
            ("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT"),
            ("Pragma", "no-cache"),
            ("X-Foo", "1"),
        ),
    ),
    Case(
        "expose-list",
        read_headers=("X-Foo", "X-Bar", "X-Baz"),
        actual_response=answer(
            200, ALLOW, aceh("x-foo, X-BAR"), ("X-Foo", "1"), ("X-Bar", "2"), ("X-Baz", "3")
        ),
    ),
    Case(
        "expose-empty-items",
        read_headers=("X-Foo", "X-Bar"),
        actual_response=answer(200, ALLOW, aceh("x-foo, , X-BAR,"), ("X-Foo", "1"), ("X-Bar", "2")),
    ),
    Case(
        "expose-invalid-token",
        read_headers=("X-Foo", "X-Bar", "Content-Type"),
        actual_response=answer(
            200, ALLOW, aceh("x-foo, bad value"), ("X-Foo", "1"), ("X-Bar", "2")
        ),
    ),
    Case(
        "expose-two-lines",
        read_headers=("X-Foo", "X-Bar"),
        actual_response=answer(
            200, ALLOW, aceh("x-foo"), aceh("x-bar"), ("X-Foo", "1"), ("X-Bar", "2")
        ),
    ),
    Case(
        "expose-set-cookie-listed",
        read_headers=("X-Foo", "Set-Cookie"),
        actual_response=answer(
            200, ALLOW, aceh("x-foo, Set-Cookie"), ("X-Foo", "1"), ("Set-Cookie", "a=b")
        ),
    ),
    Case(
        "expose-star",
        read_headers=("X-Foo", "Date", "Server", "Set-Cookie"),
        actual_response=answer(200, ALLOW, aceh("*"), ("X-Foo", "1"), ("Set-Cookie", "a=b")),
    ),
    Case(
        "expose-star-credentialed",  # `*` is a literal header name with credentials
        credentials=True,
        read_headers=("X-Foo", "*", "Content-Type"),
        actual_response=answer(200, ALLOW, CRED, aceh("*"), ("X-Foo", "1"), ("*", "star")),
    ),
    Case(
        "expose-star-and-name-credentialed",
        credentials=True,
        read_headers=("X-Foo", "X-Bar"),
        actual_response=answer(200, ALLOW, CRED, aceh("*, x-bar"), ("X-Foo", "1"), ("X-Bar", "2")),
    ),
)

# Chromium names the first disallowed header in its hash-map order, neither
# insertion nor sorted order; evaluate() names the first sorted one. For these
# the console must name *a* disallowed header rather than the same one.
SEVERAL_DISALLOWED = (
    Case(
        "two-headers-disallowed",
        request_headers=h(("X-B", "1"), ("X-A", "1")),
        preflight_response=PASSING_PREFLIGHT,
    ),
    Case(
        "two-of-three-headers-disallowed",
        request_headers=h(("X-A", "1"), ("X-C", "1"), ("X-B", "1")),
        preflight_response=pre(204, ALLOW, acah("x-a")),
    ),
)

AC = b"Access-Control-Allow-Origin"
OR = b"$ORIGIN"
CL = b"Content-Length: 2\r\n\r\nok"


def raw(name: str, head: bytes, *, method: str = "GET", preflight: bytes | None = None) -> Case:
    """A case whose response is exactly ``head`` ("$ORIGIN" filled in), from a raw socket."""
    return Case(f"raw-{name}", method=method, raw_actual=head, raw_preflight=preflight)


# Response heads strict parsers refuse or read otherwise, and what Chromium makes of
# them: the header block the browser saw decides (scanner.core.response_head).
RAW_CASES: tuple[Case, ...] = (
    raw("baseline", b"HTTP/1.1 200 OK\r\n" + AC + b": " + OR + b"\r\n" + CL),
    raw("space-before-colon", b"HTTP/1.1 200 OK\r\n" + AC + b" : " + OR + b"\r\n" + CL),
    raw("tab-before-colon", b"HTTP/1.1 200 OK\r\n" + AC + b"\t: " + OR + b"\r\n" + CL),
    raw("spaces-before-colon", b"HTTP/1.1 200 OK\r\n" + AC + b"   : " + OR + b"\r\n" + CL),
    raw(
        "line-without-colon",
        b"HTTP/1.1 200 OK\r\nGarbage line\r\n" + AC + b": " + OR + b"\r\n" + CL,
    ),
    raw("bad-name-other", b"HTTP/1.1 200 OK\r\nX(AC): 1\r\n" + AC + b": " + OR + b"\r\n" + CL),
    raw("bad-name-acao", b"HTTP/1.1 200 OK\r\n(" + AC + b"): " + OR + b"\r\n" + CL),
    raw("space-in-name-acao", b"HTTP/1.1 200 OK\r\n" + AC + b" x: " + OR + b"\r\n" + CL),
    raw("empty-name", b"HTTP/1.1 200 OK\r\n: 1\r\n" + AC + b": " + OR + b"\r\n" + CL),
    raw("utf8-name", b"HTTP/1.1 200 OK\r\nX-\xc3\xa9: 1\r\n" + AC + b": " + OR + b"\r\n" + CL),
    raw("folded-acao", b"HTTP/1.1 200 OK\r\n" + AC + b":\r\n " + OR + b"\r\n" + CL),
    raw("folded-acao-tab", b"HTTP/1.1 200 OK\r\n" + AC + b":\r\n\t" + OR + b"\r\n" + CL),
    raw(
        "folded-acao-split",  # joined with one space: two values
        b"HTTP/1.1 200 OK\r\n" + AC + b": http://127.0.0.1\r\n :1\r\n" + CL,
    ),
    raw(
        "fold-after-bad-line",
        b"HTTP/1.1 200 OK\r\nGarbage\r\n " + AC + b": " + OR + b"\r\n" + CL,
    ),
    raw("first-line-folded", b"HTTP/1.1 200 OK\r\n " + AC + b": " + OR + b"\r\n" + CL),
    raw("lf-only", b"HTTP/1.1 200 OK\n" + AC + b": " + OR + b"\nContent-Length: 2\n\nok"),
    raw("bare-cr-in-value", b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\n" + AC + b": " + OR + b"\r\n" + CL),
    raw(
        "bare-cr-line-ends", b"HTTP/1.1 200 OK\r" + AC + b": " + OR + b"\rContent-Length: 2\r\r\nok"
    ),
    raw(
        "lf-cr-lf-end", b"HTTP/1.1 200 OK\r\n" + AC + b": " + OR + b"\r\nContent-Length: 2\n\r\nok"
    ),
    raw(
        "control-byte-value", b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\n" + AC + b": " + OR + b"\r\n" + CL
    ),
    raw("high-byte-value", b"HTTP/1.1 200 OK\r\nX-A: \xff\r\n" + AC + b": " + OR + b"\r\n" + CL),
    raw(
        "nul-in-other-header",
        b"HTTP/1.1 200 OK\r\nX-Nul: a\x00b\r\n" + AC + b": " + OR + b"\r\n" + CL,
    ),
    raw("nul-in-acao", b"HTTP/1.1 200 OK\r\n" + AC + b": " + OR + b"\x00\r\n" + CL),
    raw(
        "two-content-lengths",
        b"HTTP/1.1 200 OK\r\n"
        + AC
        + b": "
        + OR
        + b"\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nok",
    ),
    raw(
        "two-content-lengths-chunked",
        b"HTTP/1.1 200 OK\r\n" + AC + b": " + OR + b"\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 2\r\nContent-Length: 5\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ),
    raw(
        "two-locations",
        b"HTTP/1.1 200 OK\r\n" + AC + b": " + OR + b"\r\nLocation: /a\r\nLocation: /b\r\n" + CL,
    ),
    raw(
        "two-acao-one-spaced",
        b"HTTP/1.1 200 OK\r\n" + AC + b": " + OR + b"\r\n" + AC + b" : " + OR + b"\r\n" + CL,
    ),
    raw("no-reason", b"HTTP/1.1 200\r\n" + AC + b": " + OR + b"\r\n" + CL),
    raw("no-status-code", b"HTTP/1.1\r\n" + AC + b": " + OR + b"\r\n" + CL),
    raw("status-tab-separated", b"HTTP/1.1\t200\tOK\r\n" + AC + b": " + OR + b"\r\n" + CL),
    raw("status-two-spaces", b"HTTP/1.1  200 OK\r\n" + AC + b": " + OR + b"\r\n" + CL),
    raw("status-two-digits", b"HTTP/1.1 20 OK\r\n" + AC + b": " + OR + b"\r\n" + CL),
    raw("status-600", b"HTTP/1.1 600 X\r\n" + AC + b": " + OR + b"\r\n" + CL),
    raw("lowercase-http", b"http/1.1 200 OK\r\n" + AC + b": " + OR + b"\r\n" + CL),
    raw("junk-before-http", b"xxHTTP/1.1 200 OK\r\n" + AC + b": " + OR + b"\r\n" + CL),
    raw("http-2-version", b"HTTP/2.0 200 OK\r\n" + AC + b": " + OR + b"\r\n" + CL),
    raw("http-without-version", b"HTTP 200 OK\r\n" + AC + b": " + OR + b"\r\n" + CL),
    raw("http-1-0", b"HTTP/1.0 200 OK\r\n" + AC + b": " + OR + b"\r\n\r\nok"),
    raw(
        "continue-first",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n" + AC + b": " + OR + b"\r\n" + CL,
    ),
    raw(
        "early-hints-acao",  # a 1xx's headers never count
        b"HTTP/1.1 103 Early Hints\r\n" + AC + b": " + OR + b"\r\n\r\nHTTP/1.1 200 OK\r\n" + CL,
    ),
    raw("head-cut-by-close", b"HTTP/1.1 200 OK\r\n" + AC + b": " + OR + b"\r\n"),
    raw("head-cut-mid-line", b"HTTP/1.1 200 OK\r\n" + AC + b": " + OR),
    raw("not-http", b"SSH-2.0-OpenSSH_9.0\r\n"),
    raw(
        "preflight-acam-space-before-colon",
        b"HTTP/1.1 200 OK\r\n" + AC + b": " + OR + b"\r\n" + CL,
        method="PUT",
        preflight=b"HTTP/1.1 204 No Content\r\n"
        + AC
        + b" : "
        + OR
        + b"\r\nAccess-Control-Allow-Methods : PUT\r\n\r\n",
    ),
    raw(
        "preflight-acam-folded-away",  # a leading-space first line is dropped: no ACAM
        b"HTTP/1.1 200 OK\r\n" + AC + b": " + OR + b"\r\n" + CL,
        method="PUT",
        preflight=b"HTTP/1.1 204 No Content\r\n Access-Control-Allow-Methods: PUT\r\n"
        + AC
        + b": "
        + OR
        + b"\r\n\r\n",
    ),
)

# Same-origin is not CORS: read whatever the headers say, never preflighted.
SAME_ORIGIN_CASES: tuple[Case, ...] = (
    Case("same-origin-no-acao", same_origin=True, actual_response=answer(200)),
    Case(
        "same-origin-credentialed-no-acao",
        same_origin=True,
        credentials=True,
        actual_response=answer(200),
    ),
    Case(
        "same-origin-put-custom-header",
        same_origin=True,
        method="PUT",
        request_headers=h(("X-Custom", "1"), ("Content-Type", "application/json")),
        actual_response=answer(200, acao("https://elsewhere.example")),
    ),
)

# The front end's own headers (--header): named in the preflight, never sent on it.
FRONT_END = h(("Authorization", "Bearer front-end-secret"), ("Content-Type", "application/json"))
FRONT_END_CASES: tuple[Case, ...] = (
    Case(
        "front-end-headers-acah-star-credentialed",  # `*` is literal with credentials
        credentials=True,
        request_headers=FRONT_END,
        preflight_response=pre(204, ALLOW, CRED, acah("*")),
        actual_response=answer(200, ALLOW, CRED),
    ),
    Case(
        "front-end-headers-listed-credentialed",
        credentials=True,
        request_headers=FRONT_END,
        preflight_response=pre(204, ALLOW, CRED, acah("authorization, content-type")),
        actual_response=answer(200, ALLOW, CRED),
    ),
    # aiohttp's server refuses a lowercase method: the raw server answers this one.
    Case(
        "front-end-headers-lowercase-patch",
        method="patch",
        credentials=True,
        request_headers=FRONT_END,
        raw_preflight=b"HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: $ORIGIN\r\n"
        b"Access-Control-Allow-Credentials: true\r\nAccess-Control-Allow-Methods: patch\r\n"
        b"Access-Control-Allow-Headers: authorization,content-type\r\n\r\n",
        raw_actual=b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: $ORIGIN\r\n"
        b"Access-Control-Allow-Credentials: true\r\nContent-Length: 2\r\n\r\nok",
    ),
)

ALL_CASES = CASES + SEVERAL_DISALLOWED + tuple(c for c in FRONT_END_CASES if c.raw_actual is None)
RUN_CASES = (
    ALL_CASES
    + tuple(c for c in FRONT_END_CASES if c.raw_actual is not None)
    + RAW_CASES
    + SAME_ORIGIN_CASES
)
BY_NAME = {case.name: case for case in RUN_CASES}


def ids(cases: Sequence[Case]) -> list[str]:
    return [c.name for c in cases]


@pytest.fixture(scope="module")
def outcomes(chromium_run: Callable[[Sequence[Case]], dict[str, Any]]) -> dict[str, Any]:
    return chromium_run(RUN_CASES)


def request_of(case: Case, outcome: Any) -> CorsRequest:
    return CorsRequest(
        origin=outcome.origin,
        method=case.method,
        headers=Headers(case.request_headers),
        credentials=case.credentials,
    )


def verdict_of(case: Case, outcome: Any) -> Verdict:
    pre_reply = outcome.preflight_response
    return evaluate(
        request_of(case, outcome),
        actual=Response(outcome.actual_response.status, Headers(outcome.actual_response.lines)),
        preflight=None
        if pre_reply is None
        else Response(pre_reply.status, Headers(pre_reply.lines)),
    )


def test_suite_covers_the_doubtful_cases() -> None:
    assert len(ALL_CASES) >= 40
    assert len(RAW_CASES) >= 30
    assert len(BY_NAME) == len(RUN_CASES), "case names must be unique"


@pytest.mark.parametrize("case", ALL_CASES, ids=ids(ALL_CASES))
def test_readable_matches_evaluate(case: Case, outcomes: dict[str, Any]) -> None:
    outcome = outcomes[case.name]
    verdict = verdict_of(case, outcome)
    assert outcome.readable == verdict.readable, (
        f"{case.name}: Chromium {'read' if outcome.readable else 'blocked'} it "
        f"({outcome.console or outcome.error}), evaluate() says readable={verdict.readable} "
        f"({verdict.reason})"
    )


@pytest.mark.parametrize("case", ALL_CASES, ids=ids(ALL_CASES))
def test_preflight_sent_exactly_when_needed(case: Case, outcomes: dict[str, Any]) -> None:
    outcome = outcomes[case.name]
    assert (outcome.preflight is not None) == needs_preflight(request_of(case, outcome))


@pytest.mark.parametrize("case", ALL_CASES, ids=ids(ALL_CASES))
def test_actual_request_sent_only_after_a_passing_preflight(
    case: Case, outcomes: dict[str, Any]
) -> None:
    outcome = outcomes[case.name]
    verdict = verdict_of(case, outcome)
    blocked_by_preflight = verdict.preflight is not None and not verdict.preflight.ok
    assert (outcome.actual is None) == blocked_by_preflight


PREFLIGHTED = [c for c in ALL_CASES if c.preflight_response is not None]


@pytest.mark.parametrize("case", PREFLIGHTED, ids=ids(PREFLIGHTED))
def test_preflight_request_headers_match(case: Case, outcomes: dict[str, Any]) -> None:
    outcome = outcomes[case.name]
    assert outcome.preflight is not None, f"{case.name}: Chromium sent no preflight"
    sent = Headers(outcome.preflight.request_headers)
    expected = preflight_request_headers(request_of(case, outcome))
    for name in ("Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"):
        assert sent.get_all(name) == expected.get_all(name), name


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_console_message_matches(case: Case, outcomes: dict[str, Any]) -> None:
    outcome = outcomes[case.name]
    verdict = verdict_of(case, outcome)
    if verdict.readable:
        assert outcome.console is None
        return
    assert verdict.reason is not None
    assert outcome.console == console_message(outcome.url, outcome.origin, verdict.reason)


@pytest.mark.parametrize("case", SEVERAL_DISALLOWED, ids=ids(SEVERAL_DISALLOWED))
def test_console_names_a_disallowed_header(case: Case, outcomes: dict[str, Any]) -> None:
    outcome = outcomes[case.name]
    verdict = verdict_of(case, outcome)
    assert verdict.reason is not None
    request = request_of(case, outcome)
    allowed = {"x-a"} if case.name == "two-of-three-headers-disallowed" else set()
    disallowed = [n for n in unsafe_request_header_names(request.headers) if n not in allowed]
    assert verdict.reason == HEADER_NOT_ALLOWED.format(name=disallowed[0])
    candidates = {
        console_message(outcome.url, outcome.origin, HEADER_NOT_ALLOWED.format(name=n))
        for n in disallowed
    }
    assert outcome.console in candidates


READ = [c for c in ALL_CASES if c.read_headers]


@pytest.mark.parametrize("case", READ, ids=ids(READ))
def test_exposed_headers_match(case: Case, outcomes: dict[str, Any]) -> None:
    outcome = outcomes[case.name]
    verdict = verdict_of(case, outcome)
    assert outcome.readable
    assert verdict.readable
    visible = {name for name, value in outcome.seen_headers.items() if value is not None}
    expected = {name for name in case.read_headers if name.lower() in verdict.exposed_headers}
    assert visible == expected


# -- response heads as the browser reads them (scanner.core.response_head) ------------

RAW_LIMITS = {"max_line_bytes": 16384, "max_lines": 256}


def read_head(data: bytes | None) -> ResponseHead | HeadRefused | None:
    """Our reading of what the raw server sent, 1xx heads skipped as the prober does."""
    if data is None:
        return None
    while True:
        end = head_end(data)
        head = parse_head(data if end < 0 else data[:end], **RAW_LIMITS)
        if isinstance(head, ResponseHead) and informational(head.status) and end >= 0:
            data = data[end:]
            continue
        return head


def raw_verdict(case: Case, outcome: Any) -> tuple[Verdict, ResponseHead | HeadRefused | None]:
    actual = read_head(outcome.raw_sent)
    pre = read_head(outcome.raw_preflight_sent)
    request = request_of(case, outcome)
    verdict = evaluate(
        request,
        actual=Response(actual.status, actual.headers)
        if isinstance(actual, ResponseHead)
        else None,
        preflight=Response(pre.status, pre.headers) if isinstance(pre, ResponseHead) else None,
    )
    return verdict, actual


@pytest.mark.parametrize("case", RAW_CASES, ids=ids(RAW_CASES))
def test_lenient_heads_are_judged_as_chromium_reads_them(
    case: Case, outcomes: dict[str, Any]
) -> None:
    outcome = outcomes[case.name]
    verdict, head = raw_verdict(case, outcome)
    if needs_preflight(request_of(case, outcome)):
        assert outcome.raw_preflight_sent is not None, "Chromium sent no preflight"
    if not verdict.preflight or verdict.preflight.ok:
        assert outcome.raw_sent is not None, f"{case.name}: Chromium sent no actual request"
    assert outcome.readable == verdict.readable, (
        f"{case.name}: Chromium {'read' if outcome.readable else 'blocked'} it "
        f"({outcome.console or outcome.error}), we say readable={verdict.readable} "
        f"({verdict.reason}; head {head})"
    )
    if isinstance(head, HeadRefused):
        # A network error, not a CORS block: no CORS console line.
        assert outcome.console is None
        return
    if verdict.readable:
        assert isinstance(head, ResponseHead)
        assert outcome.status == head.status
        assert outcome.console is None
    else:
        assert verdict.reason is not None
        assert outcome.console == console_message(outcome.url, outcome.origin, verdict.reason)


def test_lenient_heads_keep_every_raw_line(outcomes: dict[str, Any]) -> None:
    head = read_head(outcomes["raw-space-before-colon"].raw_sent)
    assert isinstance(head, ResponseHead)
    assert head.headers.get_all("access-control-allow-origin") == (
        outcomes["raw-space-before-colon"].origin,
    )
    assert any(line.startswith("Access-Control-Allow-Origin : ") for line in head.raw_lines)
    assert head.notes


# -- same-origin ------------------------------------------------------------------------


@pytest.mark.parametrize("case", SAME_ORIGIN_CASES, ids=ids(SAME_ORIGIN_CASES))
def test_same_origin_is_not_cors(case: Case, outcomes: dict[str, Any]) -> None:
    outcome = outcomes[case.name]
    # The page's own origin is the URL's: evaluate() knows it from target_origin.
    request = replace(request_of(case, outcome), target_origin=outcome.origin)
    assert not request.cross_origin
    verdict = evaluate(
        request,
        actual=Response(outcome.actual_response.status, Headers(outcome.actual_response.lines)),
    )
    assert outcome.readable
    assert verdict.readable
    assert outcome.preflight is None
    assert not needs_preflight(request)
    assert outcome.console is None


# -- the scanner's own preflights are the browser's -----------------------------------


@pytest.mark.parametrize("case", FRONT_END_CASES, ids=ids(FRONT_END_CASES))
def test_planned_legitimate_preflight_is_the_one_chromium_sends(
    case: Case, outcomes: dict[str, Any]
) -> None:
    outcome = outcomes[case.name]
    if case.raw_actual is not None:
        sent = request_head(outcome.raw_preflight_request)
    else:
        assert outcome.preflight is not None
        sent = Headers(outcome.preflight.request_headers)
    # A browser never sends credentials or the page's header values on a preflight.
    assert "authorization" not in sent
    assert "cookie" not in sent
    # The scanner plans the same preflight for a front end that sends these headers.
    policy = Policy.build(allowed_origins=[outcome.origin], allow_credentials=case.credentials)
    endpoint = Endpoint(outcome.url, case.method, headers=case.request_headers)
    origin = ProbeOrigin(outcome.origin, VariantKind.ALLOWED, trusted=True)
    plan = plan_probes(endpoint, policy, [origin], token="t")
    [legit] = [p for p in plan if p.purpose is PreflightPurpose.LEGITIMATE]
    for name in ("Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"):
        assert legit.headers.get_all(name) == sent.get_all(name), name
    assert "authorization" not in legit.headers
    assert "cookie" not in legit.headers
    assert "front-end-secret" not in str(legit.headers)
    # ...and judges the exchange as Chromium did.
    verdict = raw_verdict(case, outcome)[0] if case.raw_actual else verdict_of(case, outcome)
    assert verdict.readable == outcome.readable
    # The actual request carries the values, as the page's fetch() does.
    if not outcome.readable:
        return
    if case.raw_actual is not None:
        actual_head = outcome.raw_request
        assert actual_head is not None
        assert actual_head.startswith(case.method.encode() + b" ")  # "patch", as written
        actual = request_head(actual_head)
    else:
        assert outcome.actual is not None
        actual = Headers(outcome.actual.request_headers)
    assert actual.get_all("authorization") == ("Bearer front-end-secret",)


def request_head(head: bytes | None) -> Headers:
    """The header lines of a request head the raw server received."""
    assert head is not None, "the browser sent no such request"
    lines = head.decode("latin-1").split("\r\n")[1:]
    return Headers(
        tuple((n.strip(), v.strip()) for n, _, v in (x.partition(":") for x in lines) if n)
    )
