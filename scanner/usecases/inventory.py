"""The endpoint inventory: add, change, remove, import and export endpoints; read them with
the policy each is judged by.

Every field is validated by the core's rules (``scanner.core.endpoints``,
with the browser's UTS #46 mapping for internationalised hosts) before
anything is stored, and every change is audited in the same transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from scanner.core.endpoints import ENDPOINT_FIELDS, EndpointInput
from scanner.core.import_rows import (
    ImportReport,
    ImportRow,
    RowChange,
    RowError,
    check_rows,
    row_changes,
)
from scanner.core.policy_layers import EffectivePolicy, PolicyScope
from scanner.db import audit, inventory, policies
from scanner.db.inventory import EndpointFilter, EndpointRecord
from scanner.db.pagination import Page
from scanner.db.policies import PolicyRecord
from scanner.errors import FieldError, ScannerError, ValidationError
from scanner.hostnames import uts46_host_encoder
from scanner.importers import ImportFormat, parse_import
from scanner.importers.export import export_endpoints as render_export
from scanner.usecases.context import Context

EXPORT_PAGE = 1000


@dataclass(frozen=True, slots=True)
class EndpointView:
    """An endpoint with its own policy layer (None: it has none) and the policy it is judged
    by, each field with its source."""

    endpoint: EndpointRecord
    override: PolicyRecord | None
    effective: EffectivePolicy


def validate_endpoint(values: Mapping[str, Any]) -> EndpointInput:
    """A new endpoint's fields, canonical; ``ValidationError`` lists every bad one."""
    return EndpointInput.validate(values, encode_host=uts46_host_encoder)


# -- reads -------------------------------------------------------------------------


async def list_endpoints(
    ctx: Context, flt: EndpointFilter, *, limit: int, cursor: str | None = None
) -> Page[EndpointRecord]:
    """One page of endpoints matching ``flt``, in id order."""
    async with ctx.read() as session:
        return await inventory.list_endpoints(session, flt, limit=limit, cursor=cursor)


async def get_endpoint(ctx: Context, endpoint_id: int) -> EndpointRecord:
    """One endpoint; ``NotFound``."""
    async with ctx.read() as session:
        return await inventory.get_endpoint(session, endpoint_id)


async def show_endpoint(ctx: Context, endpoint_id: int) -> EndpointView:
    """One endpoint with its policy layer and effective policy; ``NotFound``."""
    async with ctx.read() as session:
        endpoint = await inventory.get_endpoint(session, endpoint_id)
        return (await _views(session, [endpoint]))[0]


async def list_endpoint_views(
    ctx: Context, flt: EndpointFilter, *, limit: int, cursor: str | None = None
) -> Page[EndpointView]:
    """One page of endpoints, each with its policy layer and effective policy (a few queries
    per page, whatever its size)."""
    async with ctx.read() as session:
        page = await inventory.list_endpoints(session, flt, limit=limit, cursor=cursor)
        return Page(tuple(await _views(session, page.items)), page.next_cursor)


async def _views(session: AsyncSession, endpoints: Sequence[EndpointRecord]) -> list[EndpointView]:
    ids = [e.id for e in endpoints]
    overrides = await policies.endpoint_overrides(session, ids)
    effective = await policies.effective_policies(session, endpoints)
    return [EndpointView(e, overrides.get(e.id), effective[e.id]) for e in endpoints]


# -- changes -------------------------------------------------------------------------


async def create_endpoint(ctx: Context, values: Mapping[str, Any], *, actor: str) -> EndpointRecord:
    """Add an endpoint; audited as ``endpoint.create``. ``ValidationError`` naming every bad
    field; ``Conflict`` when its method and URL exist."""
    data = validate_endpoint(values)
    async with ctx.transaction() as session:
        record = await inventory.create_endpoint(session, data)
        await audit.record(
            session,
            actor=actor,
            action="endpoint.create",
            target_type="endpoint",
            target_id=str(record.id),
            detail={"method": record.method, "url": record.url},
        )
    return record


async def update_endpoint(
    ctx: Context, endpoint_id: int, changes: Mapping[str, Any], *, actor: str
) -> EndpointRecord:
    """Change some fields (a PATCH: given keys replace, ``tags`` the whole set, ``tags: null``
    clears them); audited as ``endpoint.update``. ``ValidationError`` naming every bad
    field, ``Conflict`` when the new method and URL are another endpoint's, ``NotFound``."""
    wanted = dict(changes)
    if "tags" in wanted and wanted["tags"] is None:
        wanted["tags"] = []
    unknown = [FieldError(str(k), "unknown field") for k in wanted if k not in ENDPOINT_FIELDS]
    async with ctx.transaction() as session:
        current = await inventory.get_endpoint(session, endpoint_id)
        merged = current.as_input().as_mapping()
        merged.update({k: v for k, v in wanted.items() if k in ENDPOINT_FIELDS})
        try:
            data = validate_endpoint(merged)
        except ValidationError as exc:
            raise ValidationError([*unknown, *exc.errors]) from None
        if unknown:
            raise ValidationError(unknown)
        record = await inventory.update_endpoint(session, endpoint_id, data)
        await audit.record(
            session,
            actor=actor,
            action="endpoint.update",
            target_type="endpoint",
            target_id=str(record.id),
            detail={"changes": wanted},
        )
    return record


async def delete_endpoint(ctx: Context, endpoint_id: int, *, actor: str) -> EndpointRecord:
    """Remove an endpoint with its tags and policy layer (its run history stays); audited as
    ``endpoint.delete``. The endpoint as it was; ``NotFound``."""
    async with ctx.transaction() as session:
        record = await inventory.get_endpoint(session, endpoint_id)
        await inventory.delete_endpoint(session, record.id)
        await audit.record(
            session,
            actor=actor,
            action="endpoint.delete",
            target_type="endpoint",
            target_id=str(record.id),
            detail={"method": record.method, "url": record.url},
        )
    return record


# -- import and export ---------------------------------------------------------------


async def import_endpoints(
    ctx: Context,
    data: bytes,
    fmt: ImportFormat,
    *,
    actor: str,
    dry_run: bool = False,
    base_url: str | None = None,
    source: str | None = None,
) -> ImportReport:
    """Create or update endpoints (and their policy layers) from an import file.

    Rows are upserted by method + URL (``scanner.core.import_rows``): importing
    the same file again changes nothing, and bad rows, listed in the report's
    ``errors`` with those the parser refused, never stop the valid ones. With
    ``dry_run`` the report says what would happen and nothing is written or
    audited; otherwise the import is audited once as ``endpoint.import``
    (``source`` names the file, when there is one). ``InputError`` when the
    file as a whole cannot be read.
    """
    # Parsing a large YAML document takes a while: keep the event loop free.
    parsed = await asyncio.to_thread(
        parse_import, data, fmt, max_bytes=ctx.settings.max_import_bytes, base_url=base_url
    )
    async with ctx.transaction() as session:
        applied = await _apply_rows(session, parsed.rows, dry_run=dry_run)
        errors = tuple(sorted((*parsed.errors, *applied.errors), key=lambda e: e.row))
        report = ImportReport(
            created=applied.created,
            changed=applied.changed,
            unchanged=applied.unchanged,
            errors=errors,
            changes=applied.changes,
            dry_run=dry_run,
            created_ids=applied.created_ids,
        )
        if not dry_run:
            await audit.record(
                session,
                actor=actor,
                action="endpoint.import",
                target_type="endpoint",
                target_id=None,
                detail={
                    "format": str(fmt),
                    "source": source,
                    "created": len(report.created),
                    "changed": len(report.changed),
                    "unchanged": len(report.unchanged),
                    "errors": len(report.errors),
                },
            )
    return report


async def _apply_rows(
    session: AsyncSession, rows: Sequence[ImportRow], *, dry_run: bool
) -> ImportReport:
    accepted, errors = check_rows(rows, encode_host=uts46_host_encoder)
    existing = await inventory.endpoints_by_key(session, [r.endpoint.key for r in accepted])
    overrides = await policies.endpoint_overrides(session, [e.id for e in existing.values()])
    created: list[tuple[str, str]] = []
    created_ids: list[int] = []
    changed: list[tuple[str, str]] = []
    changes: list[RowChange] = []
    unchanged: list[tuple[str, str]] = []
    for item in accepted:
        key = item.endpoint.key
        current = existing.get(key)
        try:
            if current is None:
                if not dry_run:
                    # A savepoint per row: one failing row rolls back alone.
                    async with session.begin_nested():
                        record = await inventory.create_endpoint(session, item.endpoint)
                        if item.policy is not None and not item.policy.is_empty:
                            await policies.put_policy(
                                session,
                                PolicyScope.ENDPOINT,
                                endpoint_id=record.id,
                                fields=item.policy,
                            )
                    created_ids.append(record.id)
                created.append(key)
                continue
            override = overrides.get(current.id)
            fields, policy_changed = row_changes(
                item, current.as_input(), None if override is None else override.fields
            )
            if not fields:
                unchanged.append(key)
                continue
            if not dry_run:
                async with session.begin_nested():
                    if any(f != "policy" for f in fields):
                        wanted = {
                            f: getattr(item.endpoint, f) for f in ENDPOINT_FIELDS if f in item.given
                        }
                        data = EndpointInput(**{**_input_fields(current.as_input()), **wanted})
                        await inventory.update_endpoint(session, current.id, data)
                    if policy_changed and item.policy is not None:
                        await policies.put_policy(
                            session,
                            PolicyScope.ENDPOINT,
                            endpoint_id=current.id,
                            fields=item.policy,
                        )
            changed.append(key)
            changes.append(RowChange(key[0], key[1], tuple(fields)))
        except (ScannerError, IntegrityError) as exc:
            message = exc.message if isinstance(exc, ScannerError) else "changed concurrently"
            errors.append(RowError(item.row, None, message))
    return ImportReport(
        created=tuple(created),
        changed=tuple(changed),
        unchanged=tuple(unchanged),
        errors=tuple(sorted(errors, key=lambda e: e.row)),
        changes=tuple(changes),
        dry_run=dry_run,
        created_ids=tuple(created_ids),
    )


def _input_fields(data: EndpointInput) -> dict[str, Any]:
    return {name: getattr(data, name) for name in ENDPOINT_FIELDS}


async def export_endpoints(ctx: Context, flt: EndpointFilter, fmt: str) -> tuple[str, int]:
    """The endpoints matching ``flt``, each with its own policy layer, as an import file in
    ``fmt`` (csv, json, yaml) that imports back unchanged; and how many there are."""
    items: list[EndpointRecord] = []
    cursor: str | None = None
    async with ctx.read() as session:
        while True:
            page = await inventory.list_endpoints(session, flt, limit=EXPORT_PAGE, cursor=cursor)
            items.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        overrides = await policies.endpoint_overrides(session, [e.id for e in items])
    pairs = [
        (e.as_input(), None if (o := overrides.get(e.id)) is None else o.fields) for e in items
    ]
    return render_export(pairs, fmt), len(items)


__all__ = [
    "EndpointView",
    "create_endpoint",
    "delete_endpoint",
    "export_endpoints",
    "get_endpoint",
    "import_endpoints",
    "list_endpoint_views",
    "list_endpoints",
    "show_endpoint",
    "update_endpoint",
    "validate_endpoint",
]
