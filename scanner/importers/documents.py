"""Import files from bytes to values, refusing what hostile input looks like.

- a size limit before anything is decoded (``settings.max_import_bytes``);
- UTF-8 only (a BOM is allowed); an invalid byte is reported with its offset;
- JSON: duplicate keys, NaN/Infinity and absurd nesting are errors;
- YAML: the safe loader only (plain data, never Python objects); duplicate
  keys are errors, and so are aliases (``*name``, the "billion laughs"
  amplifier) and merge keys (``<<``), refused while the document is composed,
  before anything is constructed from it.

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


def too_many_rows(max_rows: int, what: str = "rows") -> InputError:
    """The error of a file with more than ``max_rows`` rows (``what``: how they are called)."""
    return InputError(
        f"the file has more than {max_rows:,} {what}, over the import limit "
        "(CORS_SCANNER_MAX_IMPORT_ROWS): split it into smaller files"
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


MAX_INT_DIGITS = 32  # no field takes more than a 64-bit integer


def _bounded_int(text: str) -> int:
    # Python refuses to convert past 4300 digits with a ValueError that is no JSON error.
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise InputError(
            f"a {digits}-digit integer is out of range (at most {MAX_INT_DIGITS} digits)"
        )
    return int(text)


def load_json(text: str) -> Any:
    """Parse JSON strictly (see module docstring)."""
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_int=_bounded_int,
        )
    except json.JSONDecodeError as exc:
        raise InputError(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise InputError("the JSON is nested too deeply") from None
    _check_depth(value)
    return value


MERGE_TAG = "tag:yaml.org,2002:merge"


class _RefusingComposer(yaml.composer.Composer):
    """PyYAML's composer, refusing aliases and merge keys as it builds the node graph.

    Both must go before construction: an alias (``*name``) makes one node reachable many
    times, so a few nested ones expand into billions of values for whoever walks the result
    ("billion laughs"); a merge key (``<<: [*a, *a, ...]``) is expanded by the constructor's
    ``flatten_mapping`` before any object is made, which in PyYAML before 6.0.4 took 2.3 GB
    for a 518-byte file. An inventory or OpenAPI document needs neither.
    """

    # The parser half (check_event, peek_event) comes from the loader's other bases.
    check_event: Any
    peek_event: Any

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise InputError(
                f"YAML aliases (*{event.anchor}) are not allowed in import files{_where(event)}"
            )
        node = super().compose_node(parent, index)
        # A mapping's keys are composed with index None (its values with their key).
        is_key = isinstance(parent, yaml.MappingNode) and index is None
        if is_key and node is not None and node.tag == MERGE_TAG:
            raise InputError(f"YAML merge keys (<<) are not allowed in import files{_where(node)}")
        return node


def _strict_loader_class() -> type[Any]:
    """The safe loader with :class:`_RefusingComposer`: on libyaml's C parser when PyYAML
    has it (events come from C, only composing is Python), else on the pure-Python one."""
    c_parser: Any = getattr(yaml, "CParser", None) if yaml.__with_libyaml__ else None
    if c_parser is not None:

        class _CStrictLoader(_RefusingComposer, c_parser, _NoDuplicates, yaml.resolver.Resolver):  # type: ignore[misc]
            def __init__(self, stream: str) -> None:
                c_parser.__init__(self, stream)
                _RefusingComposer.__init__(self)
                _NoDuplicates.__init__(self)
                yaml.resolver.Resolver.__init__(self)

        return _CStrictLoader

    class _PyStrictLoader(
        yaml.reader.Reader,
        yaml.scanner.Scanner,
        yaml.parser.Parser,
        _RefusingComposer,
        _NoDuplicates,
        yaml.resolver.Resolver,
    ):
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            _RefusingComposer.__init__(self)
            _NoDuplicates.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    return _PyStrictLoader


class _NoDuplicates(yaml.constructor.SafeConstructor):
    """Duplicate keys in one mapping are errors (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise InputError(f"duplicate key {key_node.value!r}{_where(key_node)}")
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _where(node: yaml.Node | yaml.Event) -> str:
    mark = getattr(node, "start_mark", None)
    return f" (line {mark.line + 1})" if mark is not None else ""


def load_yaml(text: str) -> Any:
    """Parse YAML with the safe loader, strictly (see module docstring)."""
    loader = _StrictLoader(text)
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


_StrictLoader = _strict_loader_class()


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
