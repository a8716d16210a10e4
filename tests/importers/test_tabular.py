"""CSV, JSON and YAML inventories: columns, typing, and per-row errors that name row and field."""

from __future__ import annotations

import pytest

from scanner.errors import InputError
from scanner.importers import ParsedImport, parse_import

CSV = """\
method,url,name,owner,tags,enabled,notes,allowed_origins,allow_credentials,allowed_methods,allowed_headers,max_age,public
GET,https://api.acme.com/v1/users,Users,team-id,identity;pii|beta,true,,https://app.acme.com;https://*.acme.com,yes,GET PUT,X-Token,600,
post,https://API.acme.com/v1/orders,,team-shop,,no,"multi
line",,,,,,
"""


def parse(text: str, fmt: str) -> ParsedImport:
    return parse_import(text.encode(), fmt, max_bytes=1_000_000, max_rows=100_000)


def test_csv_columns_and_types() -> None:
    result = parse(CSV, "csv")
    assert result.errors == ()
    users, orders = result.rows
    assert users.row == 2
    assert users.endpoint.tags == ("beta", "identity", "pii")
    assert users.endpoint.owner == "team-id"
    assert users.policy is not None
    assert users.policy.allowed_origins == ("https://app.acme.com", "https://*.acme.com")
    assert users.policy.allow_credentials is True
    assert users.policy.allowed_methods == ("GET", "PUT")
    assert users.policy.allowed_headers == ("x-token",)
    assert (users.policy.max_age, users.policy.public) == (600, None)
    assert orders.row == 3
    assert orders.endpoint.method == "POST"
    assert orders.endpoint.url == "https://api.acme.com/v1/orders"
    assert orders.endpoint.enabled is False
    assert orders.endpoint.notes == "multi\nline"
    assert orders.policy is None  # every policy cell empty: leave the override alone


def test_csv_only_gives_its_columns() -> None:
    (row,) = parse("URL, Tags\nhttps://a.example/,x\n", "csv").rows
    assert row.given == frozenset({"method", "url", "tags"})
    assert row.endpoint.method == "GET"


def test_csv_row_errors_name_the_line_and_field_and_keep_good_rows() -> None:
    text = (
        "method,url,tags,enabled,max_age,allowed_origins\n"
        "GET,https://ok.example/,,,,\n"
        "GET,https://user:pw@bad.example/,bad tag,maybe,,\n"
        "GET,https://ok2.example/,,,ten,\n"
        "GET,https://ok3.example/,,,,*\n"
        "GET,https://short.example/\n"
        "\n"
        "GET,https://ok4.example/,,,,\n"
    )
    result = parse(text, "csv")
    assert [r.endpoint.url for r in result.rows] == ["https://ok.example/", "https://ok4.example/"]
    assert sorted((e.row, e.field or "") for e in result.errors) == [
        (3, "enabled"),
        (3, "tags"),
        (3, "url"),
        (4, "max_age"),
        (5, "allowed_origins"),
        (6, ""),
    ]
    assert "maybe" in result.errors[0].message
    assert "header has 6 columns" in result.errors[-1].message


def test_csv_cell_type_errors_and_field_errors_are_both_listed() -> None:
    result = parse("url,enabled\nnot-a-url,perhaps\nhttps://a.example/,true\n", "csv")
    assert sorted((e.row, e.field) for e in result.errors) == [(2, "enabled"), (2, "url")]
    assert [r.row for r in result.rows] == [3]


def test_csv_unknown_or_duplicate_columns_refuse_the_file() -> None:
    with pytest.raises(InputError, match=r"unknown CSV column.*'allowed_origin'"):
        parse("url,allowed_origin\nhttps://a.example/,https://x.example\n", "csv")
    with pytest.raises(InputError, match="url appear more than once"):
        parse("url,url\na,b\n", "csv")
    with pytest.raises(InputError, match="no 'url' column"):
        parse("method,name\nGET,x\n", "csv")
    with pytest.raises(InputError, match="empty"):
        parse("", "csv")


def test_csv_formula_defusing_is_undone() -> None:
    (row,) = parse("url,name\nhttps://a.example/,'=SUM(A1)\n", "csv").rows
    assert row.endpoint.name == "=SUM(A1)"


def test_json_list_or_endpoints_object() -> None:
    doc = '[{"url": "https://a.example/", "tags": ["x"], "allowed_origins": "https://a.example;https://b.example"}]'
    (row,) = parse(doc, "json").rows
    assert row.policy is not None
    assert row.policy.allowed_origins == (
        "https://a.example",
        "https://b.example",
    )
    wrapped = parse('{"endpoints": [{"url": "https://a.example/", "method": "put"}]}', "json")
    assert wrapped.rows[0].endpoint.method == "PUT"


def test_json_row_errors_list_every_field_of_the_row() -> None:
    doc = (
        '[{"url": "https://a.example/"},'
        ' {"url": "gopher://x", "method": "G T", "enabled": "true", "colour": 1, "public": true, "allow_credentials": true},'
        ' "not an object",'
        ' {"url": "https://c.example/", "max_age": -5}]'
    )
    result = parse(doc, "json")
    assert [r.row for r in result.rows] == [1]
    assert sorted((e.row, e.field or "") for e in result.errors) == [
        (2, "colour"),
        (2, "enabled"),
        (2, "method"),
        (2, "public"),
        (2, "url"),
        (3, ""),
        (4, "max_age"),
    ]


def test_yaml_inventory() -> None:
    doc = """
endpoints:
  - url: https://a.example/
    method: delete
    tags: [a, b]
    enabled: no
    public: yes
  - url: https://b.example/
    owner: team-b
"""
    first, second = parse(doc, "yaml").rows
    assert (first.endpoint.method, first.endpoint.enabled) == ("DELETE", False)
    assert first.policy is not None
    assert first.policy.public is True
    assert second.given == frozenset({"method", "url", "owner"})


def test_yaml_non_text_values_are_row_errors() -> None:
    result = parse("- url: https://a.example/\n  notes: 2024-01-01\n", "yaml")
    assert [(e.row, e.field) for e in result.errors] == [(1, "notes")]
