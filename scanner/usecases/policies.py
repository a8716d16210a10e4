"""Policy layers: set, change and remove what the org default, a tag or an endpoint allows.

What a layer may say and how layers combine are ``scanner.core.policy_layers``;
origins are read with the browser's UTS #46 mapping. Every change is audited.
The policy one endpoint is judged by: ``scanner.usecases.inventory.show_endpoint``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from scanner.core.policy_layers import PolicyFields, PolicyScope, scope_key
from scanner.db import audit, policies
from scanner.db.policies import PolicyRecord
from scanner.errors import NotFound
from scanner.hostnames import uts46_host_encoder
from scanner.usecases.context import Context


def validate_fields(values: Mapping[str, Any]) -> PolicyFields:
    """A layer's fields, canonical; ``ValidationError`` names every bad one."""
    return PolicyFields.validate(values, encode_host=uts46_host_encoder)


async def list_policies(ctx: Context) -> list[PolicyRecord]:
    """Every layer: the default first, then tags by name, then endpoints by id."""
    async with ctx.read() as session:
        return await policies.list_policies(session)


async def get_policy(ctx: Context, policy_id: int) -> PolicyRecord:
    """One layer; ``NotFound``."""
    async with ctx.read() as session:
        return await policies.get_policy(session, policy_id)


async def set_policy(
    ctx: Context,
    scope: PolicyScope | str,
    *,
    tag: str | None = None,
    endpoint_id: int | None = None,
    values: Mapping[str, Any],
    actor: str,
) -> tuple[PolicyRecord, bool]:
    """Create or replace the layer of one scope (fields not given inherit); True if created.

    Audited as ``policy.create`` or ``policy.replace``. ``ValidationError``
    names every bad field (scope, tag, origins...); ``NotFound`` for an
    unknown endpoint.
    """
    fields = validate_fields(values)
    async with ctx.transaction() as session:
        record, created = await policies.put_policy(
            session, scope, tag=tag, endpoint_id=endpoint_id, fields=fields
        )
        await audit.record(
            session,
            actor=actor,
            action="policy.create" if created else "policy.replace",
            target_type="policy",
            target_id=str(record.id),
            detail={"scope": record.scope_key, **record.fields.as_mapping()},
        )
    return record, created


async def change_policy(
    ctx: Context, policy_id: int, changes: Mapping[str, Any], *, actor: str
) -> PolicyRecord:
    """Change some fields of a layer (a PATCH: None makes a field inherit again); audited as
    ``policy.update``. ``ValidationError`` (an unknown field too); ``NotFound``."""
    wanted = dict(changes)
    async with ctx.transaction() as session:
        current = await policies.get_policy(session, policy_id)
        fields = validate_fields(current.fields.merged(wanted))
        record = await policies.replace_policy_fields(session, policy_id, fields)
        await audit.record(
            session,
            actor=actor,
            action="policy.update",
            target_type="policy",
            target_id=str(record.id),
            detail={"scope": record.scope_key, "changes": wanted},
        )
    return record


async def delete_policy(ctx: Context, policy_id: int, *, actor: str) -> PolicyRecord:
    """Remove a layer (its scope inherits again); audited as ``policy.delete``. ``NotFound``."""
    async with ctx.transaction() as session:
        record = await policies.get_policy(session, policy_id)
        await _delete(session, record, actor)
    return record


async def unset_policy(
    ctx: Context,
    scope: PolicyScope | str,
    *,
    tag: str | None = None,
    endpoint_id: int | None = None,
    actor: str,
) -> PolicyRecord:
    """Remove the layer of one scope; as :func:`delete_policy`. ``NotFound`` when there is none."""
    async with ctx.transaction() as session:
        record = await policies.find_policy(session, scope, tag=tag, endpoint_id=endpoint_id)
        if record is None:
            key = scope_key(PolicyScope(scope), tag=tag, endpoint_id=endpoint_id)
            raise NotFound(f"there is no {key} policy")
        await _delete(session, record, actor)
    return record


async def _delete(session: AsyncSession, record: PolicyRecord, actor: str) -> None:
    await policies.delete_policy(session, record.id)
    await audit.record(
        session,
        actor=actor,
        action="policy.delete",
        target_type="policy",
        target_id=str(record.id),
        detail={"scope": record.scope_key},
    )


__all__ = [
    "change_policy",
    "delete_policy",
    "get_policy",
    "list_policies",
    "set_policy",
    "unset_policy",
    "validate_fields",
]
