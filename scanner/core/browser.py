"""What a browser (Chromium) allows: the Fetch standard's CORS check and preflight rules.

Pure functions over values. Input: the request a page would make (origin,
method, headers it set, credentials mode) and the raw response header lines.
Output: verdicts whose negative reasons use the words of Chromium's console.
Reference: ../shared/docs/cors-rules.md; where it and Chromium differ, Chromium wins
and the reason says so.

Every rule below was checked against Chromium 156 by ``tests/browser`` (a
differential suite that runs headless Chromium against scripted servers).
Where Chromium departs from the Fetch standard or from cors-rules.md, we
follow Chromium:

- Request headers: Chromium also safelists the client hints ``DPR``,
  ``Device-Memory``, ``Downlink`` (decimal), ``Width``, ``Viewport-Width``,
  ``RTT`` (integer), ``ECT`` (``slow-2g``/``2g``/``3g``/``4g``), ``Save-Data``
  (``on``) and ``Intervention`` (any value), and silently drops a page-set
  ``User-Agent`` (no preflight). ``Access-Control-Request-Private-Network`` is
  not forbidden: a page that sets it gets a preflight.
- ``Range``: ``bytes`` is case-sensitive and each number must be below
  2**63 - 1 (``bytes=0-9223372036854775807`` is not safelisted).
- ``Access-Control-Allow-Headers: *`` covers ``Authorization`` for
  non-credentialed requests (the standard says it never does).
- A preflight answered 301/302/303/307/308 *with* a ``Location`` fails as a
  redirect; any other non-2xx (including a 3xx without ``Location``) fails on
  status, and only after the CORS check passed (the CORS check's reason wins).
- When several request headers are missing from ACAH, Chromium names the first
  in its internal hash-map order; we name the first in sorted order.
- ``Access-Control-Expose-Headers`` with one invalid token (``bad value``,
  ``a;b``) exposes nothing but the safelisted response headers.
- A mismatched ACAO that does not parse as a URL is reported as "contains the
  invalid value" (Chromium asks GURL); ``_parses_as_url`` approximates GURL.
- Method names: only DELETE GET HEAD OPTIONS POST PUT are uppercased; ``patch``
  is sent as ``patch`` and ``Access-Control-Allow-Methods: PATCH`` does not
  allow it (byte-for-byte comparison).

A request whose origin is the URL's own origin is not a CORS request at all
(Fetch, "main fetch": same-origin requests take the basic path): the page
reads the response whatever its headers say, and no preflight is sent.
``CorsRequest.target_origin`` carries the URL's origin for that rule.

How the response head itself is read (leniently, as Chromium does) is
:mod:`scanner.core.response_head`'s rule.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from scanner.core.headers import Headers
from scanner.errors import InputError


@dataclass(frozen=True, slots=True)
class CorsRequest:
    """A cross-origin request as a page makes it.

    ``origin`` is the exact Origin header value (``null`` for opaque);
    ``headers`` are the headers the page set itself (not Cookie, Origin...);
    ``credentials`` is credentials mode "include" (fetch) / withCredentials (XHR);
    ``target_origin`` is the serialised origin of the URL requested, when known:
    equal to ``origin``, the request is same-origin and no CORS rule applies.
    """

    origin: str
    method: str = "GET"
    headers: Headers = field(default_factory=Headers)
    credentials: bool = False
    target_origin: str | None = None

    @property
    def cross_origin(self) -> bool:
        """A CORS request: the page's origin is not the URL's (``null`` never is)."""
        return self.target_origin is None or self.origin != self.target_origin


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


_PASS = Check(True)

# -- reasons: Chromium's console text after "has been blocked by CORS policy: " --

_VALID_VALUE_HINT = " Have the server send the header with a valid value."
NO_ACAO = "No 'Access-Control-Allow-Origin' header is present on the requested resource."
WILDCARD_WITH_CREDENTIALS = (
    "The value of the 'Access-Control-Allow-Origin' header in the response must not be "
    "the wildcard '*' when the request's credentials mode is 'include'."
)
ACAO_MULTIPLE = (
    "The 'Access-Control-Allow-Origin' header contains multiple values '{value}', "
    "but only one is allowed." + _VALID_VALUE_HINT
)
ACAO_INVALID = (
    "The 'Access-Control-Allow-Origin' header contains the invalid value '{value}'."
    + _VALID_VALUE_HINT
)
ACAO_MISMATCH = (
    "The 'Access-Control-Allow-Origin' header has a value '{value}' that is not equal "
    "to the supplied origin." + _VALID_VALUE_HINT
)
ACAC_NOT_TRUE = (
    "The value of the 'Access-Control-Allow-Credentials' header in the response is "
    "'{value}' which must be 'true' when the request's credentials mode is 'include'."
)
PREFLIGHT_PREFIX = "Response to preflight request doesn't pass access control check: "
PREFLIGHT_REDIRECT = PREFLIGHT_PREFIX + "Redirect is not allowed for a preflight request."
PREFLIGHT_STATUS = PREFLIGHT_PREFIX + "It does not have HTTP ok status."
ACAM_UNPARSABLE = (
    "Cannot parse Access-Control-Allow-Methods response header field in preflight response."
)
ACAH_UNPARSABLE = (
    "Cannot parse Access-Control-Allow-Headers response header field in preflight response."
)
METHOD_NOT_ALLOWED = (
    "Method {method} is not allowed by Access-Control-Allow-Methods in preflight response."
)
HEADER_NOT_ALLOWED = (
    "Request header field {name} is not allowed by Access-Control-Allow-Headers "
    "in preflight response."
)
_NO_ACAO = Check(False, NO_ACAO)
_WILDCARD_WITH_CREDENTIALS = Check(False, WILDCARD_WITH_CREDENTIALS)
# Ours, not Chromium's: the exchange lacks a response, so no browser verdict exists.
NO_PREFLIGHT_OBSERVED = PREFLIGHT_PREFIX + "no response to the preflight request was observed."
NO_ACTUAL_OBSERVED = "No response to the actual request was observed."

# -- methods ----------------------------------------------------------------

SAFELISTED_METHODS = frozenset({"GET", "HEAD", "POST"})
# Fetch, "normalize a method": only these are uppercased; `patch` stays `patch`.
_NORMALIZED_METHODS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"})
_FORBIDDEN_METHODS = frozenset({"CONNECT", "TRACE", "TRACK"})

# -- request headers --------------------------------------------------------

_HTTP_WHITESPACE = " \t\r\n"
_DIGITS = frozenset("0123456789")
# Fetch, "CORS-unsafe request-header byte".
_UNSAFE_BYTES = frozenset(
    [chr(c) for c in range(0x20) if c != 0x09] + list('"():<>?@[\\]{}') + ["\x7f"]
)
_LANGUAGE_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz *,-.;=")
_SAFELISTED_MIME_TYPES = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)
_ECT_VALUES = frozenset({"slow-2g", "2g", "3g", "4g"})
# Chromium's byte-range parser holds positions in int64 and rejects the maximum.
_MAX_RANGE_POSITION = 2**63 - 2
MAX_SAFELISTED_VALUE_BYTES = 128
MAX_SAFELISTED_TOTAL_BYTES = 1024

# Fetch's forbidden request-header names, plus User-Agent: the standard lets a
# page set it, Chromium drops it silently (crbug.com/571722).
_FORBIDDEN_REQUEST_HEADERS = frozenset(
    {
        "accept-charset",
        "accept-encoding",
        "access-control-request-headers",
        "access-control-request-method",
        "connection",
        "content-length",
        "cookie",
        "cookie2",
        "date",
        "dnt",
        "expect",
        "host",
        "keep-alive",
        "origin",
        "referer",
        "set-cookie",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "via",
    }
)
_FORBIDDEN_PREFIXES = ("proxy-", "sec-")
_METHOD_OVERRIDE_HEADERS = frozenset(
    {"x-http-method", "x-http-method-override", "x-method-override"}
)

# -- responses --------------------------------------------------------------

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
SAFELISTED_RESPONSE_HEADERS = frozenset(
    {
        "cache-control",
        "content-language",
        "content-length",
        "content-type",
        "expires",
        "last-modified",
        "pragma",
    }
)
_FORBIDDEN_RESPONSE_HEADERS = frozenset({"set-cookie", "set-cookie2"})

ACAO = "Access-Control-Allow-Origin"
ACAC = "Access-Control-Allow-Credentials"
ACAM = "Access-Control-Allow-Methods"
ACAH = "Access-Control-Allow-Headers"
ACEH = "Access-Control-Expose-Headers"


# -- methods ----------------------------------------------------------------


def normalize_method(method: str) -> str:
    """The method fetch() sends (Fetch, "normalize a method"), refusing what is not a method.

    ``DELETE GET HEAD OPTIONS POST PUT`` are uppercased, matched
    case-insensitively (``get`` -> ``GET``); any other token is sent exactly
    as written, so ``patch`` stays ``patch`` and an ACAM comparison is then
    byte for byte. A method is an RFC 9110 token: ``InputError`` for anything
    else (empty, spaces, non-ASCII), which ``fetch()`` would refuse with a
    TypeError before sending.
    """
    if not isinstance(method, str) or not method or not _TOKEN_CHARS.issuperset(method):
        raise InputError(
            f"{method!r} is not an HTTP method: a method is a token of letters, digits "
            "and !#$%&'*+-.^_`|~ (e.g. GET or PATCH)"
        )
    upper = method.upper()
    return upper if upper in _NORMALIZED_METHODS else method


def is_safelisted_method(method: str) -> bool:
    """GET, HEAD or POST (after fetch's normalization, so ``get`` counts too)."""
    return method in SAFELISTED_METHODS or normalize_method(method) in SAFELISTED_METHODS


# -- request headers --------------------------------------------------------


def _is_digits(text: str) -> bool:
    # str.isdigit() also accepts "²" and other non-ASCII digits.
    return bool(text) and _DIGITS.issuperset(text)


def _is_decimal(value: str) -> bool:
    """1*DIGIT [ "." 1*DIGIT ], Chromium's rule for DPR, Device-Memory, Downlink."""
    whole, dot, fraction = value.partition(".")
    return _is_digits(whole) and (not dot or _is_digits(fraction))


def _is_simple_range(value: str) -> bool:
    """Fetch's "simple range header value", as Chromium 156 parses it."""
    if not value.startswith("bytes="):
        return False
    start, dash, end = value[6:].partition("-")
    if not dash or not _is_digits(start) or (end and not _is_digits(end)):
        return False
    first = int(start)
    if first > _MAX_RANGE_POSITION:
        return False
    if end:
        last = int(end)
        if last > _MAX_RANGE_POSITION or first > last:
            return False
    return True


def _is_safelisted_content_type(value: str) -> bool:
    lowered = value.lower()
    if not _UNSAFE_BYTES.isdisjoint(lowered):
        return False
    # Only the essence counts: parameters may hold anything but unsafe bytes.
    return lowered.split(";", 1)[0].strip(" \t") in _SAFELISTED_MIME_TYPES


_SAFELISTED_REQUEST_HEADERS: dict[str, Callable[[str], bool]] = {
    "accept": _UNSAFE_BYTES.isdisjoint,
    "accept-language": _LANGUAGE_CHARS.issuperset,
    "content-language": _LANGUAGE_CHARS.issuperset,
    "content-type": _is_safelisted_content_type,
    "range": _is_simple_range,
    # Chromium-only (not in Fetch): added by Chrome itself or client hints.
    "intervention": lambda _: True,
    "device-memory": _is_decimal,
    "dpr": _is_decimal,
    "downlink": _is_decimal,
    "width": _is_digits,
    "viewport-width": _is_digits,
    "rtt": _is_digits,
    "ect": _ECT_VALUES.__contains__,
    "save-data": lambda value: value.lower() == "on",
}


def is_safelisted_request_header(name: str, value: str) -> bool:
    """Chromium's CORS-safelisted request-header check for one (name, value).

    ``value`` is the header value as sent (latin-1 str, one char per byte),
    at most 128 bytes. The 1024-byte total rule needs all headers: see
    :func:`unsafe_request_header_names`.
    """
    if len(value) > MAX_SAFELISTED_VALUE_BYTES:
        return False
    rule = _SAFELISTED_REQUEST_HEADERS.get(name.lower())
    return rule is not None and rule(value)


def is_forbidden_request_header(name: str, value: str) -> bool:
    """A header a page cannot set: fetch() drops it silently, so it never triggers a preflight."""
    lowered = name.lower()
    if lowered in _FORBIDDEN_REQUEST_HEADERS or lowered.startswith(_FORBIDDEN_PREFIXES):
        return True
    if lowered in _METHOD_OVERRIDE_HEADERS:
        return any(
            m.strip(_HTTP_WHITESPACE).upper() in _FORBIDDEN_METHODS for m in value.split(",")
        )
    return False


def _page_headers(headers: Headers) -> dict[str, str]:
    """What fetch() puts on the wire from the page's headers, by lowercased name.

    Values are normalized (outer HTTP whitespace stripped), forbidden headers
    dropped, and repeated names combined with ", " as Blink does.
    """
    combined: dict[str, str] = {}
    for name, raw in headers.lines:
        value = raw.strip(_HTTP_WHITESPACE)
        if is_forbidden_request_header(name, value):
            continue
        lowered = name.lower()
        previous = combined.get(lowered)
        combined[lowered] = value if previous is None else f"{previous}, {value}"
    return combined


def unsafe_request_header_names(headers: Headers) -> tuple[str, ...]:
    """Fetch's "CORS-unsafe request-header names" of what the page set: lowercased, sorted, unique.

    Forbidden headers are ignored (a page cannot send them). When the safelisted
    values together exceed 1024 bytes they all count as unsafe.
    """
    if not headers.lines:
        return ()
    return headers.memo("unsafe_request_header_names", _unsafe_names)


def _unsafe_names(headers: Headers) -> tuple[str, ...]:
    safe_names: list[str] = []
    unsafe: set[str] = set()
    safe_total = 0
    for name, value in _page_headers(headers).items():
        if is_safelisted_request_header(name, value):
            safe_names.append(name)
            safe_total += len(value)
        else:
            unsafe.add(name)
    if safe_total > MAX_SAFELISTED_TOTAL_BYTES:
        unsafe.update(safe_names)
    return tuple(sorted(unsafe))


def needs_preflight(request: CorsRequest) -> bool:
    """A cross-origin request needs a preflight: unsafe method or any unsafe header.

    A same-origin request never does.
    """
    if not request.cross_origin:
        return False
    return not is_safelisted_method(request.method) or bool(
        unsafe_request_header_names(request.headers)
    )


def preflight_request_headers(request: CorsRequest) -> Headers:
    """The CORS headers of the preflight Chromium sends for ``request``.

    ``Origin``, ``Access-Control-Request-Method`` (the normalized method) and,
    only when there are unsafe headers, ``Access-Control-Request-Headers``
    (lowercased, sorted, joined by "," without spaces, as Chromium sends it).
    """
    lines = [
        ("Origin", request.origin),
        ("Access-Control-Request-Method", normalize_method(request.method)),
    ]
    unsafe = unsafe_request_header_names(request.headers)
    if unsafe:
        lines.append(("Access-Control-Request-Headers", ",".join(unsafe)))
    return Headers(tuple(lines))


# -- the CORS check ---------------------------------------------------------


def _is_ipv4_number(part: str) -> bool:
    if part[:2] in ("0x", "0X"):
        return all(c in "0123456789abcdefABCDEF" for c in part[2:])
    if len(part) > 1 and part[0] == "0":
        return all(c in "01234567" for c in part[1:])
    return _is_digits(part)


def _ipv4_value(part: str) -> int:
    if part[:2] in ("0x", "0X"):
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part[0] == "0":
        return int(part[1:], 8)
    return int(part)


def _is_valid_host(host: str) -> bool:
    """URL standard host parsing, roughly as GURL does it (IDNA is assumed to succeed)."""
    decoded = unquote(host)
    if not decoded or any(c in "\x00\t\n\r #/:<>?@[\\]^|%\x7f" or c < " " for c in decoded):
        return False
    parts = decoded.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    last = parts[-1]
    ends_in_number = _is_digits(last) or (
        last[:2] in ("0x", "0X") and all(c in "0123456789abcdefABCDEF" for c in last[2:])
    )
    if not ends_in_number:
        return True
    # A host ending in a number must be an IPv4 address.
    if len(parts) > 4 or not all(p and _is_ipv4_number(p) for p in parts):
        return False
    values = [_ipv4_value(p) for p in parts]
    return all(v <= 255 for v in values[:-1]) and values[-1] < 256 ** (5 - len(values))


def _parses_as_url(value: str) -> bool:
    """Would Chromium's GURL accept ``value``? Only picks the wording of a mismatch reason."""
    scheme, colon, rest = value.partition(":")
    if (
        not colon
        or not scheme
        or not scheme.isascii()
        or not scheme[0].isalpha()
        or not all(c.isalnum() or c in "+-." for c in scheme)
    ):
        return False
    if scheme.lower() not in ("http", "https", "ws", "wss", "ftp"):
        return True  # file:, data:, javascript: and other schemes parse leniently
    rest = rest.lstrip("/\\")
    end = len(rest)
    for stop in "/\\?#":
        found = rest.find(stop)
        if found != -1:
            end = min(end, found)
    host_port = rest[:end].rpartition("@")[2]
    if host_port.startswith("["):
        close = host_port.find("]")
        if close == -1:
            return False
        try:
            ipaddress.IPv6Address(host_port[1:close])
        except ValueError:
            return False
        after = host_port[close + 1 :]
        if after and not after.startswith(":"):
            return False
        port = after[1:]
    else:
        host, _, port = host_port.partition(":")
        if not _is_valid_host(host):
            return False
    return not port or (_is_digits(port) and int(port) <= 65535)


def cors_check(origin: str, credentials: bool, headers: Headers) -> Check:
    """Fetch's CORS check of a response (§2), with Chromium's reasons.

    ``origin`` is the serialized request origin (``null`` for opaque);
    ``credentials`` is credentials mode "include". Several ACAO lines are
    combined (", ") and so never match; outer whitespace is not significant.
    """
    allow_origin = headers.combined(ACAO)
    if allow_origin is None:
        return _NO_ACAO
    if allow_origin == "*":
        return _WILDCARD_WITH_CREDENTIALS if credentials else _PASS
    if allow_origin != origin:
        if " " in allow_origin or "," in allow_origin:
            return Check(False, ACAO_MULTIPLE.format(value=allow_origin))
        # "null" is checked first because it does not parse as a URL.
        if allow_origin != "null" and not _parses_as_url(allow_origin):
            return Check(False, ACAO_INVALID.format(value=allow_origin))
        return Check(False, ACAO_MISMATCH.format(value=allow_origin))
    if credentials:
        allow_credentials = headers.combined(ACAC)
        if allow_credentials != "true":
            return Check(False, ACAC_NOT_TRUE.format(value=allow_credentials or ""))
    return _PASS


# -- the preflight ----------------------------------------------------------


def _parse_token_list(value: str | None) -> frozenset[str] | None:
    """ACAM/ACAH/ACEH as comma-separated tokens; empty items skipped; None if one is invalid."""
    if value is None:
        return frozenset()
    items: list[str] = []
    for part in value.split(","):
        item = part.strip(" \t")
        if not item:
            continue
        if not _TOKEN_CHARS.issuperset(item):
            return None
        items.append(item)
    return frozenset(items)


def _is_redirect(response: Response) -> bool:
    # Chromium's network stack treats a 3xx as a redirect only with a non-empty
    # Location; a bare 302 is a final (non-ok) response.
    return response.status in _REDIRECT_STATUSES and any(
        v.strip(" \t") for v in response.headers.get_all("Location")
    )


def preflight_check(request: CorsRequest, response: Response) -> Check:
    """Does this preflight response let ``request`` through (§4)?

    Order as Chromium: redirect, CORS check (with the actual request's
    credentials mode), 2xx status, ACAM and ACAH syntax, method, headers.
    """
    return _preflight_check(
        request, response, unsafe_request_header_names(request.headers), request.credentials
    )


def _preflight_check(
    request: CorsRequest, response: Response, unsafe: tuple[str, ...], credentials: bool
) -> Check:
    if _is_redirect(response):
        return Check(False, PREFLIGHT_REDIRECT)
    access = cors_check(request.origin, credentials, response.headers)
    if not access.ok:
        return Check(False, PREFLIGHT_PREFIX + (access.reason or ""))
    if not 200 <= response.status <= 299:
        return Check(False, PREFLIGHT_STATUS)
    methods = _parse_token_list(response.headers.combined(ACAM))
    if methods is None:
        return Check(False, ACAM_UNPARSABLE)
    allowed = _parse_token_list(response.headers.combined(ACAH))
    if allowed is None:
        return Check(False, ACAH_UNPARSABLE)
    wildcard = not credentials
    # ACAM is compared case-sensitively with the normalized method: `patch`
    # needs `patch`, not `PATCH`.
    method = normalize_method(request.method)
    method_allowed = (
        method in SAFELISTED_METHODS or method in methods or (wildcard and "*" in methods)
    )
    if not method_allowed:
        return Check(False, METHOD_NOT_ALLOWED.format(method=method))
    # Chromium 156: `*` covers every name, Authorization included, when the
    # request is not credentialed (the standard excludes Authorization).
    if wildcard and "*" in allowed:
        return _PASS
    lowered = {name.lower() for name in allowed}
    for name in unsafe:
        if name not in lowered:
            return Check(False, HEADER_NOT_ALLOWED.format(name=name))
    return _PASS


# -- exposed headers and the verdict ----------------------------------------


def exposed_header_names(request: CorsRequest, response: Response) -> tuple[str, ...]:
    """Response header names script can read (lowercased, sorted), if the response is readable.

    The safelisted response headers present, plus those ACEH lists; ACEH ``*``
    means every header for a non-credentialed request and is a literal name for
    a credentialed one. Set-Cookie is never exposed. An ACEH with an invalid
    token exposes nothing (Chromium).
    """
    return _exposed(response, request.credentials)


def _exposed(response: Response, credentials: bool) -> tuple[str, ...]:
    present = response.headers.names()
    listed = _parse_token_list(response.headers.combined(ACEH)) or frozenset()
    names = {n.lower() for n in listed}
    if "*" in names and not credentials:
        exposed = set(present)
    else:
        exposed = {n for n in present if n in names or n in SAFELISTED_RESPONSE_HEADERS}
    exposed.difference_update(_FORBIDDEN_RESPONSE_HEADERS)
    return tuple(sorted(exposed))


SAME_ORIGIN_NOTE = "same-origin: not a CORS request, the page reads the response"


def evaluate(
    request: CorsRequest, *, actual: Response | None, preflight: Response | None = None
) -> Verdict:
    """Could the page read the response, counting the preflight it needs?

    If a preflight is needed and its response is missing or fails, the actual
    request is never sent: not readable, ``actual`` None. Otherwise the actual
    response's CORS check decides. ``preflight`` is ignored when none is needed.
    A same-origin request is readable whenever there is a response.
    """
    unsafe = unsafe_request_header_names(request.headers)
    return _evaluate(request, actual, preflight, unsafe, request.credentials)


def evaluate_modes(
    request: CorsRequest, *, actual: Response | None, preflight: Response | None = None
) -> tuple[Verdict, Verdict]:
    """``evaluate`` without and with credentials, sharing the work both modes have in common.

    The scanner asks both for every actual response it gets (is it readable
    by a page that sends cookies, and by one that does not?).
    """
    unsafe = unsafe_request_header_names(request.headers)
    return (
        _evaluate(request, actual, preflight, unsafe, False),
        _evaluate(request, actual, preflight, unsafe, True),
    )


def _evaluate(
    request: CorsRequest,
    actual: Response | None,
    preflight: Response | None,
    unsafe: tuple[str, ...],
    credentials: bool,
) -> Verdict:
    if not request.cross_origin:
        if actual is None:
            return Verdict(False, False, None, None, NO_ACTUAL_OBSERVED)
        return Verdict(True, False, None, None, None, _same_origin_headers(actual))
    needed = bool(unsafe) or not is_safelisted_method(request.method)
    preflight_result: Check | None = None
    if needed:
        if preflight is None:
            return Verdict(False, True, None, None, NO_PREFLIGHT_OBSERVED)
        preflight_result = _preflight_check(request, preflight, unsafe, credentials)
        if not preflight_result.ok:
            return Verdict(False, True, preflight_result, None, preflight_result.reason)
    if actual is None:
        return Verdict(False, needed, preflight_result, None, NO_ACTUAL_OBSERVED)
    actual_result = cors_check(request.origin, credentials, actual.headers)
    if not actual_result.ok:
        return Verdict(False, needed, preflight_result, actual_result, actual_result.reason)
    return Verdict(
        True, needed, preflight_result, actual_result, None, _exposed(actual, credentials)
    )


def _same_origin_headers(response: Response) -> tuple[str, ...]:
    # A same-origin response exposes every header but the forbidden response
    # header names (Set-Cookie).
    return tuple(
        sorted(n for n in response.headers.names() if n not in _FORBIDDEN_RESPONSE_HEADERS)
    )


def console_message(url: str, origin: str, reason: str) -> str:
    """The line Chromium's console shows when fetch() of ``url`` from ``origin`` is blocked."""
    return (
        f"Access to fetch at '{url}' from origin '{origin}' has been blocked by CORS policy: "
        f"{reason}"
    )
