"""Policy layers (org default, per tag, per endpoint) and the effective policy of an endpoint.

Every layer stores only what it says; a NULL field inherits from the layer
below. Resolution, field by field, lowest to highest precedence::

    builtin  ->  default  ->  tags  ->  endpoint

``builtin`` is ``scanner.core.policy.Policy()``: no cross-origin reader, no
credentials, nothing public.

**When two tags of one endpoint disagree**, the tag layers that set a field
are merged into the *strictest* value they all accept, never "the last one
wins" (which would make the security posture depend on how tags sort):

- ``allowed_origins``: the intersection, pattern-aware (``https://app.acme.com``
  survives against ``https://*.acme.com``; two unrelated lists give ``[]``,
  i.e. no legitimate cross-origin reader);
- ``allowed_methods``, ``allowed_headers``, ``exposed_headers``: the intersection;
- ``allow_credentials``, ``public``: true only if every such tag says true;
- ``max_age``: the smallest.

A stricter policy can only add findings, so a conflict surfaces as a finding a
human looks at instead of silently widening what is "legitimate". The source
of a merged field names every contributing tag: ``tag:a,tag:b``.

``public`` and ``allow_credentials`` cannot both hold (browsers refuse ``*``
with credentials). When layers combine into both, the one set by the more
specific layer wins and the other becomes false with the winner's source; if
both come from the tag merge, both become false.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from scanner.core.policy import OriginPattern, Policy
from scanner.db.tables import EndpointRow, PolicyRow, utc_now
from scanner.errors import (
    Conflict,
    FieldError,
    InputError,
    InvalidPolicy,
    NotFound,
    ValidationError,
)

if TYPE_CHECKING:
    from scanner.db.inventory import EndpointRecord

MAX_LIST_ITEMS = 500  # origins, methods or headers in one policy field
MAX_MAX_AGE = 31_536_000  # a year: anything longer is a typo

POLICY_FIELDS: tuple[str, ...] = (
    "allowed_origins",
    "allow_credentials",
    "allowed_methods",
    "allowed_headers",
    "exposed_headers",
    "max_age",
    "public",
)
_LIST_FIELDS = ("allowed_origins", "allowed_methods", "allowed_headers", "exposed_headers")
_BOOL_FIELDS = ("allow_credentials", "public")


class PolicyScope(StrEnum):
    """Which endpoints a policy layer covers."""

    DEFAULT = "default"
    TAG = "tag"
    ENDPOINT = "endpoint"


@dataclass(frozen=True, slots=True)
class PolicyFields:
    """The values of one policy layer, validated and normalised; None means "inherit".

    Origins are stored in their canonical form (``str(OriginPattern)``),
    methods upper case, header names lower case, duplicates removed.
    """

    allowed_origins: tuple[str, ...] | None = None
    allow_credentials: bool | None = None
    allowed_methods: tuple[str, ...] | None = None
    allowed_headers: tuple[str, ...] | None = None
    exposed_headers: tuple[str, ...] | None = None
    max_age: int | None = None
    public: bool | None = None

    @classmethod
    def validate(cls, values: Mapping[str, Any]) -> PolicyFields:
        """Validate user-written fields; ``ValidationError`` lists every bad one.

        Unknown keys are errors (a typo such as ``allowed_origin`` must not
        silently mean "inherit").
        """
        errors: list[FieldError] = []
        clean: dict[str, Any] = {}
        for key in values:
            if key not in POLICY_FIELDS:
                errors.append(FieldError(str(key), "unknown policy field"))
        for name in POLICY_FIELDS:
            if name not in values or values[name] is None:
                continue
            try:
                clean[name] = _normalise(name, values[name])
            except InvalidPolicy as exc:
                errors.append(FieldError(name, exc.message))
        if clean.get("public") is True and clean.get("allow_credentials") is True:
            errors.append(
                FieldError(
                    "public",
                    "a public endpoint ('*') cannot also allow credentials: browsers refuse "
                    "'Access-Control-Allow-Origin: *' with credentials",
                )
            )
        if errors:
            raise ValidationError(errors)
        return cls(**clean)

    def as_mapping(self) -> dict[str, Any]:
        """Every field, JSON-ready (lists, not tuples); None for inherited ones."""
        out: dict[str, Any] = {}
        for name in POLICY_FIELDS:
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    @property
    def is_empty(self) -> bool:
        """True when the layer sets nothing (inherits every field)."""
        return all(getattr(self, name) is None for name in POLICY_FIELDS)

    def merged(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """This layer's fields with ``changes`` applied (PATCH): a None value clears a field."""
        base = self.as_mapping()
        base.update(changes)
        return base


def _normalise(name: str, value: Any) -> Any:
    if name in _BOOL_FIELDS:
        if not isinstance(value, bool):
            raise InvalidPolicy(f"expected true or false, not {value!r}")
        return value
    if name == "max_age":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidPolicy(f"expected a whole number of seconds >= 0, not {value!r}")
        if value > MAX_MAX_AGE:
            raise InvalidPolicy(f"{value} seconds is more than a year: is it a typo?")
        return value
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidPolicy(f"expected a list, not {type(value).__name__}")
    if len(value) > MAX_LIST_ITEMS:
        raise InvalidPolicy(f"at most {MAX_LIST_ITEMS} entries, not {len(value)}")
    problems: list[str] = []
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            problems.append(f"{item!r} is not a string")
            continue
        try:
            out.append(_normalise_item(name, item))
        except InvalidPolicy as exc:
            problems.append(exc.message)
    if problems:
        raise InvalidPolicy("; ".join(problems))
    return tuple(dict.fromkeys(out))


def _normalise_item(name: str, item: str) -> str:
    # Policy.build is the one place that knows the rules (safe origin patterns, tokens).
    if name == "allowed_origins":
        return str(OriginPattern.parse(item))
    if name == "allowed_methods":
        return Policy.build(allowed_methods=[item]).allowed_methods[0].upper()
    if name == "allowed_headers":
        return Policy.build(allowed_headers=[item]).allowed_headers[0]
    return Policy.build(exposed_headers=[item]).exposed_headers[0]


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


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """The policy an endpoint is judged by, and where each field came from.

    ``sources`` maps every field of ``POLICY_FIELDS`` to ``builtin``,
    ``default``, ``tag:<t>`` (``tag:a,tag:b`` when several tags were merged) or
    ``endpoint``.
    """

    policy: Policy
    sources: dict[str, str] = field(default_factory=dict)


def scope_key(scope: PolicyScope, *, tag: str | None = None, endpoint_id: int | None = None) -> str:
    """The unique key of a layer: ``default``, ``tag:<tag>`` or ``endpoint:<id>``."""
    if scope is PolicyScope.DEFAULT:
        return "default"
    if scope is PolicyScope.TAG:
        return f"tag:{tag}"
    return f"endpoint:{endpoint_id}"


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
    parsed, tag, endpoint_id = _check_scope(scope, tag, endpoint_id)
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


def _check_scope(
    scope: PolicyScope | str, tag: str | None, endpoint_id: int | None
) -> tuple[PolicyScope, str | None, int | None]:
    from scanner.db.inventory import normalise_tag

    errors: list[FieldError] = []
    try:
        parsed = PolicyScope(scope)
    except ValueError:
        raise ValidationError(
            [FieldError("scope", f"expected one of default, tag, endpoint, not {scope!r}")]
        ) from None
    if parsed is PolicyScope.TAG:
        if tag is None:
            errors.append(FieldError("tag", "required when the scope is tag"))
        else:
            try:
                tag = normalise_tag(tag)
            except InputError as exc:
                errors.append(FieldError("tag", exc.message))
    elif tag is not None:
        errors.append(FieldError("tag", f"only for the tag scope, not {parsed.value}"))
    if parsed is PolicyScope.ENDPOINT:
        if endpoint_id is None:
            errors.append(FieldError("endpoint_id", "required when the scope is endpoint"))
        elif not isinstance(endpoint_id, int) or isinstance(endpoint_id, bool):
            errors.append(FieldError("endpoint_id", f"expected an id, not {endpoint_id!r}"))
    elif endpoint_id is not None:
        errors.append(FieldError("endpoint_id", f"only for the endpoint scope, not {parsed.value}"))
    if errors:
        raise ValidationError(errors)
    return parsed, tag, endpoint_id


async def put_policy(
    session: AsyncSession,
    scope: PolicyScope | str,
    *,
    tag: str | None = None,
    endpoint_id: int | None = None,
    fields: Mapping[str, Any] | PolicyFields,
) -> tuple[PolicyRecord, bool]:
    """Create or replace the layer of one scope (PUT: absent fields inherit); True if created.

    ``ValidationError`` names every bad field (scope, tag, origins...);
    ``NotFound`` when the endpoint does not exist.
    """
    parsed, tag, endpoint_id = _check_scope(scope, tag, endpoint_id)
    values = fields if isinstance(fields, PolicyFields) else PolicyFields.validate(fields)
    if parsed is PolicyScope.ENDPOINT and await session.get(EndpointRow, endpoint_id) is None:
        raise NotFound(f"endpoint {endpoint_id} does not exist")
    key = scope_key(parsed, tag=tag, endpoint_id=endpoint_id)
    row = await session.scalar(select(PolicyRow).where(PolicyRow.scope_key == key))
    now = utc_now()
    if row is not None:
        if _apply(row, values):
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
    _apply(row, values)
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise Conflict(f"the {key} policy was created at the same time: retry") from None
    return _record(row), True


async def patch_policy(
    session: AsyncSession, policy_id: int, fields: Mapping[str, Any]
) -> PolicyRecord:
    """Change some fields of a layer (PATCH: a None value makes the field inherit again)."""
    row = await session.get(PolicyRow, policy_id)
    if row is None:
        raise NotFound(f"policy {policy_id} does not exist")
    current = _record(row).fields
    values = PolicyFields.validate(current.merged(fields))
    if _apply(row, values):
        row.updated_at = utc_now()
    await session.flush()
    return _record(row)


async def delete_policy(session: AsyncSession, policy_id: int) -> None:
    """Remove a layer: its scope inherits every field again. ``NotFound`` when absent."""
    result = await session.execute(delete(PolicyRow).where(PolicyRow.id == policy_id))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"policy {policy_id} does not exist")


# -- resolution ------------------------------------------------------------


async def effective_policy(session: AsyncSession, endpoint: EndpointRecord) -> EffectivePolicy:
    """The policy ``endpoint`` is judged by, with each field's source (see module docstring)."""
    return (await effective_policies(session, [endpoint]))[endpoint.id]


async def effective_policies(
    session: AsyncSession, endpoints: Sequence[EndpointRecord]
) -> dict[int, EffectivePolicy]:
    """``effective_policy`` for many endpoints in a few queries, keyed by endpoint id."""
    keys = {"default"}
    for ep in endpoints:
        keys.add(f"endpoint:{ep.id}")
        keys.update(f"tag:{t}" for t in ep.tags)
    layers: dict[str, PolicyRecord] = {}
    key_list = sorted(keys)
    for start in range(0, len(key_list), 500):
        chunk = key_list[start : start + 500]
        rows = await session.scalars(select(PolicyRow).where(PolicyRow.scope_key.in_(chunk)))
        layers.update((r.scope_key, _record(r)) for r in rows)
    return {
        ep.id: resolve(
            layers.get("default"),
            [layers[f"tag:{t}"] for t in sorted(ep.tags) if f"tag:{t}" in layers],
            layers.get(f"endpoint:{ep.id}"),
        )
        for ep in endpoints
    }


_RANK = {"builtin": 0, "default": 1, "tag": 2, "endpoint": 3}


def resolve(
    default: PolicyRecord | PolicyFields | None,
    tags: Sequence[PolicyRecord],
    endpoint: PolicyRecord | PolicyFields | None,
) -> EffectivePolicy:
    """Combine layers into one Policy (pure): builtin -> default -> tags (strictest) -> endpoint."""
    builtin = Policy()
    values: dict[str, Any] = {
        "allowed_origins": tuple(str(p) for p in builtin.allowed_origins),
        "allow_credentials": builtin.allow_credentials,
        "allowed_methods": builtin.allowed_methods,
        "allowed_headers": builtin.allowed_headers,
        "exposed_headers": builtin.exposed_headers,
        "max_age": builtin.max_age,
        "public": builtin.public,
    }
    sources = dict.fromkeys(POLICY_FIELDS, "builtin")
    default_fields = default.fields if isinstance(default, PolicyRecord) else default
    endpoint_fields = endpoint.fields if isinstance(endpoint, PolicyRecord) else endpoint
    for name in POLICY_FIELDS:
        if default_fields is not None and getattr(default_fields, name) is not None:
            values[name], sources[name] = getattr(default_fields, name), "default"
        setters = sorted(
            ((t.tag or "", getattr(t, name)) for t in tags if getattr(t, name) is not None),
            key=lambda pair: pair[0],
        )
        if setters:
            values[name] = _merge_tags(name, [v for _, v in setters])
            sources[name] = ",".join(f"tag:{t}" for t, _ in setters)
        if endpoint_fields is not None and getattr(endpoint_fields, name) is not None:
            values[name], sources[name] = getattr(endpoint_fields, name), "endpoint"
    if values["public"] and values["allow_credentials"]:
        public_rank = _RANK[sources["public"].split(":")[0]]
        cred_rank = _RANK[sources["allow_credentials"].split(":")[0]]
        if public_rank > cred_rank:
            values["allow_credentials"] = False
            sources["allow_credentials"] = sources["public"]
        elif cred_rank > public_rank:
            values["public"] = False
            sources["public"] = sources["allow_credentials"]
        else:
            values["public"] = values["allow_credentials"] = False
    policy = Policy.build(**values)
    return EffectivePolicy(policy=policy, sources=sources)


def _merge_tags(name: str, values: list[Any]) -> Any:
    if len(values) == 1:
        return values[0]
    if name in _BOOL_FIELDS:
        return all(values)
    if name == "max_age":
        return min(values)
    if name == "allowed_origins":
        return _intersect_patterns(values)
    first, *rest = values
    keep = set(first).intersection(*map(set, rest))
    return tuple(v for v in first if v in keep)


def _intersect_patterns(lists: Sequence[Iterable[str]]) -> tuple[str, ...]:
    """The origins every list allows, as patterns (wildcards and exact origins nest or miss)."""
    parsed = [[OriginPattern.parse(p) for p in lst] for lst in lists]
    kept: list[OriginPattern] = []
    for candidates in parsed:
        for p in candidates:
            if all(any(_covers(q, p) for q in other) for other in parsed) and p not in kept:
                kept.append(p)
    # Drop patterns another kept pattern already covers (an exact origin under a wildcard).
    result = [p for p in kept if not any(q != p and _covers(q, p) for q in kept)]
    return tuple(str(p) for p in result)


def _covers(outer: OriginPattern, inner: OriginPattern) -> bool:
    """Every origin ``inner`` matches, ``outer`` matches too."""
    if outer == inner:
        return True
    if outer.opaque or inner.opaque or not outer.any_subdomain:
        return False
    if (outer.scheme, outer.port) != (inner.scheme, inner.port):
        return False
    # An exact host under the wildcard, or a narrower wildcard (*.x.acme.com under *.acme.com).
    return inner.host.endswith("." + outer.host)
