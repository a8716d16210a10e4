"""Reading a response head as Chromium does: the rules, hostile inputs, and fuzzing.

Chromium's own verdicts on these shapes are checked by tests/browser (raw-socket
cases); here the parser's contract is pinned down and fuzzed: whatever bytes
arrive, the result is a head or a named refusal, never an exception, and a head
written by a strict server reads back exactly.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.core.headers import Headers
from scanner.core.observation import ProbeError
from scanner.core.response_head import (
    HeadRefused,
    ResponseHead,
    head_end,
    informational,
    lenient_head,
    parse_head,
    parse_status_line,
    status_line_start,
)

CAPS = {"max_line_bytes": 1024, "max_lines": 50}


def read(data: bytes) -> ResponseHead | HeadRefused:
    return parse_head(data, **CAPS)


def head_of(data: bytes) -> ResponseHead:
    result = read(data)
    assert isinstance(result, ResponseHead), result
    return result


def test_a_strict_head_reads_back_exactly_with_no_raw_lines() -> None:
    head = head_of(b"HTTP/1.1 204 No Content\r\nA: 1\r\nb: two words\r\nA: 3\r\n\r\n")
    assert (head.status, head.reason) == (204, "No Content")
    assert head.headers == Headers((("A", "1"), ("b", "two words"), ("A", "3")))
    assert head.raw_lines == ()
    assert head.notes == ()


@pytest.mark.parametrize(
    ("raw", "lines", "note"),
    [
        (b"X : 1", (("X", "1"),), "whitespace before the colon"),
        (b"X\t\t: 1", (("X", "1"),), "whitespace before the colon"),
        (b"Garbage", (), "no colon"),
        (b": 1", (), "no header name"),
        (b"X(Y): 1", (), "is not a header name"),
        (b"X Y: 1", (), "is not a header name"),
        (b"X-\xe9: 1", (), "is not a header name"),
    ],
)
def test_lenient_lines(raw: bytes, lines: tuple[tuple[str, str], ...], note: str) -> None:
    head = head_of(b"HTTP/1.1 200 OK\r\n" + raw + b"\r\nZ: z\r\n\r\n")
    assert head.headers.lines == (*lines, ("Z", "z"))
    assert raw.decode("latin-1") in head.raw_lines  # every line kept as received
    assert any(note in n for n in head.notes)


def test_continuations_join_with_one_space_but_never_start_the_block() -> None:
    head = head_of(b"HTTP/1.1 200 OK\r\n First: dropped\r\nA: x\r\n  y\r\n\tz\r\n\r\n")
    assert head.headers.lines == (("A", "x y z"),)
    # After a line that cannot be continued, a folded line is its own (dropped) line.
    head = head_of(b"HTTP/1.1 200 OK\r\nGarbage\r\n A: 1\r\nB: 2\r\n\r\n")
    assert head.headers.lines == (("B", "2"),)


def test_cr_and_lf_both_end_lines_and_values_are_trimmed() -> None:
    head = head_of(b"HTTP/1.1 200 OK\rA: 1 \rB:\t2\t\nC: a\rb\r\n\r\n")
    assert head.headers.lines == (("A", "1"), ("B", "2"), ("C", "a"))
    assert head.headers.get_all("c") == ("a",)  # "b" had no colon


@pytest.mark.parametrize(
    ("line", "status", "reason"),
    [
        ("HTTP/1.1 200 OK", 200, "OK"),
        ("HTTP/1.1 200", 200, ""),
        ("HTTP/1.1", 200, "OK"),  # no code: Chromium assumes 200
        ("HTTP/1.1\t404\tNope", 200, "OK"),  # only a space separates
        ("HTTP/1.1  404  Not  Found ", 404, "Not  Found"),
        ("HTTP/1.1 20 OK", 20, "OK"),
        ("HTTP/1.1 600 X", 600, "X"),
        ("HTTP/1.1 abc", 200, "OK"),
        ("http/1.0 301 Moved", 301, "Moved"),
    ],
)
def test_status_lines(line: str, status: int, reason: str) -> None:
    assert parse_status_line(line)[:2] == (status, reason)


def test_status_line_may_follow_four_junk_bytes_in_any_case() -> None:
    assert status_line_start(b"HTTP/1.1 200 OK\r\n") == 0
    assert status_line_start(b"xxxxhttp/1.1 200") == 4
    assert status_line_start(b"xxxxxHTTP/1.1 200") == -1
    assert status_line_start(b"HT") is None  # too short to tell
    assert head_of(b"\r\n\r\nHTTP/1.1 200 OK\r\nA: 1\r\n\r\n").status == 200


@pytest.mark.parametrize(
    ("data", "error", "detail"),
    [
        (b"SSH-2.0-OpenSSH_9.0\r\n", ProbeError.BAD_RESPONSE, "invalid HTTP status line"),
        (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", ProbeError.BAD_RESPONSE, "NUL"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            ProbeError.BAD_RESPONSE,
            "content-length",
        ),
        (
            b"HTTP/1.1 200 OK\r\nLocation: /a\r\nLocation: /b\r\n\r\n",
            ProbeError.BAD_RESPONSE,
            "location",
        ),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 1100 + b"\r\n\r\n", ProbeError.HEADERS_TOO_LARGE, ""),
        (b"HTTP/1.1 200 OK\r\n" + b"X: 1\r\n" * 51 + b"\r\n", ProbeError.TOO_MANY_HEADERS, ""),
    ],
)
def test_refusals(data: bytes, error: ProbeError, detail: str) -> None:
    result = read(data)
    assert isinstance(result, HeadRefused)
    assert result.error is error
    assert detail in result.detail


def test_repeated_single_valued_headers_are_fine_when_equal_or_chunked() -> None:
    head_of(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n")
    head_of(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n"
    )


def test_caps_count_name_and_value() -> None:
    assert isinstance(read(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 1023 + b"\r\n\r\n"), ResponseHead)
    assert isinstance(read(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 1024 + b"\r\n\r\n"), HeadRefused)
    assert isinstance(read(b"HTTP/1.1 200 OK\r\n" + b"X: 1\r\n" * 50 + b"\r\n"), ResponseHead)


def test_head_end_is_the_first_blank_line() -> None:
    for data in (
        b"HTTP/1.1 200 OK\r\nA: 1\r\n\r\nbody",
        b"HTTP/1.1 200 OK\nA: 1\n\nbody",
        b"HTTP/1.1 200 OK\r\nA: 1\n\r\nbody",
    ):
        assert head_end(data) == data.index(b"body")
    assert head_end(b"HTTP/1.1 200 OK\r\nA: 1\r\n") == -1
    # Chromium's LocateEndOfHeaders: one CR at most between the two LFs.
    assert head_end(b"HTTP/1.1 200 OK\n\r\r\n") == -1


def test_interim_responses() -> None:
    assert informational(100)
    assert informational(103)
    assert not informational(101)
    assert not informational(200)


# -- fuzzing ----------------------------------------------------------------------------

_names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    min_size=1,
    max_size=20,
)
_values = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=40,
).map(lambda v: v.strip(" \t"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_names, _values), max_size=20), st.integers(100, 999))
def test_what_a_strict_server_writes_reads_back_exactly(
    lines: list[tuple[str, str]], status: int
) -> None:
    raw = f"HTTP/1.1 {status} Reason\r\n" + "".join(f"{n}: {v}\r\n" for n, v in lines) + "\r\n"
    result = parse_head(raw.encode("latin-1"), max_line_bytes=4096, max_lines=100)
    if isinstance(result, HeadRefused):
        # Only the smuggling guard may refuse a well-formed head.
        assert result.error is ProbeError.BAD_RESPONSE
        names = [n.lower() for n, _ in lines]
        assert any(
            len({v for n, v in lines if n.lower() == single}) > 1
            for single in ("content-length", "location", "content-disposition")
            if single in names
        )
        return
    assert result.status == status
    assert result.headers.lines == tuple(lines)
    assert result.raw_lines == ()
    # The one-pass reading of strict heads agrees with the general one.
    data = raw.encode("latin-1")
    slow = lenient_head(data, raw, max_line_bytes=4096, max_lines=100)
    assert isinstance(slow, ResponseHead)
    assert (slow.status, slow.reason, slow.headers, slow.raw_lines) == (
        result.status,
        result.reason,
        result.headers,
        result.raw_lines,
    )


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_give_a_head_or_a_named_refusal(data: bytes) -> None:
    result = parse_head(data, max_line_bytes=256, max_lines=20)
    if isinstance(result, HeadRefused):
        assert isinstance(result.error, ProbeError)
        assert result.detail
        return
    assert isinstance(result, ResponseHead)
    assert result.status >= 0
    for name, value in result.headers:
        assert name
        assert ":" not in name
        assert name == name.strip(" \t")
        assert "\r" not in value
        assert "\n" not in value
        assert value == value.strip(" \t")
    assert len(result.headers) <= 20


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_hostile_bytes_after_a_valid_status_line(junk: bytes, more: bytes) -> None:
    data = b"HTTP/1.1 200 OK\r\n" + junk + b"\r\n" + more
    end = head_end(data)
    result = parse_head(data if end < 0 else data[:end], max_line_bytes=512, max_lines=40)
    assert isinstance(result, ResponseHead | HeadRefused)
    if isinstance(result, ResponseHead):
        assert result.status == 200
        if result.notes:
            assert result.raw_lines[0] == "HTTP/1.1 200 OK"
