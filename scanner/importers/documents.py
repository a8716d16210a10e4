"""Import files from bytes to values, refusing what hostile input looks like.

- a size limit before anything is decoded (``settings.max_import_bytes``);
- UTF-8 only (a BOM is allowed); an invalid byte is reported with its offset;
- JSON: duplicate keys, NaN/Infinity and absurd nesting are errors;
- YAML: the safe loader only (plain data, never Python objects), duplicate
  keys and aliases (``*name``, the "billion laughs" amplifier) are errors.

Problems here concern the whole file, so they raise ``InputError``.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from scanner.errors import InputError

MAX_NESTING = 64  # no inventory or OpenAPI document needs more


def check_size(data: bytes, max_bytes: int) -> None:
    """Refuse input larger than ``max_bytes``."""
    if len(data) > max_bytes:
        raise InputError(
            f"the file is {len(data):,} bytes, over the {max_bytes:,}-byte import limit "
            "(CORS_SCANNER_MAX_IMPORT_BYTES)"
        )


def decode(data: bytes) -> str:
    """UTF-8 text (an optional BOM removed)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"the file is not UTF-8 text (invalid byte at offset {exc.start})"
        ) from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InputError(f"duplicate key {key!r} in a JSON object")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise InputError(f"{name} is not valid JSON")


def load_json(text: str) -> Any:
    """Parse JSON strictly (see module docstring)."""
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise InputError("the JSON is nested too deeply") from None
    _check_depth(value)
    return value


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictSafeLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """PyYAML's safe loader, refusing duplicate keys and aliases."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # A node met twice was reached through an alias (*name): refuse them all, since
        # a few nested aliases expand into billions of nodes for whoever walks the result.
        if node in self.constructed_objects or node in self.recursive_objects:
            raise InputError(f"YAML aliases (*name) are not allowed in import files{_where(node)}")
        return super().construct_object(node, deep=deep)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise InputError(f"duplicate key {key_node.value!r}{_where(key_node)}")
                seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


def _where(node: yaml.Node) -> str:
    mark = getattr(node, "start_mark", None)
    return f" (line {mark.line + 1})" if mark is not None else ""


def load_yaml(text: str) -> Any:
    """Parse YAML with the safe loader, strictly (see module docstring)."""
    loader = _StrictSafeLoader(text)
    try:
        value = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"invalid YAML{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}") from None
    except RecursionError:
        raise InputError("the YAML is nested too deeply") from None
    finally:
        loader.dispose()
    _check_depth(value)
    return value


def _check_depth(value: Any) -> None:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_NESTING:
            raise InputError(f"the document is nested more than {MAX_NESTING} levels deep")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
