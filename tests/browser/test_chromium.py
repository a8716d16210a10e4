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
from dataclasses import dataclass
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

ALL_CASES = CASES + SEVERAL_DISALLOWED
BY_NAME = {case.name: case for case in ALL_CASES}


def ids(cases: Sequence[Case]) -> list[str]:
    return [c.name for c in cases]


@pytest.fixture(scope="module")
def outcomes(chromium_run: Callable[[Sequence[Case]], dict[str, Any]]) -> dict[str, Any]:
    return chromium_run(ALL_CASES)


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
    assert len(BY_NAME) == len(ALL_CASES), "case names must be unique"


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
