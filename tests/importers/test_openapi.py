"""OpenAPI 3.x documents: servers × paths × methods, parameters filled from examples."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scanner.errors import InputError
from scanner.importers import parse_import
from scanner.importers.openapi import parse_openapi

DOC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Shop", "version": "1"},
    "servers": [
        {
            "url": "https://{region}.shop.example/{base}",
            "variables": {
                "region": {"default": "eu", "enum": ["eu", "us"]},
                "base": {"default": "v2"},
            },
        },
        {"url": "https://shop.example:443/api/"},
    ],
    "components": {
        "parameters": {
            "OrderId": {
                "name": "orderId",
                "in": "path",
                "required": True,
                "schema": {"$ref": "#/components/schemas/Id"},
            },
        },
        "schemas": {"Id": {"type": "integer", "format": "int64"}},
        "examples": {"Sku": {"value": "SKU 42/x"}},
    },
    "paths": {
        "/orders/{orderId}": {
            "parameters": [{"$ref": "#/components/parameters/OrderId"}],
            "get": {"operationId": "getOrder", "tags": ["Orders", "Public API"]},
            "delete": {"summary": "Cancel an order"},
            "trace": {"operationId": "trace"},
        },
        "/items/{sku}/{flag}/{uuid}/{kind}/{undeclared}": {
            "get": {
                "parameters": [
                    {
                        "name": "sku",
                        "in": "path",
                        "examples": {"a": {"$ref": "#/components/examples/Sku"}},
                    },
                    {"name": "flag", "in": "path", "schema": {"type": "boolean"}},
                    {"name": "uuid", "in": "path", "schema": {"type": "string", "format": "uuid"}},
                    {
                        "name": "kind",
                        "in": "path",
                        "schema": {"type": ["null", "string"], "enum": ["new", "old"]},
                    },
                    {"name": "page", "in": "query", "schema": {"type": "integer"}},
                ],
            },
        },
        "/health": {
            "servers": [{"url": "https://status.shop.example"}],
            "get": {
                "operationId": "health",
                "servers": [{"url": "https://ops.shop.example/internal"}],
            },
            "head": {},
        },
    },
}


def urls(doc: dict[str, Any], base_url: str | None = None) -> list[tuple[str, str]]:
    rows, errors = parse_openapi(doc, base_url=base_url)
    assert errors == []
    return [(r.endpoint.method, r.endpoint.url) for r in rows]


def test_servers_paths_and_methods() -> None:
    assert urls(DOC) == [
        ("GET", "https://eu.shop.example/v2/orders/1"),
        ("GET", "https://shop.example/api/orders/1"),
        ("DELETE", "https://eu.shop.example/v2/orders/1"),
        ("DELETE", "https://shop.example/api/orders/1"),
        (
            "GET",
            "https://eu.shop.example/v2/items/SKU%2042%2Fx/true/00000000-0000-4000-8000-000000000000/new/example",
        ),
        (
            "GET",
            "https://shop.example/api/items/SKU%2042%2Fx/true/00000000-0000-4000-8000-000000000000/new/example",
        ),
        ("GET", "https://ops.shop.example/internal/health"),
        ("HEAD", "https://status.shop.example/health"),
    ]


def test_names_and_tags() -> None:
    rows, _ = parse_openapi(DOC)
    get_order, _, cancel, *_ = rows
    assert get_order.endpoint.name == "getOrder"
    assert get_order.endpoint.tags == ("orders", "public-api")
    assert cancel.endpoint.name == "Cancel an order"
    assert "tags" not in cancel.given
    assert "owner" not in cancel.given
    head = rows[-1]
    assert "name" not in head.given  # an operation without a name keeps the stored one


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ({"example": 7, "schema": {"type": "integer", "example": 8}}, "7"),
        ({"schema": {"type": "integer", "example": 8, "default": 9}}, "8"),
        ({"schema": {"type": "integer", "default": 9}}, "9"),
        ({"schema": {"examples": ["first", "second"]}}, "first"),
        ({"schema": {"type": "number"}}, "1"),
        ({"schema": {"type": "string"}}, "example"),
        ({}, "example"),
    ],
)
def test_path_parameter_values(param: dict[str, Any], expected: str) -> None:
    doc = {
        "openapi": "3.1.0",
        "servers": [{"url": "https://a.example"}],
        "paths": {"/x/{p}": {"get": {"parameters": [{"name": "p", "in": "path", **param}]}}},
    }
    assert urls(doc) == [("GET", f"https://a.example/x/{expected}")]


def test_relative_servers_need_a_base_url() -> None:
    doc = {
        "openapi": "3.0.0",
        "servers": [{"url": "/v1"}],
        "paths": {"/a": {"get": {}}, "/b": {"post": {}}},
    }
    rows, errors = parse_openapi(doc)
    assert rows == []
    assert [(e.row, e.field) for e in errors] == [(1, "servers"), (2, "servers")]
    assert "GET /a" in errors[0].message
    assert "--base-url" in errors[0].message
    assert urls(doc, base_url="https://api.example/ignored") == [
        ("GET", "https://api.example/v1/a"),
        ("POST", "https://api.example/v1/b"),
    ]
    no_servers = {"openapi": "3.0.0", "paths": {"/a": {"get": {}}}}
    assert urls(no_servers, base_url="http://127.0.0.1:8000") == [
        ("GET", "http://127.0.0.1:8000/a")
    ]


def test_operation_errors_do_not_stop_the_others() -> None:
    doc = {
        "openapi": "3.0.0",
        "servers": [{"url": "https://{env}.example"}],
        "paths": {
            "/a": {"get": {"servers": [{"url": "https://ok.example"}]}, "put": {}},
            "/b": {
                "get": {
                    "parameters": [{"$ref": "#/components/parameters/Missing"}],
                    "servers": [{"url": "https://ok.example"}],
                }
            },
            "/c": {
                "get": {
                    "parameters": [{"$ref": "https://evil.example/p.json"}],
                    "servers": [{"url": "https://ok.example"}],
                }
            },
        },
    }
    rows, errors = parse_openapi(doc)
    assert [r.endpoint.url for r in rows] == ["https://ok.example/a"]
    assert [e.row for e in errors] == [2, 3, 4]
    assert "{env}" in errors[0].message
    assert "no default" in errors[0].message
    assert "points to nothing" in errors[1].message
    assert "only local $refs" in errors[2].message


def test_ref_cycles_are_errors() -> None:
    doc = {
        "openapi": "3.0.0",
        "servers": [{"url": "https://a.example"}],
        "components": {
            "parameters": {
                "A": {"$ref": "#/components/parameters/B"},
                "B": {"$ref": "#/components/parameters/A"},
            }
        },
        "paths": {"/x": {"get": {"parameters": [{"$ref": "#/components/parameters/A"}]}}},
    }
    rows, errors = parse_openapi(doc)
    assert rows == []
    assert "cycle" in errors[0].message


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"swagger": "2.0", "paths": {}}, "Swagger 2.0"),
        ({"openapi": "2.0"}, "OpenAPI 3.x"),
        ([], "an OpenAPI document is an object"),
        ({"openapi": "3.0.0", "paths": []}, "'paths' must be an object"),
    ],
)
def test_not_openapi_3(doc: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_openapi(doc)


def test_bad_base_url() -> None:
    with pytest.raises(InputError, match="--base-url"):
        parse_openapi({"openapi": "3.0.0", "paths": {}}, base_url="api.example.com")


def test_json_and_yaml_documents_through_parse_import() -> None:
    as_json = json.dumps(DOC).encode()
    from_json = parse_import(as_json, "openapi", max_bytes=1_000_000, max_rows=100_000)
    # A .json inventory that is really an OpenAPI document is read as one.
    sniffed = parse_import(as_json, "json", max_bytes=1_000_000, max_rows=100_000)
    yaml_doc = (
        b"openapi: 3.0.0\nservers: [{url: 'https://a.example'}]\npaths:\n  /x:\n    get: {}\n"
    )
    from_yaml = parse_import(yaml_doc, "openapi", max_bytes=1_000_000, max_rows=100_000)
    assert len(from_json.rows) == len(sniffed.rows) == 8
    assert [r.endpoint.url for r in from_yaml.rows] == ["https://a.example/x"]
