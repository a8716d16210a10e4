"""The endpoint inventory: add, change, remove, import and export endpoints; read them with
the policy each is judged by.

Every field is validated by the core's rules (``scanner.core.endpoints``,
with the browser's UTS #46 mapping for internationalised hosts) before
anything is stored, and every change is audited in the same transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
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
from scanner.errors import FieldError, InputError, ScannerError, ValidationError
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
    data = _keep_stored(validate_endpoint(values), ())
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
        data = _keep_stored(data, current.request_headers)
        record = await inventory.update_endpoint(session, endpoint_id, data)
        if "request_headers" in wanted:
            # The audit log is read by every admin: the names, never the values.
            wanted["request_headers"] = data.public_request_headers
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

    Every row is validated and compared with what is stored before anything
    is written; the writes then commit in chunks of ``IMPORT_CHUNK_ROWS`` rows,
    each its own short transaction, so the API's other writers and the
    workers get the database between two chunks (SQLite has one write lock)
    however large the file. A crash mid-import leaves the chunks committed
    so far, and no audit entry; importing the same file again applies the
    rest and changes nothing else.
    """
    # Parsing and validating 100 000 rows takes seconds: keep the event loop free.
    parsed = await asyncio.to_thread(
        parse_import,
        data,
        fmt,
        max_bytes=ctx.settings.max_import_bytes,
        max_rows=ctx.settings.max_import_rows,
        base_url=base_url,
    )
    accepted, row_errors = await asyncio.to_thread(
        check_rows, parsed.rows, encode_host=uts46_host_encoder
    )
    async with ctx.read() as session:
        existing = await inventory.endpoints_by_key(session, [r.endpoint.key for r in accepted])
        overrides = await policies.endpoint_overrides(session, [e.id for e in existing.values()])
    plan = _plan_rows(accepted, existing, overrides)
    applied = _Applied()
    if not dry_run:
        writes = plan.writes
        pause = IMPORT_PAUSE_S if ctx.database.dialect == "sqlite" else 0.0
        for start in range(0, len(writes), IMPORT_CHUNK_ROWS):
            if start and pause:
                # SQLite hands its write lock to whoever asks first after a commit, and
                # a waiting writer only asks again every few tens of milliseconds: without
                # a pause the next chunk would always win and the workers would starve.
                await asyncio.sleep(pause)
            async with ctx.transaction() as session:
                await _apply_chunk(session, writes[start : start + IMPORT_CHUNK_ROWS], applied)
    errors = tuple(
        sorted((*parsed.errors, *row_errors, *plan.errors, *applied.errors), key=lambda e: e.row)
    )
    failed = {e.row for e in applied.errors}
    report = ImportReport(
        created=tuple(w.key for w in plan.writes if w.current is None and w.row.row not in failed),
        changed=tuple(
            w.key for w in plan.writes if w.current is not None and w.row.row not in failed
        ),
        unchanged=tuple(plan.unchanged),
        errors=errors,
        changes=tuple(
            RowChange(w.key[0], w.key[1], tuple(w.fields))
            for w in plan.writes
            if w.current is not None and w.row.row not in failed
        ),
        dry_run=dry_run,
        created_ids=tuple(applied.created_ids),
    )
    if not dry_run:
        async with ctx.transaction() as session:
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


# Rows written per transaction by an import: a few hundred milliseconds of SQLite's
# write lock, after which every other writer waiting for it gets its turn.
IMPORT_CHUNK_ROWS = 1000
# Seconds an import leaves SQLite's write lock free between two chunks (see above):
# longer than the longest sleep of SQLite's busy handler (100 ms).
IMPORT_PAUSE_S = 0.15


@dataclass(frozen=True, slots=True)
class _Write:
    """One row to write: a new endpoint (``current`` None) or changes to a stored one."""

    row: ImportRow
    current: EndpointRecord | None
    fields: tuple[str, ...] = ()
    policy_changed: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return self.row.endpoint.key


@dataclass(frozen=True, slots=True)
class _Plan:
    writes: list[_Write]
    unchanged: list[tuple[str, str]]
    errors: list[RowError]


@dataclass
class _Applied:
    created_ids: list[int] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def _plan_rows(
    accepted: Sequence[ImportRow],
    existing: Mapping[tuple[str, str], EndpointRecord],
    overrides: Mapping[int, PolicyRecord],
) -> _Plan:
    """What the import will write, from the rows and what is stored now (nothing written)."""
    writes: list[_Write] = []
    unchanged: list[tuple[str, str]] = []
    errors: list[RowError] = []
    for item in accepted:
        current = existing.get(item.endpoint.key)
        try:
            # "[redacted]" (what every output shows) keeps the stored value of that header.
            stored = () if current is None else current.request_headers
            item = replace(item, endpoint=item.endpoint.with_stored_headers(stored))
        except InputError as exc:
            errors.append(RowError(item.row, "request_headers", exc.message))
            continue
        if current is None:
            writes.append(_Write(item, None))
            continue
        override = overrides.get(current.id)
        fields, policy_changed = row_changes(
            item, current.as_input(), None if override is None else override.fields
        )
        if not fields:
            unchanged.append(item.endpoint.key)
            continue
        writes.append(_Write(item, current, tuple(fields), policy_changed))
    return _Plan(writes, unchanged, errors)


async def _apply_chunk(session: AsyncSession, writes: Sequence[_Write], applied: _Applied) -> None:
    # Runs of new endpoints without a policy layer (most of a bulk import) take a few
    # statements each, in row order (ids follow the file). Should one of a run have
    # been created meanwhile, its savepoint undoes the run and each row is written on
    # its own, the one that exists becoming that row's error.
    pending: list[_Write] = []
    for write in [*writes, None]:
        if write is not None and write.current is None and _no_policy(write.row):
            pending.append(write)
            continue
        if pending and not await _create_run(session, pending, applied):
            for single in pending:
                await _apply_one(session, single, applied)
        pending = []
        if write is not None:
            await _apply_one(session, write, applied)


def _no_policy(row: ImportRow) -> bool:
    return row.policy is None or row.policy.is_empty


async def _create_run(session: AsyncSession, writes: Sequence[_Write], applied: _Applied) -> bool:
    try:
        async with session.begin_nested():
            records = await inventory.create_endpoints(session, [w.row.endpoint for w in writes])
    except IntegrityError:
        return False
    applied.created_ids.extend(r.id for r in records)
    return True


async def _apply_one(session: AsyncSession, write: _Write, applied: _Applied) -> None:
    item, current = write.row, write.current
    try:
        # A savepoint per row: one failing row (changed concurrently) rolls back alone.
        async with session.begin_nested():
            if current is None:
                record = await inventory.create_endpoint(session, item.endpoint)
                if item.policy is not None and not item.policy.is_empty:
                    await policies.put_policy(
                        session, PolicyScope.ENDPOINT, endpoint_id=record.id, fields=item.policy
                    )
                applied.created_ids.append(record.id)
                return
            if any(f != "policy" for f in write.fields):
                wanted = {f: getattr(item.endpoint, f) for f in ENDPOINT_FIELDS if f in item.given}
                data = EndpointInput(**{**_input_fields(current.as_input()), **wanted})
                await inventory.update_endpoint(session, current.id, data)
            if write.policy_changed and item.policy is not None:
                await policies.put_policy(
                    session, PolicyScope.ENDPOINT, endpoint_id=current.id, fields=item.policy
                )
    except (ScannerError, IntegrityError) as exc:
        message = exc.message if isinstance(exc, ScannerError) else "changed concurrently"
        applied.errors.append(RowError(item.row, None, message))


def _keep_stored(data: EndpointInput, stored: tuple[tuple[str, str], ...]) -> EndpointInput:
    """``data`` with ``[redacted]`` header values resolved; a ``ValidationError`` naming the
    field otherwise (as every other field's error)."""
    try:
        return data.with_stored_headers(stored)
    except InputError as exc:
        raise ValidationError([FieldError("request_headers", exc.message)]) from None


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
