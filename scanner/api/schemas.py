"""Request validation and response shapes, as schema objects that also describe themselves.

One schema object does two jobs: ``check`` validates a decoded JSON value (or
a query string) and collects *every* problem as a :class:`FieldError`, and
``json_schema`` renders the same rules as JSON Schema (2020-12, the dialect of
OpenAPI 3.1). ``scanner.api.openapi`` builds the published document from the
:class:`Operation` attached to each handler, so the document cannot drift from
what the server enforces.

Handlers are written against :class:`Call` (validated path, query and body,
and the authenticated token); :func:`operation` turns such a function into an
aiohttp handler that parses and validates first. Bodies are read here, with
the size limit enforced while reading, strict UTF-8, a nesting limit, and
duplicate keys refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from scanner.api.keys import CONTEXT
from scanner.api.problems import PROBLEM_JSON, Problem
from scanner.db.tokens import Scope
from scanner.errors import FieldError, InputError
from scanner.usecases import Context

MAX_JSON_DEPTH = 32  # our bodies nest 3 deep; anything far deeper is an attack or a bug
MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database
_INVALID: Any = object()  # a value that failed validation (errors already recorded)


# -- schema objects ------------------------------------------------------------


class Components:
    """Named schemas collected while rendering (``#/components/schemas/<name>``)."""

    def __init__(self) -> None:
        self.schemas: dict[str, dict[str, Any]] = {}

    def ref(self, name: str, schema: Schema) -> dict[str, Any]:
        if name not in self.schemas:
            self.schemas[name] = {}  # reserve first: schemas may refer to themselves
            self.schemas[name] = schema.json_schema(self)
        return {"$ref": f"#/components/schemas/{name}"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Schema:
    """Base of every schema: a description, nullability, and two renderings."""

    description: str | None = None
    nullable: bool = False
    example: Any = None

    def check(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        """The value (possibly normalised), or ``_INVALID`` after recording errors."""
        if value is None:
            if self.nullable:
                return None
            errors.append(FieldError(path, "must not be null"))
            return _INVALID
        return self._check(value, path, errors)

    def _check(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        raise NotImplementedError

    def parse_text(self, text: str, path: str, errors: list[FieldError]) -> Any:
        """Validate a query-string value (strings are converted to the schema's type)."""
        errors.append(FieldError(path, "cannot be given in a query string"))
        return _INVALID

    def json_schema(self, components: Components) -> dict[str, Any]:
        doc = self._json_schema(components)
        if self.nullable:
            kind = doc.get("type")
            if isinstance(kind, str):
                doc["type"] = [kind, "null"]
                # An enum constrains every type: null must be one of its values too.
                if "enum" in doc and None not in doc["enum"]:
                    doc["enum"] = [*doc["enum"], None]
            else:
                doc = {"anyOf": [doc, {"type": "null"}]}
        if self.description:
            doc["description"] = self.description
        if self.example is not None:
            doc["examples"] = [self.example]
        return doc

    def _json_schema(self, components: Components) -> dict[str, Any]:
        raise NotImplementedError


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates)"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Str(Schema):
    """A string; ``check`` raises ``InputError`` (its message becomes the field's) for semantics."""

    min_length: int = 0
    max_length: int | None = None
    enum: tuple[str, ...] | None = None
    pattern: str | None = None  # ECMA-262 compatible: published in the document too
    format: str | None = None
    strip: bool = False
    semantic: Callable[[str], object] | None = None

    def _check(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, str):
            errors.append(FieldError(path, f"must be a string, not {_kind(value)}"))
            return _INVALID
        problem = _text_problem(value)
        if problem:
            errors.append(FieldError(path, problem))
            return _INVALID
        text = value.strip() if self.strip else value
        if self.enum is not None and text not in self.enum:
            errors.append(FieldError(path, f"must be one of: {', '.join(self.enum)}"))
            return _INVALID
        if len(text) < self.min_length:
            what = (
                "must not be empty"
                if self.min_length == 1
                else (f"must be at least {self.min_length} characters")
            )
            errors.append(FieldError(path, what))
            return _INVALID
        if self.max_length is not None and len(text) > self.max_length:
            errors.append(FieldError(path, f"must be at most {self.max_length} characters"))
            return _INVALID
        if self.pattern is not None and not re.search(self.pattern, text):
            errors.append(FieldError(path, f"must match {self.pattern}"))
            return _INVALID
        if self.semantic is not None:
            try:
                self.semantic(text)
            except InputError as exc:
                errors.append(FieldError(path, exc.message))
                return _INVALID
        return text

    def parse_text(self, text: str, path: str, errors: list[FieldError]) -> Any:
        return self.check(text, path, errors)

    def _json_schema(self, components: Components) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": "string"}
        if self.enum is not None:
            doc["enum"] = list(self.enum)
        if self.min_length:
            doc["minLength"] = self.min_length
        if self.max_length is not None:
            doc["maxLength"] = self.max_length
        if self.pattern is not None:
            doc["pattern"] = self.pattern
        if self.format is not None:
            doc["format"] = self.format
        return doc


_INT_TEXT = re.compile(r"-?[0-9]{1,19}\Z")


@dataclass(frozen=True, slots=True, kw_only=True)
class Int(Schema):
    """A whole number (JSON booleans are not numbers here)."""

    minimum: int | None = None
    maximum: int | None = None

    def _check(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(FieldError(path, f"must be an integer, not {_kind(value)}"))
            return _INVALID
        if self.minimum is not None and value < self.minimum:
            errors.append(FieldError(path, f"must be at least {self.minimum}"))
            return _INVALID
        if self.maximum is not None and value > self.maximum:
            errors.append(FieldError(path, f"must be at most {self.maximum}"))
            return _INVALID
        return value

    def parse_text(self, text: str, path: str, errors: list[FieldError]) -> Any:
        if not _INT_TEXT.match(text):
            errors.append(FieldError(path, "must be an integer"))
            return _INVALID
        return self.check(int(text), path, errors)

    def _json_schema(self, components: Components) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": "integer"}
        if self.minimum is not None:
            doc["minimum"] = self.minimum
        if self.maximum is not None:
            doc["maximum"] = self.maximum
        return doc


@dataclass(frozen=True, slots=True, kw_only=True)
class Num(Schema):
    """A number (responses only: durations)."""

    def _check(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(FieldError(path, f"must be a number, not {_kind(value)}"))
            return _INVALID
        return value

    def _json_schema(self, components: Components) -> dict[str, Any]:
        return {"type": "number"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Bool(Schema):
    """true or false (in a query string: ``true``/``false``)."""

    def _check(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, bool):
            errors.append(FieldError(path, f"must be true or false, not {_kind(value)}"))
            return _INVALID
        return value

    def parse_text(self, text: str, path: str, errors: list[FieldError]) -> Any:
        lowered = text.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        errors.append(FieldError(path, "must be true or false"))
        return _INVALID

    def _json_schema(self, components: Components) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Arr(Schema):
    """A list of ``items``; ``unique`` refuses repeated values."""

    items: Schema
    min_items: int = 0
    max_items: int | None = None
    unique: bool = False

    def _check(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, list):
            errors.append(FieldError(path, f"must be a list, not {_kind(value)}"))
            return _INVALID
        if len(value) < self.min_items:
            errors.append(FieldError(path, f"must have at least {self.min_items} item(s)"))
            return _INVALID
        if self.max_items is not None and len(value) > self.max_items:
            errors.append(FieldError(path, f"must have at most {self.max_items} items"))
            return _INVALID
        out = [self.items.check(item, f"{path}[{i}]", errors) for i, item in enumerate(value)]
        if any(v is _INVALID for v in out):
            return _INVALID
        if self.unique:
            seen: set[str] = set()
            for i, item in enumerate(out):
                key = json.dumps(item, sort_keys=True)
                if key in seen:
                    errors.append(FieldError(f"{path}[{i}]", "is repeated"))
                    return _INVALID
                seen.add(key)
        return out

    def _json_schema(self, components: Components) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": "array", "items": self.items.json_schema(components)}
        if self.min_items:
            doc["minItems"] = self.min_items
        if self.max_items is not None:
            doc["maxItems"] = self.max_items
        if self.unique:
            doc["uniqueItems"] = True
        return doc


@dataclass(frozen=True, slots=True, kw_only=True)
class Obj(Schema):
    """An object with known ``properties``; unknown keys are refused unless ``additional``."""

    properties: Mapping[str, Schema] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    additional: Schema | None = None  # schema of extra keys' values (None: refused)
    min_properties: int = 0

    def _check(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, dict):
            errors.append(FieldError(path or "body", f"must be an object, not {_kind(value)}"))
            return _INVALID
        out: dict[str, Any] = {}
        failed = False
        for name in sorted(self.required - value.keys()):
            errors.append(FieldError(_join(path, name), "is required"))
            failed = True
        for name, item in value.items():
            schema = self.properties.get(name, self.additional)
            if schema is None:
                errors.append(FieldError(_join(path, name), "is not a known field"))
                failed = True
                continue
            checked = schema.check(item, _join(path, name), errors)
            failed = failed or checked is _INVALID
            out[name] = checked
        if not failed and len(out) < self.min_properties:
            errors.append(
                FieldError(path or "body", f"must set at least {self.min_properties} field(s)")
            )
            failed = True
        return _INVALID if failed else out

    def _json_schema(self, components: Components) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": "object",
            "properties": {k: v.json_schema(components) for k, v in self.properties.items()},
        }
        if self.required:
            doc["required"] = sorted(self.required)
        doc["additionalProperties"] = (
            self.additional.json_schema(components) if self.additional is not None else False
        )
        if self.min_properties:
            doc["minProperties"] = self.min_properties
        return doc


@dataclass(frozen=True, slots=True, kw_only=True)
class AnyJSON(Schema):
    """Any JSON value (responses only: free-form verdicts and evidence)."""

    def _check(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        return value

    def _json_schema(self, components: Components) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Ref(Schema):
    """A named schema, rendered once under ``components/schemas``."""

    name: str
    schema: Schema

    def check(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        return self.schema.check(value, path, errors)

    def json_schema(self, components: Components) -> dict[str, Any]:
        return components.ref(self.name, self.schema)

    def _json_schema(self, components: Components) -> dict[str, Any]:  # pragma: no cover
        return components.ref(self.name, self.schema)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# -- operations ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    """A path or query parameter."""

    name: str
    schema: Schema
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """A documented response of an operation (errors are added by the document builder)."""

    status: int
    description: str
    schema: Schema | None = None
    media_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)  # name -> description


PROBLEM = Ref(
    name="Problem",
    schema=Obj(
        description="An RFC 9457 problem document.",
        properties={
            "type": Str(description="Link to the explanation of `code`."),
            "title": Str(),
            "status": Int(),
            "detail": Str(),
            "code": Str(description="Stable machine-readable error code."),
            "errors": Arr(
                items=Obj(
                    properties={"field": Str(), "message": Str()},
                    required=frozenset({"field", "message"}),
                ),
                description="Every invalid field (validation_failed only).",
            ),
            "checks": Obj(additional=AnyJSON(), description="Readiness checks (not_ready only)."),
        },
        required=frozenset({"type", "title", "status", "detail", "code"}),
        additional=AnyJSON(),
    ),
)


def problem_reply(status: int, description: str) -> Reply:
    """A documented error response carrying a problem document."""
    return Reply(status, description, PROBLEM, media_type=PROBLEM_JSON)


@dataclass(frozen=True, slots=True)
class RawBody:
    """A body taken as bytes in one of ``media_types`` (imports), up to the import limit."""

    media_types: tuple[str, ...]
    description: str


@dataclass(frozen=True, slots=True)
class Operation:
    """Everything the server enforces and the document publishes about one route."""

    operation_id: str
    summary: str
    tag: str
    scope: Scope | None  # None: no authentication
    replies: tuple[Reply, ...]
    description: str = ""
    path_params: tuple[Param, ...] = ()
    query: tuple[Param, ...] = ()
    body: Schema | None = None
    body_required: bool = True
    raw_body: RawBody | None = None
    uses_database: bool = True
    # Rules across fields (or the store's own validator) run on the decoded
    # body even when the schema found errors, so one answer lists them all.
    cross_check: Callable[[dict[str, Any]], list[FieldError]] | None = None


@dataclass(slots=True)
class Call:
    """One validated request: what a handler works with."""

    request: web.Request
    path: dict[str, Any]
    query: dict[str, Any]
    body: Any
    raw: bytes | None = None

    @property
    def context(self) -> Context:
        """What the use cases run against (``scanner.usecases``), set up with the app."""
        return self.request.app[CONTEXT]


CallHandler = Callable[[Call], Awaitable[web.StreamResponse]]
AiohttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The per-app byte limits, looked up by the handler wrapper (set by app.py).
BODY_LIMIT_KEY = web.AppKey("body_limit", int)
IMPORT_LIMIT_KEY = web.AppKey("import_limit", int)
PAGE_MAX_KEY = web.AppKey("page_max", int)


def operation(op: Operation) -> Callable[[CallHandler], AiohttpHandler]:
    """Decorate a ``Call`` handler: validate path, query and body first, then call it.

    The returned aiohttp handler carries ``op`` as its ``operation`` attribute
    (read by the auth middleware and the OpenAPI builder).
    """

    def wrap(fn: CallHandler) -> AiohttpHandler:
        async def handler(request: web.Request) -> web.StreamResponse:
            path = _parse_path(op, request)
            errors: list[FieldError] = []
            query = parse_query(op.query, request, errors)
            page_max = request.app[PAGE_MAX_KEY]
            if query.get("limit", 0) > page_max:
                errors.append(FieldError("query.limit", f"must be at most {page_max}"))
            body: Any = None
            raw: bytes | None = None
            if op.raw_body is not None:
                raw = await _read_raw(request, op.raw_body)
            elif op.body is not None:
                decoded = await read_json(request, required=op.body_required)
                if decoded is not _ABSENT:
                    body = op.body.check(decoded, "", errors)
                    if op.cross_check is not None and isinstance(decoded, dict):
                        errors = merged_errors(errors, op.cross_check(decoded))
            if errors:
                raise Problem.validation(errors)
            return await fn(Call(request, path, query, body, raw))

        handler.operation = op  # type: ignore[attr-defined]
        handler.__name__ = fn.__name__
        handler.__doc__ = fn.__doc__
        return handler

    return wrap


def merged_errors(first: Sequence[FieldError], later: Sequence[FieldError]) -> list[FieldError]:
    """``first`` plus the first error of ``later`` about each top-level field not yet named."""

    def top(e: FieldError) -> str:
        return e.field.split("[")[0].split(".")[0]

    named = {top(e) for e in first}
    merged = list(first)
    for error in later:
        if top(error) not in named:
            named.add(top(error))
            merged.append(error)
    return merged


def operation_of(handler: object) -> Operation | None:
    """The Operation an aiohttp handler was built from, if any."""
    found = getattr(handler, "operation", None)
    return found if isinstance(found, Operation) else None


def _parse_path(op: Operation, request: web.Request) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for param in op.path_params:
        text = request.match_info.get(param.name, "")
        errors: list[FieldError] = []
        value = param.schema.parse_text(text, param.name, errors)
        if errors:
            # A malformed id names no object: "not found" is the truthful answer.
            raise Problem("not_found", f"{param.name} {text!r}: {errors[0].message}")
        out[param.name] = value
    return out


def parse_query(
    params: Sequence[Param], request: web.Request, errors: list[FieldError]
) -> dict[str, Any]:
    """Validated query parameters; unknown and repeated ones are errors too."""
    known = {p.name: p for p in params}
    out: dict[str, Any] = {}
    seen: set[str] = set()
    for name in request.query:
        if name in seen:
            continue
        seen.add(name)
        path = f"query.{name}"
        if name not in known:
            errors.append(FieldError(path, "is not a known query parameter"))
            continue
        values = request.query.getall(name)
        if len(values) > 1:
            errors.append(FieldError(path, "must be given once"))
            continue
        value = known[name].schema.parse_text(values[0], path, errors)
        if value is not _INVALID:
            out[name] = value
    for param in params:
        if param.required and param.name not in seen:
            errors.append(FieldError(f"query.{param.name}", "is required"))
    return out


# -- bodies --------------------------------------------------------------------

_ABSENT: Any = object()
JSON_TYPES = ("application/json",)


def _media_type(request: web.Request) -> str:
    return request.content_type.lower() if request.headers.get("Content-Type") else ""


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The body, refusing (413) anything over ``limit`` bytes before reading it all."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise Problem("body_too_large", f"the body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise Problem("body_too_large", f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: web.Request, *, required: bool = True) -> Any:
    """The JSON body, decoded strictly; ``_ABSENT`` when optional and empty."""
    limit = request.app[BODY_LIMIT_KEY]
    media = _media_type(request)
    raw = await read_limited(request, limit)
    if not raw.strip() and not required:
        return _ABSENT  # whatever a client library labels an empty body
    if media not in JSON_TYPES and not media.endswith("+json"):
        shown = media or "no Content-Type"
        raise Problem("unsupported_media_type", f"send JSON as application/json, not {shown}")
    return decode_json(raw)


def decode_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, one document, no duplicate keys, no NaN, bounded nesting."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem("invalid_encoding", f"the body is not UTF-8 (byte {exc.start})") from None
    text = text.removeprefix("\ufeff")
    depth = _max_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise Problem(
            "invalid_json", f"the JSON nests {depth} levels deep; the limit is {MAX_JSON_DEPTH}"
        )
    try:
        return json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except json.JSONDecodeError as exc:
        raise Problem(
            "invalid_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except _BadJSON as exc:
        raise Problem("invalid_json", str(exc)) from None


async def _read_raw(request: web.Request, raw: RawBody) -> bytes:
    media = _media_type(request)
    if media not in raw.media_types:
        shown = media or "no Content-Type"
        raise Problem(
            "unsupported_media_type",
            f"send one of {', '.join(raw.media_types)}, not {shown}",
        )
    return await read_limited(request, request.app[IMPORT_LIMIT_KEY])


class _BadJSON(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _BadJSON(f"duplicate key {key!r} in a JSON object")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise _BadJSON(f"{name} is not valid JSON")


# No field takes more than a 64-bit integer; Python itself refuses to convert beyond 4300
# digits, with a ValueError that is not a JSON error (it was a 500).
MAX_JSON_INT_DIGITS = 32


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_JSON_INT_DIGITS:
        raise _BadJSON(
            f"a {digits}-digit integer is out of range (at most {MAX_JSON_INT_DIGITS} digits)"
        )
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _BadJSON(f"the number {text[:40]} is out of range")
    return value


def _max_depth(text: str) -> int:
    # A linear pre-scan: json.loads recurses per level and would hit the
    # interpreter's recursion limit on hostile input before we could refuse it.
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
