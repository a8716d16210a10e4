"""The one presentation module: values as people read them, aligned tables, colour rules."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone

import pytest

from scanner.cli.output import (
    Column,
    Output,
    colour_enabled,
    human,
    human_duration,
    render_record,
    render_table,
)
from scanner.settings import Settings


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "—"),
        (True, "yes"),
        (False, "no"),
        (0, "0"),
        ("", "—"),
        ([], "—"),
        ({}, "—"),
        (["api", "pay"], "api,pay"),
        ({"tag": "api", "owner": "team"}, "tag=api owner=team"),
        ({"reason": "internal tool"}, 'reason="internal tool"'),
        ({"tags": ["a", "b"], "at": None}, "tags=a,b at=—"),
        ("2026-12-02T17:15:03Z", "2026-12-02 17:15:03 UTC"),
        ("2026-12-02T18:15:03.123456+01:00", "2026-12-02 17:15:03 UTC"),
        (
            ["2026-12-02T17:15:03Z", "2026-12-03T17:15:03Z"],
            "2026-12-02 17:15:03 UTC, 2026-12-03 17:15:03 UTC",
        ),
        (
            datetime(2026, 12, 2, 18, 0, tzinfo=timezone(timedelta(hours=1))),
            "2026-12-02 17:00:00 UTC",
        ),
        ("evil\x1b[2Jtext\r\n", "evil\\x1b[2Jtext\\x0d\\x0a"),
    ],
)
def test_values_read_as_a_person_writes_them(value: object, shown: str) -> None:
    assert human(value) == shown


def test_durations() -> None:
    assert [human_duration(s) for s in (None, 4.4, 65, 120, 3600, 7805)] == [
        "—",
        "4 s",
        "1 min 5 s",
        "2 min",
        "1 h",
        "2 h 10 min",
    ]


COLUMNS = (
    Column("ID", "id", align="right"),
    Column("SEVERITY", "severity", severity=True),
    Column("NAME", "name"),
    Column("ENABLED", "enabled"),
    Column("SEEN", "seen"),
)
ROWS = [
    {"id": 7, "severity": "critical", "name": "profile API", "enabled": True, "seen": None},
    {"id": 1234, "severity": "low", "name": "x", "enabled": False, "seen": "2026-12-02T17:15:03Z"},
]


def test_a_table_has_a_header_row_aligned_columns_and_no_reprs() -> None:
    lines = render_table(ROWS, COLUMNS).splitlines()
    assert lines == [
        "  ID  SEVERITY  NAME         ENABLED  SEEN",
        "   7  critical  profile API  yes      —",
        "1234  low       x            no       2026-12-02 17:15:03 UTC",
    ]


def test_colour_only_paints_the_severity_cell_and_keeps_alignment() -> None:
    plain = render_table(ROWS, COLUMNS).splitlines()
    painted = render_table(ROWS, COLUMNS, colour=True).splitlines()
    assert painted[0] == plain[0]
    assert "\x1b[1;31mcritical\x1b[0m" in painted[1]
    assert "\x1b[36mlow     \x1b[0m" in painted[2]
    strip = [
        line.replace("\x1b[1;31m", "").replace("\x1b[36m", "").replace("\x1b[0m", "")
        for line in painted
    ]
    assert strip == plain


def test_a_record_aligns_its_keys() -> None:
    text = render_record([("id", 3), ("last seen at", "2026-12-02T17:15:03Z"), ("triage", None)])
    assert text.splitlines() == [
        "id            3",
        "last seen at  2026-12-02 17:15:03 UTC",
        "triage        —",
    ]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, True),
        ({"NO_COLOR": "1"}, False),
        ({"NO_COLOR": ""}, True),  # no-color.org: only a non-empty value counts
        ({"TERM": "dumb"}, False),
        ({"TERM": "xterm-256color"}, True),
        ({"CORS_SCANNER_COLOR": "never"}, False),
        ({"CORS_SCANNER_COLOR": "always", "NO_COLOR": "1"}, True),
    ],
)
def test_colour_on_a_real_terminal_follows_no_color_and_term(
    environ: dict[str, str], expected: bool
) -> None:
    leader, follower = os.openpty()
    try:
        with open(follower, "w", encoding="utf-8", closefd=False) as terminal:
            settings = Settings.from_env(environ)
            assert colour_enabled(settings, terminal) is expected
            out = Output(settings, terminal)
            out.table(ROWS, COLUMNS, empty="none")
            written = os.read(leader, 65536).decode()
        assert ("\x1b[1;31m" in written) is expected
    finally:
        os.close(leader)
        os.close(follower)


def test_never_colour_in_a_file_or_a_pipe(tmp_path: object) -> None:
    read, write = os.pipe()
    with open(write, "w", encoding="utf-8") as pipe:
        settings = Settings.from_env({})
        assert not colour_enabled(settings, pipe)
        Output(settings, pipe).table(ROWS, COLUMNS, empty="none")
    with open(read, encoding="utf-8") as received:
        assert "\x1b[" not in received.read()


def test_a_stream_that_cannot_encode_the_dash_gets_a_hyphen(tmp_path: object) -> None:
    import io

    buffer = io.BytesIO()
    stream = io.TextIOWrapper(buffer, encoding="ascii")
    Output(Settings.from_env({}), stream).record([("seen", None)])
    stream.flush()
    assert buffer.getvalue() == b"seen  -\n"


def test_human_time_is_utc_whatever_the_offset() -> None:
    assert human(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01 00:00:00 UTC"
