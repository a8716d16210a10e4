"""The audit log: entries commit with the change they describe, listed newest first."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scanner.db import audit
from scanner.db.engine import Database
from scanner.errors import InputError


async def test_record_and_list_newest_first(database: Database) -> None:
    async with database.session() as s, s.begin():
        await audit.record(
            s,
            actor="cli",
            action="endpoint.create",
            target_type="endpoint",
            target_id="1",
            detail={
                "url": "https://a.example/",
                "tags": ("x", "y"),
                "at": datetime(2026, 1, 1, tzinfo=UTC),
            },
        )
        await audit.record(
            s, actor="deploy-bot", action="policy.delete", target_type="policy", target_id=None
        )
    async with database.session() as s:
        page = await audit.list_audit(s, limit=10, cursor=None)
    assert [e.action for e in page.items] == ["policy.delete", "endpoint.create"]
    newest, oldest = page.items
    assert (newest.actor, newest.target_id, dict(newest.detail)) == ("deploy-bot", None, {})
    assert oldest.detail == {
        "url": "https://a.example/",
        "tags": ["x", "y"],
        "at": "2026-01-01T00:00:00Z",
    }
    assert oldest.at.tzinfo is not None
    assert oldest.at <= newest.at
    assert page.next_cursor is None


async def _failing_change(db: Database) -> None:
    async with db.session() as s, s.begin():
        await audit.record(s, actor="cli", action="x", target_type="y", target_id="1")
        raise RuntimeError("the change failed")


async def test_entries_roll_back_with_the_change(database: Database) -> None:
    with pytest.raises(RuntimeError, match="the change failed"):
        await _failing_change(database)
    async with database.session() as s:
        assert (await audit.list_audit(s, limit=5, cursor=None)).items == ()


async def test_pages(database: Database) -> None:
    async with database.session() as s, s.begin():
        for i in range(7):
            await audit.record(s, actor="cli", action=f"a{i}", target_type="t", target_id=str(i))
    actions: list[str] = []
    cursor = None
    async with database.session() as s:
        while True:
            page = await audit.list_audit(s, limit=3, cursor=cursor)
            actions += [e.action for e in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
    assert actions == [f"a{i}" for i in reversed(range(7))]


async def test_detail_must_be_json(database: Database) -> None:
    async with database.session() as s, s.begin():
        with pytest.raises(InputError, match="not JSON"):
            await audit.record(
                s,
                actor="cli",
                action="x",
                target_type="t",
                target_id=None,
                detail={"a": float("nan"), "b": {1, 2}},
            )
