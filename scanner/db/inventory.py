"""The endpoint inventory: what to scan, who owns it, and how it is tagged.

An endpoint is unique by (method, url). Input is validated and normalised
before it reaches the database, so the same endpoint written two ways
(``HTTPS://API.acme.com:443`` and ``https://api.acme.com/``) is one row:

- ``url``: absolute http(s), a host, no user name or password, no spaces or
  control characters, no fragment (browsers never send one); scheme and host
  lower-cased, the scheme's default port dropped, an empty path becomes
  ``/``, non-ASCII characters in the path and query percent-encoded;
- ``method``: an HTTP token, upper-cased; CONNECT, TRACE and TRACK are
  refused (no browser can send them cross-origin);
- ``tags``: lower-cased, ``[a-z0-9][a-z0-9._:/@+-]*``, at most 100 characters,
  sorted and de-duplicated.

Lists are keyset-paginated by id (see ``scanner.db.pagination``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from sqlalchemy import ColumnElement, delete, or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from scanner.core.origin import Origin, masked_url
from scanner.db.pagination import Page, check_limit, decode_cursor, encode_cursor
from scanner.db.policies import (
    PolicyFields,
    PolicyRecord,
    PolicyScope,
    endpoint_overrides,
    put_policy,
)
from scanner.db.tables import (
    METHOD_LENGTH,
    NAME_LENGTH,
    OWNER_LENGTH,
    TAG_LENGTH,
    EndpointRow,
    EndpointTagRow,
    utc_now,
)
from scanner.errors import (
    Conflict,
    FieldError,
    InputError,
    InvalidURL,
    NotFound,
    ScannerError,
    ValidationError,
)

__all__ = [
    "ENDPOINT_FIELDS",
    "EndpointFilter",
    "EndpointInput",
    "EndpointRecord",
    "FieldError",
    "ImportReport",
    "ImportRow",
    "Page",
    "RowChange",
    "RowError",
    "ValidationError",
    "create_endpoint",
    "delete_endpoint",
    "get_endpoint",
    "get_endpoint_by_key",
    "list_endpoints",
    "normalise_method",
    "normalise_tag",
    "normalise_url",
    "select_endpoints",
    "update_endpoint",
    "upsert_endpoints",
]

MAX_URL_LENGTH = 2048  # longer URLs break proxies and btree indexes alike
MAX_NOTES_LENGTH = 10_000
MAX_TAGS = 50
MAX_QUERY_LENGTH = 200
ENDPOINT_FIELDS: tuple[str, ...] = ("method", "url", "name", "owner", "tags", "enabled", "notes")

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_TAG = re.compile(r"[a-z0-9][a-z0-9._:/@+\-]*\Z")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Fetch's forbidden methods: a page can never send them, so CORS does not apply.
FORBIDDEN_METHODS = frozenset({"CONNECT", "TRACE", "TRACK"})


# -- validation ------------------------------------------------------------


def normalise_method(value: object) -> str:
    """An HTTP method token, upper-cased. ``InputError`` otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise InputError("expected an HTTP method such as GET")
    method = value.strip().upper()
    if len(method) > METHOD_LENGTH or not _TOKEN.match(method):
        raise InputError(f"{value!r} is not an HTTP method")
    if method in FORBIDDEN_METHODS:
        raise InputError(f"{method} is a forbidden method: browsers never send it cross-origin")
    return method


def normalise_url(value: object) -> str:
    """The canonical form of an endpoint URL (see module docstring). ``InvalidURL`` otherwise."""
    if not isinstance(value, str) or not value:
        raise InvalidURL("expected an absolute http(s) URL such as https://api.example.com/v1")
    shown = masked_url(value)  # never echo a password back
    if len(value) > MAX_URL_LENGTH:
        raise InvalidURL(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if _CONTROL.search(value):
        raise InvalidURL(f"{shown!r}: a URL has no spaces or control characters (CR, LF, tab)")
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise InvalidURL(f"{shown!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidURL(f"{shown!r}: expected an absolute http:// or https:// URL")
    if not parts.netloc or parts.netloc.startswith(":"):
        raise InvalidURL(f"{shown!r}: the URL has no host")
    if "@" in parts.netloc:
        raise InvalidURL(f"{shown!r}: remove the user name and password from the URL")
    if "#" in value:
        raise InvalidURL(f"{shown!r}: remove the #fragment (browsers never send it)")
    origin = Origin.from_url(value)
    netloc = origin.host if origin.port is None else f"{origin.host}:{origin.port}"

    def encode(text: str) -> str:
        return _NON_ASCII.sub(lambda m: quote(m.group(), safe=""), text)

    return urlunsplit((origin.scheme, netloc, encode(parts.path) or "/", encode(parts.query), ""))


def normalise_tag(value: object) -> str:
    """A tag, lower-cased. ``InputError`` when empty, too long, or with other characters."""
    if not isinstance(value, str):
        raise InputError(f"a tag is a string, not {type(value).__name__}")
    tag = value.strip().lower()
    if not tag:
        raise InputError("a tag cannot be empty")
    if len(tag) > TAG_LENGTH:
        raise InputError(f"tag {value!r} is longer than {TAG_LENGTH} characters")
    if not _TAG.match(tag):
        raise InputError(
            f"tag {value!r}: use letters, digits and . _ : / @ + -, starting with a letter or digit"
        )
    return tag


def _optional_text(value: object, limit: int, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"expected text, not {type(value).__name__}")
    text = value.replace("\r\n", "\n").strip()
    if len(text) > limit:
        raise InputError(f"the {what} is longer than {limit} characters")
    # Control characters other than line breaks and tabs (ESC, C1 controls) would drive
    # the terminal of whoever lists the inventory.
    if _TEXT_CONTROL.search(text):
        raise InputError(f"the {what} contains a control character")
    return text or None


def _line(value: object, limit: int, what: str) -> str | None:
    text = _optional_text(value, limit, what)
    if text is not None and _CONTROL.search(text.replace(" ", "")):
        raise InputError(f"the {what} is one line: no line breaks, tabs or control characters")
    return text


@dataclass(frozen=True, slots=True)
class EndpointInput:
    """A new endpoint as a user wrote it; ``validate`` builds a normalised one."""

    method: str
    url: str
    name: str | None = None
    owner: str | None = None
    tags: tuple[str, ...] = ()
    enabled: bool = True
    notes: str | None = None

    @classmethod
    def validate(cls, values: Mapping[str, Any]) -> EndpointInput:
        """Validate and normalise every field; ``ValidationError`` lists every bad one.

        ``url`` is required; ``method`` defaults to GET. Unknown keys are errors.
        """
        errors: list[FieldError] = []
        clean: dict[str, Any] = {}
        for key in values:
            if key not in ENDPOINT_FIELDS:
                errors.append(FieldError(str(key), "unknown field"))
        checks: dict[str, Any] = {
            "method": lambda v: normalise_method("GET" if v is None else v),
            "url": normalise_url,
            "name": lambda v: _line(v, NAME_LENGTH, "name"),
            "owner": lambda v: _line(v, OWNER_LENGTH, "owner"),
            "tags": _tags,
            "enabled": _enabled,
            "notes": lambda v: _optional_text(v, MAX_NOTES_LENGTH, "notes"),
        }
        for name, check in checks.items():
            if name not in values and name != "url":
                continue
            try:
                clean[name] = check(values.get(name))
            except ScannerError as exc:
                errors.append(FieldError(name, exc.message))
        if errors:
            raise ValidationError(errors)
        clean.setdefault("method", "GET")
        return cls(**clean)

    def as_mapping(self) -> dict[str, Any]:
        """The fields as a JSON-ready mapping (tags as a list)."""
        return {
            "method": self.method,
            "url": self.url,
            "name": self.name,
            "owner": self.owner,
            "tags": list(self.tags),
            "enabled": self.enabled,
            "notes": self.notes,
        }


def _tags(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InputError("expected a list of tags")
    if len(value) > MAX_TAGS:
        raise InputError(f"at most {MAX_TAGS} tags, not {len(value)}")
    problems: list[str] = []
    tags: set[str] = set()
    for item in value:
        try:
            tags.add(normalise_tag(item))
        except InputError as exc:
            problems.append(exc.message)
    if problems:
        raise InputError("; ".join(problems))
    return tuple(sorted(tags))


def _enabled(value: object) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"expected true or false, not {value!r}")
    return value


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
    )


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
            tag = normalise_tag(flt.tag)
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
    """Every endpoint a scan should cover, in id order.

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


async def get_endpoint_by_key(
    session: AsyncSession, method: str, url: str
) -> EndpointRecord | None:
    """The endpoint with this method and URL (normalised first), or None."""
    key = (normalise_method(method), normalise_url(url))
    row = await session.scalar(
        select(EndpointRow).where(EndpointRow.method == key[0], EndpointRow.url == key[1])
    )
    return None if row is None else (await _records(session, [row]))[0]


async def _existing_id(session: AsyncSession, method: str, url: str) -> int | None:
    return await session.scalar(
        select(EndpointRow.id).where(EndpointRow.method == method, EndpointRow.url == url)
    )


def _conflict(method: str, url: str, other: int | None) -> Conflict:
    where = f" (endpoint {other})" if other is not None else ""
    return Conflict(f"an endpoint {method} {url} already exists{where}")


async def create_endpoint(session: AsyncSession, data: EndpointInput) -> EndpointRecord:
    """Store a new endpoint. ``ValidationError`` for bad fields, ``Conflict`` on (method, url)."""
    clean = EndpointInput.validate(data.as_mapping())
    other = await _existing_id(session, clean.method, clean.url)
    if other is not None:
        raise _conflict(clean.method, clean.url, other)
    now = utc_now()
    row = EndpointRow(
        method=clean.method,
        url=clean.url,
        name=clean.name,
        owner=clean.owner,
        enabled=clean.enabled,
        notes=clean.notes,
        created_at=now,
        updated_at=now,
    )
    try:
        # A savepoint: losing a race to a concurrent insert must not poison the caller's
        # transaction (PostgreSQL aborts a transaction after an error).
        async with session.begin_nested():
            session.add(row)
            await session.flush()
            session.add_all(EndpointTagRow(endpoint_id=row.id, tag=t) for t in clean.tags)
    except IntegrityError:
        raise _conflict(clean.method, clean.url, None) from None
    return _record(row, clean.tags)


async def update_endpoint(
    session: AsyncSession, endpoint_id: int, changes: Mapping[str, Any]
) -> EndpointRecord:
    """Change some fields (PATCH): given keys replace, ``tags`` replaces the whole set.

    ``ValidationError`` lists every bad field; ``Conflict`` when the new
    (method, url) belongs to another endpoint; ``NotFound``.
    """
    row = await session.get(EndpointRow, endpoint_id)
    if row is None:
        raise NotFound(f"endpoint {endpoint_id} does not exist")
    current = (await _records(session, [row]))[0]
    unknown = [FieldError(str(k), "unknown field") for k in changes if k not in ENDPOINT_FIELDS]
    merged = current.as_input().as_mapping()
    merged.update({k: v for k, v in changes.items() if k in ENDPOINT_FIELDS})
    try:
        clean = EndpointInput.validate(merged)
    except ValidationError as exc:
        raise ValidationError([*unknown, *exc.errors]) from None
    if unknown:
        raise ValidationError(unknown)
    if (clean.method, clean.url) != current.key:
        other = await _existing_id(session, clean.method, clean.url)
        if other is not None and other != endpoint_id:
            raise _conflict(clean.method, clean.url, other)
    if clean == current.as_input():
        return current
    try:
        async with session.begin_nested():
            await _write(session, row, clean, current.tags)
    except IntegrityError:
        raise _conflict(clean.method, clean.url, None) from None
    return _record(row, clean.tags)


async def _write(
    session: AsyncSession, row: EndpointRow, clean: EndpointInput, old_tags: Sequence[str]
) -> None:
    row.method, row.url = clean.method, clean.url
    row.name, row.owner, row.notes = clean.name, clean.owner, clean.notes
    row.enabled = clean.enabled
    row.updated_at = utc_now()
    if set(old_tags) != set(clean.tags):
        await session.execute(delete(EndpointTagRow).where(EndpointTagRow.endpoint_id == row.id))
        session.add_all(EndpointTagRow(endpoint_id=row.id, tag=t) for t in clean.tags)
    await session.flush()


async def delete_endpoint(session: AsyncSession, endpoint_id: int) -> None:
    """Remove an endpoint with its tags and policy override; scan history stays. ``NotFound``."""
    result = await session.execute(delete(EndpointRow).where(EndpointRow.id == endpoint_id))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"endpoint {endpoint_id} does not exist")


# -- import ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One endpoint read from an import file, with its optional policy override.

    ``row`` is where it came from (CSV: the line number, header = 1; JSON and
    YAML: the position in the list, from 1; OpenAPI: the operation's
    position). ``given`` names the endpoint fields the source set: only those
    change an existing endpoint, so a file without an ``owner`` column keeps
    the owners set elsewhere. ``policy`` None leaves the override as it is.
    """

    row: int
    endpoint: EndpointInput
    given: frozenset[str] = frozenset(ENDPOINT_FIELDS)
    policy: PolicyFields | None = None


@dataclass(frozen=True, slots=True)
class RowError:
    """A row that was not imported: where (row, field when known) and why."""

    row: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", {self.field}" if self.field else "")
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class RowChange:
    """What an import changes (or would change) on an existing endpoint."""

    method: str
    url: str
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ImportReport:
    """The outcome of an import, every row accounted for.

    ``created``, ``changed`` and ``unchanged`` list (method, url) keys;
    ``changes`` says which fields each changed endpoint got; ``errors`` lists
    the rows left out. With ``dry_run`` nothing was written.
    """

    created: tuple[tuple[str, str], ...] = ()
    changed: tuple[tuple[str, str], ...] = ()
    unchanged: tuple[tuple[str, str], ...] = ()
    errors: tuple[RowError, ...] = ()
    changes: tuple[RowChange, ...] = ()
    dry_run: bool = False
    created_ids: tuple[int, ...] = field(default=())


async def upsert_endpoints(
    session: AsyncSession, rows: Sequence[ImportRow], *, dry_run: bool
) -> ImportReport:
    """Create or update endpoints keyed by (method, url); idempotent.

    A second import of the same rows reports every row unchanged. Bad rows
    (invalid fields, a (method, url) already seen earlier in the same file)
    are reported in ``errors`` and never stop the valid ones. With
    ``dry_run`` the report says what would happen and nothing is written.
    """
    errors: list[RowError] = []
    accepted: list[tuple[ImportRow, EndpointInput]] = []
    first_row: dict[tuple[str, str], int] = {}
    for item in rows:
        try:
            clean = EndpointInput.validate(item.endpoint.as_mapping())
            policy = (
                PolicyFields.validate(item.policy.as_mapping()) if item.policy is not None else None
            )
        except ValidationError as exc:
            errors.extend(RowError(item.row, e.field, e.message) for e in exc.errors)
            continue
        key = (clean.method, clean.url)
        if key in first_row:
            errors.append(
                RowError(item.row, "url", f"{key[0]} {key[1]} is already on row {first_row[key]}")
            )
            continue
        first_row[key] = item.row
        accepted.append((ImportRow(item.row, clean, item.given, policy), clean))

    existing = await _load_by_keys(session, [(c.method, c.url) for _, c in accepted])
    created: list[tuple[str, str]] = []
    created_ids: list[int] = []
    changed: list[tuple[str, str]] = []
    changes: list[RowChange] = []
    unchanged: list[tuple[str, str]] = []
    for item, clean in accepted:
        key = (clean.method, clean.url)
        current = existing.get(key)
        try:
            if current is None:
                if not dry_run:
                    async with session.begin_nested():
                        record = await create_endpoint(session, clean)
                        if item.policy is not None and not item.policy.is_empty:
                            await put_policy(
                                session,
                                PolicyScope.ENDPOINT,
                                endpoint_id=record.id,
                                fields=item.policy,
                            )
                    created_ids.append(record.id)
                created.append(key)
                continue
            record, override = current
            diff = _diff(record, clean, item.given)
            policy_changed = item.policy is not None and _policy_differs(override, item.policy)
            if policy_changed:
                diff.append("policy")
            if not diff:
                unchanged.append(key)
                continue
            if not dry_run:
                async with session.begin_nested():
                    wanted = {f: getattr(clean, f) for f in ENDPOINT_FIELDS if f in item.given}
                    if any(f != "policy" for f in diff):
                        await update_endpoint(
                            session,
                            record.id,
                            {k: list(v) if k == "tags" else v for k, v in wanted.items()},
                        )
                    if policy_changed and item.policy is not None:
                        await put_policy(
                            session,
                            PolicyScope.ENDPOINT,
                            endpoint_id=record.id,
                            fields=item.policy,
                        )
            changed.append(key)
            changes.append(RowChange(key[0], key[1], tuple(diff)))
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


def _diff(record: EndpointRecord, clean: EndpointInput, given: frozenset[str]) -> list[str]:
    return [
        name
        for name in ENDPOINT_FIELDS
        if name in given
        and name not in ("method", "url")
        and getattr(record, name) != getattr(clean, name)
    ]


def _policy_differs(current: PolicyRecord | None, wanted: PolicyFields) -> bool:
    if current is None:
        return not wanted.is_empty
    return current.fields != wanted


async def _load_by_keys(
    session: AsyncSession, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[EndpointRecord, PolicyRecord | None]]:
    """The stored endpoints among ``keys``, each with its policy override."""
    records: list[EndpointRecord] = []
    for start in range(0, len(keys), 200):
        chunk = keys[start : start + 200]
        rows = list(
            await session.scalars(
                select(EndpointRow).where(tuple_(EndpointRow.method, EndpointRow.url).in_(chunk))
            )
        )
        records.extend(await _records(session, rows))
    overrides = await endpoint_overrides(session, [r.id for r in records])
    return {r.key: (r, overrides.get(r.id)) for r in records}
