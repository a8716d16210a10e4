"""Inventory files: CSV, JSON and YAML rows of endpoints with optional policy overrides.

Columns (CSV header) or keys (JSON/YAML objects), all optional but ``url``:

    method url name owner tags enabled notes request_headers
    allowed_origins allow_credentials allowed_methods allowed_headers exposed_headers max_age public

The policy columns are the endpoint's own override (see ``scanner.core.policy_layers``);
a row that leaves them all empty keeps whatever override the endpoint has.
Only the columns a file has change an existing endpoint: a file without an
``owner`` column keeps the owners set elsewhere.

CSV specifics: the first line is the header (names are case-insensitive);
list cells (``tags`` and the origin, method and header columns) separate
values with ``;`` or ``|`` (origins, methods and headers also by spaces);
``request_headers`` is a JSON object (``{"X-Api-Key": "…"}``);
booleans are ``true/false``, ``yes/no`` or ``1/0``; an empty cell is no
value (``enabled`` and policy columns: not given). A cell starting with
``'`` followed by ``= + - @`` is read without the quote: that is how our CSV
export defuses spreadsheet formulas. An unknown column refuses the whole
file (a typo in ``allowed_origins`` must not silently drop a policy).

JSON/YAML: a list of objects, or ``{"endpoints": [...]}``. ``tags`` and list
policy fields are lists (a string is split as in CSV). Unknown keys are row
errors.

Row numbers in errors: CSV, the line a record starts on (the header is line 1);
JSON/YAML, the position in the list from 1.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from typing import Any

from scanner.core.endpoints import ENDPOINT_FIELDS, EndpointInput
from scanner.core.import_rows import ImportRow, RowError
from scanner.core.policy_layers import POLICY_FIELDS, PolicyFields
from scanner.errors import InputError, ValidationError
from scanner.hostnames import uts46_host_encoder
from scanner.importers.documents import load_json, load_yaml, too_many_rows

COLUMNS: tuple[str, ...] = ENDPOINT_FIELDS + POLICY_FIELDS
_LIST_COLUMNS = frozenset(
    {"allowed_origins", "allowed_methods", "allowed_headers", "exposed_headers"}
)
_BOOL_COLUMNS = frozenset({"enabled", "allow_credentials", "public"})
_TAG_SPLIT = re.compile(r"[;|]")
_LIST_SPLIT = re.compile(r"[;|\s]+")
_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _CellError(Exception):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


def _bool(column: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _CellError(column, f"expected true or false, not {text!r}")


def _int(column: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise _CellError(column, f"expected a whole number, not {text!r}") from None


def _header_cell(text: str) -> Any:
    """A ``request_headers`` cell: a JSON object (values may hold any of ``;|`` and spaces,
    so no list separator would do); empty is none."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise _CellError(
            "request_headers", 'expected a JSON object such as {"X-Api-Key": "…"}'
        ) from None
    return value


def split_list(column: str, text: str) -> list[str]:
    """A list cell: tags split on ``;``/``|``; origins, methods, headers also on spaces."""
    pattern = _TAG_SPLIT if column == "tags" else _LIST_SPLIT
    return [part.strip() for part in pattern.split(text) if part.strip()]


def unescape_cell(text: str) -> str:
    """Undo the export's formula defusing: ``'=x`` reads as ``=x``."""
    if len(text) > 1 and text[0] == "'" and text[1] in _FORMULA_START:
        return text[1:]
    return text


def build_row(row: int, values: Mapping[str, Any]) -> tuple[ImportRow | None, list[RowError]]:
    """One import row from already-typed values (None: not given); errors name row and field."""
    errors: list[RowError] = []
    endpoint_values = {k: v for k, v in values.items() if k in ENDPOINT_FIELDS}
    policy_values = {k: v for k, v in values.items() if k in POLICY_FIELDS and v is not None}
    if endpoint_values.get("enabled") is None:
        endpoint_values.pop("enabled", None)
    for key in values:
        if key not in COLUMNS:
            errors.append(RowError(row, str(key), "unknown field"))
    endpoint: EndpointInput | None = None
    try:
        endpoint = EndpointInput.validate(endpoint_values, encode_host=uts46_host_encoder)
    except ValidationError as exc:
        errors.extend(RowError(row, e.field, e.message) for e in exc.errors)
    policy: PolicyFields | None = None
    if policy_values:
        try:
            policy = PolicyFields.validate(policy_values, encode_host=uts46_host_encoder)
        except ValidationError as exc:
            errors.extend(RowError(row, e.field, e.message) for e in exc.errors)
    if errors or endpoint is None:
        return None, errors
    given = frozenset(k for k in endpoint_values if k in ENDPOINT_FIELDS) | {"method", "url"}
    return ImportRow(row=row, endpoint=endpoint, given=given, policy=policy), []


# -- CSV ---------------------------------------------------------------------


def parse_csv(text: str, *, max_rows: int | None = None) -> tuple[list[ImportRow], list[RowError]]:
    """Rows of a CSV inventory (see module docstring); ``InputError`` past ``max_rows``
    records (blank lines do not count)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InputError(f"invalid CSV header: {exc}") from None
    if header is None:
        raise InputError("the CSV file is empty: expected a header line such as 'method,url,tags'")
    columns = [h.strip().lower() for h in header]
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise InputError(
            f"unknown CSV column(s) {', '.join(repr(c) for c in unknown)}: "
            f"the columns are {', '.join(COLUMNS)}"
        )
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise InputError(f"CSV column(s) {', '.join(duplicated)} appear more than once")
    if "url" not in columns:
        raise InputError("the CSV header has no 'url' column")

    rows: list[ImportRow] = []
    errors: list[RowError] = []
    records = 0
    while True:
        # A quoted cell can span lines: name the line the record starts on.
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InputError(f"invalid CSV at line {reader.line_num}: {exc}") from None
        if not any(c.strip() for c in cells):
            continue
        records += 1
        if max_rows is not None and records > max_rows:
            raise too_many_rows(max_rows)
        if len(cells) != len(columns):
            errors.append(
                RowError(
                    line, None, f"{len(cells)} cells, but the header has {len(columns)} columns"
                )
            )
            continue
        values, problems = _typed_cells(line, dict(zip(columns, cells, strict=True)))
        # Validate the cells that did parse too, so the row's every bad field is listed.
        built, more = build_row(line, values)
        if built is not None and not problems:
            rows.append(built)
        errors.extend(problems + more)
    return rows, errors


def _typed_cells(line: int, cells: Mapping[str, str]) -> tuple[dict[str, Any], list[RowError]]:
    values: dict[str, Any] = {}
    problems: list[RowError] = []
    for column, raw in cells.items():
        text = unescape_cell(raw.strip())
        try:
            if column in ("enabled", *POLICY_FIELDS) and text == "":
                values[column] = None
            elif column == "tags" or column in _LIST_COLUMNS:
                values[column] = split_list(column, text)
            elif column in _BOOL_COLUMNS:
                values[column] = _bool(column, text)
            elif column == "max_age":
                values[column] = _int(column, text)
            elif column == "request_headers":
                values[column] = _header_cell(text)
            else:
                values[column] = text or None
        except _CellError as exc:
            problems.append(RowError(line, exc.column, exc.message))
    return values, problems


# -- JSON / YAML -------------------------------------------------------------


def _items(document: Any, what: str) -> list[Any]:
    if isinstance(document, dict):
        extra = sorted(set(document) - {"endpoints"})
        if extra or "endpoints" not in document:
            raise InputError(
                f'a {what} inventory is a list of endpoints or {{"endpoints": [...]}}; '
                f"unexpected key(s): {', '.join(map(str, extra)) or '(no endpoints key)'}"
            )
        document = document["endpoints"]
    if not isinstance(document, list):
        raise InputError(
            f"a {what} inventory is a list of endpoints, not {type(document).__name__}"
        )
    return document


def _typed_object(item: dict[str, Any]) -> dict[str, Any]:
    # Lists written as one string ("a;b") read as in CSV.
    return {
        key: split_list(key, value)
        if isinstance(value, str) and (key == "tags" or key in _LIST_COLUMNS)
        else value
        for key, value in item.items()
    }


def parse_objects(
    document: Any, what: str, *, max_rows: int | None = None
) -> tuple[list[ImportRow], list[RowError]]:
    """Rows of a parsed JSON or YAML inventory (``what`` names the format in errors);
    ``InputError`` when the list has more than ``max_rows`` items."""
    rows: list[ImportRow] = []
    errors: list[RowError] = []
    items = _items(document, what)
    if max_rows is not None and len(items) > max_rows:
        raise too_many_rows(max_rows)
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            errors.append(RowError(number, None, f"expected an object, not {type(item).__name__}"))
            continue
        built, problems = build_row(number, _typed_object(item))
        if built is not None:
            rows.append(built)
        errors.extend(problems)
    return rows, errors


def parse_json(text: str) -> tuple[list[ImportRow], list[RowError]]:
    """Rows of a JSON inventory."""
    return parse_objects(load_json(text), "JSON")


def parse_yaml(text: str) -> tuple[list[ImportRow], list[RowError]]:
    """Rows of a YAML inventory."""
    return parse_objects(load_yaml(text), "YAML")
