"""The inventory's use cases on a real database: changes audited once, imports, exports.

Validation and merge rules are the core's (``tests/core``); here: what a user
of the API, the CLI or a dashboard gets by calling a use case, on every backend.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from scanner import shapes
from scanner.core.import_rows import ImportReport
from scanner.db.engine import Database
from scanner.db.inventory import EndpointFilter, EndpointRecord
from scanner.errors import Conflict, NotFound, ValidationError
from scanner.importers import ImportFormat
from scanner.settings import Settings
from scanner.usecases import Context, inventory, policies, tokens

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def ctx(database: Database) -> Context:
    return Context(database, Settings(database_url=database.url), clock=lambda: NOW)


async def audit_log(ctx: Context) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    page = await tokens.list_audit(ctx, limit=100)
    return [(e.actor, e.action, e.target_id, dict(e.detail)) for e in reversed(page.items)]


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
    ctx: Context, data: bytes, fmt: str, *, dry_run: bool = False, base_url: str | None = None
) -> ImportReport:
    report = await inventory.import_endpoints(
        ctx, data, ImportFormat(fmt), actor="tester", dry_run=dry_run, base_url=base_url
    )
    assert report.errors == ()
    return report


async def everything(ctx: Context) -> list[EndpointRecord]:
    out: list[EndpointRecord] = []
    cursor = None
    while True:
        page = await inventory.list_endpoints(ctx, EndpointFilter(), limit=200, cursor=cursor)
        out.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return out


@pytest.mark.parametrize(
    ("data", "fmt", "count"), [(CSV, "csv", 3), (JSON_DOC, "json", 2), (YAML_DOC, "yaml", 2)]
)
async def test_each_format_imports_then_reimports_unchanged(
    ctx: Context, data: bytes, fmt: str, count: int
) -> None:
    first = await run_import(ctx, data, fmt)
    assert len(first.created) == count
    assert first.errors == ()
    second = await run_import(ctx, data, fmt)
    assert second.created == second.changed == ()
    assert len(second.unchanged) == count


async def test_csv_import_sets_policy_overrides(ctx: Context) -> None:
    await run_import(ctx, CSV, "csv")
    users = next(e for e in await everything(ctx) if e.url.endswith("/users"))
    eff = (await inventory.show_endpoint(ctx, users.id)).effective
    assert [str(o) for o in eff.policy.allowed_origins] == ["https://app.acme.com"]
    assert eff.policy.allow_credentials
    assert eff.sources["allowed_origins"] == "endpoint"


async def test_formats_update_each_other(ctx: Context) -> None:
    await run_import(ctx, CSV, "csv")
    report = await run_import(ctx, JSON_DOC, "json")
    assert [c.fields for c in report.changes] == [("enabled",)]  # orders; users already matches
    report = await run_import(ctx, YAML_DOC, "yaml")
    assert report.created == (("GET", "https://api.acme.com/status"),)
    assert [c.fields for c in report.changes] == [("policy",)]  # users becomes public


async def test_dry_run_changes_nothing(ctx: Context) -> None:
    report = await run_import(ctx, CSV, "csv", dry_run=True)
    assert len(report.created) == 3
    assert report.dry_run
    assert await everything(ctx) == []
    await run_import(ctx, CSV, "csv")
    before = await everything(ctx)
    report = await run_import(ctx, JSON_DOC, "json", dry_run=True)
    assert report.changed == (("POST", "https://api.acme.com/orders"),)
    assert await everything(ctx) == before


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
async def test_a_500_endpoint_openapi_document(ctx: Context, fmt: str) -> None:
    doc = openapi_document(250)
    data = json.dumps(doc).encode() if fmt == "json" else yaml.safe_dump(doc).encode()
    first = await run_import(ctx, data, "openapi", base_url="https://big.example")
    assert len(first.created) == 500
    assert first.errors == ()
    stored = await everything(ctx)
    assert len(stored) == 500
    assert stored[0].url == "https://big.example/api/v1/resource0/1"
    assert stored[0].name == "get0"
    assert stored[0].tags == ("group0",)
    second = await run_import(ctx, data, "openapi", base_url="https://big.example")
    assert len(second.unchanged) == 500
    assert second.created == second.changed == ()
    tagged = await inventory.list_endpoints(ctx, EndpointFilter(tag="group3"), limit=500)
    assert len(tagged.items) == 50


@pytest.mark.parametrize("fmt", ["csv", "json", "yaml"])
async def test_export_imports_back_unchanged(ctx: Context, fmt: str) -> None:
    await run_import(ctx, CSV, "csv")
    await run_import(ctx, YAML_DOC, "yaml")
    items = await everything(ctx)
    text, count = await inventory.export_endpoints(ctx, EndpointFilter(), fmt)
    assert count == len(items)
    if fmt == "csv":
        # Spreadsheet formulas are defused in the file...
        assert "'=cmd|' /C calc'!A0" in text
    report = await run_import(ctx, text.encode(), fmt)
    assert report.created == report.changed == ()
    assert report.errors == ()
    assert len(report.unchanged) == len(items)
    # ...and read back as written.
    assert any(e.name == "=cmd|' /C calc'!A0" for e in await everything(ctx))


async def test_joined_list_cells_are_defused_in_a_csv_export_and_read_back(ctx: Context) -> None:
    # Methods and header names may start with - or + (both are token characters), and a
    # spreadsheet runs "-2+3;GET" as a formula just as it would "=cmd".
    data = (
        b"url,allowed_methods,allowed_headers,exposed_headers\n"
        b"https://api.acme.com/lists,-2+3;GET,+cmd;x-a,-sum\n"
    )
    await run_import(ctx, data, "csv")
    text, _ = await inventory.export_endpoints(ctx, EndpointFilter(), "csv")
    header, row = text.splitlines()
    cells = dict(zip(header.split(","), row.split(","), strict=True))
    assert cells["allowed_methods"] == "'-2+3;GET"
    assert cells["allowed_headers"] == "'+cmd;x-a"
    assert cells["exposed_headers"] == "'-sum"
    again = await run_import(ctx, text.encode(), "csv")
    assert again.created == again.changed == ()
    assert len(again.unchanged) == 1


# -- endpoint changes ----------------------------------------------------------------------


async def test_create_update_delete_are_each_audited_once(ctx: Context) -> None:
    created = await inventory.create_endpoint(
        ctx,
        {"url": "HTTPS://API.acme.com:443/v1", "method": "patch", "tags": ["B", "a"]},
        actor="ana",
    )
    assert (created.method, created.url, created.tags) == (
        "patch",
        "https://api.acme.com/v1",
        ("a", "b"),
    )
    updated = await inventory.update_endpoint(
        ctx, created.id, {"tags": None, "owner": "pay"}, actor="bo"
    )
    assert (updated.tags, updated.owner, updated.url) == ((), "pay", created.url)
    removed = await inventory.delete_endpoint(ctx, created.id, actor="cy")
    assert removed.id == created.id
    with pytest.raises(NotFound):
        await inventory.get_endpoint(ctx, created.id)
    assert await audit_log(ctx) == [
        ("ana", "endpoint.create", str(created.id), {"method": "patch", "url": created.url}),
        ("bo", "endpoint.update", str(created.id), {"changes": {"tags": [], "owner": "pay"}}),
        ("cy", "endpoint.delete", str(created.id), {"method": "patch", "url": created.url}),
    ]


async def test_update_is_a_patch_that_names_every_bad_field(ctx: Context) -> None:
    a = await inventory.create_endpoint(ctx, {"url": "https://a.example/", "name": "A"}, actor="t")
    b = await inventory.create_endpoint(ctx, {"url": "https://b.example/"}, actor="t")
    same = await inventory.update_endpoint(ctx, a.id, {"name": "A"}, actor="t")
    assert same.updated_at == a.updated_at
    with pytest.raises(ValidationError) as exc:
        await inventory.update_endpoint(
            ctx, a.id, {"url": "nope", "enabled": 1, "shape": "round"}, actor="t"
        )
    assert [e.field for e in exc.value.errors] == ["shape", "url", "enabled"]
    with pytest.raises(Conflict, match=rf"already exists \(endpoint {b.id}\)"):
        await inventory.update_endpoint(ctx, a.id, {"url": "https://B.example"}, actor="t")
    with pytest.raises(NotFound, match="endpoint 999999 does not exist"):
        await inventory.update_endpoint(ctx, 999_999, {"name": "x"}, actor="t")
    # Nothing that failed was audited.
    assert [action for _, action, _, _ in await audit_log(ctx)] == [
        "endpoint.create",
        "endpoint.create",
        "endpoint.update",
    ]


async def test_one_idna_mapping_on_every_path_in(ctx: Context) -> None:
    # UTS 46 (what browsers do): straße.de is xn--strae-oqa.de, never strasse.de.
    created = await inventory.create_endpoint(ctx, {"url": "https://straße.de/p"}, actor="t")
    assert created.url == "https://xn--strae-oqa.de/p"
    other = await inventory.create_endpoint(ctx, {"url": "https://strasse.de/p"}, actor="t")
    assert other.id != created.id
    report = await run_import(
        ctx, "url\nhttps://STRASSE.de/p\nhttps://straße.de/p\n".encode(), "csv"
    )
    assert len(report.unchanged) == 2
    assert report.created == ()
    layer, _ = await policies.set_policy(
        ctx, "default", values={"allowed_origins": ["https://straße.de"]}, actor="t"
    )
    assert layer.allowed_origins == ("https://xn--strae-oqa.de",)


async def test_reads_for_a_front_end(ctx: Context) -> None:
    a = await inventory.create_endpoint(
        ctx, {"url": "https://a.example/", "tags": ["web"]}, actor="t"
    )
    b = await inventory.create_endpoint(ctx, {"url": "https://b.example/"}, actor="t")
    await policies.set_policy(ctx, "tag", tag="web", values={"max_age": 60}, actor="t")
    await policies.set_policy(ctx, "endpoint", endpoint_id=b.id, values={"public": True}, actor="t")
    page = await inventory.list_endpoint_views(ctx, EndpointFilter(), limit=10)
    views = {v.endpoint.id: v for v in page.items}
    assert views[a.id].override is None
    assert views[a.id].effective.sources["max_age"] == "tag:web"
    assert views[b.id].override is not None
    assert views[b.id].effective.policy.public
    doc = shapes.effective_policy_json(b.id, views[b.id].effective)
    assert doc["sources"]["public"] == "endpoint"
    assert doc["policy"]["public"] is True


async def test_an_import_is_audited_once_and_a_dry_run_not_at_all(ctx: Context) -> None:
    await run_import(ctx, CSV, "csv", dry_run=True)
    await run_import(ctx, CSV, "csv")
    await run_import(ctx, CSV, "csv")  # nothing changes: still an import someone ran
    entries = [(action, detail) for _, action, _, detail in await audit_log(ctx)]
    assert [a for a, _ in entries] == ["endpoint.import", "endpoint.import"]
    assert entries[0][1] == {
        "format": "csv",
        "source": None,
        "created": 3,
        "changed": 0,
        "unchanged": 0,
        "errors": 0,
    }


async def test_bad_rows_never_stop_the_good_ones(ctx: Context) -> None:
    data = (
        b"method,url,public,allow_credentials\n"
        b"GET,https://a.example/,,\n"
        b"GET,https://A.example:443/,,\n"
        b"GET,https://c.example/,true,true\n"
        b"TRACE,https://d.example/,,\n"
        b"get,https://e.example/,,\n"
    )
    report = await inventory.import_endpoints(ctx, data, ImportFormat.CSV, actor="t")
    assert report.created == (("GET", "https://a.example/"), ("GET", "https://e.example/"))
    assert [(e.row, e.field) for e in report.errors] == [(3, "url"), (4, "public"), (5, "method")]


# -- policy changes --------------------------------------------------------------------


async def test_policy_changes(ctx: Context) -> None:
    with pytest.raises(ValidationError) as exc:
        await policies.set_policy(
            ctx,
            "tag",
            tag="payments",
            values={"allowed_origins": ["*"], "allowed_methods": ["BAD METHOD"], "max_age": -1},
            actor="t",
        )
    assert {e.field for e in exc.value.errors} == {"allowed_origins", "allowed_methods", "max_age"}
    layer, created = await policies.set_policy(
        ctx,
        "tag",
        tag="Payments",
        values={"allowed_origins": ["https://a.example"], "max_age": 60},
        actor="t",
    )
    assert created
    assert layer.scope_key == "tag:payments"
    again, created = await policies.set_policy(
        ctx, "tag", tag="payments", values={"public": True}, actor="t"
    )
    assert not created
    assert again.id == layer.id
    assert again.max_age is None
    with pytest.raises(ValidationError, match="unknown policy field"):
        await policies.change_policy(ctx, layer.id, {"origins": []}, actor="t")
    patched = await policies.change_policy(
        ctx, layer.id, {"public": None, "allow_credentials": True}, actor="t"
    )
    assert (patched.public, patched.allow_credentials) == (None, True)
    with pytest.raises(ValidationError, match="cannot also allow credentials"):
        await policies.change_policy(ctx, layer.id, {"public": True}, actor="t")
    removed = await policies.unset_policy(ctx, "tag", tag="payments", actor="t")
    assert removed.id == layer.id
    with pytest.raises(NotFound, match="there is no tag:payments policy"):
        await policies.unset_policy(ctx, "tag", tag="payments", actor="t")
    assert [(a, d.get("scope")) for _, a, _, d in await audit_log(ctx)] == [
        ("policy.create", "tag:payments"),
        ("policy.replace", "tag:payments"),
        ("policy.update", "tag:payments"),
        ("policy.delete", "tag:payments"),
    ]
