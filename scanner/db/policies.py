"""Policy-layer storage: one row per layer (the org default, a tag, an endpoint).

Storage only: what a layer may say and how layers combine into the policy an
endpoint is judged by are ``scanner.core.policy_layers``; the use cases that
validate and audit changes are ``scanner.usecases.policies``. Writes take
validated ``PolicyFields``; :func:`effective_policies` loads an endpoint's
layers and lets the core resolve them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from scanner.core.policy_layers import (
    POLICY_FIELDS,
    EffectivePolicy,
    PolicyFields,
    PolicyScope,
    check_scope,
    resolve,
    scope_key,
)
from scanner.db.tables import EndpointRow, PolicyRow, utc_now
from scanner.errors import Conflict, NotFound


class Tagged(Protocol):
    """What resolution needs of an endpoint: its id and its tags."""

    @property
    def id(self) -> int: ...

    @property
    def tags(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """A stored policy layer."""

    id: int
    scope: PolicyScope
    tag: str | None
    endpoint_id: int | None
    allowed_origins: tuple[str, ...] | None
    allow_credentials: bool | None
    allowed_methods: tuple[str, ...] | None
    allowed_headers: tuple[str, ...] | None
    exposed_headers: tuple[str, ...] | None
    max_age: int | None
    public: bool | None
    created_at: datetime
    updated_at: datetime

    @property
    def fields(self) -> PolicyFields:
        return PolicyFields(**{name: getattr(self, name) for name in POLICY_FIELDS})

    @property
    def scope_key(self) -> str:
        return scope_key(self.scope, tag=self.tag, endpoint_id=self.endpoint_id)


def _record(row: PolicyRow) -> PolicyRecord:
    def tup(value: list[str] | None) -> tuple[str, ...] | None:
        return None if value is None else tuple(value)

    return PolicyRecord(
        id=row.id,
        scope=PolicyScope(row.scope),
        tag=row.tag,
        endpoint_id=row.endpoint_id,
        allowed_origins=tup(row.allowed_origins),
        allow_credentials=row.allow_credentials,
        allowed_methods=tup(row.allowed_methods),
        allowed_headers=tup(row.allowed_headers),
        exposed_headers=tup(row.exposed_headers),
        max_age=row.max_age,
        public=row.public,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _apply(row: PolicyRow, values: PolicyFields) -> bool:
    """Write ``values`` into ``row``; True when anything changed."""
    changed = False
    for name, value in values.as_mapping().items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


# -- queries ---------------------------------------------------------------


async def list_policies(session: AsyncSession) -> list[PolicyRecord]:
    """Every layer: the default first, then tags by name, then endpoints by id."""
    rows = (await session.scalars(select(PolicyRow))).all()
    order = {PolicyScope.DEFAULT.value: 0, PolicyScope.TAG.value: 1, PolicyScope.ENDPOINT.value: 2}
    rows = sorted(rows, key=lambda r: (order[r.scope], r.tag or "", r.endpoint_id or 0))
    return [_record(r) for r in rows]


async def get_policy(session: AsyncSession, policy_id: int) -> PolicyRecord:
    """One layer by id; ``NotFound`` when there is none."""
    row = await session.get(PolicyRow, policy_id)
    if row is None:
        raise NotFound(f"policy {policy_id} does not exist")
    return _record(row)


async def find_policy(
    session: AsyncSession,
    scope: PolicyScope | str,
    *,
    tag: str | None = None,
    endpoint_id: int | None = None,
) -> PolicyRecord | None:
    """The layer for one scope (``tag`` / ``endpoint_id`` as the scope needs), or None."""
    parsed, tag, endpoint_id = check_scope(scope, tag, endpoint_id)
    key = scope_key(parsed, tag=tag, endpoint_id=endpoint_id)
    row = await session.scalar(select(PolicyRow).where(PolicyRow.scope_key == key))
    return None if row is None else _record(row)


async def endpoint_overrides(
    session: AsyncSession, endpoint_ids: Sequence[int]
) -> dict[int, PolicyRecord]:
    """The endpoint-scope layers of these endpoints, keyed by endpoint id (absent: none)."""
    out: dict[int, PolicyRecord] = {}
    ids = list(endpoint_ids)
    for start in range(0, len(ids), 500):
        keys = [f"endpoint:{i}" for i in ids[start : start + 500]]
        rows = await session.scalars(select(PolicyRow).where(PolicyRow.scope_key.in_(keys)))
        for row in rows:
            if row.endpoint_id is not None:
                out[row.endpoint_id] = _record(row)
    return out


async def put_policy(
    session: AsyncSession,
    scope: PolicyScope | str,
    *,
    tag: str | None = None,
    endpoint_id: int | None = None,
    fields: PolicyFields,
) -> tuple[PolicyRecord, bool]:
    """Create or replace the layer of one scope with ``fields``; True if it was created.

    ``ValidationError`` for a scope without what it needs (a tag, an endpoint
    id), ``NotFound`` when the endpoint does not exist.
    """
    parsed, tag, endpoint_id = check_scope(scope, tag, endpoint_id)
    if parsed is PolicyScope.ENDPOINT and await session.get(EndpointRow, endpoint_id) is None:
        raise NotFound(f"endpoint {endpoint_id} does not exist")
    key = scope_key(parsed, tag=tag, endpoint_id=endpoint_id)
    row = await session.scalar(select(PolicyRow).where(PolicyRow.scope_key == key))
    now = utc_now()
    if row is not None:
        if _apply(row, fields):
            row.updated_at = now
        await session.flush()
        return _record(row), False
    row = PolicyRow(
        scope_key=key,
        scope=parsed.value,
        tag=tag,
        endpoint_id=endpoint_id,
        created_at=now,
        updated_at=now,
    )
    _apply(row, fields)
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise Conflict(f"the {key} policy was created at the same time: retry") from None
    return _record(row), True


async def replace_policy_fields(
    session: AsyncSession, policy_id: int, fields: PolicyFields
) -> PolicyRecord:
    """Give a layer these fields (``updated_at`` moves only on a change); ``NotFound``."""
    row = await session.get(PolicyRow, policy_id)
    if row is None:
        raise NotFound(f"policy {policy_id} does not exist")
    if _apply(row, fields):
        row.updated_at = utc_now()
    await session.flush()
    return _record(row)


async def delete_policy(session: AsyncSession, policy_id: int) -> None:
    """Remove a layer: its scope inherits every field again. ``NotFound`` when absent."""
    result = await session.execute(delete(PolicyRow).where(PolicyRow.id == policy_id))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"policy {policy_id} does not exist")


# -- resolution ------------------------------------------------------------


async def effective_policy(session: AsyncSession, endpoint: Tagged) -> EffectivePolicy:
    """The policy ``endpoint`` is judged by, with each field's source."""
    return (await effective_policies(session, [endpoint]))[endpoint.id]


async def effective_policies(
    session: AsyncSession, endpoints: Sequence[Tagged]
) -> dict[int, EffectivePolicy]:
    """``effective_policy`` for many endpoints in a few queries, keyed by endpoint id."""
    keys = {"default"}
    for ep in endpoints:
        keys.add(f"endpoint:{ep.id}")
        keys.update(f"tag:{t}" for t in ep.tags)
    layers: dict[str, PolicyFields] = {}
    key_list = sorted(keys)
    for start in range(0, len(key_list), 500):
        chunk = key_list[start : start + 500]
        rows = await session.scalars(select(PolicyRow).where(PolicyRow.scope_key.in_(chunk)))
        layers.update((r.scope_key, _record(r).fields) for r in rows)
    return {
        ep.id: resolve(
            layers.get("default"),
            _tag_layers(layers, ep.tags),
            layers.get(f"endpoint:{ep.id}"),
        )
        for ep in endpoints
    }


def _tag_layers(
    layers: dict[str, PolicyFields], tags: Iterable[str]
) -> list[tuple[str, PolicyFields]]:
    return [(t, layers[f"tag:{t}"]) for t in tags if f"tag:{t}" in layers]


__all__ = [
    "PolicyRecord",
    "Tagged",
    "delete_policy",
    "effective_policies",
    "effective_policy",
    "endpoint_overrides",
    "find_policy",
    "get_policy",
    "list_policies",
    "put_policy",
    "replace_policy_fields",
]
