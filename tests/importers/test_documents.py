"""Hostile import files are refused as a whole, with a message that says why."""

from __future__ import annotations

import pytest

from scanner.errors import InputError
from scanner.importers import ImportFormat, detect_format, parse_import

LIMIT = 10_000


def parse(data: bytes | str, fmt: str):  # type: ignore[no-untyped-def]
    raw = data.encode() if isinstance(data, str) else data
    return parse_import(raw, fmt, max_bytes=LIMIT)


def test_files_over_the_limit_are_refused_before_parsing() -> None:
    with pytest.raises(InputError, match=r"10,001 bytes, over the 10,000-byte import limit"):
        parse(b"x" * (LIMIT + 1), "csv")


def test_not_utf8() -> None:
    with pytest.raises(InputError, match=r"not UTF-8 .*offset 4"):
        parse(b"url\n\xff\xfe", "csv")


def test_a_bom_is_fine() -> None:
    assert len(parse("\ufeffurl\nhttps://a.example/\n", "csv").rows) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"url": "https://a.example/", "url": "https://b.example/"}]', "duplicate key 'url'"),
        ('[{"url": NaN}]', "NaN is not valid JSON"),
        ('[{"url": "https://a.example/"', "invalid JSON at line 1"),
        ("[" * 5000 + "]" * 5000, "nested"),
        ('{"items": []}', "unexpected key"),
        ('"just a string"', "a list of endpoints"),
    ],
)
def test_bad_json(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse(text, "json")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- url: https://a.example/\n  url: https://b.example/\n", "duplicate key 'url'"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
            "endpoints: [*b, *b, *b, *b, *b, *b, *b, *b]\n",
            "aliases",
        ),
        ("- url: [unclosed\n", "invalid YAML at line"),
        ("- !!python/object/apply:os.system ['echo pwned']\n", "invalid YAML"),
        ("endpoints: {a: 1}\n", "a list of endpoints"),
    ],
)
def test_bad_yaml(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse(text, "yaml")


def test_unknown_format() -> None:
    with pytest.raises(InputError, match="unknown import format 'xml'"):
        parse("<x/>", "xml")


@pytest.mark.parametrize(
    ("filename", "content_type", "expected"),
    [
        ("inv.csv", None, ImportFormat.CSV),
        ("INV.YML", None, ImportFormat.YAML),
        ("x.json", None, ImportFormat.JSON),
        (None, "application/json; charset=utf-8", ImportFormat.JSON),
        (None, "application/vnd.oai.openapi", ImportFormat.OPENAPI),
        ("a.txt", "text/csv", ImportFormat.CSV),
    ],
)
def test_detect_format(
    filename: str | None, content_type: str | None, expected: ImportFormat
) -> None:
    assert detect_format(filename=filename, content_type=content_type) is expected


def test_detect_format_fails_clearly() -> None:
    with pytest.raises(InputError, match="cannot tell the file's format"):
        detect_format(filename="inventory.txt")
