"""Import files into a real database: every format, idempotent, dry-run, export round trip."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from scanner.db.engine import Database
from scanner.db.inventory import EndpointFilter, ImportReport, list_endpoints, upsert_endpoints
from scanner.db.policies import effective_policy, endpoint_overrides
from scanner.importers import parse_import
from scanner.importers.export import export_endpoints

CSV = b"""method,url,name,owner,tags,allowed_origins,allow_credentials
GET,https://api.acme.com/users,Users,team-id,identity;pii,https://app.acme.com,true
POST,https://api.acme.com/orders,Orders,team-shop,shop,,
GET,https://api.acme.com/formula,=cmd|' /C calc'!A0,team-x,,,
"""
JSON_DOC = json.dumps(
    {
        "endpoints": [
            {
                "url": "https://api.acme.com/users",
                "name": "Users",
                "tags": ["identity", "pii"],
                "allowed_origins": ["https://app.acme.com"],
                "allow_credentials": True,
            },
            {"url": "https://api.acme.com/orders", "method": "POST", "enabled": False},
        ]
    }
).encode()
YAML_DOC = b"""
- url: https://api.acme.com/users
  owner: team-id
  public: true
- {url: https://api.acme.com/status, notes: "ok"}
"""


async def run_import(
    db: Database, data: bytes, fmt: str, *, dry_run: bool = False, base_url: str | None = None
) -> ImportReport:
    parsed = parse_import(data, fmt, max_bytes=50_000_000, base_url=base_url)
    assert parsed.errors == ()
    async with db.session() as s, s.begin():
        return await upsert_endpoints(s, parsed.rows, dry_run=dry_run)


async def everything(db: Database) -> list[Any]:
    out: list[Any] = []
    cursor = None
    async with db.session() as s:
        while True:
            page = await list_endpoints(s, EndpointFilter(), limit=200, cursor=cursor)
            out.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                return out


@pytest.mark.parametrize(
    ("data", "fmt", "count"), [(CSV, "csv", 3), (JSON_DOC, "json", 2), (YAML_DOC, "yaml", 2)]
)
async def test_each_format_imports_then_reimports_unchanged(
    database: Database, data: bytes, fmt: str, count: int
) -> None:
    first = await run_import(database, data, fmt)
    assert len(first.created) == count
    assert first.errors == ()
    second = await run_import(database, data, fmt)
    assert second.created == second.changed == ()
    assert len(second.unchanged) == count


async def test_csv_import_sets_policy_overrides(database: Database) -> None:
    await run_import(database, CSV, "csv")
    users = next(e for e in await everything(database) if e.url.endswith("/users"))
    async with database.session() as s:
        eff = await effective_policy(s, users)
    assert [str(o) for o in eff.policy.allowed_origins] == ["https://app.acme.com"]
    assert eff.policy.allow_credentials
    assert eff.sources["allowed_origins"] == "endpoint"


async def test_formats_update_each_other(database: Database) -> None:
    await run_import(database, CSV, "csv")
    report = await run_import(database, JSON_DOC, "json")
    assert [c.fields for c in report.changes] == [("enabled",)]  # orders; users already matches
    report = await run_import(database, YAML_DOC, "yaml")
    assert report.created == (("GET", "https://api.acme.com/status"),)
    assert [c.fields for c in report.changes] == [("policy",)]  # users becomes public


async def test_dry_run_changes_nothing(database: Database) -> None:
    report = await run_import(database, CSV, "csv", dry_run=True)
    assert len(report.created) == 3
    assert report.dry_run
    assert await everything(database) == []
    await run_import(database, CSV, "csv")
    before = await everything(database)
    report = await run_import(database, JSON_DOC, "json", dry_run=True)
    assert report.changed == (("POST", "https://api.acme.com/orders"),)
    assert await everything(database) == before


def openapi_document(paths: int) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "Big", "version": "1"},
        "servers": [{"url": "/api/{version}", "variables": {"version": {"default": "v1"}}}],
        "paths": {},
    }
    for i in range(paths):
        doc["paths"][f"/resource{i}/{{id}}"] = {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "get": {"operationId": f"get{i}", "tags": [f"group{i % 10}"]},
            "patch": {"operationId": f"patch{i}", "tags": [f"group{i % 10}"]},
        }
    return doc


@pytest.mark.parametrize("fmt", ["json", "yaml"])
async def test_a_500_endpoint_openapi_document(database: Database, fmt: str) -> None:
    doc = openapi_document(250)
    data = json.dumps(doc).encode() if fmt == "json" else yaml.safe_dump(doc).encode()
    first = await run_import(database, data, "openapi", base_url="https://big.example")
    assert len(first.created) == 500
    assert first.errors == ()
    stored = await everything(database)
    assert len(stored) == 500
    assert stored[0].url == "https://big.example/api/v1/resource0/1"
    assert stored[0].name == "get0"
    assert stored[0].tags == ("group0",)
    second = await run_import(database, data, "openapi", base_url="https://big.example")
    assert len(second.unchanged) == 500
    assert second.created == second.changed == ()
    async with database.session() as s:
        tagged = await list_endpoints(s, EndpointFilter(tag="group3"), limit=500, cursor=None)
    assert len(tagged.items) == 50


@pytest.mark.parametrize("fmt", ["csv", "json", "yaml"])
async def test_export_imports_back_unchanged(database: Database, fmt: str) -> None:
    await run_import(database, CSV, "csv")
    await run_import(database, YAML_DOC, "yaml")
    items = await everything(database)
    async with database.session() as s:
        overrides = await endpoint_overrides(s, [e.id for e in items])
    text = export_endpoints(items, overrides, fmt)
    if fmt == "csv":
        # Spreadsheet formulas are defused in the file...
        assert "'=cmd|' /C calc'!A0" in text
    report = await run_import(database, text.encode(), fmt)
    assert report.created == report.changed == ()
    assert report.errors == ()
    assert len(report.unchanged) == len(items)
    # ...and read back as written.
    assert any(e.name == "=cmd|' /C calc'!A0" for e in await everything(database))
