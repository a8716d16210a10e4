"""Policy-layer storage on every backend, and the effective policies loaded from it.

The rules (validation, resolution, the strictest merge) are tested in
``tests/core/test_policy_layers.py``; the use cases in ``tests/usecases/test_policies.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from scanner.core.endpoints import EndpointInput
from scanner.core.policy_layers import PolicyFields, PolicyScope
from scanner.db.engine import Database
from scanner.db.inventory import EndpointRecord, create_endpoint, delete_endpoint
from scanner.db.policies import (
    delete_policy,
    effective_policies,
    effective_policy,
    find_policy,
    get_policy,
    list_policies,
    put_policy,
    replace_policy_fields,
)
from scanner.errors import NotFound, ValidationError


async def add(db: Database, url: str, tags: list[str] | None = None) -> EndpointRecord:
    async with db.session() as s, s.begin():
        return await create_endpoint(s, EndpointInput.validate({"url": url, "tags": tags or []}))


async def put(db: Database, scope: str, fields: dict[str, Any], **where: Any) -> int:
    async with db.session() as s, s.begin():
        record, _ = await put_policy(s, scope, fields=PolicyFields.validate(fields), **where)
    return record.id


async def effective(db: Database, endpoint: EndpointRecord):  # type: ignore[no-untyped-def]
    async with db.session() as s:
        return await effective_policy(s, endpoint)


async def test_put_creates_then_replaces(database: Database) -> None:
    async with database.session() as s, s.begin():
        first, created = await put_policy(
            s,
            PolicyScope.DEFAULT,
            fields=PolicyFields.validate(
                {"allowed_origins": ["https://App.Acme.com/", "https://*.acme.com"], "max_age": 600}
            ),
        )
    assert created
    assert first.allowed_origins == ("https://app.acme.com", "https://*.acme.com")
    async with database.session() as s, s.begin():
        second, created = await put_policy(s, "default", fields=PolicyFields(public=True))
    assert not created
    assert second.id == first.id
    # PUT replaces: fields not given inherit again.
    assert (second.allowed_origins, second.max_age, second.public) == (None, None, True)
    async with database.session() as s:
        assert await get_policy(s, first.id) == second


async def test_scope_arguments_are_checked(database: Database) -> None:
    async with database.session() as s, s.begin():
        with pytest.raises(ValidationError) as exc:
            await put_policy(s, "tag", fields=PolicyFields())
        assert [e.field for e in exc.value.errors] == ["tag"]
        with pytest.raises(ValidationError) as exc:
            await put_policy(s, "default", tag="x", endpoint_id=1, fields=PolicyFields())
        assert {e.field for e in exc.value.errors} == {"tag", "endpoint_id"}
        with pytest.raises(ValidationError, match="scope"):
            await put_policy(s, "global", fields=PolicyFields())
        with pytest.raises(ValidationError, match="tag"):
            await put_policy(s, "tag", tag="no spaces", fields=PolicyFields())
        with pytest.raises(NotFound, match="endpoint 4242 does not exist"):
            await put_policy(s, "endpoint", endpoint_id=4242, fields=PolicyFields())


async def test_replace_fields_and_delete(database: Database) -> None:
    pid = await put(
        database, "tag", {"allowed_origins": ["https://a.example"], "max_age": 60}, tag="t"
    )
    async with database.session() as s, s.begin():
        before = await get_policy(s, pid)
        same = await replace_policy_fields(s, pid, before.fields)
        assert same.updated_at == before.updated_at  # nothing changed, nothing moved
        replaced = await replace_policy_fields(s, pid, PolicyFields(allow_credentials=True))
    assert (replaced.allowed_origins, replaced.max_age, replaced.allow_credentials) == (
        None,
        None,
        True,
    )
    async with database.session() as s, s.begin():
        await delete_policy(s, pid)
    async with database.session() as s, s.begin():
        with pytest.raises(NotFound):
            await get_policy(s, pid)
        with pytest.raises(NotFound):
            await delete_policy(s, pid)
        with pytest.raises(NotFound):
            await replace_policy_fields(s, pid, PolicyFields())


async def test_list_orders_default_tags_endpoints(database: Database) -> None:
    e = await add(database, "https://a.example/")
    await put(database, "endpoint", {"public": True}, endpoint_id=e.id)
    await put(database, "tag", {}, tag="zeta")
    await put(database, "tag", {}, tag="alpha")
    await put(database, "default", {})
    async with database.session() as s:
        keys = [p.scope_key for p in await list_policies(s)]
        assert await find_policy(s, "tag", tag="ALPHA") is not None
    assert keys == ["default", "tag:alpha", "tag:zeta", f"endpoint:{e.id}"]


async def test_resolution_order_and_sources(database: Database) -> None:
    e = await add(database, "https://a.example/", ["payments"])
    builtin = await effective(database, e)
    assert not builtin.policy.declared
    assert set(builtin.sources.values()) == {"builtin"}

    await put(database, "default", {"allowed_origins": ["https://app.acme.com"], "max_age": 600})
    await put(
        database,
        "tag",
        {"allowed_origins": ["https://pay.acme.com"], "allow_credentials": True},
        tag="payments",
    )
    await put(database, "endpoint", {"max_age": 60}, endpoint_id=e.id)
    eff = await effective(database, e)
    assert [str(p) for p in eff.policy.allowed_origins] == ["https://pay.acme.com"]
    assert eff.policy.allow_credentials is True
    assert eff.policy.max_age == 60
    assert eff.sources == {
        "allowed_origins": "tag:payments",
        "allow_credentials": "tag:payments",
        "allowed_methods": "builtin",
        "allowed_headers": "builtin",
        "exposed_headers": "builtin",
        "max_age": "endpoint",
        "public": "builtin",
    }
    # An explicit empty list is a value, not "inherit": no cross-origin reader at all.
    await put(database, "endpoint", {"allowed_origins": []}, endpoint_id=e.id)
    eff = await effective(database, e)
    assert eff.policy.allowed_origins == ()
    assert eff.sources["allowed_origins"] == "endpoint"
    assert eff.sources["max_age"] == "default"


async def test_effective_policies_in_bulk_match_one_by_one(database: Database) -> None:
    endpoints = [
        await add(database, f"https://a.example/{i}", ["even" if i % 2 == 0 else "odd"])
        for i in range(6)
    ]
    await put(database, "default", {"allowed_origins": ["https://d.example"]})
    await put(database, "tag", {"allowed_origins": ["https://even.example"]}, tag="even")
    await put(database, "endpoint", {"public": True}, endpoint_id=endpoints[3].id)
    async with database.session() as s:
        bulk = await effective_policies(s, endpoints)
        for endpoint in endpoints:
            assert bulk[endpoint.id] == await effective_policy(s, endpoint)
    assert [str(o) for o in bulk[endpoints[0].id].policy.allowed_origins] == [
        "https://even.example"
    ]
    assert [str(o) for o in bulk[endpoints[1].id].policy.allowed_origins] == ["https://d.example"]
    assert bulk[endpoints[3].id].policy.public


async def test_deleting_an_endpoint_removes_its_override(database: Database) -> None:
    e = await add(database, "https://a.example/")
    pid = await put(database, "endpoint", {"public": True}, endpoint_id=e.id)
    async with database.session() as s, s.begin():
        await delete_endpoint(s, e.id)
    async with database.session() as s:
        with pytest.raises(NotFound):
            await get_policy(s, pid)
