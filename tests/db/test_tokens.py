"""API tokens: only hashes stored, authentication, revocation, scopes."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select

from scanner.db.engine import Database
from scanner.db.tables import ApiTokenRow, utc_now
from scanner.db.tokens import (
    Scope,
    authenticate,
    count_active_tokens,
    create_token,
    get_token,
    list_tokens,
    revoke_token,
)
from scanner.errors import NotFound, ValidationError


async def test_only_the_hash_is_stored(database: Database) -> None:
    async with database.session() as s, s.begin():
        record, secret = await create_token(s, "ci", [Scope.READ], created_by="cli")
    assert secret.startswith("csk_")
    assert len(secret) == 4 + 43
    assert record.prefix == secret[:12]
    assert record.scopes == frozenset({Scope.READ})
    assert record.created_by == "cli"
    assert record.revoked_at is None
    assert record.last_used_at is None
    async with database.session() as s:
        row = (await s.scalars(select(ApiTokenRow))).one()
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    stored = [str(getattr(row, c.key)) for c in ApiTokenRow.__table__.columns]
    assert not any(secret in value for value in stored)


async def test_every_secret_is_different(database: Database) -> None:
    async with database.session() as s, s.begin():
        secrets = {
            (await create_token(s, f"t{i}", ["read"], created_by=None))[1] for i in range(20)
        }
    assert len(secrets) == 20


async def test_authenticate(database: Database) -> None:
    async with database.session() as s, s.begin():
        record, secret = await create_token(s, "deploy", ["write"], created_by=None)
    async with database.session() as s, s.begin():
        found = await authenticate(s, secret)
        assert found is not None
        assert found.id == record.id
        assert found.name == "deploy"
        assert await authenticate(s, secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
        assert await authenticate(s, "") is None
        assert await authenticate(s, "csk_" + "x" * 10_000) is None
        assert await authenticate(s, "\udcff not even utf-8") is None
        assert await authenticate(s, hashlib.sha256(secret.encode()).hexdigest()) is None


async def test_revoked_tokens_do_not_authenticate(database: Database) -> None:
    async with database.session() as s, s.begin():
        record, secret = await create_token(s, "old", ["admin"], created_by=None)
        assert await count_active_tokens(s) == 1
    async with database.session() as s, s.begin():
        revoked = await revoke_token(s, record.id)
    assert revoked.revoked_at is not None
    assert not revoked.active
    async with database.session() as s, s.begin():
        assert await authenticate(s, secret) is None
        assert await count_active_tokens(s) == 0
        again = await revoke_token(s, record.id)
        assert again.revoked_at == revoked.revoked_at  # the first revocation stands
        with pytest.raises(NotFound, match="token 999 does not exist"):
            await revoke_token(s, 999)
        with pytest.raises(NotFound):
            await get_token(s, 999)


async def test_last_used_is_written_at_most_once_a_minute(database: Database) -> None:
    async with database.session() as s, s.begin():
        record, secret = await create_token(s, "api", ["read"], created_by=None)
    t0 = utc_now()
    async with database.session() as s, s.begin():
        first = await authenticate(s, secret, now=t0)
    assert first is not None
    assert first.last_used_at == t0
    async with database.session() as s, s.begin():
        soon = await authenticate(s, secret, now=t0 + timedelta(seconds=30))
    assert soon is not None
    assert soon.last_used_at == t0
    later = t0 + timedelta(minutes=2)
    async with database.session() as s, s.begin():
        again = await authenticate(s, secret, now=later)
    assert again is not None
    assert again.last_used_at == later
    async with database.session() as s:
        assert (await get_token(s, record.id)).last_used_at == later


def test_scopes_nest() -> None:
    assert Scope.ADMIN.includes(Scope.WRITE)
    assert Scope.ADMIN.includes(Scope.READ)
    assert Scope.WRITE.includes(Scope.READ)
    assert not Scope.WRITE.includes(Scope.ADMIN)
    assert not Scope.READ.includes(Scope.WRITE)


async def test_token_scopes_grant(database: Database) -> None:
    async with database.session() as s, s.begin():
        reader, _ = await create_token(s, "r", ["read"], created_by=None)
        admin, _ = await create_token(s, "a", ["admin"], created_by=None)
    assert reader.allows(Scope.READ)
    assert not reader.allows(Scope.WRITE)
    assert admin.allows(Scope.WRITE)
    assert admin.allows(Scope.ADMIN)


async def test_bad_token_requests_list_every_problem(database: Database) -> None:
    async with database.session() as s, s.begin():
        with pytest.raises(ValidationError) as exc:
            await create_token(s, "  ", ["read", "root"], created_by=None)
        assert {e.field for e in exc.value.errors} == {"name", "scopes"}
        with pytest.raises(ValidationError, match="at least one"):
            await create_token(s, "x", [], created_by=None)
        with pytest.raises(ValidationError, match="line breaks"):
            await create_token(s, "a\nb", ["read"], created_by=None)


async def test_list_tokens_includes_revoked(database: Database) -> None:
    async with database.session() as s, s.begin():
        a, _ = await create_token(s, "a", ["read"], created_by=None)
        _b, _ = await create_token(s, "b", ["write", "read"], created_by="a")
        await revoke_token(s, a.id)
    async with database.session() as s:
        tokens = await list_tokens(s)
    assert [(t.name, t.active) for t in tokens] == [("a", False), ("b", True)]
    assert tokens[1].scopes == frozenset({Scope.READ, Scope.WRITE})
