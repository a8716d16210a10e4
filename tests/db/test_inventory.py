"""Endpoint storage on every backend: rows, conflicts, filters, pagination.

The rules for what is stored are tested in ``tests/core/test_endpoints.py``; the use
cases that validate, merge and import in ``tests/usecases/test_inventory.py``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

import pytest

from scanner.core.endpoints import EndpointInput
from scanner.core.policy_layers import PolicyFields, PolicyScope
from scanner.db.engine import Database
from scanner.db.inventory import (
    EndpointFilter,
    EndpointRecord,
    create_endpoint,
    delete_endpoint,
    endpoints_by_key,
    get_endpoint,
    list_endpoints,
    select_endpoints,
    update_endpoint,
)
from scanner.db.policies import find_policy, put_policy
from scanner.errors import Conflict, InputError, NotFound


async def add(db: Database, url: str, **fields: object) -> EndpointRecord:
    async with db.session() as s, s.begin():
        return await create_endpoint(s, EndpointInput.validate({"url": url, **fields}))


async def test_create_and_get_round_trip(database: Database) -> None:
    created = await add(
        database,
        "HTTPS://API.Acme.com:443/v1/users?active=1",
        method="post",
        name="Users",
        owner="team-identity",
        tags=["Identity", "pii", "pii"],
        notes="line one\nline two",
    )
    async with database.session() as s:
        got = await get_endpoint(s, created.id)
    assert got == created
    assert got.method == "POST"
    assert got.url == "https://api.acme.com/v1/users?active=1"
    assert got.tags == ("identity", "pii")
    assert got.enabled is True
    assert got.notes == "line one\nline two"
    assert got.created_at.tzinfo is not None
    assert got.created_at.utcoffset() == timedelta(0)
    assert got.created_at == got.updated_at


async def test_timestamps_read_back_as_aware_utc(database: Database) -> None:
    created = await add(database, "https://a.example/")
    async with database.session() as s:
        got = await get_endpoint(s, created.id)
    assert got.created_at.tzinfo == UTC
    assert abs(got.created_at - created.created_at) < timedelta(seconds=1)


async def test_same_method_and_url_conflicts_even_written_differently(database: Database) -> None:
    first = await add(database, "https://api.acme.com")
    with pytest.raises(Conflict, match=rf"already exists \(endpoint {first.id}\)"):
        await add(database, "HTTPS://api.ACME.com:443/", method="get")
    # Another method on the same URL is another endpoint.
    other = await add(database, "https://api.acme.com/", method="DELETE")
    assert other.id != first.id


async def test_conflict_does_not_poison_the_callers_transaction(database: Database) -> None:
    await add(database, "https://a.example/")
    async with database.session() as s, s.begin():
        with pytest.raises(Conflict):
            await create_endpoint(s, EndpointInput.validate({"url": "https://a.example/"}))
        # The same transaction still works and commits.
        await create_endpoint(s, EndpointInput.validate({"url": "https://b.example/"}))
    async with database.session() as s:
        page = await list_endpoints(s, EndpointFilter(), limit=10, cursor=None)
    assert [e.url for e in page.items] == ["https://a.example/", "https://b.example/"]


def changed(record: EndpointRecord, **fields: object) -> EndpointInput:
    return EndpointInput.validate({**record.as_input().as_mapping(), **fields})


async def test_update_replaces_the_fields(database: Database) -> None:
    created = await add(database, "https://a.example/", name="A", owner="x", tags=["one", "two"])
    async with database.session() as s, s.begin():
        updated = await update_endpoint(s, created.id, changed(created, owner="y", tags=["three"]))
    assert (updated.name, updated.owner, updated.tags) == ("A", "y", ("three",))
    assert updated.updated_at >= created.updated_at
    async with database.session() as s:
        assert await get_endpoint(s, created.id) == updated


async def test_update_without_a_change_keeps_updated_at(database: Database) -> None:
    created = await add(database, "https://a.example/", name="A")
    async with database.session() as s, s.begin():
        same = await update_endpoint(s, created.id, changed(created, name="A"))
    assert same.updated_at == created.updated_at


async def test_update_errors(database: Database) -> None:
    a = await add(database, "https://a.example/")
    b = await add(database, "https://b.example/")
    async with database.session() as s, s.begin():
        with pytest.raises(
            Conflict, match=rf"https://b\.example/ already exists \(endpoint {b.id}\)"
        ):
            await update_endpoint(s, a.id, changed(a, url="https://B.example"))
        with pytest.raises(NotFound, match="endpoint 999999 does not exist"):
            await update_endpoint(s, 999_999, a.as_input())


async def test_endpoints_by_key(database: Database) -> None:
    a = await add(database, "https://a.example/")
    b = await add(database, "https://a.example/", method="patch")
    async with database.session() as s:
        found = await endpoints_by_key(
            s, [("GET", "https://a.example/"), ("patch", "https://a.example/"), ("GET", "x")]
        )
    assert found == {a.key: a, b.key: b}


async def test_delete_removes_tags_and_policy_override(database: Database) -> None:
    created = await add(database, "https://a.example/", tags=["t"])
    async with database.session() as s, s.begin():
        await put_policy(
            s, PolicyScope.ENDPOINT, endpoint_id=created.id, fields=PolicyFields(public=True)
        )
    async with database.session() as s, s.begin():
        await delete_endpoint(s, created.id)
    async with database.session() as s, s.begin():
        with pytest.raises(NotFound):
            await get_endpoint(s, created.id)
        with pytest.raises(NotFound):
            await delete_endpoint(s, created.id)
        assert await find_policy(s, PolicyScope.ENDPOINT, endpoint_id=created.id) is None
        assert (await list_endpoints(s, EndpointFilter(tag="t"), limit=5, cursor=None)).items == ()


async def test_filters(database: Database) -> None:
    a = await add(database, "https://pay.acme.com/charge", name="Charge", owner="pay", tags=["pci"])
    b = await add(database, "https://pay.acme.com/refund", owner="pay", tags=["pci", "beta"])
    c = await add(database, "https://id.acme.com/users", name="Users 100%", owner="id")
    d = await add(database, "https://id.acme.com/old_api", enabled=False)

    async def ids(flt: EndpointFilter) -> list[int]:
        async with database.session() as s:
            page = await list_endpoints(s, flt, limit=50, cursor=None)
        return [e.id for e in page.items]

    assert await ids(EndpointFilter()) == [a.id, b.id, c.id, d.id]
    assert await ids(EndpointFilter(tag="PCI")) == [a.id, b.id]
    assert await ids(EndpointFilter(tag="pci", owner="pay", q="refund")) == [b.id]
    assert await ids(EndpointFilter(owner="id")) == [c.id]
    assert await ids(EndpointFilter(enabled=False)) == [d.id]
    assert await ids(EndpointFilter(enabled=True)) == [a.id, b.id, c.id]
    assert await ids(EndpointFilter(q="CHARGE")) == [a.id]  # the name, case-insensitive
    assert await ids(EndpointFilter(q="id.acme")) == [c.id, d.id]  # the URL
    # LIKE wildcards in the search text are literal characters.
    assert await ids(EndpointFilter(q="100%")) == [c.id]
    assert await ids(EndpointFilter(q="d_api")) == [d.id]
    assert await ids(EndpointFilter(q="_")) == [d.id]
    assert await ids(EndpointFilter(tag="nothing")) == []


async def test_pagination_is_exact_while_rows_are_inserted(database: Database) -> None:
    for i in range(25):
        await add(database, f"https://a.example/{i}")
    seen: list[int] = []
    cursor: str | None = None
    inserted_during: list[int] = []
    pages = 0
    while True:
        async with database.session() as s:
            page = await list_endpoints(s, EndpointFilter(), limit=7, cursor=cursor)
        seen.extend(e.id for e in page.items)
        pages += 1
        # Rows arriving between pages: later ones appear once, earlier ones never twice.
        inserted_during.append((await add(database, f"https://b.example/{pages}")).id)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "a row was returned twice"
    async with database.session() as s:
        everything = await select_endpoints(s, EndpointFilter(enabled=None), ids=None)
    original = [e.id for e in everything if e.url.startswith("https://a.example/")]
    assert set(original) <= set(seen), "a row that existed all along was skipped"
    assert seen == sorted(seen)
    assert inserted_during[-1] not in seen  # inserted after the last page


async def test_last_page_has_no_cursor(database: Database) -> None:
    for i in range(4):
        await add(database, f"https://a.example/{i}")
    async with database.session() as s:
        first = await list_endpoints(s, EndpointFilter(), limit=2, cursor=None)
        second = await list_endpoints(s, EndpointFilter(), limit=2, cursor=first.next_cursor)
        exact = await list_endpoints(s, EndpointFilter(), limit=4, cursor=None)
    assert first.next_cursor is not None
    assert len(first.items) == 2
    assert second.next_cursor is None
    assert len(second.items) == 2
    assert exact.next_cursor is None


@pytest.mark.parametrize("cursor", ["garbage", "eyJ2IjoyLCJhZnRlciI6MX0", "x" * 500, "bnVsbA"])
async def test_forged_cursors_are_input_errors(database: Database, cursor: str) -> None:
    async with database.session() as s:
        with pytest.raises(InputError, match="invalid cursor"):
            await list_endpoints(s, EndpointFilter(), limit=5, cursor=cursor)


async def test_limit_must_be_positive(database: Database) -> None:
    async with database.session() as s:
        with pytest.raises(InputError, match="limit"):
            await list_endpoints(s, EndpointFilter(), limit=0, cursor=None)


async def test_select_endpoints_for_scans(database: Database) -> None:
    a = await add(database, "https://a.example/", tags=["x"])
    b = await add(database, "https://b.example/", enabled=False, tags=["x"])
    c = await add(database, "https://c.example/")
    async with database.session() as s:
        assert [e.id for e in await select_endpoints(s, EndpointFilter())] == [a.id, c.id]
        assert [e.id for e in await select_endpoints(s, EndpointFilter(tag="x"))] == [a.id]
        disabled = await select_endpoints(s, EndpointFilter(enabled=False))
        assert [e.id for e in disabled] == [b.id]
        # Chosen by id: a disabled endpoint is still scanned; unknown ids are skipped.
        chosen = await select_endpoints(s, EndpointFilter(), ids=[c.id, b.id, 424242])
        assert [e.id for e in chosen] == [b.id, c.id]


async def test_concurrent_writers_do_not_fail(database: Database) -> None:
    # SQLite has one write lock: read-then-write transactions must wait, not fail.
    async def one(i: int) -> None:
        async with database.session() as s, s.begin():
            await list_endpoints(s, EndpointFilter(), limit=1, cursor=None)
            await create_endpoint(s, EndpointInput.validate({"url": f"https://c.example/{i}"}))

    await asyncio.gather(*(one(i) for i in range(20)))
    async with database.session() as s:
        page = await list_endpoints(s, EndpointFilter(), limit=100, cursor=None)
    assert len(page.items) == 20
