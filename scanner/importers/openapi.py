"""OpenAPI 3.x documents to endpoints: every server × path × method.

- Servers: the operation's, else the path's, else the document's (``/`` when
  none). Server variables take their ``default``. A relative server URL
  (``/v1``, or none at all) is resolved against ``base_url`` and is an error
  without one.
- Path parameters are filled from the parameter's ``example``, its first
  ``examples`` value, then its schema's ``example``, ``examples``, ``default``
  or first ``enum`` value; failing those, a placeholder of the schema's type
  (``1`` for integers and numbers, ``true``, a nil-like UUID for
  ``format: uuid``, ``example`` for strings). Values are percent-encoded.
  Local ``$ref``s (``#/components/...``) are followed.
- ``name`` is the ``operationId`` (else the ``summary``); ``tags`` are the
  operation's tags, lower-cased with spaces turned into ``-``.
- TRACE operations are skipped: browsers never send TRACE.

Row numbers in errors count operations in document order, from 1; each
message starts with the operation (``GET /pets/{id}``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from scanner.core.endpoints import canonical_url
from scanner.core.import_rows import ImportRow, RowError
from scanner.errors import InputError, InvalidURL
from scanner.hostnames import uts46_host_encoder
from scanner.importers.documents import load_json, load_yaml, too_many_rows
from scanner.importers.tabular import build_row

OPERATION_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
SKIPPED_METHODS = ("trace",)  # Fetch forbids TRACE: no page can send it
MAX_REF_HOPS = 32
_TEMPLATE = re.compile(r"\{([^{}]*)\}")
_TAG_JUNK = re.compile(r"[^a-z0-9._:/@+\-]+")


def load_openapi(text: str) -> Any:
    """Parse an OpenAPI document written as JSON or YAML."""
    return load_json(text) if text.lstrip().startswith("{") else load_yaml(text)


def parse_openapi(
    document: Any, *, base_url: str | None = None, max_rows: int | None = None
) -> tuple[list[ImportRow], list[RowError]]:
    """The endpoints of an OpenAPI 3.x document (see module docstring).

    ``InputError`` when the document is not OpenAPI 3.x, ``base_url`` is not an
    absolute http(s) URL, or it yields more than ``max_rows`` endpoints (a few servers
    times many operations multiply); per-operation problems are row errors.
    """
    if not isinstance(document, dict):
        raise InputError("an OpenAPI document is an object with 'openapi', 'info' and 'paths'")
    if "swagger" in document:
        raise InputError("Swagger 2.0 is not supported: convert the document to OpenAPI 3")
    version = document.get("openapi")
    if not isinstance(version, str) or not version.startswith("3."):
        raise InputError(f"expected an OpenAPI 3.x document ('openapi: 3.x'), not {version!r}")
    if base_url is not None:
        try:
            base_url = canonical_url(base_url, encode_host=uts46_host_encoder)
        except InvalidURL as exc:
            raise InputError(f"--base-url: {exc.message}") from None
    paths = document.get("paths")
    paths = {} if paths is None else paths
    if not isinstance(paths, dict):
        raise InputError("'paths' must be an object")
    resolver = _Resolver(document)
    root_servers = document.get("servers") or [{"url": "/"}]

    rows: list[ImportRow] = []
    errors: list[RowError] = []
    number = 0
    yielded = 0
    for path, raw_item in paths.items():
        item = resolver.resolve(raw_item)
        if not isinstance(item, dict):
            continue
        path_servers = item.get("servers") or root_servers
        path_params = item.get("parameters") or []
        for method in OPERATION_METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            number += 1
            label = f"{method.upper()} {path}"
            try:
                operation = resolver.resolve(operation)
                if not isinstance(operation, dict):
                    raise _OperationError(None, "the operation is not an object")
                servers = operation.get("servers") or path_servers
                params = _parameters(resolver, path_params, operation.get("parameters") or [])
                filled = _fill_path(str(path), params, resolver)
                urls = [_join(_server_url(s, resolver), filled, base_url) for s in servers]
            except _OperationError as exc:
                errors.append(RowError(number, exc.field, f"{label}: {exc.message}"))
                continue
            yielded += len(urls)
            if max_rows is not None and yielded > max_rows:
                raise too_many_rows(max_rows, "endpoints (servers x operations)")
            for url in urls:
                values: dict[str, Any] = {"method": method.upper(), "url": url}
                name = operation.get("operationId") or operation.get("summary")
                if isinstance(name, str) and name.strip():
                    values["name"] = name.strip()[:200]
                tags = operation.get("tags")
                if isinstance(tags, list) and tags:
                    values["tags"] = [t for t in (_tag(x) for x in tags) if t]
                built, problems = build_row(number, values)
                if built is not None:
                    rows.append(built)
                errors.extend(RowError(p.row, p.field, f"{label}: {p.message}") for p in problems)
    return rows, errors


class _OperationError(Exception):
    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class _Resolver:
    """Follows local ``$ref``s (``#/components/...``) with a hop limit (cycles are errors)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document

    def resolve(self, value: Any) -> Any:
        hops = 0
        while isinstance(value, dict) and isinstance(value.get("$ref"), str):
            hops += 1
            if hops > MAX_REF_HOPS:
                raise _OperationError(None, f"$ref chain longer than {MAX_REF_HOPS} (a cycle?)")
            value = self._lookup(value["$ref"])
        return value

    def _lookup(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise _OperationError(None, f"only local $refs (#/...) are supported, not {ref!r}")
        node: Any = self.document
        for raw in ref[2:].split("/"):
            part = raw.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise _OperationError(None, f"$ref {ref!r} points to nothing")
            node = node[part]
        return node


def _parameters(resolver: _Resolver, *lists: Any) -> dict[str, Mapping[str, Any]]:
    """Path parameters by name; the operation's override the path item's."""
    out: dict[str, Mapping[str, Any]] = {}
    for params in lists:
        if not isinstance(params, list):
            raise _OperationError("parameters", "'parameters' must be a list")
        for raw in params:
            param = resolver.resolve(raw)
            if isinstance(param, dict) and param.get("in") == "path" and "name" in param:
                out[str(param["name"])] = param
    return out


def _fill_path(path: str, params: Mapping[str, Mapping[str, Any]], resolver: _Resolver) -> str:
    if not path.startswith("/"):
        raise _OperationError("url", f"a path starts with '/', not {path!r}")

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        param = params.get(name)
        raw = _example(param, resolver) if param is not None else "example"
        return quote(_text(raw), safe="")

    return _TEMPLATE.sub(value, path)


def _example(param: Mapping[str, Any], resolver: _Resolver) -> Any:
    if "example" in param:
        return param["example"]
    examples = param.get("examples")
    if isinstance(examples, dict):
        for raw in examples.values():
            example = resolver.resolve(raw)
            if isinstance(example, dict) and "value" in example:
                return example["value"]
    schema = resolver.resolve(param.get("schema") or {})
    if not isinstance(schema, dict):
        return "example"
    for key in ("example", "default"):
        if key in schema:
            return schema[key]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return schema["examples"][0]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    if schema.get("format") == "uuid":
        return "00000000-0000-4000-8000-000000000000"
    return "example"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _server_url(server: Any, resolver: _Resolver) -> str:
    server = resolver.resolve(server)
    if not isinstance(server, dict) or not isinstance(server.get("url"), str):
        raise _OperationError("servers", "a server is an object with a 'url'")
    variables = server.get("variables") or {}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        variable = variables.get(name) if isinstance(variables, dict) else None
        if not isinstance(variable, dict) or "default" not in variable:
            raise _OperationError(
                "servers", f"server variable {{{name}}} in {server['url']!r} has no default"
            )
        return _text(variable["default"])

    return _TEMPLATE.sub(substitute, server["url"])


def _join(server: str, path: str, base_url: str | None) -> str:
    if not urlsplit(server).scheme:
        if base_url is None:
            raise _OperationError(
                "servers",
                f"the server URL {server!r} is relative: give the base URL it is relative to "
                "(--base-url https://api.example.com)",
            )
        server = urljoin(base_url, server)
    return server.rstrip("/") + path


def _tag(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    text = "-".join(value.strip().lower().split())
    return _TAG_JUNK.sub("", text).lstrip("._:/@+-")[:100]
