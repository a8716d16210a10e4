"""Endpoint storage: the inventory's rows, their tags, and the queries over them.

Storage only: what an endpoint's fields may be, and how they are written, is
``scanner.core.endpoints``; an import's rules are ``scanner.core.import_rows``;
the use cases that validate, audit and combine these queries are
``scanner.usecases.inventory``. Writes take canonical ``EndpointInput`` values.
An endpoint is unique by (method, url): a second one is ``Conflict``.

Lists are keyset-paginated by id (see ``scanner.db.pagination``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, insert, or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from scanner.core.endpoints import EndpointInput, canonical_tag
from scanner.db.pagination import Page, check_limit, decode_cursor, encode_cursor
from scanner.db.tables import EndpointRow, EndpointTagRow, utc_now
from scanner.errors import Conflict, FieldError, InputError, NotFound, ValidationError

__all__ = [
    "EndpointFilter",
    "EndpointRecord",
    "create_endpoint",
    "create_endpoints",
    "delete_endpoint",
    "endpoints_by_key",
    "get_endpoint",
    "list_endpoints",
    "select_endpoints",
    "update_endpoint",
]

MAX_QUERY_LENGTH = 200


# -- records ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    """A stored endpoint."""

    id: int
    method: str
    url: str
    name: str | None
    owner: str | None
    tags: tuple[str, ...]
    enabled: bool
    notes: str | None
    created_at: datetime
    updated_at: datetime
    # (name, value) pairs; values are secrets (scanner.core.endpoints).
    request_headers: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.url)

    def as_input(self) -> EndpointInput:
        return EndpointInput(
            method=self.method,
            url=self.url,
            name=self.name,
            owner=self.owner,
            tags=self.tags,
            enabled=self.enabled,
            notes=self.notes,
            request_headers=self.request_headers,
        )


@dataclass(frozen=True, slots=True)
class EndpointFilter:
    """Which endpoints to list: every given criterion must hold.

    ``tag``: has this tag; ``owner``: exactly this owner; ``enabled``: this
    state; ``q``: a case-insensitive substring of the URL or the name.
    """

    tag: str | None = None
    owner: str | None = None
    enabled: bool | None = None
    q: str | None = None


def _record(row: EndpointRow, tags: Sequence[str]) -> EndpointRecord:
    return EndpointRecord(
        id=row.id,
        method=row.method,
        url=row.url,
        name=row.name,
        owner=row.owner,
        tags=tuple(sorted(tags)),
        enabled=row.enabled,
        notes=row.notes,
        created_at=row.created_at,
        updated_at=row.updated_at,
        request_headers=_stored_headers(row.request_headers),
    )


def _stored_headers(value: list[list[str]] | None) -> tuple[tuple[str, str], ...]:
    return tuple((str(n), str(v)) for n, v in value or ())


def _headers_column(headers: tuple[tuple[str, str], ...]) -> list[list[str]] | None:
    return [[n, v] for n, v in headers] or None


async def _tags_of(session: AsyncSession, ids: Sequence[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = await session.execute(
            select(EndpointTagRow.endpoint_id, EndpointTagRow.tag).where(
                EndpointTagRow.endpoint_id.in_(chunk)
            )
        )
        for endpoint_id, tag in rows:
            out[endpoint_id].append(tag)
    return out


async def _records(session: AsyncSession, rows: Sequence[EndpointRow]) -> list[EndpointRecord]:
    tags = await _tags_of(session, [r.id for r in rows])
    return [_record(r, tags[r.id]) for r in rows]


def _conditions(flt: EndpointFilter) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if flt.tag is not None:
        try:
            tag = canonical_tag(flt.tag)
        except InputError as exc:
            raise ValidationError([FieldError("tag", exc.message)]) from None
        conds.append(
            EndpointRow.id.in_(select(EndpointTagRow.endpoint_id).where(EndpointTagRow.tag == tag))
        )
    if flt.owner is not None:
        conds.append(EndpointRow.owner == flt.owner.strip())
    if flt.enabled is not None:
        conds.append(EndpointRow.enabled.is_(flt.enabled))
    if flt.q:
        if len(flt.q) > MAX_QUERY_LENGTH:
            raise ValidationError([FieldError("q", f"at most {MAX_QUERY_LENGTH} characters")])
        escaped = flt.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        conds.append(
            or_(
                EndpointRow.url.ilike(pattern, escape="\\"),
                EndpointRow.name.ilike(pattern, escape="\\"),
            )
        )
    return conds


# -- queries ---------------------------------------------------------------


async def list_endpoints(
    session: AsyncSession, flt: EndpointFilter, *, limit: int, cursor: str | None
) -> Page[EndpointRecord]:
    """One page of endpoints matching ``flt``, in id order, after ``cursor``."""
    check_limit(limit)
    after = decode_cursor(cursor)
    stmt = select(EndpointRow).where(*_conditions(flt)).order_by(EndpointRow.id).limit(limit + 1)
    if after is not None:
        stmt = stmt.where(EndpointRow.id > after)
    rows = list((await session.scalars(stmt)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    items = await _records(session, rows)
    next_cursor = encode_cursor(rows[-1].id) if more and rows else None
    return Page(items=tuple(items), next_cursor=next_cursor)


async def select_endpoints(
    session: AsyncSession, flt: EndpointFilter, ids: Sequence[int] | None = None
) -> list[EndpointRecord]:
    """Every endpoint a run should cover, in id order.

    Without ``ids``: those matching ``flt``, enabled ones only unless
    ``flt.enabled`` is set. With ``ids``: those of the ids that exist and
    match ``flt``; an explicitly chosen endpoint is scanned even when
    disabled, unless ``flt.enabled`` says otherwise. Missing ids are skipped
    (the caller compares lengths when it must insist).
    """
    if ids is None and flt.enabled is None:
        flt = EndpointFilter(tag=flt.tag, owner=flt.owner, enabled=True, q=flt.q)
    conds = _conditions(flt)
    rows: list[EndpointRow] = []
    if ids is None:
        rows = list(
            await session.scalars(select(EndpointRow).where(*conds).order_by(EndpointRow.id))
        )
    else:
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            stmt = select(EndpointRow).where(EndpointRow.id.in_(chunk), *conds)
            rows.extend(await session.scalars(stmt.order_by(EndpointRow.id)))
    return await _records(session, rows)


async def owners_and_tags(session: AsyncSession) -> tuple[list[str], list[str]]:
    """Every owner and every tag in the inventory, sorted (for filter choices)."""
    owners = await session.scalars(
        select(EndpointRow.owner).where(EndpointRow.owner.is_not(None)).distinct()
    )
    tags = await session.scalars(select(EndpointTagRow.tag).distinct())
    return sorted(o for o in owners if o), sorted(tags)


async def get_endpoint(session: AsyncSession, endpoint_id: int) -> EndpointRecord:
    """One endpoint by id; ``NotFound`` when there is none."""
    row = await session.get(EndpointRow, endpoint_id)
    if row is None:
        raise NotFound(f"endpoint {endpoint_id} does not exist")
    return (await _records(session, [row]))[0]


async def endpoints_by_key(
    session: AsyncSession, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], EndpointRecord]:
    """The stored endpoints among these canonical (method, url) keys."""
    records: list[EndpointRecord] = []
    for start in range(0, len(keys), 200):
        chunk = keys[start : start + 200]
        rows = list(
            await session.scalars(
                select(EndpointRow).where(tuple_(EndpointRow.method, EndpointRow.url).in_(chunk))
            )
        )
        records.extend(await _records(session, rows))
    return {r.key: r for r in records}


async def _existing_id(session: AsyncSession, method: str, url: str) -> int | None:
    return await session.scalar(
        select(EndpointRow.id).where(EndpointRow.method == method, EndpointRow.url == url)
    )


def _conflict(method: str, url: str, other: int | None) -> Conflict:
    where = f" (endpoint {other})" if other is not None else ""
    return Conflict(f"an endpoint {method} {url} already exists{where}")


async def create_endpoint(session: AsyncSession, data: EndpointInput) -> EndpointRecord:
    """Store a new endpoint (canonical fields); ``Conflict`` when its (method, url) exists."""
    other = await _existing_id(session, data.method, data.url)
    if other is not None:
        raise _conflict(data.method, data.url, other)
    now = utc_now()
    row = EndpointRow(
        method=data.method,
        url=data.url,
        name=data.name,
        owner=data.owner,
        enabled=data.enabled,
        notes=data.notes,
        request_headers=_headers_column(data.request_headers),
        created_at=now,
        updated_at=now,
    )
    try:
        # A savepoint: losing a race to a concurrent insert must not poison the caller's
        # transaction (PostgreSQL aborts a transaction after an error).
        async with session.begin_nested():
            session.add(row)
            await session.flush()
            session.add_all(EndpointTagRow(endpoint_id=row.id, tag=t) for t in data.tags)
    except IntegrityError:
        raise _conflict(data.method, data.url, None) from None
    return _record(row, data.tags)


async def create_endpoints(
    session: AsyncSession, items: Sequence[EndpointInput]
) -> list[EndpointRecord]:
    """Store many new endpoints at once (an import's chunk), in order.

    A few statements whatever the count. ``IntegrityError`` when one of them
    exists already (created concurrently): run it in a savepoint and fall back
    to :func:`create_endpoint` row by row.
    """
    if not items:
        return []
    now = utc_now()
    ids = list(
        (
            await session.scalars(
                insert(EndpointRow).returning(EndpointRow.id, sort_by_parameter_order=True),
                [
                    {
                        "method": d.method,
                        "url": d.url,
                        "name": d.name,
                        "owner": d.owner,
                        "enabled": d.enabled,
                        "notes": d.notes,
                        "request_headers": _headers_column(d.request_headers),
                        "created_at": now,
                        "updated_at": now,
                    }
                    for d in items
                ],
            )
        ).all()
    )
    tags = [{"endpoint_id": i, "tag": t} for i, d in zip(ids, items, strict=True) for t in d.tags]
    if tags:
        await session.execute(insert(EndpointTagRow), tags)
    return [
        EndpointRecord(
            id=i,
            method=d.method,
            url=d.url,
            name=d.name,
            owner=d.owner,
            enabled=d.enabled,
            notes=d.notes,
            request_headers=d.request_headers,
            tags=tuple(sorted(d.tags)),
            created_at=now,
            updated_at=now,
        )
        for i, d in zip(ids, items, strict=True)
    ]


async def update_endpoint(
    session: AsyncSession, endpoint_id: int, data: EndpointInput
) -> EndpointRecord:
    """Replace an endpoint's fields with ``data`` (canonical); ``updated_at`` moves only
    when something changed. ``Conflict`` when the new (method, url) is another
    endpoint's; ``NotFound``."""
    row = await session.get(EndpointRow, endpoint_id)
    if row is None:
        raise NotFound(f"endpoint {endpoint_id} does not exist")
    current = (await _records(session, [row]))[0]
    if data.key != current.key:
        other = await _existing_id(session, data.method, data.url)
        if other is not None and other != endpoint_id:
            raise _conflict(data.method, data.url, other)
    if data == current.as_input():
        return current
    try:
        async with session.begin_nested():
            row.method, row.url = data.method, data.url
            row.name, row.owner, row.notes = data.name, data.owner, data.notes
            row.enabled = data.enabled
            row.request_headers = _headers_column(data.request_headers)
            row.updated_at = utc_now()
            if set(current.tags) != set(data.tags):
                await session.execute(
                    delete(EndpointTagRow).where(EndpointTagRow.endpoint_id == row.id)
                )
                session.add_all(EndpointTagRow(endpoint_id=row.id, tag=t) for t in data.tags)
            await session.flush()
    except IntegrityError:
        raise _conflict(data.method, data.url, None) from None
    return _record(row, data.tags)


async def delete_endpoint(session: AsyncSession, endpoint_id: int) -> None:
    """Remove an endpoint with its tags and policy override; run history stays. ``NotFound``."""
    result = await session.execute(delete(EndpointRow).where(EndpointRow.id == endpoint_id))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"endpoint {endpoint_id} does not exist")
