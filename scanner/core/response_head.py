"""The HTTP/1.1 response head as Chromium reads it: bytes in, status and header lines out.

Strict parsers (aiohttp's llhttp among them) refuse heads that browsers
accept; the verdict must be about what the browser saw, so the prober reads
every response head through these rules, measured against Chromium 156 by
``tests/browser`` (raw-socket cases) and following its ``net/http`` code:

- The status line starts with ``http`` (any case) within the first 5 bytes
  (``HttpUtil::LocateStartOfStatusLine`` allows 4 bytes of junk); without it
  the response is HTTP/0.9, which ``fetch()`` refuses. The code is the digits
  after the first space; none (or no space at all) means 200. Any number is
  kept: Chromium hands a page ``20``, ``600`` or ``1000`` as the status.
- The head ends at the first ``\\n\\n`` or ``\\n\\r\\n`` (``LocateEndOfHeaders``),
  or where the connection closed cleanly (a truncated head is still read).
- Header lines are split at any CR or LF (``AssembleRawHeaders`` tokenizes on
  both, so a bare CR ends a line); a line starting with a space or tab
  continues the previous header line, joined with one space; the first header
  line cannot be such a continuation and is dropped instead.
- Each line: name before the first ``:``, with trailing whitespace trimmed
  (``Access-Control-Allow-Origin : x`` counts); a line without a colon, with
  an empty name, or whose name is not an RFC 9110 token is skipped. The value
  is trimmed of spaces and tabs; other control bytes are kept.
- A NUL byte anywhere in the head fails the whole response, and so do two
  ``Content-Length`` (without chunked ``Transfer-Encoding``), ``Location`` or
  ``Content-Disposition`` lines with different values (response smuggling
  guards in ``HttpStreamParser``).
- Informational heads (1xx except 101) are skipped; the next head counts.

Header values are held as latin-1 text, one code point per byte, as
:mod:`scanner.core.headers` does. Every line is kept as received in
``raw_lines`` whenever the browser's reading differs from a strict one, so
evidence shows the odd line exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from scanner.core.headers import Headers
from scanner.core.observation import ProbeError

# LocateStartOfStatusLine: "http" may start this many bytes into the response.
STATUS_LINE_SLOP = 4
_LWS = " \t"
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
# HttpStreamParser refuses a response that repeats these with different values.
_SINGLE_VALUED = ("content-length", "content-disposition", "location")
# Longest excerpt of target-controlled bytes quoted in a failure's detail.
MAX_QUOTE = 60
# The line cap counts name + value; a raw line also holds ": " and stray
# whitespace, allowed this much more before it alone is too large.
LINE_SLACK = 4


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A final response head as the browser read it.

    ``headers`` are the lines Chromium keeps (names and values trimmed,
    continuations joined, malformed lines dropped); ``raw_lines`` every line
    of the head as received, status line first, when that reading differs
    from a strict parser's (empty otherwise: ``headers`` then are the lines);
    ``notes`` say what the lenient reading did, in words.
    """

    status: int
    reason: str
    headers: Headers
    raw_lines: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HeadRefused:
    """A head no browser would accept (or one past our caps): the probe's error."""

    error: ProbeError
    detail: str


def quote_bytes(raw: bytes) -> str:
    """``raw`` as a short bytes literal for an error detail."""
    if len(raw) > MAX_QUOTE:
        return repr(raw[:MAX_QUOTE]) + "..."
    return repr(raw)


def status_line_start(data: bytes | bytearray) -> int | None:
    """Where the status line starts (0-4), -1 when ``data`` is not HTTP, None when too short to say."""
    limit = min(len(data) - 4, STATUS_LINE_SLOP)
    for i in range(limit + 1):
        if data[i : i + 4].lower() == b"http":
            return i
    return -1 if len(data) >= STATUS_LINE_SLOP + 4 else None


def head_end(data: bytes | bytearray, start: int = 0) -> int:
    """Index just past the end of the head (``\\n\\n`` or ``\\n\\r\\n``) found from ``start``, or -1."""
    a = data.find(b"\n\n", start)
    b = data.find(b"\n\r\n", start)
    if a < 0:
        return -1 if b < 0 else b + 3
    if b < 0 or a < b:
        return a + 2
    return b + 3


def informational(status: int) -> bool:
    """A 1xx head other than 101: the browser skips it and reads the next one."""
    return 100 <= status < 200 and status != 101


def parse_status_line(line: str) -> tuple[int, str, bool]:
    """(status, reason, lenient) of a status line, as ``HttpResponseHeaders::ParseStatusLine``."""
    space = line.find(" ")
    if space < 0:
        return 200, "OK", True
    rest = line[space:].lstrip(" ")
    digits = 0
    while digits < len(rest) and "0" <= rest[digits] <= "9":
        digits += 1
    if not digits:
        return 200, "OK", True
    # Chromium's StringToInt saturates; ten digits are more than any status.
    status = int(rest[: min(digits, 10)])
    reason = rest[digits:].strip(" ")
    strict = (
        line[:5].upper() == "HTTP/"
        and line[space + 1 : space + 2] != " "
        and digits == 3
        and (not reason or rest[digits : digits + 1] == " ")
    )
    return status, reason, not strict


def parse_head(data: bytes, *, max_line_bytes: int, max_lines: int) -> ResponseHead | HeadRefused:
    """One response head (up to and including its blank line, or truncated at EOF).

    ``data`` starts at the response's first byte (junk before the status line
    included). ``max_line_bytes`` caps one line, ``max_lines`` the number of
    header lines: resource caps of ours, reported as errors, not verdicts. A
    line's size is its name and value (a continued line counts whole).
    """
    if b"\0" in data:
        bad = next(raw for raw in data.splitlines() if b"\0" in raw)
        return HeadRefused(
            ProbeError.BAD_RESPONSE,
            f"invalid header line: {quote_bytes(bad)} (a NUL byte: Chromium refuses the response)",
        )
    text = data.decode("latin-1")
    strict = _strict_head(text, max_line_bytes, max_lines)
    if strict is not None:
        return strict
    return lenient_head(data, text, max_line_bytes=max_line_bytes, max_lines=max_lines)


def lenient_head(
    data: bytes, text: str, *, max_line_bytes: int, max_lines: int
) -> ResponseHead | HeadRefused:
    """``parse_head`` the long way, for any head (``text`` is ``data`` decoded as latin-1)."""
    start = status_line_start(data)
    if start is None or start < 0:
        first = data.split(b"\n", 1)[0].rstrip(b"\r")
        return HeadRefused(
            ProbeError.BAD_RESPONSE, f"invalid HTTP status line: {quote_bytes(first)}"
        )
    notes: list[str] = []
    if start:
        notes.append(f"{start} byte(s) before the status line skipped")
    # FindStatusLineEnd: the status line ends at the first CR or LF.
    cut = len(text)
    for stop in ("\r", "\n"):
        found = text.find(stop, start)
        if 0 <= found < cut:
            cut = found
    status_line = text[start:cut]
    status, reason, odd_status = parse_status_line(status_line)
    if odd_status:
        notes.append(f"status line {status_line!r} read as {status}")
    segments = text[cut:].replace("\r", "\n").split("\n")
    raw = [status_line]
    assembled: list[str] = []
    continuable = False
    for segment in segments:
        if not segment:
            continue
        if len(segment) > max_line_bytes + LINE_SLACK:
            return HeadRefused(
                ProbeError.HEADERS_TOO_LARGE, f"header line exceeds {max_line_bytes} bytes"
            )
        raw.append(segment)
        if continuable and segment[0] in _LWS:
            assembled[-1] += " " + segment.strip(_LWS)
            notes.append(f"continuation line {segment!r} joined to the line before")
            continue
        assembled.append(segment)
        colon = segment.find(":")
        continuable = colon > 0 and segment[0] not in _LWS
    lines: list[tuple[str, str]] = []
    for line in assembled:
        colon = line.find(":")
        if colon < 0:
            notes.append(f"line {line!r} skipped: no colon")
            continue
        name = line[:colon]
        if not name or name[0] in _LWS:
            notes.append(f"line {line!r} skipped: no header name")
            continue
        trimmed = name.rstrip(_LWS)
        if not _TOKEN_CHARS.issuperset(trimmed):
            notes.append(f"line {line!r} skipped: {trimmed!r} is not a header name")
            continue
        if len(trimmed) != len(name):
            notes.append(f"line {line!r}: whitespace before the colon ignored")
        value = line[colon + 1 :].strip(_LWS)
        if len(trimmed) + len(value) > max_line_bytes:
            return HeadRefused(
                ProbeError.HEADERS_TOO_LARGE, f"header line exceeds {max_line_bytes} bytes"
            )
        lines.append((trimmed, value))
    if len(lines) > max_lines:
        return HeadRefused(ProbeError.TOO_MANY_HEADERS, f"more than {max_lines} header lines")
    headers = Headers(tuple(lines))
    refused = _smuggling_guard(headers)
    if refused is not None:
        return refused
    if not notes:
        return ResponseHead(status, reason, headers)
    return ResponseHead(status, reason, headers, tuple(raw), tuple(notes))


def _strict_head(
    text: str, max_line_bytes: int, max_lines: int
) -> ResponseHead | HeadRefused | None:
    """What nearly every server sends, read in one pass: an ``HTTP/1.x NNN reason``
    status line and CRLF-ended ``token: value`` lines, nothing lenient about them.

    None when anything is unusual: the general reading below then decides (and
    reads these the same, only slower).
    """
    if not text.startswith(("HTTP/1.1 ", "HTTP/1.0 ")) or not text.endswith("\r\n\r\n"):
        return None
    lines = text.split("\r\n")
    # A CR or LF anywhere but in the CRLF pairs ends lines the browser's way.
    if text.count("\n") != len(lines) - 1 or text.count("\r") != len(lines) - 1:
        return None
    status_line = lines[0]
    code = status_line[9:12]
    if (
        len(code) != 3
        or not code.isdigit()
        or code[0] == "0"
        or (len(status_line) > 12 and status_line[12] != " ")
    ):
        return None
    reason = status_line[13:]
    if reason[:1] == " " or reason[-1:] == " ":
        return None
    count = len(lines) - 3  # the status line, and the two empty strings after the blank line
    if count > max_lines:
        return HeadRefused(ProbeError.TOO_MANY_HEADERS, f"more than {max_lines} header lines")
    out: list[tuple[str, str]] = []
    index: dict[str, list[str]] = {}
    token = _TOKEN_CHARS.issuperset
    for line in lines[1 : count + 1]:
        name, sep, value = line.partition(":")
        if not sep or not name or not token(name):
            return None
        value = value.strip(_LWS)
        if len(name) + len(value) > max_line_bytes:
            return HeadRefused(
                ProbeError.HEADERS_TOO_LARGE, f"header line exceeds {max_line_bytes} bytes"
            )
        out.append((name, value))
        key = name.lower()
        values = index.get(key)
        if values is None:
            index[key] = [value]
        else:
            values.append(value)
    headers = Headers.with_index(tuple(out), index)
    refused = _smuggling_guard(headers)
    if refused is not None:
        return refused
    return ResponseHead(int(code), reason, headers)


def _smuggling_guard(headers: Headers) -> HeadRefused | None:
    for name in _SINGLE_VALUED:
        values = headers.get_all(name)
        if len(set(values)) <= 1:
            continue
        if name == "content-length" and _chunked(headers):
            continue
        return HeadRefused(
            ProbeError.BAD_RESPONSE,
            f"{len(values)} {name} lines with different values: Chromium refuses the response",
        )
    return None


def _chunked(headers: Headers) -> bool:
    coding = headers.combined("transfer-encoding") or ""
    return coding.rsplit(",", 1)[-1].strip(_LWS).lower() == "chunked"
