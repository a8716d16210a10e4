"""Hostile import files are refused as a whole, with a message that says why."""

from __future__ import annotations

import json

import pytest

from scanner.errors import InputError
from scanner.importers import ImportFormat, detect_format, parse_import

LIMIT = 10_000


def parse(data: bytes | str, fmt: str):  # type: ignore[no-untyped-def]
    raw = data.encode() if isinstance(data, str) else data
    return parse_import(raw, fmt, max_bytes=LIMIT, max_rows=100_000)


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
        ('[{"url": "https://a.example/", "max_age": ' + "9" * 5000 + "}]", "5000-digit integer"),
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


def _merge_bomb(levels: int = 8, refs: int = 9) -> str:
    """A merge-key bomb: each level merges the one below ``refs`` times, and the document
    itself merges the top level, so constructing it would flatten ``refs ** levels`` pairs
    (9 ** 8: 43 million; PyYAML 6.0.2 took 8.6 s and 715 MB for this file on old main)."""
    lines = ["# the merge-key bomb of issue 13", "l0: &l0 {k: v}"]
    for n in range(1, levels):
        lines.append(f"l{n}: &l{n} {{<<: [{', '.join([f'*l{n - 1}'] * refs)}]}}")
    lines.append(f"<<: [{', '.join([f'*l{levels - 1}'] * refs)}]")
    return "\n".join(lines) + "\n"


def test_the_518_byte_merge_key_bomb_is_refused_while_composing() -> None:
    import tracemalloc

    bomb = _merge_bomb()
    assert len(bomb.encode()) == 518
    tracemalloc.start()
    try:
        for fmt in ("yaml", "openapi"):
            with pytest.raises(
                InputError, match=r"YAML merge keys \(<<\) are not allowed .*line 3"
            ):
                parse(bomb, fmt)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # refused from the node graph: nothing was flattened


@pytest.mark.parametrize("libyaml", [True, False], ids=["libyaml", "pure-python"])
def test_aliases_and_merge_keys_are_refused_by_either_yaml_parser(
    libyaml: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    from scanner.importers import documents

    if libyaml and not yaml.__with_libyaml__:
        pytest.skip("PyYAML was built without libyaml")
    monkeypatch.setattr(yaml, "__with_libyaml__", libyaml)
    loader = documents._strict_loader_class()
    monkeypatch.setattr(documents, "_StrictLoader", loader)
    # A merge key needs no alias to be refused: an inventory has no use for either.
    with pytest.raises(InputError, match=r"merge keys \(<<\) .*line 2"):
        documents.load_yaml("- url: https://a.example/\n  <<: {name: x}\n")
    with pytest.raises(InputError, match=r"aliases \(\*first\) .*line 2"):
        documents.load_yaml("- &first {url: 'https://a.example/'}\n- *first\n")
    with pytest.raises(InputError, match=r"merge keys"):
        documents.load_yaml(_merge_bomb())
    # Anchors alone are harmless, and plain documents read as before.
    assert documents.load_yaml("- &a {url: 'https://a.example/', tags: [x, y]}\n") == [
        {"url": "https://a.example/", "tags": ["x", "y"]}
    ]
    with pytest.raises(InputError, match="duplicate key 'url'"):
        documents.load_yaml("- url: https://a.example/\n  url: https://b.example/\n")


def test_pyyaml_is_pinned_to_a_release_that_deduplicates_merge_keys() -> None:
    import re
    import tomllib
    from importlib.metadata import version
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    [spec] = [d for d in dependencies if re.match(r"pyyaml\b", d, re.IGNORECASE)]
    assert re.fullmatch(r"pyyaml>=6\.0\.4(,<7)?", spec.replace(" ", "").lower()), spec
    installed = tuple(int(p) for p in version("PyYAML").split(".")[:3])
    assert installed >= (6, 0, 4)


ROW_CAP = 3


def _rows(fmt: str, count: int) -> str:
    urls = [f"https://h{n}.example/" for n in range(count)]
    if fmt == "csv":
        return "url\n" + "".join(f"{u}\n" for u in urls)
    if fmt == "json":
        return json.dumps([{"url": u} for u in urls])
    if fmt == "yaml":
        return "".join(f"- url: {u}\n" for u in urls)
    # OpenAPI: one server, one operation per endpoint.
    paths = {f"/p{n}": {"get": {"operationId": f"op{n}"}} for n in range(count)}
    return json.dumps(
        {"openapi": "3.0.3", "info": {}, "servers": [{"url": "https://h.example"}], "paths": paths}
    )


@pytest.mark.parametrize("fmt", ["csv", "json", "yaml", "openapi"])
def test_every_format_has_a_row_cap_and_a_byte_cap(fmt: str) -> None:
    def capped(text: str, max_bytes: int = LIMIT):  # type: ignore[no-untyped-def]
        return parse_import(text.encode(), fmt, max_bytes=max_bytes, max_rows=ROW_CAP)

    assert len(capped(_rows(fmt, ROW_CAP)).rows) == ROW_CAP
    with pytest.raises(
        InputError, match=r"more than 3 (rows|endpoints).*CORS_SCANNER_MAX_IMPORT_ROWS"
    ):
        capped(_rows(fmt, ROW_CAP + 1))
    text = _rows(fmt, ROW_CAP)
    with pytest.raises(InputError, match=r"over the .*-byte import limit \(CORS_SCANNER_MAX"):
        capped(text, max_bytes=len(text.encode()) - 1)


def test_openapi_servers_times_operations_count_against_the_row_cap() -> None:
    servers = [{"url": f"https://s{n}.example"} for n in range(2)]
    doc = {"openapi": "3.1.0", "info": {}, "servers": servers, "paths": {"/a": {"get": {}}}}
    two = parse_import(json.dumps(doc).encode(), "openapi", max_bytes=LIMIT, max_rows=2)
    assert len(two.rows) == 2
    doc["paths"]["/b"] = {"get": {}}  # type: ignore[index]
    with pytest.raises(InputError, match=r"more than 2 endpoints \(servers x operations\)"):
        parse_import(json.dumps(doc).encode(), "openapi", max_bytes=LIMIT, max_rows=2)
