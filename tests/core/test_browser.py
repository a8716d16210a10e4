"""The browser rules, table by table: cors-rules.md §2-§5 and §8, as Chromium 156 applies them.

Expected reasons are written out literally: they are the words Chromium's
console printed for the same exchange (see tests/browser/test_chromium.py,
which checks the rules against a real Chromium).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from scanner.core.browser import (
    Check,
    CorsRequest,
    Response,
    console_message,
    cors_check,
    evaluate,
    exposed_header_names,
    is_forbidden_request_header,
    is_safelisted_method,
    is_safelisted_request_header,
    needs_preflight,
    normalize_method,
    preflight_check,
    preflight_request_headers,
    unsafe_request_header_names,
)
from scanner.core.headers import Headers

A = "https://a.example"
PREFIX = "Response to preflight request doesn't pass access control check: "
HINT = " Have the server send the header with a valid value."
NO_ACAO = "No 'Access-Control-Allow-Origin' header is present on the requested resource."
WILDCARD = (
    "The value of the 'Access-Control-Allow-Origin' header in the response must not be the "
    "wildcard '*' when the request's credentials mode is 'include'."
)
NOT_OK = PREFIX + "It does not have HTTP ok status."
REDIRECT = PREFIX + "Redirect is not allowed for a preflight request."
ACAM_PARSE = (
    "Cannot parse Access-Control-Allow-Methods response header field in preflight response."
)
ACAH_PARSE = (
    "Cannot parse Access-Control-Allow-Headers response header field in preflight response."
)


def mismatch(value: str) -> str:
    return (
        f"The 'Access-Control-Allow-Origin' header has a value '{value}' that is not equal "
        f"to the supplied origin.{HINT}"
    )


def multiple(value: str) -> str:
    return (
        f"The 'Access-Control-Allow-Origin' header contains multiple values '{value}', "
        f"but only one is allowed.{HINT}"
    )


def invalid(value: str) -> str:
    return f"The 'Access-Control-Allow-Origin' header contains the invalid value '{value}'.{HINT}"


def acac(value: str) -> str:
    return (
        f"The value of the 'Access-Control-Allow-Credentials' header in the response is "
        f"'{value}' which must be 'true' when the request's credentials mode is 'include'."
    )


def method_denied(method: str) -> str:
    return f"Method {method} is not allowed by Access-Control-Allow-Methods in preflight response."


def header_denied(name: str) -> str:
    return (
        f"Request header field {name} is not allowed by Access-Control-Allow-Headers "
        "in preflight response."
    )


def resp(status: int, *lines: tuple[str, str]) -> Response:
    return Response(status, Headers(lines))


def req(
    method: str = "GET",
    *headers: tuple[str, str],
    origin: str = A,
    credentials: bool = False,
) -> CorsRequest:
    return CorsRequest(origin, method, Headers(headers), credentials)


ALLOW_A = ("Access-Control-Allow-Origin", A)
CRED = ("Access-Control-Allow-Credentials", "true")


def ACAO(value: str) -> tuple[str, str]:
    return ("Access-Control-Allow-Origin", value)


def ACAM(value: str) -> tuple[str, str]:
    return ("Access-Control-Allow-Methods", value)


def ACAH(value: str) -> tuple[str, str]:
    return ("Access-Control-Allow-Headers", value)


def ACEH(value: str) -> tuple[str, str]:
    return ("Access-Control-Expose-Headers", value)


# ---------------------------------------------------------------------------
# §8: the 30 test vectors of cors-rules.md, through evaluate()
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Vector:
    id: str
    request: CorsRequest
    actual: Response | None
    preflight: Response | None
    readable: bool
    needed: bool
    reason: str | None


JSON = ("Content-Type", "application/json")
PUT_OK = resp(200, ALLOW_A, ACAM("PUT"))

VECTORS = [
    Vector("01-exact-origin", req(), resp(200, ALLOW_A), None, True, False, None),
    Vector(
        "02-trailing-slash",
        req(),
        resp(200, ACAO(A + "/")),
        None,
        False,
        False,
        mismatch(A + "/"),
    ),
    Vector(
        "03-uppercase",
        req(),
        resp(200, ACAO("HTTPS://A.EXAMPLE")),
        None,
        False,
        False,
        mismatch("HTTPS://A.EXAMPLE"),
    ),
    Vector("04-star", req(), resp(200, ACAO("*")), None, True, False, None),
    Vector(
        "05-star-credentialed",
        req(credentials=True),
        resp(200, ACAO("*"), CRED),
        None,
        False,
        False,
        WILDCARD,
    ),
    Vector(
        "06-credentialed-no-acac",
        req(credentials=True),
        resp(200, ALLOW_A),
        None,
        False,
        False,
        acac(""),
    ),
    Vector(
        "07-acac-capital-True",
        req(credentials=True),
        resp(200, ALLOW_A, ("Access-Control-Allow-Credentials", "True")),
        None,
        False,
        False,
        acac("True"),
    ),
    Vector(
        "08-credentialed-ok",
        req(credentials=True),
        resp(200, ALLOW_A, CRED),
        None,
        True,
        False,
        None,
    ),
    Vector(
        "09-null-matches-opaque",
        req(origin="null"),
        resp(200, ACAO("null")),
        None,
        True,
        False,
        None,
    ),
    Vector(
        "10-null-vs-tuple", req(), resp(200, ACAO("null")), None, False, False, mismatch("null")
    ),
    Vector(
        "11-list",
        req(),
        resp(200, ACAO(f"{A}, https://b.example")),
        None,
        False,
        False,
        multiple(f"{A}, https://b.example"),
    ),
    Vector("12-absent", req(), resp(200), None, False, False, NO_ACAO),
    Vector("13-spaces-trimmed", req(), resp(200, ACAO(f" {A} ")), None, True, False, None),
    Vector(
        "14-port-kept",
        req(origin="http://a.example:8080"),
        resp(200, ACAO("http://a.example:8080")),
        None,
        True,
        False,
        None,
    ),
    Vector(
        "15-post-text-plain",
        req("POST", ("Content-Type", "text/plain")),
        resp(200, ALLOW_A),
        None,
        True,
        False,
        None,
    ),
    Vector(
        "16-json-acao-only",
        req("POST", JSON),
        resp(200, ALLOW_A),
        resp(204, ALLOW_A),
        False,
        True,
        header_denied("content-type"),
    ),
    Vector(
        "17-json-acah",
        req("POST", JSON),
        resp(200, ALLOW_A),
        resp(204, ALLOW_A, ACAH("content-type")),
        True,
        True,
        None,
    ),
    Vector(
        "18-put-not-listed",
        req("PUT"),
        resp(200, ALLOW_A),
        resp(200, ALLOW_A, ACAM("GET, POST")),
        False,
        True,
        method_denied("PUT"),
    ),
    Vector(
        "19-acam-star",
        req("PUT"),
        resp(200, ALLOW_A),
        resp(200, ALLOW_A, ACAM("*")),
        True,
        True,
        None,
    ),
    Vector(
        "20-acam-star-credentialed",
        req("PUT", credentials=True),
        resp(200, ALLOW_A, CRED),
        resp(200, ALLOW_A, CRED, ACAM("*")),
        False,
        True,
        method_denied("PUT"),
    ),
    Vector(
        "21-preflight-404",
        req("DELETE"),
        resp(200, ALLOW_A),
        resp(404, ALLOW_A, ACAM("DELETE")),
        False,
        True,
        NOT_OK,
    ),
    Vector(
        "22-preflight-302",
        req("DELETE"),
        resp(200, ALLOW_A),
        resp(302, ALLOW_A, ACAM("DELETE"), ("Location", "https://api.example/x")),
        False,
        True,
        REDIRECT,
    ),
    Vector(
        "23-acah-case-insensitive",
        req("GET", ("X-Custom", "1")),
        resp(200, ALLOW_A),
        resp(204, ALLOW_A, ACAH("X-CUSTOM")),
        True,
        True,
        None,
    ),
    Vector(
        "24-acah-star",
        req("GET", ("X-Custom", "1")),
        resp(200, ALLOW_A),
        resp(204, ALLOW_A, ACAH("*")),
        True,
        True,
        None,
    ),
    Vector(
        "25-acah-star-credentialed",
        req("GET", ("X-Custom", "1"), credentials=True),
        resp(200, ALLOW_A, CRED),
        resp(204, ALLOW_A, CRED, ACAH("*")),
        False,
        True,
        header_denied("x-custom"),
    ),
    Vector(
        "26-actual-fails-after-preflight",
        req("PUT"),
        resp(200),
        PUT_OK,
        False,
        True,
        NO_ACAO,
    ),
    Vector(
        "27-preflight-uses-credentials-mode",
        req("PUT", credentials=True),
        resp(200, ALLOW_A, CRED),
        PUT_OK,
        False,
        True,
        PREFIX + acac(""),
    ),
    Vector(
        "28-accept-language-safelisted",
        req("GET", ("Accept-Language", "en-US")),
        resp(200, ALLOW_A),
        None,
        True,
        False,
        None,
    ),
    Vector(
        "29-accept-language-unsafe-bytes",
        req("GET", ("Accept-Language", "en(US)")),
        resp(200, ALLOW_A),
        resp(204, ALLOW_A),
        False,
        True,
        header_denied("accept-language"),
    ),
    Vector("30-status-500-readable", req(), resp(500, ALLOW_A), None, True, False, None),
]


@pytest.mark.parametrize("v", VECTORS, ids=[v.id for v in VECTORS])
def test_cors_rules_vectors(v: Vector) -> None:
    verdict = evaluate(v.request, actual=v.actual, preflight=v.preflight)
    assert (verdict.readable, verdict.preflight_needed, verdict.reason) == (
        v.readable,
        v.needed,
        v.reason,
    )


def test_vectors_cover_all_thirty() -> None:
    assert len({v.id[:2] for v in VECTORS}) == 30


# ---------------------------------------------------------------------------
# methods
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("get", "GET"),
        ("Post", "POST"),
        ("head", "HEAD"),
        ("put", "PUT"),
        ("delete", "DELETE"),
        ("oPtIoNs", "OPTIONS"),
        ("patch", "patch"),
        ("Patch", "Patch"),
        ("PATCH", "PATCH"),
        ("propfind", "propfind"),
    ],
    ids=lambda x: x,
)
def test_normalize_method(given: str, sent: str) -> None:
    assert normalize_method(given) == sent


@pytest.mark.parametrize(
    ("method", "safelisted"),
    [
        ("GET", True),
        ("head", True),
        ("POST", True),
        ("PUT", False),
        ("patch", False),
        ("OPTIONS", False),
    ],
    ids=lambda x: str(x),
)
def test_is_safelisted_method(method: str, safelisted: bool) -> None:
    assert is_safelisted_method(method) is safelisted


# ---------------------------------------------------------------------------
# §3: one request header at a time
# ---------------------------------------------------------------------------

SAFELIST_CASES = [
    ("accept-any-safe-bytes", "Accept", "application/json, */*;q=0.8", True),
    ("accept-128-bytes", "Accept", "a" * 128, True),
    ("accept-129-bytes", "Accept", "a" * 129, False),
    ("accept-tab-allowed", "Accept", "a\tb", True),
    ("accept-latin1-allowed", "Accept", "caf\u00e9", True),
    ("accept-quote", "Accept", 'a"b', False),
    ("accept-colon", "Accept", "a:b", False),
    ("accept-braces", "Accept", "{a}", False),
    ("accept-del", "Accept", "a\x7f", False),
    ("accept-control-byte", "Accept", "a\x01", False),
    ("accept-language-en-us", "Accept-Language", "en-US,en;q=0.9", True),
    ("accept-language-empty", "Accept-Language", "", True),
    ("accept-language-parens", "Accept-Language", "en(US)", False),
    ("accept-language-tab", "Accept-Language", "en\tUS", False),
    ("accept-language-latin1", "Accept-Language", "caf\u00e9", False),
    ("content-language-star", "Content-Language", "*;q=0.5, de", True),
    ("content-language-slash", "Content-Language", "de/DE", False),
    ("content-type-text-plain", "Content-Type", "text/plain", True),
    ("content-type-charset", "Content-Type", "text/plain;charset=UTF-8", True),
    ("content-type-uppercase", "Content-Type", "TEXT/PLAIN", True),
    ("content-type-multipart", "Content-Type", "multipart/form-data; boundary=x", True),
    ("content-type-form", "Content-Type", "application/x-www-form-urlencoded", True),
    ("content-type-space-before-semicolon", "Content-Type", "text/plain ; a=b", True),
    ("content-type-comma-in-parameter", "Content-Type", "text/plain; a=b, c", True),
    ("content-type-trailing-semicolon", "Content-Type", "text/plain;", True),
    ("content-type-json", "Content-Type", "application/json", False),
    ("content-type-quoted-parameter", "Content-Type", 'text/plain; charset="utf-8"', False),
    ("content-type-list", "Content-Type", "text/plain, text/html", False),
    ("content-type-space-in-essence", "Content-Type", "text /plain", False),
    ("content-type-no-subtype", "Content-Type", "text/", False),
    ("content-type-plainx", "Content-Type", "text/plainx", False),
    ("content-type-empty", "Content-Type", "", False),
    ("content-type-128-bytes", "Content-Type", "text/plain;a=" + "b" * 115, True),
    ("content-type-129-bytes", "Content-Type", "text/plain;a=" + "b" * 116, False),
    ("range-closed", "Range", "bytes=0-10", True),
    ("range-open", "Range", "bytes=10-", True),
    ("range-single-byte", "Range", "bytes=3-3", True),
    ("range-leading-zeros", "Range", "bytes=007-010", True),
    ("range-int64-max-minus-one", "Range", "bytes=0-9223372036854775806", True),
    ("range-int64-max", "Range", "bytes=0-9223372036854775807", False),
    ("range-suffix", "Range", "bytes=-100", False),
    ("range-no-numbers", "Range", "bytes=-", False),
    ("range-reversed", "Range", "bytes=5-1", False),
    ("range-two", "Range", "bytes=0-1,3-4", False),
    ("range-uppercase-unit", "Range", "BYTES=0-1", False),
    ("range-spaces", "Range", "bytes = 0-1", False),
    ("range-other-unit", "Range", "items=0-1", False),
    ("range-plus-sign", "Range", "bytes=+1-2", False),
    ("range-superscript-digit", "Range", "bytes=\u00b2-3", False),
    ("dpr-decimal", "DPR", "2.5", True),
    ("dpr-trailing-dot", "DPR", "2.", False),
    ("dpr-leading-dot", "DPR", ".5", False),
    ("device-memory-two-dots", "Device-Memory", "1.5.2", False),
    ("downlink-decimal", "Downlink", "1.5", True),
    ("width-integer", "Width", "100", True),
    ("viewport-width-fraction", "Viewport-Width", "10.5", False),
    ("rtt-integer", "RTT", "50", True),
    ("ect-4g", "ECT", "4g", True),
    ("ect-slow-2g", "ECT", "slow-2g", True),
    ("ect-uppercase", "ECT", "4G", False),
    ("ect-5g", "ECT", "5g", False),
    ("save-data-on", "Save-Data", "on", True),
    ("save-data-ON", "Save-Data", "ON", True),
    ("save-data-off", "Save-Data", "off", False),
    ("intervention-any", "Intervention", "<https://x/>", True),
    ("x-custom", "X-Custom", "1", False),
    ("authorization", "Authorization", "Bearer x", False),
    ("name-case-insensitive", "aCCEPT", "x", True),
]


@pytest.mark.parametrize(
    ("name", "value", "safelisted"),
    [c[1:] for c in SAFELIST_CASES],
    ids=[c[0] for c in SAFELIST_CASES],
)
def test_is_safelisted_request_header(name: str, value: str, safelisted: bool) -> None:
    assert is_safelisted_request_header(name, value) is safelisted


@pytest.mark.parametrize(
    ("name", "value", "safelisted"),
    [c[1:] for c in SAFELIST_CASES],
    ids=[c[0] for c in SAFELIST_CASES],
)
def test_every_safelist_rule_decides_the_preflight(name: str, value: str, safelisted: bool) -> None:
    request = req("GET", (name, value))
    assert needs_preflight(request) is not safelisted
    expected = () if safelisted else (name.lower(),)
    assert unsafe_request_header_names(request.headers) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Cookie", "a=b"),
        ("Host", "evil.example"),
        ("Origin", "https://evil.example"),
        ("Referer", "https://evil.example/"),
        ("Connection", "close"),
        ("Content-Length", "1"),
        ("User-Agent", "x"),  # not forbidden by Fetch; Chromium drops it
        ("Set-Cookie", "a=b"),
        ("Accept-Encoding", "gzip"),
        ("DNT", "1"),
        ("Sec-Fetch-Mode", "cors"),
        ("Proxy-Authorization", "x"),
        ("X-HTTP-Method-Override", "TRACE"),
        ("X-Method-Override", "put, track"),
    ],
    ids=lambda x: x,
)
def test_forbidden_headers_never_trigger_a_preflight(name: str, value: str) -> None:
    assert is_forbidden_request_header(name, value)
    assert not needs_preflight(req("GET", (name, value)))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-HTTP-Method-Override", "PUT"),
        ("Access-Control-Request-Private-Network", "true"),  # Chromium preflights it
        ("Authorization", "Bearer x"),
    ],
    ids=lambda x: x,
)
def test_settable_headers_are_not_forbidden(name: str, value: str) -> None:
    assert not is_forbidden_request_header(name, value)
    assert needs_preflight(req("GET", (name, value)))


NINE_HINTS = (
    ("Accept", "a" * 128),
    ("Accept-Language", "a" * 128),
    ("Content-Language", "a" * 128),
    ("DPR", "1" * 128),
    ("Width", "1" * 128),
    ("Viewport-Width", "1" * 128),
    ("Device-Memory", "1" * 128),
    ("RTT", "1" * 128),
)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param((), (), id="none"),
        pytest.param((("X-B", "1"), ("X-A", "1")), ("x-a", "x-b"), id="sorted-lowercased"),
        pytest.param((("X-A", "1"), ("x-a", "2"), ("X-A", "3")), ("x-a",), id="unique"),
        pytest.param(
            (("Accept", "a" * 100), ("Accept", "b" * 100)),
            ("accept",),
            id="repeated-name-combined-over-128",
        ),
        pytest.param((("Accept", "a"), ("Accept", "b")), (), id="repeated-name-combined-short"),
        pytest.param((("Content-Type", "  text/plain  "),), (), id="value-whitespace-stripped"),
        pytest.param(NINE_HINTS, (), id="total-1024-bytes-is-fine"),
        pytest.param(
            (*NINE_HINTS, ("Save-Data", "on")),
            (
                "accept",
                "accept-language",
                "content-language",
                "device-memory",
                "dpr",
                "rtt",
                "save-data",
                "viewport-width",
                "width",
            ),
            id="total-over-1024-all-unsafe",
        ),
        pytest.param(
            (("Cookie", "a"), ("X-Custom", "1"), ("Accept", "x")),
            ("x-custom",),
            id="forbidden-ignored-safe-kept-out",
        ),
        pytest.param(
            (("X-HTTP-Method-Override", "PUT"), ("X-HTTP-Method-Override", "TRACE")),
            ("x-http-method-override",),
            id="forbidden-method-override-line-dropped-alone",
        ),
    ],
)
def test_unsafe_request_header_names(
    lines: tuple[tuple[str, str], ...], expected: tuple[str, ...]
) -> None:
    assert unsafe_request_header_names(Headers(lines)) == expected


@pytest.mark.parametrize(
    ("request_", "needed"),
    [
        pytest.param(req("GET"), False, id="get"),
        pytest.param(req("head"), False, id="head-lowercase"),
        pytest.param(req("POST", ("Content-Type", "text/plain")), False, id="post-text-plain"),
        pytest.param(req("PUT"), True, id="put"),
        pytest.param(req("delete"), True, id="delete-lowercase"),
        pytest.param(req("OPTIONS"), True, id="options"),
        pytest.param(
            req("GET", ("X-Requested-With", "XMLHttpRequest")), True, id="x-requested-with"
        ),
        pytest.param(req("GET", ("Cookie", "a=b")), False, id="cookie-is-not-page-settable"),
        pytest.param(req("GET", credentials=True), False, id="credentials-alone"),
    ],
)
def test_needs_preflight(request_: CorsRequest, needed: bool) -> None:
    assert needs_preflight(request_) is needed


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        pytest.param(
            req("PUT"),
            (("Origin", A), ("Access-Control-Request-Method", "PUT")),
            id="method-only-no-acrh",
        ),
        pytest.param(
            req("delete", ("Accept", "x")),
            (("Origin", A), ("Access-Control-Request-Method", "DELETE")),
            id="normalized-method-safelisted-header-not-listed",
        ),
        pytest.param(
            req("patch", ("X-B", "1"), ("x-a", "1"), ("X-B", "2"), ("Cookie", "c")),
            (
                ("Origin", A),
                ("Access-Control-Request-Method", "patch"),
                ("Access-Control-Request-Headers", "x-a,x-b"),
            ),
            id="acrh-sorted-unique-comma-no-space",
        ),
        pytest.param(
            req("GET", ("Authorization", "x"), origin="null", credentials=True),
            (
                ("Origin", "null"),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "authorization"),
            ),
            id="opaque-origin",
        ),
    ],
)
def test_preflight_request_headers(
    request_: CorsRequest, expected: tuple[tuple[str, str], ...]
) -> None:
    assert preflight_request_headers(request_) == Headers(expected)


# ---------------------------------------------------------------------------
# §2: the CORS check
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "credentials", "lines", "reason"),
    [
        pytest.param(A, False, (ALLOW_A,), None, id="exact"),
        pytest.param(A, False, (ACAO(f"\t{A}  "),), None, id="whitespace-trimmed"),
        pytest.param(A, False, (ACAO(" * "),), None, id="star-trimmed"),
        pytest.param(A, False, (ALLOW_A, ALLOW_A), multiple(f"{A}, {A}"), id="two-identical-lines"),
        pytest.param(A, False, (ACAO("*"), ACAO("*")), multiple("*, *"), id="two-star-lines"),
        pytest.param(
            A,
            False,
            (ACAO(f"{A} https://b.example"),),
            multiple(f"{A} https://b.example"),
            id="space-list",
        ),
        pytest.param(A, False, (ACAO(f"{A},"),), multiple(f"{A},"), id="trailing-comma"),
        pytest.param(A, False, (ACAO(""),), invalid(""), id="empty"),
        pytest.param(A, False, (ACAO("   "),), invalid(""), id="only-spaces"),
        pytest.param(A, False, (ACAO("foo"),), invalid("foo"), id="not-a-url"),
        pytest.param(
            A, False, (ACAO("*.example.com"),), invalid("*.example.com"), id="host-pattern"
        ),
        pytest.param(
            A,
            False,
            (ACAO("https://*.example.com"),),
            mismatch("https://*.example.com"),
            id="url-pattern",
        ),
        pytest.param(A, False, (ACAO("http:"),), invalid("http:"), id="scheme-only"),
        pytest.param(A, False, (ACAO("https://"),), invalid("https://"), id="no-host"),
        pytest.param(
            A,
            False,
            (ACAO("http://a.example:99999"),),
            invalid("http://a.example:99999"),
            id="port-out-of-range",
        ),
        pytest.param(
            A,
            False,
            (ACAO("http://a.example:8a"),),
            invalid("http://a.example:8a"),
            id="port-not-digits",
        ),
        pytest.param(
            A, False, (ACAO("http://a.example:"),), mismatch("http://a.example:"), id="empty-port"
        ),
        pytest.param(
            A, False, (ACAO("http://999.1.1.1"),), invalid("http://999.1.1.1"), id="bad-ipv4"
        ),
        pytest.param(A, False, (ACAO("http://0x7f.1"),), mismatch("http://0x7f.1"), id="hex-ipv4"),
        pytest.param(A, False, (ACAO("http://[::1"),), invalid("http://[::1"), id="unclosed-ipv6"),
        pytest.param(
            A, False, (ACAO("http://[::1]:8080"),), mismatch("http://[::1]:8080"), id="ipv6"
        ),
        pytest.param(
            A,
            False,
            (ACAO("http://a%zz.example"),),
            invalid("http://a%zz.example"),
            id="bad-percent",
        ),
        pytest.param(
            A, False, (ACAO("http://a^b"),), invalid("http://a^b"), id="forbidden-host-char"
        ),
        pytest.param(
            A, False, (ACAO("http://@"),), invalid("http://@"), id="empty-host-after-userinfo"
        ),
        pytest.param(
            A,
            False,
            (ACAO("1http://a.example"),),
            invalid("1http://a.example"),
            id="scheme-starts-with-digit",
        ),
        pytest.param(
            A, False, (ACAO("javascript:x"),), mismatch("javascript:x"), id="non-special-scheme"
        ),
        pytest.param(A, False, (ACAO("file://"),), mismatch("file://"), id="file-scheme"),
        pytest.param(
            A, False, (ACAO("http:a.example"),), mismatch("http:a.example"), id="no-slashes"
        ),
        pytest.param(A, False, (ACAO(A + ":443"),), mismatch(A + ":443"), id="default-port"),
        pytest.param("null", False, (ACAO("null"),), None, id="null-matches-opaque"),
        pytest.param("null", False, (ACAO("NULL"),), invalid("NULL"), id="null-uppercase"),
        pytest.param("null", False, (ACAO("*"),), None, id="star-for-opaque"),
        pytest.param(A, True, (ALLOW_A, CRED), None, id="credentialed"),
        pytest.param(
            A,
            True,
            (ALLOW_A, ("Access-Control-Allow-Credentials", " true\t")),
            None,
            id="acac-trimmed",
        ),
        pytest.param(A, True, (ALLOW_A, CRED, CRED), acac("true, true"), id="acac-two-lines"),
        pytest.param(
            A,
            True,
            (ALLOW_A, ("Access-Control-Allow-Credentials", "TRUE")),
            acac("TRUE"),
            id="acac-uppercase",
        ),
        pytest.param(
            A, True, (ALLOW_A, ("Access-Control-Allow-Credentials", "")), acac(""), id="acac-empty"
        ),
        pytest.param(
            A, True, (ALLOW_A, ("Access-Control-Allow-Credentials", "1")), acac("1"), id="acac-one"
        ),
        pytest.param(A, True, (ACAO("*"), CRED), WILDCARD, id="star-credentialed"),
        pytest.param(
            A, True, (ACAO(A + "/"), CRED), mismatch(A + "/"), id="origin-checked-before-acac"
        ),
        pytest.param(
            A,
            False,
            (ALLOW_A, ("Access-Control-Allow-Credentials", "nope")),
            None,
            id="acac-ignored-without-credentials",
        ),
        pytest.param(
            A, False, (("access-control-allow-origin", A),), None, id="header-name-case-insensitive"
        ),
    ],
)
def test_cors_check(
    origin: str, credentials: bool, lines: tuple[tuple[str, str], ...], reason: str | None
) -> None:
    assert cors_check(origin, credentials, Headers(lines)) == Check(reason is None, reason)


# ---------------------------------------------------------------------------
# §4: the preflight
# ---------------------------------------------------------------------------

XC = ("X-Custom", "1")
AUTH = ("Authorization", "Bearer x")


@pytest.mark.parametrize(
    ("request_", "response", "reason"),
    [
        pytest.param(req("PUT"), resp(204, ALLOW_A, ACAM("PUT")), None, id="204"),
        pytest.param(req("PUT"), resp(200, ALLOW_A, ACAM("PUT")), None, id="200"),
        pytest.param(req("PUT"), resp(299, ALLOW_A, ACAM("PUT")), None, id="299"),
        pytest.param(
            req("PUT"),
            resp(300, ALLOW_A, ACAM("PUT"), ("Location", "/x")),
            NOT_OK,
            id="300-is-not-a-redirect",
        ),
        pytest.param(
            req("PUT"), resp(301, ("Location", "/x")), REDIRECT, id="301-redirect-before-cors-check"
        ),
        pytest.param(
            req("PUT"), resp(302, ALLOW_A, ACAM("PUT"), ("Location", "/x")), REDIRECT, id="302"
        ),
        pytest.param(
            req("PUT"), resp(303, ALLOW_A, ACAM("PUT"), ("Location", "/x")), REDIRECT, id="303"
        ),
        pytest.param(
            req("PUT"), resp(307, ALLOW_A, ACAM("PUT"), ("Location", "/x")), REDIRECT, id="307"
        ),
        pytest.param(
            req("PUT"), resp(308, ALLOW_A, ACAM("PUT"), ("Location", "/x")), REDIRECT, id="308"
        ),
        pytest.param(
            req("PUT"), resp(302, ALLOW_A, ACAM("PUT")), NOT_OK, id="302-without-location"
        ),
        pytest.param(
            req("PUT"),
            resp(302, ALLOW_A, ACAM("PUT"), ("Location", "")),
            NOT_OK,
            id="302-empty-location",
        ),
        pytest.param(req("PUT"), resp(304, ALLOW_A, ACAM("PUT")), NOT_OK, id="304"),
        pytest.param(req("PUT"), resp(401, ALLOW_A, ACAM("PUT")), NOT_OK, id="401"),
        pytest.param(req("PUT"), resp(404, ALLOW_A, ACAM("PUT")), NOT_OK, id="404"),
        pytest.param(req("PUT"), resp(405, ALLOW_A, ACAM("PUT")), NOT_OK, id="405"),
        pytest.param(req("PUT"), resp(500, ALLOW_A, ACAM("PUT")), NOT_OK, id="500"),
        pytest.param(
            req("PUT"), resp(404, ACAM("PUT")), PREFIX + NO_ACAO, id="404-cors-check-reported-first"
        ),
        pytest.param(
            req("PUT"),
            resp(204, ACAO(A + "/"), ACAM("PUT")),
            PREFIX + mismatch(A + "/"),
            id="acao-mismatch",
        ),
        pytest.param(
            req("PUT"),
            resp(204, ALLOW_A, ALLOW_A, ACAM("PUT")),
            PREFIX + multiple(f"{A}, {A}"),
            id="acao-two-lines",
        ),
        pytest.param(req("PUT"), resp(204, ACAO("*"), ACAM("PUT")), None, id="acao-star"),
        pytest.param(
            req("PUT", credentials=True),
            resp(204, ACAO("*"), CRED, ACAM("PUT")),
            PREFIX + WILDCARD,
            id="acao-star-credentialed",
        ),
        pytest.param(
            req("PUT", credentials=True),
            resp(204, ALLOW_A, ACAM("PUT")),
            PREFIX + acac(""),
            id="acac-missing-credentialed",
        ),
        pytest.param(
            req("PUT", credentials=True),
            resp(204, ALLOW_A, CRED, ACAM("PUT")),
            None,
            id="credentialed-ok",
        ),
        pytest.param(
            req("PUT"), resp(204, ALLOW_A, ACAM(",, PUT ,,")), None, id="acam-stray-commas"
        ),
        pytest.param(req("PUT"), resp(204, ALLOW_A, ACAM("\tGET\t,\tPUT")), None, id="acam-tabs"),
        pytest.param(
            req("PUT"), resp(204, ALLOW_A, ACAM("GET"), ACAM("PUT")), None, id="acam-two-lines"
        ),
        pytest.param(
            req("PUT"), resp(204, ALLOW_A, ACAM("")), method_denied("PUT"), id="acam-empty"
        ),
        pytest.param(req("PUT"), resp(204, ALLOW_A), method_denied("PUT"), id="acam-absent"),
        pytest.param(
            req("PUT"),
            resp(204, ALLOW_A, ACAM("PUT, GET POST")),
            ACAM_PARSE,
            id="acam-invalid-token",
        ),
        pytest.param(req("PUT"), resp(204, ALLOW_A, ACAM("PUT;")), ACAM_PARSE, id="acam-semicolon"),
        pytest.param(
            req("PUT"), resp(204, ALLOW_A, ACAM('PUT, "a,b"')), ACAM_PARSE, id="acam-quoted"
        ),
        pytest.param(
            req("GET"), resp(204, ALLOW_A, ACAM("GE T")), ACAM_PARSE, id="acam-invalid-even-for-get"
        ),
        pytest.param(
            req("PUT"),
            resp(204, ALLOW_A, ACAM("put")),
            method_denied("PUT"),
            id="acam-case-sensitive",
        ),
        pytest.param(
            req("put"), resp(204, ALLOW_A, ACAM("PUT")), None, id="method-normalized-before-compare"
        ),
        pytest.param(
            req("patch"),
            resp(204, ALLOW_A, ACAM("PATCH")),
            method_denied("patch"),
            id="patch-not-normalized",
        ),
        pytest.param(req("patch"), resp(204, ALLOW_A, ACAM("patch")), None, id="patch-exact"),
        pytest.param(req("PUT"), resp(204, ALLOW_A, ACAM("*")), None, id="acam-star"),
        pytest.param(
            req("PUT", credentials=True),
            resp(204, ALLOW_A, CRED, ACAM("*")),
            method_denied("PUT"),
            id="acam-star-credentialed",
        ),
        pytest.param(
            req("PUT", credentials=True),
            resp(204, ALLOW_A, CRED, ACAM("*, PUT")),
            None,
            id="acam-star-and-put-credentialed",
        ),
        pytest.param(
            req("POST", JSON),
            resp(204, ALLOW_A, ACAH("content-type")),
            None,
            id="safelisted-method-needs-no-acam",
        ),
        pytest.param(
            req("GET", XC), resp(204, ALLOW_A), header_denied("x-custom"), id="acah-absent"
        ),
        pytest.param(
            req("GET", XC), resp(204, ALLOW_A, ACAH("X-CUSTOM")), None, id="acah-case-insensitive"
        ),
        pytest.param(
            req("GET", XC), resp(204, ALLOW_A, ACAH(" , x-custom,")), None, id="acah-stray-commas"
        ),
        pytest.param(
            req("GET", XC),
            resp(204, ALLOW_A, ACAH("x-custom, x y")),
            ACAH_PARSE,
            id="acah-invalid-token",
        ),
        pytest.param(
            req("GET", XC), resp(204, ALLOW_A, ACAH('"x-custom"')), ACAH_PARSE, id="acah-quoted"
        ),
        pytest.param(
            req("GET", XC),
            resp(204, ALLOW_A, ACAH("x-custom\u00e9")),
            ACAH_PARSE,
            id="acah-non-ascii",
        ),
        pytest.param(
            req("PUT"),
            resp(204, ALLOW_A, ACAM("PU T"), ACAH("x y")),
            ACAM_PARSE,
            id="acam-parsed-before-acah",
        ),
        pytest.param(
            req("PUT", XC),
            resp(204, ALLOW_A, ACAH("x-custom")),
            method_denied("PUT"),
            id="method-checked-before-headers",
        ),
        pytest.param(req("GET", XC), resp(204, ALLOW_A, ACAH("*")), None, id="acah-star"),
        pytest.param(
            req("GET", XC, credentials=True),
            resp(204, ALLOW_A, CRED, ACAH("*")),
            header_denied("x-custom"),
            id="acah-star-credentialed",
        ),
        # Chromium 156 lets `*` cover Authorization for non-credentialed requests.
        pytest.param(
            req("GET", AUTH), resp(204, ALLOW_A, ACAH("*")), None, id="authorization-acah-star"
        ),
        pytest.param(
            req("GET", AUTH, credentials=True),
            resp(204, ALLOW_A, CRED, ACAH("*")),
            header_denied("authorization"),
            id="authorization-acah-star-credentialed",
        ),
        pytest.param(
            req("GET", AUTH, credentials=True),
            resp(204, ALLOW_A, CRED, ACAH("*, Authorization")),
            None,
            id="authorization-listed-credentialed",
        ),
        pytest.param(
            req("GET", ("X-B", "1"), ("X-A", "1")),
            resp(204, ALLOW_A),
            header_denied("x-a"),
            id="first-missing-in-sorted-order",
        ),
        pytest.param(
            req("GET", ("X-A", "1"), ("X-C", "1")),
            resp(204, ALLOW_A, ACAH("x-a")),
            header_denied("x-c"),
            id="only-missing-named",
        ),
        pytest.param(
            req("PUT"),
            resp(204, ALLOW_A, ACAM("PUT"), ("Access-Control-Max-Age", "soon")),
            None,
            id="bad-max-age-ignored",
        ),
        pytest.param(
            req("PUT", origin="null"),
            resp(204, ACAO("null"), ACAM("PUT")),
            None,
            id="opaque-origin",
        ),
    ],
)
def test_preflight_check(request_: CorsRequest, response: Response, reason: str | None) -> None:
    assert preflight_check(request_, response) == Check(reason is None, reason)


# ---------------------------------------------------------------------------
# §5: exposed response headers
# ---------------------------------------------------------------------------

BODY_HEADERS = (
    ALLOW_A,
    ("Content-Type", "application/json"),
    ("Content-Length", "2"),
    ("Date", "Wed, 21 Oct 2015 07:28:00 GMT"),
    ("X-Foo", "1"),
    ("X-Bar", "2"),
    ("Set-Cookie", "a=b"),
)


@pytest.mark.parametrize(
    ("credentials", "extra", "expected"),
    [
        pytest.param(False, (), ("content-length", "content-type"), id="safelisted-only"),
        pytest.param(
            False,
            (ACEH("x-foo, X-BAR"),),
            ("content-length", "content-type", "x-bar", "x-foo"),
            id="listed",
        ),
        pytest.param(
            False,
            (ACEH("x-foo"), ACEH("x-bar")),
            ("content-length", "content-type", "x-bar", "x-foo"),
            id="two-lines",
        ),
        pytest.param(
            False,
            (ACEH("x-foo, , x-bar,"),),
            ("content-length", "content-type", "x-bar", "x-foo"),
            id="empty-items",
        ),
        pytest.param(
            False,
            (ACEH("x-foo, bad value"),),
            ("content-length", "content-type"),
            id="invalid-token-exposes-nothing",
        ),
        pytest.param(
            False,
            (ACEH("x-foo;x-bar"),),
            ("content-length", "content-type"),
            id="semicolon-invalid",
        ),
        pytest.param(
            False,
            (ACEH("x-foo, Set-Cookie"),),
            ("content-length", "content-type", "x-foo"),
            id="set-cookie-never",
        ),
        pytest.param(
            False, (ACEH("x-missing"),), ("content-length", "content-type"), id="listed-but-absent"
        ),
        pytest.param(
            False,
            (ACEH("*"),),
            (
                "access-control-allow-origin",
                "access-control-expose-headers",
                "content-length",
                "content-type",
                "date",
                "x-bar",
                "x-foo",
            ),
            id="star-all-but-set-cookie",
        ),
        pytest.param(
            True,
            (ACEH("*"),),
            ("content-length", "content-type"),
            id="star-credentialed-is-literal",
        ),
        pytest.param(
            True,
            (ACEH("*"), ("*", "1")),
            ("*", "content-length", "content-type"),
            id="star-header-named-star",
        ),
        pytest.param(
            True,
            (ACEH("*, x-bar"),),
            ("content-length", "content-type", "x-bar"),
            id="star-and-name-credentialed",
        ),
    ],
)
def test_exposed_header_names(
    credentials: bool, extra: tuple[tuple[str, str], ...], expected: tuple[str, ...]
) -> None:
    response = Response(200, Headers((*BODY_HEADERS, *extra)))
    assert exposed_header_names(req(credentials=credentials), response) == expected


def test_readable_verdict_carries_exposed_headers() -> None:
    verdict = evaluate(req(), actual=resp(200, ALLOW_A, ACEH("x-foo"), ("X-Foo", "1")))
    assert verdict.exposed_headers == ("x-foo",)


def test_blocked_verdict_exposes_nothing() -> None:
    verdict = evaluate(req(), actual=resp(200, ACEH("*"), ("X-Foo", "1")))
    assert verdict.exposed_headers == ()


# ---------------------------------------------------------------------------
# evaluate(): how the parts combine
# ---------------------------------------------------------------------------


def test_missing_preflight_response_blocks() -> None:
    verdict = evaluate(req("PUT"), actual=resp(200, ALLOW_A), preflight=None)
    assert not verdict.readable
    assert verdict.preflight_needed
    assert (verdict.preflight, verdict.actual) == (None, None)
    assert verdict.reason is not None
    assert "no response to the preflight request was observed" in verdict.reason


def test_failed_preflight_means_actual_never_sent() -> None:
    verdict = evaluate(req("PUT"), actual=resp(200, ALLOW_A), preflight=resp(404, ALLOW_A))
    assert verdict.actual is None
    assert verdict.preflight == Check(False, NOT_OK)
    assert verdict.reason == NOT_OK


def test_passing_preflight_and_actual_both_reported() -> None:
    verdict = evaluate(req("PUT"), actual=resp(200, ALLOW_A), preflight=PUT_OK)
    assert verdict.readable
    assert verdict.preflight == Check(True)
    assert verdict.actual == Check(True)
    assert verdict.reason is None


def test_preflight_response_ignored_when_none_is_needed() -> None:
    verdict = evaluate(req("GET"), actual=resp(200, ALLOW_A), preflight=resp(500))
    assert verdict.readable
    assert not verdict.preflight_needed
    assert verdict.preflight is None


def test_missing_actual_response_blocks() -> None:
    verdict = evaluate(req("GET"), actual=None)
    assert not verdict.readable
    assert verdict.actual is None
    assert verdict.reason == "No response to the actual request was observed."


def test_console_message() -> None:
    assert console_message("https://api.example/v1/x", A, NO_ACAO) == (
        "Access to fetch at 'https://api.example/v1/x' from origin 'https://a.example' has been "
        "blocked by CORS policy: No 'Access-Control-Allow-Origin' header is present on the "
        "requested resource."
    )
