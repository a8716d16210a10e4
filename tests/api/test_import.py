"""Imports over HTTP: CSV, JSON, YAML and OpenAPI bodies, dry runs, per-row errors, limits."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.api.client import Api

IMPORT = "/api/v1/endpoints/import"


async def send(api: Api, body: str | bytes, ctype: str, token: str = "write", **params: str) -> Any:
    return await api.call(
        "POST", IMPORT, data=body, headers={"Content-Type": ctype}, params=params, token=token
    )


CSV = """method,url,name,owner,tags,allowed_origins
GET,https://api.acme.test/v1/users,Users,team-a,public;v1,https://app.acme.test
POST,https://api.acme.test/v1/orders,Orders,team-b,pci,
GET,not a url,Broken,team-a,,
"""


async def test_csv_import_dry_run_then_real_then_idempotent(api: Api) -> None:
    dry = await send(api, CSV, "text/csv", dry_run="true")
    assert dry.status == 200, dry.text
    assert dry.body["dry_run"] is True
    assert dry.body["summary"] == {"created": 2, "changed": 0, "unchanged": 0, "errors": 1}
    assert dry.body["errors"][0]["row"] == 4  # the CSV line, header = 1
    assert dry.body["errors"][0]["field"] == "url"
    assert (await api.get("/api/v1/endpoints")).body["items"] == []  # nothing written

    real = await send(api, CSV, "text/csv")
    assert real.status == 200
    assert real.body["dry_run"] is False
    assert real.body["created"] == [
        {"method": "GET", "url": "https://api.acme.test/v1/users"},
        {"method": "POST", "url": "https://api.acme.test/v1/orders"},
    ]
    listed = (await api.get("/api/v1/endpoints")).body["items"]
    assert [(e["name"], e["tags"]) for e in listed] == [
        ("Users", ["public", "v1"]),
        ("Orders", ["pci"]),
    ]
    users = listed[0]["id"]
    effective = (await api.get(f"/api/v1/endpoints/{users}/policy")).body
    assert effective["policy"]["allowed_origins"] == ["https://app.acme.test"]
    assert effective["sources"]["allowed_origins"] == "endpoint"

    again = await send(api, CSV, "text/csv")
    assert again.body["summary"] == {"created": 0, "changed": 0, "unchanged": 2, "errors": 1}

    changed = await send(api, CSV.replace("Users,team-a", "Users,team-z"), "text/csv")
    assert changed.body["changed"] == [
        {"method": "GET", "url": "https://api.acme.test/v1/users", "fields": ["owner"]}
    ]

    audit = [
        e
        for e in (await api.get("/api/v1/audit")).body["items"]
        if e["action"] == "endpoint.import"
    ]
    assert len(audit) == 3  # dry runs are not writes
    assert audit[-1]["detail"]["created"] == 2


async def test_json_and_yaml_imports(api: Api) -> None:
    rows = [
        {"url": "https://a.acme.test/", "tags": ["x"]},
        {"url": "https://b.acme.test/", "method": "PUT", "enabled": False},
        {"url": "https://c.acme.test/", "colour": "red"},
    ]
    as_json = await send(api, json.dumps(rows), "application/json")
    assert as_json.status == 200, as_json.text
    assert as_json.body["summary"]["created"] == 2
    assert as_json.body["errors"][0]["row"] == 3

    as_yaml = await send(api, yaml.safe_dump({"endpoints": rows[:2]}), "application/yaml")
    assert as_yaml.status == 200
    assert as_yaml.body["summary"] == {"created": 0, "changed": 0, "unchanged": 2, "errors": 0}


def openapi_document(paths: int) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Big", "version": "1"},
        "servers": [{"url": "https://api.acme.test/v2"}],
        "paths": {
            f"/things{i}/{{id}}": {
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
                ],
                "get": {"operationId": f"getThing{i}", "tags": ["Things"]},
                **({"delete": {"operationId": f"deleteThing{i}"}} if i % 2 else {}),
            }
            for i in range(paths)
        },
    }


async def test_openapi_import_of_500_endpoints(api: Api) -> None:
    document = openapi_document(334)  # 334 GETs + 167 DELETEs = 501 operations
    body = json.dumps(document)
    dry = await send(api, body, "application/json", format="openapi", dry_run="true")
    assert dry.status == 200, dry.text
    assert dry.body["summary"] == {"created": 501, "changed": 0, "unchanged": 0, "errors": 0}
    assert (await api.get("/api/v1/endpoints")).body["items"] == []

    real = await send(api, yaml.safe_dump(document), "application/yaml", format="openapi")
    assert real.body["summary"]["created"] == 501
    every = await api.walk("/api/v1/endpoints", params={"limit": "100"})
    assert len(every) == 501
    first = every[0]
    assert first["url"] == "https://api.acme.test/v2/things0/1"
    assert first["name"] == "getThing0"
    assert first["tags"] == ["things"]

    again = await send(api, body, "application/json", format="openapi")
    assert again.body["summary"]["unchanged"] == 501


async def test_openapi_relative_servers_need_a_base_url(api: Api) -> None:
    document = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": "/v1"}],
        "paths": {"/ping": {"get": {}}},
    }
    without = await send(api, json.dumps(document), "application/json", format="openapi")
    assert without.status == 200
    assert without.body["summary"]["errors"] == 1
    with_base = await send(
        api,
        json.dumps(document),
        "application/json",
        format="openapi",
        base_url="https://gw.acme.test",
    )
    assert with_base.body["created"] == [{"method": "GET", "url": "https://gw.acme.test/v1/ping"}]
    bad_base = await send(api, "{}", "application/json", format="openapi", base_url="nope")
    assert bad_base.status == 422
    assert bad_base.fields() == ["query.base_url"]


async def test_import_refusals(serve_api: Any) -> None:
    api = await serve_api(max_import_bytes=1000)
    too_big = await send(api, "url\n" + "https://a.acme.test/\n" * 100, "text/csv")
    assert too_big.status == 413
    assert too_big.problem["code"] == "body_too_large"

    wrong_type = await send(api, "url\nhttps://a.acme.test/\n", "text/plain")
    assert wrong_type.status == 415

    not_utf8 = await send(api, b"url\nhttps://a.acme.test/\xff\n", "text/csv")
    assert not_utf8.status == 400
    assert "UTF-8" in not_utf8.problem["detail"]

    not_openapi = await send(api, '{"swagger": "2.0"}', "application/json", format="openapi")
    assert not_openapi.status == 400
    assert "Swagger 2.0" in not_openapi.problem["detail"]

    unknown_column = await send(api, "url,colour\nhttps://a.acme.test/,red\n", "text/csv")
    assert unknown_column.status == 400
    assert "colour" in unknown_column.problem["detail"]

    duplicate_keys = await send(api, '[{"url": "https://a.test/", "url": "x"}]', "application/json")
    assert duplicate_keys.status == 400

    yaml_alias = await send(api, "- &a {url: 'https://a.test/'}\n- *a\n", "application/yaml")
    assert yaml_alias.status == 400

    yaml_merge = await send(api, "- url: https://a.test/\n  <<: {name: n}\n", "application/yaml")
    assert yaml_merge.status == 400
    assert "merge keys (<<) are not allowed" in yaml_merge.problem["detail"]

    denied = await send(api, "url\nhttps://a.acme.test/\n", "text/csv", token="read")
    assert denied.status == 403
    assert (await api.get("/api/v1/endpoints")).body["items"] == []


async def test_an_import_over_the_row_cap_is_refused_as_a_whole(serve_api: Any) -> None:
    api = await serve_api(max_import_rows=2)
    three = "url\nhttps://a.acme.test/\nhttps://b.acme.test/\nhttps://c.acme.test/\n"
    refused = await send(api, three, "text/csv")
    assert refused.status == 400
    assert refused.problem["code"] == "invalid_input"
    assert "more than 2 rows" in refused.problem["detail"]
    assert "CORS_SCANNER_MAX_IMPORT_ROWS" in refused.problem["detail"]
    assert (await api.get("/api/v1/endpoints")).body["items"] == []  # nothing half-imported
    two = await send(api, three.rsplit("https://c", 1)[0], "text/csv")
    assert two.status == 200
    assert two.body["summary"]["created"] == 2
