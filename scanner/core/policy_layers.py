"""Policy layers (org default, per tag, per endpoint) and how they combine into one Policy.

Every layer holds only what it says; a None field inherits from the layer
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
from enum import StrEnum
from typing import Any

from scanner.core.endpoints import canonical_tag
from scanner.core.origin import HostEncoder, ascii_host_encoder
from scanner.core.policy import OriginPattern, Policy
from scanner.errors import FieldError, InputError, InvalidPolicy, ValidationError

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
_BOOL_FIELDS = ("allow_credentials", "public")


class PolicyScope(StrEnum):
    """Which endpoints a policy layer covers."""

    DEFAULT = "default"
    TAG = "tag"
    ENDPOINT = "endpoint"


@dataclass(frozen=True, slots=True)
class PolicyFields:
    """The values of one policy layer, validated and normalised; None means "inherit".

    Origins are in their canonical form (``str(OriginPattern)``), methods as
    ``fetch()`` sends them (``get`` is ``GET``, ``patch`` stays ``patch``),
    header names lower case, duplicates removed.
    """

    allowed_origins: tuple[str, ...] | None = None
    allow_credentials: bool | None = None
    allowed_methods: tuple[str, ...] | None = None
    allowed_headers: tuple[str, ...] | None = None
    exposed_headers: tuple[str, ...] | None = None
    max_age: int | None = None
    public: bool | None = None

    @classmethod
    def validate(
        cls, values: Mapping[str, Any], *, encode_host: HostEncoder = ascii_host_encoder
    ) -> PolicyFields:
        """Validate user-written fields; ``ValidationError`` lists every bad one.

        Unknown keys are errors (a typo such as ``allowed_origin`` must not
        silently mean "inherit"). ``encode_host`` maps internationalised
        origin hosts (UTS #46).
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
                clean[name] = _normalise(name, values[name], encode_host)
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


def _normalise(name: str, value: Any, encode_host: HostEncoder) -> Any:
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
            out.append(policy_item(name, item, encode_host=encode_host))
        except InvalidPolicy as exc:
            problems.append(exc.message)
    if problems:
        raise InvalidPolicy("; ".join(problems))
    return tuple(dict.fromkeys(out))


def policy_item(name: str, item: str, *, encode_host: HostEncoder = ascii_host_encoder) -> str:
    """One entry of a list field in canonical form; ``InvalidPolicy`` naming what is wrong.

    ``Policy.build`` is the one place that knows the rules (safe origin
    patterns, the method rule, header tokens).
    """
    if name == "allowed_origins":
        return str(OriginPattern.parse(item, encode_host=encode_host))
    if name == "allowed_methods":
        return Policy.build(allowed_methods=[item]).allowed_methods[0]
    if name == "allowed_headers":
        return Policy.build(allowed_headers=[item]).allowed_headers[0]
    if name == "exposed_headers":
        return Policy.build(exposed_headers=[item]).exposed_headers[0]
    raise InvalidPolicy(f"{name} is not a list field of a policy")


def scope_key(scope: PolicyScope, *, tag: str | None = None, endpoint_id: int | None = None) -> str:
    """The unique key of a layer: ``default``, ``tag:<tag>`` or ``endpoint:<id>``."""
    if scope is PolicyScope.DEFAULT:
        return "default"
    if scope is PolicyScope.TAG:
        return f"tag:{tag}"
    return f"endpoint:{endpoint_id}"


def check_scope(
    scope: PolicyScope | str, tag: str | None, endpoint_id: int | None
) -> tuple[PolicyScope, str | None, int | None]:
    """A layer's scope with what it needs (a canonical tag, an endpoint id) and nothing else.

    ``ValidationError`` names every bad argument.
    """
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
                tag = canonical_tag(tag)
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


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """The policy an endpoint is judged by, and where each field came from.

    ``sources`` maps every field of ``POLICY_FIELDS`` to ``builtin``,
    ``default``, ``tag:<t>`` (``tag:a,tag:b`` when several tags were merged) or
    ``endpoint``.
    """

    policy: Policy
    sources: dict[str, str] = field(default_factory=dict)


_RANK = {"builtin": 0, "default": 1, "tag": 2, "endpoint": 3}


def resolve(
    default: PolicyFields | None,
    tags: Iterable[tuple[str, PolicyFields]],
    endpoint: PolicyFields | None,
) -> EffectivePolicy:
    """Combine layers into one Policy: builtin -> default -> tags (strictest) -> endpoint.

    ``tags`` are (tag, layer) pairs of the endpoint's tags that have a layer,
    in any order (the merge does not depend on it).
    """
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
    tag_layers = sorted(tags, key=lambda pair: pair[0])
    for name in POLICY_FIELDS:
        if default is not None and getattr(default, name) is not None:
            values[name], sources[name] = getattr(default, name), "default"
        setters = [(t, getattr(f, name)) for t, f in tag_layers if getattr(f, name) is not None]
        if setters:
            values[name] = merge_tag_values(name, [v for _, v in setters])
            sources[name] = ",".join(f"tag:{t}" for t, _ in setters)
        if endpoint is not None and getattr(endpoint, name) is not None:
            values[name], sources[name] = getattr(endpoint, name), "endpoint"
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
    return EffectivePolicy(policy=Policy.build(**values), sources=sources)


def merge_tag_values(name: str, values: Sequence[Any]) -> Any:
    """The strictest value every tag layer setting field ``name`` accepts (module docstring)."""
    if len(values) == 1:
        return values[0]
    if name in _BOOL_FIELDS:
        return all(values)
    if name == "max_age":
        return min(values)
    if name == "allowed_origins":
        return intersect_patterns(values)
    first, *rest = values
    keep = set(first).intersection(*map(set, rest))
    return tuple(v for v in first if v in keep)


def intersect_patterns(lists: Sequence[Iterable[str]]) -> tuple[str, ...]:
    """The origins every list allows, as patterns (wildcards and exact origins nest or miss)."""
    parsed = [[OriginPattern.parse(p) for p in lst] for lst in lists]
    kept: list[OriginPattern] = []
    for candidates in parsed:
        for p in candidates:
            if all(any(covers(q, p) for q in other) for other in parsed) and p not in kept:
                kept.append(p)
    # Drop patterns another kept pattern already covers (an exact origin under a wildcard).
    result = [p for p in kept if not any(q != p and covers(q, p) for q in kept)]
    return tuple(str(p) for p in result)


def covers(outer: OriginPattern, inner: OriginPattern) -> bool:
    """Every origin ``inner`` matches, ``outer`` matches too."""
    if outer == inner:
        return True
    if outer.opaque or inner.opaque or not outer.any_subdomain:
        return False
    if (outer.scheme, outer.port) != (inner.scheme, inner.port):
        return False
    # An exact host under the wildcard, or a narrower wildcard (*.x.acme.com under *.acme.com).
    return inner.host.endswith("." + outer.host)


__all__ = [
    "MAX_LIST_ITEMS",
    "MAX_MAX_AGE",
    "POLICY_FIELDS",
    "EffectivePolicy",
    "PolicyFields",
    "PolicyScope",
    "check_scope",
    "covers",
    "intersect_patterns",
    "merge_tag_values",
    "policy_item",
    "resolve",
    "scope_key",
]
